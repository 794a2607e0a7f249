"""Train: pick an architecture and settings, start a run, and find the model in the registry.

Runs — one model, k-fold cross-validation, optimizer / learning-rate sweeps — are background jobs
(``fashion_core.jobs``, ``ui/jobs.py``): the page submits them and shows the running job live,
the queue and your jobs; leaving the page or reloading never stops a run. Cross-validation and
sweep results stay with their job and can be stored with a model (shown on Evaluate).
"""

import numpy as np
import pandas as pd
import streamlit as st

from fashion_core import latent, zoo
from fashion_core.jobs import ENDED, QUEUED, RUNNING, train_params
from fashion_core.errors import FashionError
from fashion_core.registry import EXPERIMENT_FILES
from fashion_core.training import OPTIMIZERS, PRESETS, TrainConfig, sweep_grid
from ui import cache, charts, jobs, tables, widgets
from ui.data_source import current_dataset

RUN_MODES = {"train": "Train one model", "cv": "k-fold cross-validation", "sweep": "Optimizer / learning-rate sweep"}
SWEEP_RATES = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
RECENT_RESULTS = 5  # cross-validation and sweep results listed


def main():
    st.title(":material/model_training: Train")
    st.caption("Choose an architecture from the model zoo and its settings, then start. Runs go to a "
               "queue and train one at a time in the background: look at other pages, reload or come "
               "back later; the sidebar shows the progress. A cancelled run saves nothing.")
    dataset = current_dataset()
    if dataset is not None:
        st.markdown(f"Training data: **{dataset.name}** ({dataset.num_classes} classes, "
                    f"{len(dataset.y_train):,} training images). Change it in the sidebar.")
        mode = st.radio("What to run", list(RUN_MODES), format_func=RUN_MODES.get, horizontal=True, key="train_mode")
        config, name = settings_ui(dataset, mode)
        settings = experiment_ui(mode) if mode != "train" else {}
        label = "Start training" if mode == "train" else f"Start {RUN_MODES[mode].lower()}"
        if st.button(label, type="primary", icon=":material/play_arrow:", key=f"start_{'training' if mode == 'train' else mode}"):
            submit_run(dataset, config, name, mode, settings)
    jobs_ui()
    last_run_ui()
    experiments_ui()


# --- settings ------------------------------------------------------------------------------------


SETUPS = {"quick": "Quick preset", "custom": "Choose the architecture and settings"}


def settings_ui(dataset, mode):
    """Architecture and hyper-parameters; returns (TrainConfig, model name)."""
    if mode == "train":
        catalogue = dataset.spec.get("kind") == "folder"  # a catalogue starts from a model that knows clothes
        setup = st.radio("Setup", list(SETUPS), format_func=SETUPS.get, horizontal=True, key="train_setup",
                         index=1 if catalogue else 0,
                         help="The quick preset is measured on Fashion-MNIST on this kind of machine; the other "
                              "setup opens the model zoo (and, for a catalogue, 'Start from' a trained model).")
        if setup == "quick":
            return preset_ui(dataset, PRESETS["quick"])
    archs = list(zoo.ARCHITECTURES)
    left, right = st.columns([1, 2], gap="large")
    with left:
        arch = st.selectbox("Architecture", archs, index=archs.index("seed004_cnn"), key="train_arch",
                            format_func=lambda a: zoo.ARCHITECTURES[a].title,
                            help="The model zoo: each architecture comes from a paper (or is ours).")
        spec = zoo.ARCHITECTURES[arch]
        st.markdown(f"{spec.description}  \n*Source:* {spec.source}  \n*Reported accuracy:* "
                    f"{spec.paper_accuracy or '—'}")
        if spec.pretrain:
            st.caption("Two stages: the autoencoder first learns to reconstruct images, then a "
                       "classifier is trained on its encoder.")
        build_options = vgg16_weights_ui() if arch == "vgg16_transfer" else {}
    with right:
        # Keys include the architecture so its defaults appear when the architecture changes.
        c1, c2, c3 = st.columns(3)
        optimizer = c1.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(spec.optimizer),
                                 key=f"train_opt_{arch}", disabled=mode == "sweep",
                                 help="The sweep tries several optimizers instead." if mode == "sweep" else None)
        learning_rate = c2.number_input("Learning rate", min_value=1e-6, max_value=1.0, value=float(spec.learning_rate),
                                        format="%.5f", step=1e-4, key=f"train_lr_{arch}", disabled=mode == "sweep")
        epochs = c3.number_input("Epochs", 1, 200, int(spec.epochs), key=f"train_epochs_{arch}",
                                 help="Training stops early when validation accuracy stops improving.")
        c4, c5, c6 = st.columns(3)
        batch_size = c4.number_input("Batch size", 1, 4096, int(spec.batch_size), key=f"train_batch_{arch}")
        validation = c5.slider("Validation fraction", 0.0, 0.5, 0.1, 0.05, key="train_val",
                               help="Share of the training images held out to watch over-fitting "
                                    "(the test set is never used for training).")
        n_train = len(dataset.y_train)
        use_subset = c6.toggle("Train on a subset", value=n_train > 20000, key="train_use_subset",
                               help="A random subset trains much faster; good for a first try.")
        limit = None
        if use_subset:
            limit = int(c6.number_input("Training images", 10, max(10, n_train), min(5000, n_train), step=500,
                                        key="train_limit"))
        counts = dataset.class_counts("train")
        imbalance = counts.max() / max(1, counts.min())
        balance = st.toggle("Balance classes", value=bool(imbalance >= 2), key="train_class_weights",
                            help=f"Weights the loss so rare classes count as much as common ones. "
                                 f"The largest class here has {imbalance:.1f}× the images of the smallest.")
        name = None
        if mode == "train":
            name = st.text_input("Model name", value=jobs.free_model_name(f"{arch}-{dataset.name}"), key=f"train_name_{arch}",
                                 help="Letters, digits, '_', '-' or '.'; the model's folder in the registry.")
    config = TrainConfig(arch=arch, epochs=int(epochs), batch_size=int(batch_size), optimizer=optimizer,
                         learning_rate=float(learning_rate), validation_fraction=float(validation), limit=limit,
                         class_weights=balance, build_options=build_options)
    if mode == "train":
        config = start_from_ui(dataset, config) or config
    return config, name


