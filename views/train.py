"""Train: pick an architecture and settings, watch it learn, and find it in the registry.

Also runs k-fold cross-validation and optimizer / learning-rate sweeps, whose result tables are
kept for the session and can be stored with a model (shown on Evaluate).
"""

import numpy as np
import streamlit as st

from fashion_core import latent, zoo
from fashion_core.errors import FashionError
from fashion_core.registry import EXPERIMENT_FILES, suggest_name, validate_name
from fashion_core.training import OPTIMIZERS, TrainConfig, sweep_grid
from ui import cache, charts, tables, widgets
from ui.data_source import current_dataset
from ui.progress import StreamlitProgress

RUN_MODES = {"train": "Train one model", "cv": "k-fold cross-validation", "sweep": "Optimizer / learning-rate sweep"}
SWEEP_RATES = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
LAST_RUN, EXPERIMENTS = "train_last_run", "train_experiments"


def main():
    st.title(":material/model_training: Train")
    st.caption("Choose an architecture from the model zoo and its settings, then start. Progress and "
               "the learning curves update live. Changing a setting, leaving the page or closing the "
               "tab stops a run: nothing half-trained is ever saved.")
    dataset = current_dataset()
    if dataset is None:
        return
    st.markdown(f"Training data: **{dataset.name}** ({dataset.num_classes} classes, "
                f"{len(dataset.y_train):,} training images). Change it in the sidebar.")
    mode = st.radio("What to run", list(RUN_MODES), format_func=RUN_MODES.get, horizontal=True, key="train_mode")
    config, name = settings_ui(dataset, mode)
    if mode == "train":
        if st.button("Start training", type="primary", icon=":material/play_arrow:", key="start_training"):
            run_training(dataset, config, name)
        last_run_ui()
    else:
        experiment_settings = experiment_ui(mode)
        if st.button(f"Start {RUN_MODES[mode].lower()}", type="primary", icon=":material/play_arrow:",
                     key=f"start_{mode}"):
            run_experiment(dataset, config, mode, experiment_settings)
        experiments_ui()


# --- settings ------------------------------------------------------------------------------------


def settings_ui(dataset, mode):
    """Architecture and hyper-parameters; returns (TrainConfig, model name)."""
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
        if arch == "vgg16_transfer":
            st.caption("Needs VGG16's ImageNet weights (downloaded once by Keras when online).")
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
            name = st.text_input("Model name", value=default_name(arch, dataset), key=f"train_name_{arch}",
                                 help="Letters, digits, '_', '-' or '.'; the model's folder in the registry.")
    config = TrainConfig(arch=arch, epochs=int(epochs), batch_size=int(batch_size), optimizer=optimizer,
                         learning_rate=float(learning_rate), validation_fraction=float(validation), limit=limit,
                         class_weights=balance)
    if mode == "train":
        config = start_from_ui(dataset, config) or config
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
        lines.append("Its ImageNet weights are downloaded by Keras on first use (online only).")
    st.info("  \n".join(lines), icon=":material/school:")
    return run


def default_name(arch, dataset):
    """``<arch>-<dataset>`` with a number added until no model has that name."""
    base = suggest_name(f"{arch}-{dataset.name}")
    taken = {e.name for e in cache.model_entries()[0]}
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


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


# --- running -------------------------------------------------------------------------------------


def run_training(dataset, config, name):
    from fashion_core.runs import train_and_save

    try:
        resolved = config.resolve()
        validate_name(name)
    except FashionError as exc:
        st.error(str(exc))
        return
    spec = zoo.get_spec(resolved.arch)
    with st.status(f"Training **{name}** ({spec.title})…", expanded=True) as status:
        progress = StreamlitProgress(first_stage=spec.first_stage)
        try:
            entry, result, evaluation = train_and_save(dataset, config, name, progress=progress)
        except FashionError as exc:
            status.update(label="Training could not run", state="error")
            st.error(str(exc))
            return
        status.update(label=f"**{name}** trained, evaluated and saved", state="complete", expanded=False)
    st.session_state[LAST_RUN] = {
        "name": entry.name,
        "accuracy": evaluation["accuracy"],
        "loss": evaluation["loss"],
        "macro_f1": evaluation["macro_f1"],
        "history": result.history,
        "seconds": result.train_seconds,
        "cancelled": result.cancelled,
        "reconstructions": latent.sample_reconstructions(result.bundle.autoencoder, dataset.x_test),
    }


