"""Plotly figures the pages share: training curves, confusion matrix, per-class bars."""

from __future__ import annotations

import numpy as np
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


def confusion_figure(matrix, class_names, normalise=False, selected=None):
    """A clickable confusion matrix: square markers on a grid (a heatmap emits no selection
    events in Streamlit), colour = count or row share, text = the value.

    Each point's ``customdata`` is ``(true index, predicted index)``.
    """
    matrix = np.asarray(matrix, dtype=float)
    n = len(class_names)
    rows = matrix.sum(axis=1, keepdims=True)
    values = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0) if normalise else matrix
    true_idx, pred_idx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    true_idx, pred_idx, flat = true_idx.ravel(), pred_idx.ravel(), values.ravel()
    text = [f"{v:.0%}" if normalise else f"{int(v)}" for v in flat]
    marker_size = max(12, min(52, 520 // max(n, 1)))
    colour = np.sqrt(flat / flat.max()) if flat.max() > 0 else flat  # sqrt: small off-diagonal counts stay visible
    fig = go.Figure(go.Scatter(
        x=[class_names[p] for p in pred_idx], y=[class_names[t] for t in true_idx], mode="markers+text",
        marker=dict(symbol="square", size=marker_size, color=colour,
                    colorscale=[[0, "#F8F9FA"], [0.15, "#FCE4EC"], [1, ACCENT]], line=dict(width=0)),
        text=text, textfont=dict(size=10 if n <= 10 else 8,
                                 color=["white" if v > 0.55 else "#1F2430" for v in colour]),
        customdata=np.stack([true_idx, pred_idx], axis=1),
        hovertemplate="true: %{y}<br>predicted: %{x}<br>" + ("share: %{text}" if normalise else "count: %{text}")
        + "<extra>click to see the images</extra>",
    ))
    if selected is not None:
        t, p = selected
        fig.add_trace(go.Scatter(x=[class_names[p]], y=[class_names[t]], mode="markers", hoverinfo="skip",
                                 marker=dict(symbol="square-open", size=marker_size + 6, color="#1F2430",
                                             line=dict(width=2)), showlegend=False))
    fig.update_xaxes(title_text="predicted class", categoryorder="array", categoryarray=list(class_names),
                     tickangle=-40, showgrid=False)
    fig.update_yaxes(title_text="true class", categoryorder="array", categoryarray=list(class_names)[::-1],
                     showgrid=False)
    side = max(360, 46 * n + 140)
    fig.update_layout(height=side, margin=dict(l=10, r=10, t=10, b=10), template="plotly_white",
                      showlegend=False, clickmode="event+select", dragmode=False)
    return fig


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


def probability_figure(top_k):
    """Horizontal bars of the top-k ``[(class name, probability)]``, the most likely on top."""
    names = [name for name, _ in top_k][::-1]
    values = [p for _, p in top_k][::-1]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=[SECOND] * (len(values) - 1) + [ACCENT],
                           text=[f"{p:.1%}" for p in values], textposition="outside"))
    fig.update_layout(xaxis=dict(range=[0, 1.15], tickformat=".0%"), height=60 + 34 * len(names),
                      margin=dict(l=10, r=10, t=10, b=10), template="plotly_white")
    return fig


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


def latent_map_figure(coords, labels, points, class_names, here=None, here_neighbours=None, here_label="you are here"):
    """A 2-D map of gallery embeddings coloured by class; each point's ``customdata`` is its row
    in ``points`` order (``points``: the gallery rows that were projected).

    ``here`` (x, y): a query image drawn as a distinct star, with lines to ``here_neighbours``
    (rows of ``coords``: its nearest map points).
    """
    fig = go.Figure()
    for c, name in enumerate(class_names):
        members = np.flatnonzero(labels[points] == c)
        fig.add_trace(go.Scattergl(x=coords[members, 0], y=coords[members, 1], mode="markers", name=name,
                                   marker=dict(size=5, opacity=0.7, color=PALETTE[c % len(PALETTE)]),
                                   customdata=points[members], hovertemplate=f"{name}<extra>click: use as query</extra>"))
    if here is not None:
        x0, y0 = float(here[0]), float(here[1])
        xs, ys = [], []
        for row in (here_neighbours if here_neighbours is not None else []):
            xs += [x0, float(coords[row, 0]), None]
            ys += [y0, float(coords[row, 1]), None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#1F2430", width=1.5, dash="dot"),
                                     hoverinfo="skip", name="its nearest points"))
        fig.add_trace(go.Scatter(x=[x0], y=[y0], mode="markers+text", text=[here_label], textposition="top center",
                                 marker=dict(symbol="star", size=22, color="#FFD43B", line=dict(color="#1F2430", width=2)),
                                 name=here_label, hovertemplate=f"{here_label}<extra></extra>"))
    fig.update_layout(height=520, template="plotly_white", margin=dict(l=10, r=10, t=10, b=10), dragmode="pan",
                      legend=dict(itemsizing="constant"), xaxis=dict(showticklabels=False), yaxis=dict(showticklabels=False))
    return fig


def reliability_figure(bins_before, bins_after):
    """Reliability diagram: accuracy against confidence per bin, before and after the
    temperature, with the diagonal of perfect calibration (``calibration.reliability_bins``)."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line=dict(color="#ADB5BD", dash="dash")))
    for bins, label, colour in ((bins_before, "before", SECOND), (bins_after, "after temperature", ACCENT)):
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