VGG16_WEIGHTS = {"imagenet": "ImageNet, downloaded by Keras", "file": "ImageNet, from a local file",
                 "scratch": "none: train from scratch"}


def vgg16_weights_ui():
    """Where VGG16's ImageNet weights come from: Keras' download (online, or already cached), a
    local copy of Keras' file (offline), or none (the whole network trained from scratch).
    Returns the architecture's build options."""
    cached = zoo.imagenet_weights_cached(zoo.VGG16_WEIGHTS_FILE)
    source = st.radio("ImageNet weights", list(VGG16_WEIGHTS), format_func=VGG16_WEIGHTS.get, key="train_vgg16_weights",
                      index=0 if cached else 2,
                      help="The paper freezes a VGG16 trained on ImageNet and trains a new head. Keras downloads "
                           f"its weights ({zoo.VGG16_WEIGHTS_FILE}, 58 MB) once when online.")
    if source == "imagenet":
        st.caption("Already in Keras' cache." if cached else
                   "Not in Keras' cache yet: the run downloads them first (it fails in one line when offline).")
        return {"weights": "imagenet"}
    if source == "scratch":
        st.caption("Without ImageNet weights VGG16 is trained whole from random weights: slower, and not the "
                   "paper's transfer learning.")
        return {"weights": None}
    path = st.text_input("Weights file", key="train_vgg16_file", placeholder=f"/path/to/{zoo.VGG16_WEIGHTS_FILE}",
                         help="A copy of Keras' file on this server, e.g. from ~/.keras/models on an online machine.")
    if not path.strip():
        st.info("Give the file's path on this server; until then the run asks Keras for the download.")
        return {"weights": "imagenet"}
    try:
        return {"weights": zoo.local_weights_file(path.strip())}
    except FashionError as exc:
        st.error(f"{exc} Until it is found, the run asks Keras for the download.")
        return {"weights": "imagenet"}


def preset_ui(dataset, preset):
    """A measured preset: what it is, how long it should take here, a model name."""
    config = preset.config()
    n_train = int(len(dataset.y_train) * (1 - config.validation_fraction))
    seconds = preset.expected_seconds(n_train)
    expected = f"about {max(1, round(seconds / 60))} min" if seconds else "not measured yet"
    st.markdown(f"**{preset.description}**  \nExpected time for {n_train:,} training images: **{expected}** "
                f"({preset.measured or 'no measurement recorded'}).")
    name = st.text_input("Model name", value=jobs.free_model_name(f"{preset.name}-{dataset.name}"), key="train_name_preset",
                         help="Letters, digits, '_', '-' or '.'; the model's folder in the registry.")
    st.caption(f"Same as `python -m fashion_core train --preset {preset.name} --name {name}`.")
    return config, name


SCRATCH = "(from scratch)"