def last_run_ui():
    run = st.session_state.get(LAST_RUN)
    if not run:
        return
    st.subheader(f"Last run: {run['name']}")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Test accuracy", f"{run['accuracy']:.2%}")
    c2.metric("Test loss", f"{run['loss']:.3f}")
    c3.metric("Macro F1", f"{run['macro_f1']:.3f}")
    c4.metric("Training time", f"{run['seconds']:.0f} s")
    st.page_link("views/evaluate.py", label=f"Open {run['name']} in Evaluate", icon=":material/analytics:")
    st.plotly_chart(charts.history_figure(run["history"]), key="last_run_history")
    if "autoencoder" in run["history"]:
        st.plotly_chart(charts.reconstruction_figure(run["history"]["autoencoder"]), key="last_run_ae")
    if run["reconstructions"] is not None:
        originals, rebuilt = run["reconstructions"]
        st.markdown("**Reconstructions** (top: test images, bottom: what the autoencoder rebuilds)")
        st.image(widgets.tile(np.concatenate([originals, rebuilt]), columns=len(originals), scale=3))


def run_experiment(dataset, config, mode, settings):
    from fashion_core.training import cross_validate, sweep

    try:
        resolved = config.resolve()
    except FashionError as exc:
        st.error(str(exc))
        return
    spec = zoo.get_spec(resolved.arch)
    if mode == "cv":
        labels = [f"Fold {i + 1}/{settings['folds']}" for i in range(settings["folds"])]
    else:
        combos = sweep_grid(settings["optimizers"], settings["learning_rates"])
        labels = [f"Run {i + 1}/{len(combos)} ({o}, lr {r:g})" for i, (o, r) in enumerate(combos)]
    with st.status(f"{RUN_MODES[mode]}: {spec.title}…", expanded=True) as status:
        progress = StreamlitProgress(first_stage=spec.first_stage, run_labels=labels)
        try:
            if mode == "cv":
                result = cross_validate(dataset, config, folds=settings["folds"], progress=progress)
            else:
                result = sweep(dataset, config, optimizers=settings["optimizers"],
                               learning_rates=settings["learning_rates"], progress=progress)
        except FashionError as exc:
            status.update(label="Could not run", state="error")
            st.error(str(exc))
            return
        status.update(label=f"{RUN_MODES[mode]} finished", state="complete", expanded=False)
    result["dataset_name"] = dataset.name
    st.session_state.setdefault(EXPERIMENTS, []).insert(0, {"kind": mode, "result": result})


def experiments_ui():
    experiments = st.session_state.get(EXPERIMENTS) or []
    if not experiments:
        return
    st.subheader("Results of this session")
    entries = cache.model_entries()[0]
    for i, experiment in enumerate(experiments):
        kind, result = experiment["kind"], experiment["result"]
        title = "Cross-validation" if kind == "cv" else "Sweep"
        with st.container(border=True):
            st.markdown(f"**{title}** · {zoo.ARCHITECTURES[result['arch']].title} · {result.get('dataset_name', '')}")
            st.dataframe(tables.experiment_table(kind, result), hide_index=True)
            if kind == "sweep":
                best = result["best"]
                st.caption(f"Best: {best['optimizer']} at learning rate {best['learning_rate']:g} "
                           f"(validation {best['val_accuracy']:.2%}, test {best['test_accuracy']:.2%}).")
            keep_with_model_ui(i, kind, result, entries)


def keep_with_model_ui(i, kind, result, entries):
    """Store an experiment's results with a model of the same architecture (shown on Evaluate)."""
    same_arch = [e for e in entries if e.metadata.get("arch") == result["arch"]]
    if not same_arch:
        st.caption("Train a model of this architecture to keep these results with it.")
        return
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    with c1:
        entry = widgets.model_selector(same_arch, "Keep these results with model", key=f"keep_{kind}_{i}")
    if c2.button("Keep", key=f"keep_button_{kind}_{i}"):
        try:
            cache.registry().update_json(entry.name, EXPERIMENT_FILES[kind], result)
        except FashionError as exc:
            st.error(str(exc))
        else:
            st.toast(f"Saved with {entry.name}; see it on Evaluate.")


main()
