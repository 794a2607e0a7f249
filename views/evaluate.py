"""Evaluate: how good is a model, where does it go wrong, and how do several models compare?

Every number comes from the model's stored test-set evaluation on its *own* dataset; images
shown for a confusion-matrix cell come from predictions on that same test set.
"""

import numpy as np
import pandas as pd
import streamlit as st

from fashion_core.errors import FashionError
from fashion_core.evaluation import cell_members, most_confused_pair
from fashion_core.registry import best_entry
from fashion_core.calibration import calibration_report, coverage_accuracy, coverage_curve
from ui import cache, charts, links, tables, widgets
from ui.progress import StreamlitProgress

MAX_CELL_IMAGES = 24
MAX_MISTAKES_SHOWN = 24
AUDIT_PAGE = 12
VIEW_KEY = "evaluate_view"  # the open tab of one model's evaluation
VERDICTS = {"?": "not looked at", "wrong": "label is wrong", "fine": "label is fine"}


def main():
    st.title(":material/analytics: Evaluate")
    st.caption("Test-set accuracy, the confusion matrix, per-class scores, training curves and the "
               "worst mistakes of a model. Choose several models to compare them side by side.")
    entries = widgets.registry_entries_ui()
    if not entries:
        return
    chosen = models_ui(entries)
    view = {"model": ",".join(e.name for e in chosen) or None}
    if not chosen:
        st.info("Choose at least one model above.")
    elif len(chosen) == 1:
        view.update(single_model_ui(chosen[0]) or {})
    else:
        compare_ui(chosen)
    links.mirror("evaluate", **view)
    if chosen:
        links.copy_link_ui({k: v for k, v in view.items() if v is not None})


def models_ui(entries):
    names = [e.name for e in entries]
    by_name = {e.name: e for e in entries}
    links.initial_choice("evaluate", "model", "evaluate_models", lambda chosen: set(chosen) <= set(names),
                         parse=lambda text: [n for n in text.split(",") if n])
    default = links.linked("evaluate_models", [best_entry(entries).name])
    chosen = st.multiselect("Models (choose several to compare)", names, default=default,
                            format_func=lambda n: cache.entry_label(by_name[n]), key="evaluate_models")
    return [by_name[n] for n in chosen]


def evaluation_of(entry):
    """The stored evaluation, computing (and storing) it first for models that have none."""
    evaluation = cache.registry().evaluation(entry.name)
    if evaluation is not None:
        return evaluation
    st.warning(f"**{entry.name}** has not been evaluated yet (an imported model?).")
    if st.button(f"Evaluate {entry.name} on its test set", key=f"evaluate_now_{entry.name}", type="primary"):
        from fashion_core.runs import evaluate_and_store

        try:
            with st.spinner("Evaluating…"):
                evaluation = evaluate_and_store(entry.name, registry=cache.registry(), model=cache.classifier(entry.name),
                                                dataset=cache.model_dataset(entry.metadata))
        except FashionError as exc:
            st.error(str(exc))
            return None
        return evaluation
    return None


# --- one model -----------------------------------------------------------------------------------


def single_model_ui(entry):
    meta = entry.metadata
    st.markdown(f"**{entry.name}** · {meta.get('title') or meta.get('arch', 'imported')} · trained on "
                f"**{meta.get('dataset_name', '?')}**"
                + (f" ({meta['train_size']:,} training images)" if meta.get("train_size") else ""))
    evaluation = evaluation_of(entry)
    if evaluation is None:
        return
    metrics_ui(evaluation)
    views = {
        "Confusion matrix": lambda: confusion_ui(entry, evaluation),
        "Per class": lambda: per_class_ui(evaluation),
        "Training curves": lambda: curves_ui(entry),
        "Worst mistakes": lambda: mistakes_ui(entry, evaluation),
        "Experiments": lambda: experiments_ui(entry),
        "Calibration": lambda: calibration_ui(entry),
        "Suspicious labels": audit_ui,
    }
    # Lazy tabs: only the open one runs and is sent to the browser (a first visit draws one chart,
    # not seven); switching tabs reruns the page.
    shown = {}
    for (label, view), tab in zip(views.items(), st.tabs(list(views), key=VIEW_KEY, on_change="rerun")):
        if tab.open:
            with tab:
                shown[label] = view()
    cell, names = shown.get("Confusion matrix") or linked_cell(entry, evaluation), evaluation["class_names"]
    return {"true": names[cell[0]], "pred": names[cell[1]]}


