"""Figures the pages share: training curves, confusion matrix, per-class bars, the latent map.

The charts a page draws on its first visit or with every answer (Evaluate's confusion matrix,
the Latent space map, Classify's probabilities) are Vega-Lite (Altair): the browser then loads
Streamlit's ~0.8 MB Vega bundle instead of its 4.7 MB Plotly one, about 1.5 s less per first
visit on 2 busy cores, and eight sessions answered at once do not each parse Plotly
(docs/PERFORMANCE.md). The others, drawn only when a tab is opened, are Plotly figures.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ACCENT = "#D6336C"
SECOND = "#1C7ED6"
PALETTE = ["#D6336C", "#1C7ED6", "#37B24D", "#F59F00", "#7048E8", "#0CA678", "#E8590C",
           "#495057", "#AE3EC9", "#1098AD", "#74B816", "#F03E3E"]
CLASSIFIER_STAGES = ("classifier", "fine_tune")
STAGE_TITLES = {"classifier": "", "fine_tune": "fine-tune ", "autoencoder": "autoencoder "}


def _layout(fig, height=320):
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0))
    return fig


def history_figure(history, name_prefix=""):
    """Loss and accuracy per epoch (train vs validation) of the classifier stages.

    ``history`` is ``{stage: {metric: [per-epoch values]}}``; stages follow each other on the
    epoch axis (fine-tuning continues after the classifier stage).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08)
    offset = 0
    for stage in CLASSIFIER_STAGES:
        metrics = history.get(stage) or {}
        n = len(metrics.get("loss", []))
        if not n:
            continue
        epochs = np.arange(offset + 1, offset + n + 1)
        label = f"{name_prefix}{STAGE_TITLES[stage]}"
        for col, metric in ((1, "loss"), (2, "accuracy")):
            for prefix, colour, dash in (("", ACCENT, "solid"), ("val_", SECOND, "dash")):
                values = metrics.get(prefix + metric)
                if values:
                    fig.add_trace(go.Scatter(
                        x=epochs, y=values, mode="lines+markers",
                        name=f"{label}{'validation' if prefix else 'train'}",
                        legendgroup=f"{label}{prefix}", showlegend=col == 1,
                        line=dict(color=colour if not name_prefix else None, dash=dash)), row=1, col=col)
        offset += n
    fig.update_xaxes(title_text="epoch")
    return _layout(fig)


def reconstruction_figure(autoencoder_history):
    """Reconstruction loss (MSE) per epoch of an autoencoder's pre-training stage."""
    fig = go.Figure()
    for prefix, colour, dash, label in (("", ACCENT, "solid", "train"), ("val_", SECOND, "dash", "validation")):
        values = autoencoder_history.get(prefix + "loss")
        if values:
            fig.add_trace(go.Scatter(x=np.arange(1, len(values) + 1), y=values, mode="lines+markers",
                                     name=label, line=dict(color=colour, dash=dash)))
    fig.update_layout(title="Reconstruction loss (mean squared error)", xaxis_title="epoch", yaxis_title="MSE")
    return _layout(fig, 300)


CELL_SELECTION = "cell"  # the confusion chart's click selection: fields "true" and "pred" (class indices)