def start_from_ui(dataset, config):
    """With a catalogue as data source: "Start from" a registry classifier or an ImageNet backbone
    (the best pre-selected) and the expected time, measured from the backbone's recorded speed.
    Returns the transfer run's TrainConfig, or None to train the architecture above from scratch."""
    from fashion_core import transfer

    if dataset.spec.get("kind") != "folder":
        return None
    entries = cache.model_entries()[0]
    choices = [SCRATCH, *transfer.start_from_choices(entries)]
    best = transfer.default_start_from(entries)
    source = st.selectbox("Start from", choices, index=choices.index(best) if best in choices else 0,
                          key="train_start_from",
                          help="A model that already knows clothes learns your classes in minutes: a new head on "
                               "its features, then fine-tuning (docs/TRANSFER.md). From scratch uses the "
                               "architecture and settings above.")
    if source == SCRATCH:
        return None
    try:
        backbone = transfer.resolve_backbone(source, cache.registry())
        transfer.check_fits(backbone, dataset.image_shape)
        run = transfer.transfer_config(backbone, seed=config.seed, validation_fraction=config.validation_fraction,
                                       class_weights=config.class_weights, limit=config.limit)
    except FashionError as exc:
        st.error(str(exc))
        return None
    h, w, c = backbone.image_shape
    n_train = int(min(run.limit or len(dataset.y_train), len(dataset.y_train)) * (1 - run.validation_fraction))
    seconds = transfer.expected_seconds(backbone, n_train, run)
    lines = [f"**{source}** ({' ← '.join(backbone.lineage)}): a new head for your {dataset.num_classes} classes "
             f"({run.head_epochs} epochs on its features), then {run.epochs} epochs of fine-tuning."]
    lines.append(f"Expected time: about **{seconds / 60:.1f} min** for {n_train:,} images "
                 f"(its recorded speed, {backbone.images_per_second:.0f} images/s)." if seconds
                 else "Expected time: not known yet (no recorded speed for this backbone).")
    if tuple(dataset.image_shape) != (h, w, c):
        lines.append(f"It was trained at {h}×{w} {'colour' if c == 3 else 'grey'}: choose that in the sidebar "
                     "for the best accuracy (other sizes are adapted).")
    if backbone.is_imagenet:
        lines.append(f"Its ImageNet weights are {zoo.get_spec(backbone.arch).extra['weights_source']}.")
    st.info("  \n".join(lines), icon=":material/school:")
    return run


def experiment_ui(mode):
    """Settings of a cross-validation or sweep run."""
    if mode == "cv":
        folds = st.number_input("Folds", 2, 10, 5, key="cv_folds",
                                help="Each fold trains a fresh model on the other folds and tests on this one.")
        return {"folds": int(folds)}
    c1, c2 = st.columns(2)
    optimizers = c1.multiselect("Optimizers", OPTIMIZERS, default=["adam", "rmsprop", "adadelta"], key="sweep_opts")
    rates = c2.multiselect("Learning rates", SWEEP_RATES, default=[1e-3, 1e-4], key="sweep_lrs",
                           format_func=lambda r: f"{r:g}")
    st.caption(f"{len(sweep_grid(optimizers, rates))} runs, one per combination.")
    return {"optimizers": optimizers, "learning_rates": rates}


# --- running: background jobs ---------------------------------------------------------------------


def submit_run(dataset, config, name, mode, settings):
    """Queue the run as a job (the dataset goes as its recipe, never as arrays)."""
    params = train_params(dataset.spec, config, name if mode == "train" else None)
    job = jobs.submit(mode, {**params, **settings})
    if job is not None:
        position = jobs.queue_position(job)
        st.success(f"**{job.title}** is queued" + (f" (number {position})." if position and position > 1 else
                                                   ": it starts as soon as the trainer is free."),
                   icon=":material/schedule:")


@st.fragment(run_every=jobs.REFRESH_SECONDS)
def jobs_ui():
    """The running job (live progress, curves, Cancel), the queue with positions, recent jobs."""
    everything = jobs.store().list()
    if not everything:
        return
    running = next((job for job in everything if job.state == RUNNING), None)
    queued = [job for job in everything if job.state == QUEUED]
    st.subheader("Jobs")
    if running:
        running_job_ui(running)
    if queued:
        st.markdown(f"**Queue** ({len(queued)} waiting; one job trains at a time)")
        for position, job in enumerate(queued, start=1):
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            c1.markdown(f"{position}. **{job.title}** · {job.label}{' · yours' if jobs.is_mine(job) else ''}")
            cancel_button(c2, job)
    recent_jobs_ui(everything)


def recent_jobs_ui(everything):
    """Every recent job, everyone's (a reload starts a new session: find your job here)."""
    ended = [job for job in everything if job.state in ENDED]
    with st.expander(f"Recent jobs ({len(ended)} finished)", expanded=False):
        rows = [{"submitted": pd.Timestamp(job.submitted_at, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M"),
                 "job": job.title, "kind": job.label, "state": job.state, "yours": jobs.is_mine(job),
                 "detail": jobs.status_line(job).replace("**", "")} for job in reversed(everything)]
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="recent_jobs")