def metrics_ui(evaluation):
    top_k = evaluation.get("top_k_accuracy", {})
    cols = st.columns(3 + len(top_k))
    cols[0].metric("Accuracy", f"{evaluation['accuracy']:.2%}", help="Share of test images classified correctly.")
    cols[1].metric("Loss", f"{evaluation['loss']:.3f}", help="Cross-entropy on the test set (lower is better).")
    cols[2].metric("Macro F1", f"{evaluation['macro_f1']:.3f}", help="F1 averaged over classes, each class counting equally.")
    for col, (k, value) in zip(cols[3:], sorted(top_k.items(), key=lambda kv: int(kv[0]))):
        col.metric(f"Top-{k} accuracy", f"{value:.2%}", help=f"The true class is among the {k} most likely.")
    extra = f" · flip-TTA accuracy {evaluation['flip_tta_accuracy']:.2%}" if evaluation.get("flip_tta_accuracy") else ""
    st.caption(f"On {evaluation['n_samples']:,} test images{extra}.")


def _apply_chart_selection(chart_key, true_key, pred_key, n):
    """Copy a click on the confusion-matrix chart into the two cell selectboxes (which must not
    exist yet in this run), once per new click."""
    cell = charts.selected_cell(st.session_state.get(chart_key))
    if cell is None or not (0 <= cell[0] < n and 0 <= cell[1] < n):
        return
    if st.session_state.get(f"{chart_key}_applied") != cell:
        st.session_state[f"{chart_key}_applied"] = cell
        st.session_state[true_key], st.session_state[pred_key] = cell


def _cell_keys(entry):
    """Session-state keys of the confusion chart and the two cell selectboxes of a model."""
    return f"cm_{entry.name}", f"cm_true_{entry.name}", f"cm_pred_{entry.name}"


def linked_cell(entry, evaluation):
    """The confusion cell (true, predicted) to show: the one last shown in this session (kept
    while another tab is open, whose run drops the selectboxes' state), else the link's, else
    the most confused pair."""
    class_names = evaluation["class_names"]
    _chart_key, true_key, pred_key = _cell_keys(entry)
    worst_true, worst_pred = most_confused_pair(np.asarray(evaluation["confusion_matrix"]))
    for param, key in (("true", true_key), ("pred", pred_key)):
        links.initial_choice("evaluate", param, key, range(len(class_names)), parse=links.class_index(class_names),
                             label=f"{param} class")
    shown = st.session_state.get(f"_shown_{true_key}")
    return shown or (links.linked(true_key, worst_true), links.linked(pred_key, worst_pred))


def confusion_ui(entry, evaluation):
    class_names = evaluation["class_names"]
    n = len(class_names)
    matrix = np.asarray(evaluation["confusion_matrix"])
    chart_key, true_key, pred_key = _cell_keys(entry)
    _apply_chart_selection(chart_key, true_key, pred_key, n)
    worst_true, worst_pred = linked_cell(entry, evaluation)
    left, right = st.columns([3, 2], gap="large")
    with right:
        st.markdown("**Images in a cell** — click a square, or choose:")
        c1, c2 = st.columns(2)
        true_class = c1.selectbox("True class", range(n), index=int(worst_true),
                                  format_func=lambda i: class_names[i], key=true_key)
        pred_class = c2.selectbox("Predicted class", range(n), index=int(worst_pred),
                                  format_func=lambda i: class_names[i], key=pred_key)
        st.session_state[f"_shown_{true_key}"] = (true_class, pred_class)
        cell_images_ui(entry, evaluation, true_class, pred_class)
    with left:
        normalise = st.toggle("Row-normalised (share of each true class)", key=f"cm_norm_{entry.name}")
        fig = charts.confusion_figure(matrix, class_names, normalise=normalise, selected=(true_class, pred_class))
        st.altair_chart(fig, on_select="rerun", selection_mode=charts.CELL_SELECTION, key=chart_key)
    return true_class, pred_class


def cell_images_ui(entry, evaluation, true_class, pred_class):
    class_names = evaluation["class_names"]
    count = int(np.asarray(evaluation["confusion_matrix"])[true_class][pred_class])
    verdict = "correct" if true_class == pred_class else "mistakes"
    st.caption(f"{count:,} test image(s): true **{class_names[true_class]}**, predicted "
               f"**{class_names[pred_class]}** ({verdict}). Most confident first.")
    if count == 0 or (loaded := test_set_of(entry)) is None:
        return
    data, probabilities = loaded
    members = cell_members(probabilities, data.y_test, true_class, pred_class, MAX_CELL_IMAGES)
    images = saliency_or_images(entry, data, members, [pred_class] * len(members), f"cm_saliency_{entry.name}")
    widgets.image_gallery(images, [f"{probabilities[i, pred_class]:.0%} sure" for i in members],
                          columns=4, width=84)