def confusion_figure(matrix, class_names, normalise=False, selected=None):
    """A clickable confusion matrix (Vega-Lite): colour = count or row share (square root, so
    small off-diagonal counts stay visible), text = the value, ``selected`` (true, predicted)
    outlined. A click selects ``CELL_SELECTION`` with the cell's ``true`` and ``pred`` indices.
    """
    matrix = np.asarray(matrix, dtype=float)
    n = len(class_names)
    rows = matrix.sum(axis=1, keepdims=True)
    values = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0) if normalise else matrix
    true_idx, pred_idx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    flat = values.ravel()
    colour = np.sqrt(flat / flat.max()) if flat.max() > 0 else flat
    cells = pd.DataFrame({"true": true_idx.ravel(), "pred": pred_idx.ravel(),
                          "true class": [class_names[t] for t in true_idx.ravel()],
                          "predicted class": [class_names[p] for p in pred_idx.ravel()],
                          "value": [f"{v:.0%}" if normalise else f"{int(v)}" for v in flat],
                          "shade": colour, "dark": colour > 0.55})
    names = list(class_names)
    x = alt.X("predicted class:N", sort=names, title="predicted class", axis=alt.Axis(labelAngle=-40))
    y = alt.Y("true class:N", sort=names, title="true class")
    pick = alt.selection_point(name=CELL_SELECTION, fields=["true", "pred"], on="click", clear=False)
    base = alt.Chart(cells).encode(x=x, y=y)
    squares = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("shade:Q", scale=alt.Scale(domain=[0, 0.15, 1], range=["#F8F9FA", "#FCE4EC", ACCENT]), legend=None),
        tooltip=["true class", "predicted class", alt.Tooltip("value", title="share" if normalise else "count")],
    ).add_params(pick)
    text = base.mark_text(fontSize=10 if n <= 10 else 8).encode(
        text="value", color=alt.condition("datum.dark", alt.value("white"), alt.value("#1F2430")))
    layers = [squares, text]
    if selected is not None:
        t, p = selected
        outline = pd.DataFrame({"true class": [class_names[t]], "predicted class": [class_names[p]]})
        layers.append(alt.Chart(outline).mark_rect(filled=False, stroke="#1F2430", strokeWidth=3).encode(x=x, y=y))
    side = max(360, 46 * n + 140)
    return alt.layer(*layers).properties(height=side - 120).configure_view(strokeWidth=0)


def selected_cell(event):
    """(true, predicted) of the cell a click on ``confusion_figure`` selected, or None."""
    picked = ((event or {}).get("selection") or {}).get(CELL_SELECTION) or []
    if picked and "true" in picked[0] and "pred" in picked[0]:
        return int(picked[0]["true"]), int(picked[0]["pred"])
    return None


def per_class_figure(frame, metrics=("precision", "recall", "f1", "specificity"), by="metric"):
    """Grouped bars of per-class metrics. ``frame`` has columns ``class``, the metrics and,
    when comparing, ``model``; then bars are grouped by model for one metric each."""
    fig = go.Figure()
    if "model" in frame.columns and frame["model"].nunique() > 1:
        metric = metrics[0]
        for i, (model, part) in enumerate(frame.groupby("model", sort=False)):
            fig.add_trace(go.Bar(x=part["class"], y=part[metric], name=model, marker_color=PALETTE[i % len(PALETTE)]))
        fig.update_layout(yaxis_title=metric)
    else:
        for i, metric in enumerate(metrics):
            fig.add_trace(go.Bar(x=frame["class"], y=frame[metric], name=metric, marker_color=PALETTE[i % len(PALETTE)]))
    fig.update_layout(barmode="group", yaxis_range=[0, 1.02])
    fig.update_xaxes(tickangle=-30)
    return _layout(fig, 360)


