"""Callbacks for nnx.fit, after Keras's: EarlyStopping, ModelCheckpoint and CSVLogger.

A callback is called as callback(epoch, history) after every epoch (epoch counts the epochs done, from
1). fit also hands the model to those with set_model(model) before training starts and calls
on_train_end(history) once at the end. `monitor` names a History field ("val_loss", "val_accuracy",
"loss", "accuracy"); mode "auto" maximises the accuracies and minimises everything else.
"""
from __future__ import annotations

import csv
import math
import os

from . import io as nnx_io
from .train import FIELDS, History, StopTraining

__all__ = ["EarlyStopping", "ModelCheckpoint", "CSVLogger", "StopTraining"]


def _mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if monitor not in FIELDS:
        raise ValueError(f"monitor: expected one of {FIELDS}, got {monitor!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class _Monitor:
    """The monitored value of the latest epoch and whether it beats the best one by more than min_delta."""

    def __init__(self, monitor, mode, min_delta):
        self.monitor = monitor
        self.mode = _mode(mode, monitor)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf
        self.model = None

    def set_model(self, model) -> None:
        self.model = model

    def _current(self, history: History) -> float:
        value = history.last()[self.monitor]
        if math.isnan(value):
            raise ValueError(f"monitor: {self.monitor!r} was not measured this epoch (pass val= to fit to "
                             f"monitor a validation metric)")
        return value

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stops fit once `monitor` has not improved (by more than min_delta) for `patience` epochs in a row.
    With restore_best_weights=True the model ends with the weights of its best epoch (when stopped early
    and when training runs to the last epoch). best_epoch and stopped_epoch (0 if never) say what
    happened."""

    def __init__(self, monitor: str = "val_loss", patience: int = 0, restore_best_weights: bool = False,
                 min_delta: float = 0.0, mode: str = "auto"):
        super().__init__(monitor, mode, min_delta)
        if int(patience) < 0:
            raise ValueError(f"patience: expected an int >= 0, got {patience}")
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.wait = 0
        self.best_epoch = self.stopped_epoch = 0
        self.best_weights = None

    def __call__(self, epoch: int, history: History) -> None:
        value = self._current(history)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._need_model()
                self.best_weights = self.model.state_dict()
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            self._restore()
            raise StopTraining(f"{self.monitor} did not improve for {self.wait} epochs (best {self.best:.6g} "
                               f"at epoch {self.best_epoch})")

    def _need_model(self):
        if self.model is None:
            raise RuntimeError("restore_best_weights: EarlyStopping has no model; use it through nnx.fit or "
                               "call set_model(model) first")

    def _restore(self):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)

    def on_train_end(self, history: History) -> None:
        self._restore()


class ModelCheckpoint(_Monitor):
    """Saves model.state_dict() with nnx.save after each epoch, or only when `monitor` improved
    (save_best_only=True). `filepath` may hold format fields: {epoch} and any History field, e.g.
    "ckpt-{epoch:02d}-{val_loss:.3f}.npz". `model` defaults to the one fit trains."""

    def __init__(self, filepath, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto",
                 min_delta: float = 0.0, model=None):
        super().__init__(monitor, mode, min_delta)
        self.filepath = os.fspath(filepath)
        self.save_best_only = bool(save_best_only)
        self.model = model
        self.saved = []  # (epoch, path) of every file written

    def __call__(self, epoch: int, history: History) -> None:
        if self.model is None:
            raise RuntimeError("ModelCheckpoint has no model; use it through nnx.fit or pass model=")
        if self.save_best_only:
            value = self._current(history)
            if not self._improved(value):
                return
            self.best = value
        path = self.filepath.format(**history.last())
        nnx_io.save(self.model.state_dict(), path)
        self.saved.append((epoch, path))


class CSVLogger:
    """Writes one CSV row per epoch: epoch and every History field (empty where not measured). With
    append=True an existing file is continued (its header is kept)."""

    def __init__(self, filename, separator: str = ",", append: bool = False):
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self._started = False

    def __call__(self, epoch: int, history: History) -> None:
        header = ["epoch", *FIELDS]
        first = not self._started
        self._started = True
        mode = "a" if (self.append or not first) else "w"
        write_header = mode == "w" or not os.path.exists(self.filename) or os.path.getsize(self.filename) == 0
        row = history.last()
        with open(self.filename, mode, newline="") as f:
            w = csv.writer(f, delimiter=self.separator)
            if write_header:
                w.writerow(header)
            w.writerow([row["epoch"]] + ["" if math.isnan(row[k]) else repr(row[k]) for k in FIELDS])