def test_set_of(entry):
    """(dataset, test-set probabilities) of a model (cached), or None after showing the error."""
    try:
        return cache.model_dataset(entry.metadata), cache.test_probabilities(entry.name, entry.metadata)
    except FashionError as exc:
        st.error(str(exc))
        return None


def saliency_or_images(entry, data, indices, classes, key):
    """The test images ``indices``, or (toggle on) the same with the saliency of ``classes`` over them."""
    if not st.toggle("Show what drove the answers", key=key,
                     help="Bright pixels changed the predicted class's probability most when hidden (occlusion)."):
        return data.x_test[list(indices)]
    try:
        return cache.test_saliency_overlays(entry.name, entry.metadata, indices, classes)
    except FashionError as exc:
        st.error(str(exc))
        return data.x_test[list(indices)]


def per_class_ui(evaluation):
    frame = pd.DataFrame(evaluation["per_class"])
    st.plotly_chart(charts.per_class_figure(frame), key="per_class_chart")
    st.dataframe(frame, hide_index=True, column_config={
        "class": "Class",
        **{m: st.column_config.NumberColumn(m.capitalize(), format="%.3f") for m in ("precision", "recall", "f1", "specificity")},
        "support": st.column_config.NumberColumn("Test images"),
    })
    st.caption("Precision: of the images predicted as this class, the share that are. Recall: of the "
               "images of this class, the share found. Specificity: of the other images, the share "
               "correctly not given this class.")


def curves_ui(entry):
    history = cache.registry().history(entry.name)
    if not history:
        st.info("No training history is stored for this model (imported models have none).")
        return
    st.plotly_chart(charts.history_figure(history), key=f"curves_{entry.name}")
    if "autoencoder" in history:
        st.plotly_chart(charts.reconstruction_figure(history["autoencoder"]), key=f"ae_curves_{entry.name}")
    command = entry.metadata.get("command")
    if command:
        st.caption("Reproduce this run from the command line:")
        st.code(command, language="bash")


def mistakes_ui(entry, evaluation):
    mistakes = evaluation.get("mistakes") or []
    if not mistakes:
        st.success("No mistakes on the test set.")
    elif (data := widgets.loaded_or_error(cache.model_dataset, entry.metadata)) is not None:
        mistakes_gallery_ui(entry, data, evaluation["class_names"], mistakes)


def mistakes_gallery_ui(entry, data, names, mistakes):
    shown = [m for m in mistakes if m["index"] < len(data.x_test)][:MAX_MISTAKES_SHOWN]
    st.caption("The most confident wrong answers: true class → predicted class (confidence).")
    widgets.image_gallery(
        saliency_or_images(entry, data, [m["index"] for m in shown], [m["predicted"] for m in shown],
                           f"mistakes_saliency_{entry.name}"),
        [f"{names[m['true']]} → {names[m['predicted']]} ({m['confidence']:.0%})" for m in shown],
        columns=8, width=96,
    )


def experiments_ui(entry):
    experiments = cache.registry().experiments(entry.name)
    if not experiments:
        st.info("No cross-validation or sweep results are stored with this model. Run them on the "
                "Train page and keep the results with this model.")
        return
    for kind, result in experiments.items():
        st.markdown("**Cross-validation**" if kind == "cv" else "**Optimizer / learning-rate sweep**")
        st.dataframe(tables.experiment_table(kind, result), hide_index=True)


METHOD_NOTES = {
    "class_temperature": "One temperature per predicted class: on this model's validation images that fitted "
                         "better (5-fold cross-validation) than one temperature for all.",
    "class_temperature+top_label_beta": "One temperature per predicted class, then a smooth map of each answer's "
                                        "confidence by its class: one temperature could not fix both the middle "
                                        "and the top of this model's curve (chosen by 5-fold cross-validation on "
                                        "its validation images; the answers themselves never change).",
}


