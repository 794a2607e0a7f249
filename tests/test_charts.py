"""The charts a first visit draws are Vega-Lite, and a click on them selects what the page reads."""

from __future__ import annotations

import numpy as np

from ui import charts


def _params(spec):
    """Selection parameters of a (layered) Vega-Lite spec, wherever Altair put them."""
    return spec.get("params", []) + [p for layer in spec.get("layer", []) for p in layer.get("params", [])]


def test_a_click_on_the_confusion_matrix_selects_the_cell():
    matrix = np.array([[5, 1], [2, 7]])
    spec = charts.confusion_figure(matrix, ["a", "b"], selected=(0, 1)).to_dict()
    assert [p["select"]["fields"] for p in _params(spec) if p["name"] == charts.CELL_SELECTION] == [["true", "pred"]]
    event = {"selection": {charts.CELL_SELECTION: [{"true": 1, "pred": 0}]}}
    assert charts.selected_cell(event) == (1, 0)
    assert charts.selected_cell({"selection": {charts.CELL_SELECTION: []}}) is None
    assert charts.selected_cell(None) is None


def test_a_click_on_the_latent_map_selects_the_gallery_row():
    coords = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]], np.float32)
    labels = np.array([0, 1, 1, 0, 1])
    points = np.array([4, 0, 2])  # the gallery rows that were projected
    spec = charts.latent_map_figure(coords, labels, points, ["a", "b"], here=(0.5, 0.5), here_neighbours=[0, 2],
                                    here_label="your photo").to_dict()
    names = [p["name"] for p in _params(spec)]
    assert charts.MAP_SELECTION in names
    assert "your photo" in str(spec)
    assert charts.clicked_map_row({"selection": {charts.MAP_SELECTION: [{"row": 2}]}}) == 2
    assert charts.clicked_map_row({"selection": {charts.MAP_SELECTION: {}}}) is None