def validation_curves_figure(histories):
    """Validation accuracy per epoch of several models: ``{name: history}``."""
    fig = go.Figure()
    for i, (name, history) in enumerate(histories.items()):
        values = [v for stage in CLASSIFIER_STAGES for v in (history.get(stage) or {}).get("val_accuracy", [])]
        if values:
            fig.add_trace(go.Scatter(x=np.arange(1, len(values) + 1), y=values, mode="lines+markers", name=name,
                                     line=dict(color=PALETTE[i % len(PALETTE)])))
    fig.update_layout(xaxis_title="epoch", yaxis_title="validation accuracy", height=320, template="plotly_white",
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


MAP_SELECTION = "point"  # the latent map's click selection: field "row" (position in ``points``)


def latent_map_figure(coords, labels, points, class_names, here=None, here_neighbours=None, here_label="you are here"):
    """A 2-D map of gallery embeddings coloured by class (Vega-Lite); a click selects
    ``MAP_SELECTION`` with the point's ``row`` (its entry of ``points``: the gallery rows that
    were projected).

    ``here`` (x, y): a query image drawn as a star, with dotted lines to ``here_neighbours``
    (rows of ``coords``: its nearest map points).
    """
    coords = np.asarray(coords, dtype=np.float32)
    names = list(class_names)
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "row": np.asarray(points),
                          "class": pd.Categorical.from_codes(np.asarray(labels)[points], categories=names)})
    pick = alt.selection_point(name=MAP_SELECTION, fields=["row"], on="click", clear=False)
    scale = alt.Scale(domain=names, range=[PALETTE[c % len(PALETTE)] for c in range(len(names))])
    x, y = alt.X("x:Q", axis=None), alt.Y("y:Q", axis=None)
    layers = [alt.Chart(frame).mark_circle(size=18, opacity=0.7).encode(
        x=x, y=y, color=alt.Color("class:N", scale=scale, title=None, legend=alt.Legend(orient="top", columns=5)),
        tooltip=[alt.Tooltip("class:N", title="class (click: use as query)")]).add_params(pick)]
    if here is not None:
        x0, y0 = float(here[0]), float(here[1])
        nearest = list(here_neighbours if here_neighbours is not None else [])
        if nearest:
            lines = pd.DataFrame({"x": x0, "y": y0, "x2": coords[nearest, 0], "y2": coords[nearest, 1]})
            layers.append(alt.Chart(lines).mark_rule(color="#1F2430", strokeDash=[3, 3], strokeWidth=1.5)
                          .encode(x=x, y=y, x2="x2:Q", y2="y2:Q"))
        base = alt.Chart(pd.DataFrame({"x": [x0], "y": [y0]})).encode(x=x, y=y)
        layers += [base.mark_point(shape="M0,-1L0.24,-0.33L0.95,-0.31L0.38,0.12L0.59,0.81L0,0.4L-0.59,0.81L-0.38,0.12"
                                         "L-0.95,-0.31L-0.24,-0.33Z", size=700, filled=True, fill="#FFD43B",
                                         stroke="#1F2430", strokeWidth=2, opacity=1, description="star")
                   .encode(tooltip=alt.value(here_label)),
                   base.mark_text(text=here_label, dy=-22, fontWeight="bold", color="#1F2430")]
    return alt.layer(*layers).properties(height=520).interactive()


def clicked_map_row(event):
    """The ``row`` of the point a click on ``latent_map_figure`` selected, or None."""
    picked = ((event or {}).get("selection") or {}).get(MAP_SELECTION) or []
    if picked and picked[0].get("row") is not None:
        return int(picked[0]["row"])
    return None


def reliability_figure(bins_before, bins_after):
    """Reliability diagram: accuracy against confidence per bin, before and after
    calibration, with the diagonal of perfect calibration (``calibration.reliability_bins``)."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line=dict(color="#ADB5BD", dash="dash")))
    for bins, label, colour in ((bins_before, "before", SECOND), (bins_after, "after calibration", ACCENT)):
        rows = [b for b in bins or [] if b["count"]]
        if rows:
            fig.add_trace(go.Scatter(x=[b["confidence"] for b in rows], y=[b["accuracy"] for b in rows],
                                     mode="lines+markers", name=label, line=dict(color=colour),
                                     marker=dict(size=[6 + 14 * np.sqrt(b["count"] / max(r["count"] for r in rows)) for b in rows]),
                                     customdata=[b["count"] for b in rows],
                                     hovertemplate="confidence %{x:.1%}<br>accuracy %{y:.1%}<br>%{customdata} images<extra></extra>"))
    fig.update_layout(xaxis=dict(title="confidence (mean per bin)", range=[0, 1.02], tickformat=".0%"),
                      yaxis=dict(title="accuracy", range=[0, 1.02], tickformat=".0%"))
    return _layout(fig, 380)


def coverage_figure(curve, threshold=None):
    """Accuracy and coverage (share answered) against the confidence threshold one trusts."""
    xs = [r["threshold"] for r in curve]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[r["accuracy"] for r in curve], mode="lines", name="accuracy of trusted answers",
                             line=dict(color=ACCENT)))
    fig.add_trace(go.Scatter(x=xs, y=[r["coverage"] for r in curve], mode="lines", name="share of answers trusted",
                             line=dict(color=SECOND, dash="dash")))
    if threshold is not None:
        fig.add_vline(x=float(threshold), line=dict(color="#1F2430", width=1))
    fig.update_layout(xaxis=dict(title="trust answers at or above this confidence", tickformat=".0%"),
                      yaxis=dict(range=[0, 1.02], tickformat=".0%"))
    return _layout(fig, 320)