def calibration_ui(entry):
    """Reliability diagram before / after calibration, and the coverage vs accuracy slider."""
    if (loaded := test_set_of(entry)) is None:
        return
    data, probabilities = loaded
    calibrator = entry.calibrator
    stored = entry.calibration
    report = stored if stored and "bins" in stored else calibration_report(probabilities, data.y_test, calibrator)
    if stored is None:
        st.info(f"**{entry.name}** has no fitted calibration yet: its answers are shown as the model gives them. "
                f"Fit one on its validation split with `python -m fashion_core calibrate {entry.name}`.")
    c1, c2, c3 = st.columns(3)
    c1.metric("ECE before", f"{report['ece_before']:.4f}", help="Expected calibration error: the mean gap between "
              "confidence and accuracy over 15 confidence bins, weighted by images (lower is better).")
    c2.metric("ECE after", f"{report['ece']:.4f}", delta=f"{report['ece'] - report['ece_before']:+.4f}", delta_color="inverse")
    c3.metric("Temperature", f"{calibrator.temperature:.3f}", help="Fitted over all validation answers. Above 1: the "
              "model was over-confident; below 1: under-confident.")
    if calibrator.method != "temperature":
        st.caption(METHOD_NOTES[calibrator.method])
    st.plotly_chart(charts.reliability_figure(report["bins_before"], report["bins"]), key=f"reliability_{entry.name}")
    st.markdown("**Only trust answers above a confidence**")
    calibrated = calibrator.apply(probabilities)
    threshold = st.slider("Trust answers at or above", 0.0, 0.99, 0.5, 0.01, key=f"trust_{entry.name}", format="%.2f")
    coverage, accuracy = coverage_accuracy(calibrated, data.y_test, threshold)
    m1, m2 = st.columns(2)
    m1.metric("Answers trusted", f"{coverage:.1%}", help="Share of test images whose calibrated confidence reaches the threshold.")
    m2.metric("Accuracy of those", "–" if accuracy is None else f"{accuracy:.2%}")
    st.plotly_chart(charts.coverage_figure(coverage_curve(calibrated, data.y_test), threshold), key=f"coverage_{entry.name}")


