"""The step capture in progress (nnx.compile), seen by the few Python places whose effects a replay must
reproduce or check without running them: a Module call (its parameters and buffers are state the kernels may
read), an optimizer step (hyperparameters and counters it must refresh before each replay).

current() is the capture running on the calling thread, or None (captures on other threads are not seen).
Readers call it once per call; nothing here imports the rest of nnx, so any layer can import it.
"""
from __future__ import annotations

import threading

class _CaptureState(threading.local):
    recording = None  # a class default: read by every kernel-backed sum and module call, for a third of getattr's cost


_local = _CaptureState()


def current():
    return _local.recording


def set_current(recording) -> None:
    _local.recording = recording


class Stale(Exception):
    """Raised by a replay hook when the captured plan no longer matches the Python state (an optimizer's
    state array replaced, a hyperparameter changed that decides which state exists): capture again."""
