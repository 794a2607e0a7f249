"""Live training progress in Streamlit: a progress bar with epoch / batch / elapsed / ETA and a
plotly chart of the curves redrawn at every epoch end.

A rerun of the page (any click, leaving the page, a closed tab) stops the script at the next
progress update; ``train_and_save`` saves atomically, so nothing half-trained is ever registered.
"""

from __future__ import annotations

import time

import streamlit as st

from fashion_core.training import TrainingProgress
from ui import charts

BATCH_UPDATE_SECONDS = 0.3  # repainting more often only slows training down


STAGE_NAMES = {"autoencoder": "Pre-training the autoencoder", "classifier": "Training the classifier",
               "fine_tune": "Fine-tuning"}


def clock(seconds):
    """``m:ss`` of a duration in seconds."""
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_line(stage, epochs_done, epochs, batches_done, steps, elapsed=None, eta=None, run_label=""):
    """"Fold 1/5 · **Training the classifier** · epoch 2/10 · batch 40/120 · elapsed 0:31 · ETA 2:10"
    (the live run here and background jobs, ``ui/jobs.py``)."""
    epoch_now = min(epochs, epochs_done + (1 if batches_done else 0)) or 1
    text = (f"{run_label + ' · ' if run_label else ''}**{STAGE_NAMES.get(stage, stage)}** · "
            f"epoch {epoch_now}/{epochs} · batch {batches_done}/{steps}")
    if elapsed is not None:
        text += f" · elapsed {clock(elapsed)}"
    return text + f" · ETA {clock(eta) if eta is not None else '…'}"


class StreamlitProgress(TrainingProgress):
    """Draws training progress into placeholders created where it is constructed.

    ``first_stage`` is the stage every run starts with ("autoencoder" for two-stage models),
    used to count runs in cross-validation and sweeps (``run_labels``: "fold 1", ...).
    """

    def __init__(self, first_stage="classifier", run_labels=None):
        self.first_stage = first_stage
        self.run_labels = list(run_labels or [])
        self.run = 0
        self.started = time.perf_counter()
        self.text = st.empty()
        self.bar = st.progress(0.0)
        self.chart = st.empty()
        self.reconstruction_chart = st.empty()
        self.history = {}
        self._last_paint = 0.0

    def on_stage_begin(self, stage, epochs, steps_per_epoch):
        if stage == self.first_stage:
            self.run += 1
            self.history = {}
        self.stage, self.epochs, self.steps = stage, max(1, int(epochs)), max(1, int(steps_per_epoch or 1))
        self.stage_started = time.perf_counter()
        self.history[stage] = {}
        self._paint(0, 0, force=True)

    def on_batch_end(self, stage, epoch, batch, logs):
        self._paint(epoch, batch + 1)

    def on_epoch_end(self, stage, epoch, logs):
        for key, value in logs.items():
            self.history.setdefault(stage, {}).setdefault(key, []).append(float(value))
        self._paint(epoch + 1, 0, force=True)
        if stage == "autoencoder":
            self.reconstruction_chart.plotly_chart(charts.reconstruction_figure(self.history[stage]),
                                                   key=f"live_ae_{self.run}_{epoch}")
        else:
            self.chart.plotly_chart(charts.history_figure(self.history), key=f"live_{self.run}_{stage}_{epoch}")

    def _paint(self, epochs_done, batches_done, force=False):
        now = time.perf_counter()
        if not force and now - self._last_paint < BATCH_UPDATE_SECONDS:
            return
        self._last_paint = now
        done = min(1.0, (epochs_done * self.steps + batches_done) / (self.epochs * self.steps))
        stage_elapsed = now - self.stage_started
        eta = stage_elapsed / done * (1 - done) if done > 0 else None
        run = self.run_labels[min(self.run, len(self.run_labels)) - 1] if self.run_labels else ""
        self.text.markdown(progress_line(self.stage, epochs_done, self.epochs, batches_done, self.steps,
                                         elapsed=now - self.started, eta=eta, run_label=run))
        self.bar.progress(done)