def audit_ui():
    """Browse a saved label audit, mark each label wrong or fine, and train without the wrong ones."""
    registry = cache.registry()
    names = registry.audit_names()
    if not names:
        st.info("No saved label audit yet. Rank the training labels that out-of-fold models dispute with "
                "`python -m fashion_core audit-labels --arch seed003_cnn --folds 3 --epochs 3 --name NAME` "
                "(add `--data-dir DIR` for a catalogue, `--limit N` for a quick one).")
        return
    name = st.selectbox("Saved audit", names, key="audit_name")
    try:
        audit = registry.load_audit(name)
        data = cache.dataset(audit["dataset"])
    except (FashionError, KeyError) as exc:
        st.error(f"This audit cannot be shown: {exc}")
        return
    classes = audit["class_names"]
    st.caption(f"**{audit['flagged']:,}** of {audit['audited']:,} training labels of **{audit['dataset_name']}** are "
               f"disputed by {audit['folds']} out-of-fold {audit['arch']} models ({audit['epochs']} epochs each); "
               f"the {len(audit['issues'])} most suspicious are kept, most suspicious first. Score: 1 − the "
               "probability the models give the label.")
    decisions = dict(audit.get("decisions") or {})
    issues = [r for r in audit["issues"] if r["index"] < len(data.y_train)]
    pages = max(1, -(-len(issues) // AUDIT_PAGE))
    page = int(st.number_input("Page", 1, pages, 1, key=f"audit_page_{name}", help=f"{pages} pages of {AUDIT_PAGE}"))
    shown = issues[(page - 1) * AUDIT_PAGE: page * AUDIT_PAGE]
    for start in range(0, len(shown), 4):
        for col, row in zip(st.columns(4), shown[start: start + 4]):
            with col:
                rank = issues.index(row) + 1
                st.image(widgets.to_display(data.x_train[row["index"]], 3), width=84,
                         caption=f"#{rank} · image {row['index']} · score {row['score']:.2f}")
                st.markdown(f"given **{classes[row['given']]}** → suggested **{classes[row['suggested']]}**")
                key = f"audit_{name}_{row['index']}"
                saved = decisions.get(str(row["index"]), "?")
                decisions[str(row["index"])] = st.radio("Verdict", list(VERDICTS), index=list(VERDICTS).index(saved),
                                                        format_func=VERDICTS.get, key=key, label_visibility="collapsed")
    wrong = sorted(int(i) for i, v in decisions.items() if v == "wrong")
    c1, c2 = st.columns([1, 2])
    if c1.button("Save my verdicts", key="audit_save", icon=":material/save:"):
        registry.save_audit(name, {**audit, "decisions": {i: v for i, v in decisions.items() if v != "?"}})
        st.toast(f"Saved: {len(wrong)} label(s) marked wrong.")
    c2.caption(f"{len(wrong)} label(s) marked wrong so far.")
    train_cleaned_ui(name, audit, data, wrong)


def train_cleaned_ui(name, audit, data, wrong):
    """Train a model on the audit's dataset without the images whose labels were marked wrong."""
    from fashion_core.audit import without_images
    from fashion_core.training import TrainConfig
    from fashion_core.zoo import ARCHITECTURES, get_spec

    st.markdown("**Train without the wrong ones**")
    c1, c2, c3, c4 = st.columns([2, 1, 1, 2])
    archs = list(ARCHITECTURES)
    arch = c1.selectbox("Architecture", archs, index=archs.index(audit["arch"]) if audit["arch"] in archs else 0,
                        key="audit_train_arch")
    epochs = int(c2.number_input("Epochs", 1, 200, int(audit.get("epochs") or 3), key="audit_train_epochs"))
    limit = int(c3.number_input("Images (0: all)", 0, len(data.y_train), 0, key="audit_train_limit"))
    model_name = c4.text_input("Name", f"{name}-cleaned", key="audit_train_name")
    if not st.button("Train without the wrong ones", key="audit_train", type="primary", disabled=not wrong,
                     help="Leaves out the training images you marked 'label is wrong'; the test set is unchanged."):
        return
    from fashion_core.runs import train_and_save

    cleaned = without_images(data, wrong, note={"audit": name})
    config = TrainConfig(arch=arch, epochs=epochs, limit=limit or None)
    with st.status(f"Training **{model_name}** without {len(wrong)} wrong label(s)…", expanded=True) as status:
        try:
            entry, _result, evaluation = train_and_save(cleaned, config, model_name, registry=cache.registry(),
                                                        progress=StreamlitProgress(first_stage=get_spec(arch).first_stage))
        except FashionError as exc:
            status.update(label="Training could not run", state="error")
            st.error(str(exc))
            return
        status.update(label=f"**{entry.name}** trained on the cleaned data: test accuracy {evaluation['accuracy']:.2%}",
                      state="complete", expanded=False)
    st.success(f"Saved **{entry.name}** ({len(wrong)} training image(s) left out); test accuracy {evaluation['accuracy']:.2%}.")


# --- several models ------------------------------------------------------------------------------


def compare_ui(entries):
    evaluations = {e.name: cache.registry().evaluation(e.name) for e in entries}
    missing = [n for n, ev in evaluations.items() if ev is None]
    if missing:
        st.warning(f"Not evaluated yet (open them alone to evaluate): {', '.join(missing)}.")
    entries = [e for e in entries if evaluations[e.name] is not None]
    if not entries:
        return
    rows = []
    for e in entries:
        ev = evaluations[e.name]
        row = {"model": e.name, "architecture": e.metadata.get("arch", "imported"),
               "dataset": e.metadata.get("dataset_name", ""), "accuracy": ev["accuracy"], "loss": ev["loss"],
               "macro F1": ev["macro_f1"]}
        row.update({f"top-{k}": v for k, v in sorted(ev.get("top_k_accuracy", {}).items())})
        row["params"] = e.metadata.get("params")
        rows.append(row)
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True, column_config={
        c: st.column_config.NumberColumn(c, format="percent") for c in table.columns if c == "accuracy" or c.startswith("top-")
    } | {"loss": st.column_config.NumberColumn("loss", format="%.3f"),
         "macro F1": st.column_config.NumberColumn("macro F1", format="%.3f")})

    reference = evaluations[entries[0].name]["class_names"]
    comparable = [e for e in entries if evaluations[e.name]["class_names"] == reference]
    if len(comparable) < len(entries):
        st.caption("Per-class comparison only for models of the same classes as "
                   f"{entries[0].name}: {', '.join(e.name for e in comparable)}.")
    metric = st.segmented_control("Per-class metric", ["f1", "precision", "recall", "specificity"], default="f1",
                                  key="compare_metric") or "f1"
    frame = pd.concat([pd.DataFrame(evaluations[e.name]["per_class"]).assign(model=e.name) for e in comparable])
    st.plotly_chart(charts.per_class_figure(frame, metrics=(metric,)), key="compare_per_class")
    st.dataframe(frame.pivot(index="class", columns="model", values=metric).reindex(reference), key="compare_table")

    st.markdown("**Validation accuracy per epoch**")
    histories = {e.name: cache.registry().history(e.name) for e in entries}
    st.plotly_chart(charts.validation_curves_figure(histories), key="compare_curves")


main()