def running_job_ui(job):
    with st.container(border=True, key="running_job"):
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        c1.markdown(f"{jobs.STATE_ICONS[RUNNING]} **{job.title}** · {job.label}"
                    f"{' · yours' if jobs.is_mine(job) else ' · started in another session'}  \n"
                    f"{jobs.status_line(job)}")
        if job.cancel_requested:
            c2.caption("Cancelling…")
        else:
            cancel_button(c2, job)
        st.progress(job.fraction_done())
        history = job.history or {}
        if any(history.get(stage) for stage in charts.CLASSIFIER_STAGES):
            st.plotly_chart(charts.history_figure(history), key=f"job_history_{job.id}")
        if history.get("autoencoder"):
            st.plotly_chart(charts.reconstruction_figure(history["autoencoder"]), key=f"job_ae_{job.id}")


def cancel_button(column, job):
    """Anyone may cancel any job (there are no accounts; anyone can delete a model too)."""
    if column.button("Cancel", key=f"cancel_{job.id}", icon=":material/stop:"):
        jobs.store().cancel(job.id)
        st.toast(f"Cancelling {job.title}: nothing will be saved.")


def last_run_ui():
    """Your last finished training job: test metrics, curves, a link to Evaluate."""
    done = [job for job in jobs.store().list() if job.kind == "train" and job.state == "done" and jobs.is_mine(job)]
    if not done:
        return
    run = done[-1].result
    st.subheader(f"Last run: {run['model']}")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Test accuracy", f"{run['accuracy']:.2%}")
    c2.metric("Test loss", f"{run['loss']:.3f}")
    c3.metric("Macro F1", f"{run['macro_f1']:.3f}")
    c4.metric("Training time", f"{run['seconds']:.0f} s")
    st.page_link("views/evaluate.py", label=f"Open {run['model']} in Evaluate", icon=":material/analytics:")
    st.plotly_chart(charts.history_figure(run["history"]), key="last_run_history")
    if "autoencoder" in run["history"]:
        st.plotly_chart(charts.reconstruction_figure(run["history"]["autoencoder"]), key="last_run_ae")
        reconstructions_ui(run["model"])


def reconstructions_ui(name):
    try:
        entry = cache.registry().get(name)
        autoencoder = cache.autoencoder(name)
        dataset = cache.model_dataset(entry.metadata)
    except FashionError:
        return  # deleted or retrained since: the curves above are all there is
    if autoencoder is None:
        return
    originals, rebuilt = latent.sample_reconstructions(autoencoder, dataset.x_test)
    st.markdown("**Reconstructions** (top: test images, bottom: what the autoencoder rebuilds)")
    st.image(widgets.tile(np.concatenate([originals, rebuilt]), columns=len(originals), scale=3))


def experiments_ui():
    """The last cross-validation and sweep results (everyone's: a reload gives you a new session)."""
    finished = [job for job in jobs.store().list() if job.kind in EXPERIMENT_FILES and job.state == "done"]
    if not finished:
        return
    st.subheader("Cross-validation and sweep results")
    entries = cache.model_entries()[0]
    for job in reversed(finished[-RECENT_RESULTS:]):
        kind, result = job.kind, job.result
        title = "Cross-validation" if kind == "cv" else "Sweep"
        with st.container(border=True):
            st.markdown(f"**{title}** · {zoo.ARCHITECTURES[result['arch']].title} · {result.get('dataset_name', '')}"
                        f"{' · yours' if jobs.is_mine(job) else ''}")
            st.dataframe(tables.experiment_table(kind, result), hide_index=True)
            if kind == "sweep":
                best = result["best"]
                st.caption(f"Best: {best['optimizer']} at learning rate {best['learning_rate']:g} "
                           f"(validation {best['val_accuracy']:.2%}, test {best['test_accuracy']:.2%}).")
            keep_with_model_ui(job.id, kind, result, entries)


def keep_with_model_ui(job_id, kind, result, entries):
    """Store an experiment's results with a model of the same architecture (shown on Evaluate)."""
    same_arch = [e for e in entries if e.metadata.get("arch") == result["arch"]]
    if not same_arch:
        st.caption("Train a model of this architecture to keep these results with it.")
        return
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    with c1:
        entry = widgets.model_selector(same_arch, "Keep these results with model", key=f"keep_{kind}_{job_id}")
    if c2.button("Keep", key=f"keep_button_{kind}_{job_id}"):
        try:
            cache.registry().update_json(entry.name, EXPERIMENT_FILES[kind], result)
        except FashionError as exc:
            st.error(str(exc))
        else:
            st.toast(f"Saved with {entry.name}; see it on Evaluate.")


main()
