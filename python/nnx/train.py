"""The training loop: fit, evaluate, per-epoch History with learning curves, and checkpoint callbacks."""
from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np

from . import io as nnx_io
from . import random as nnx_random
from .data.loader import DataLoader

FIELDS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images_per_s", "lr")


class StopTraining(Exception):
    """Raise from a callback to end fit() after the current epoch (early stopping)."""


class History:
    """Per-epoch records of a fit: history.loss[i] is the mean training loss of epoch history.epoch[i]
    (1-based); accuracy, val_loss, val_accuracy (NaN where not measured), seconds (training time of the
    epoch, validation excluded), images_per_s and lr (the learning rate used) likewise."""

    def __init__(self):
        self.epoch = []
        for f in FIELDS:
            setattr(self, f, [])

    def append(self, epoch: int, **values) -> None:
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise ValueError(f"values: unknown History fields {sorted(unknown)}; expected some of {FIELDS}")
        self.epoch.append(int(epoch))
        for f in FIELDS:
            v = values.get(f)
            getattr(self, f).append(float("nan") if v is None else float(v))

    def __len__(self) -> int:
        return len(self.epoch)

    def last(self) -> dict:
        """The latest epoch's record as a dict (empty before the first epoch)."""
        if not self.epoch:
            return {}
        return {"epoch": self.epoch[-1], **{f: getattr(self, f)[-1] for f in FIELDS}}

    def to_dict(self) -> dict:
        return {"epoch": list(self.epoch), **{f: list(getattr(self, f)) for f in FIELDS}}

    @classmethod
    def from_dict(cls, d) -> "History":
        h = cls()
        epochs = list(d.get("epoch", []))
        for i, e in enumerate(epochs):
            h.append(e, **{f: d[f][i] for f in FIELDS if f in d and i < len(d[f])})
        return h

    def save_json(self, path) -> None:
        """Writes the records as JSON (NaN written as null), atomically."""
        clean = {k: [None if isinstance(v, float) and math.isnan(v) else v for v in vals]
                 for k, vals in self.to_dict().items()}
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump(clean, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:  # including Ctrl-C: never leave the temporary file behind
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @classmethod
    def load_json(cls, path) -> "History":
        with open(path) as f:
            d = json.load(f)
        return cls.from_dict({k: [float("nan") if v is None else v for v in vals] for k, vals in d.items()})

    def plot(self, path, title: str | None = None) -> None:
        """Draws loss and accuracy curves (training and validation) per epoch into an image file.

        Needs matplotlib: raises ImportError suggesting `pip install "nnx[plot]"` when it is absent."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
            from matplotlib.ticker import MaxNLocator
        except ImportError:
            raise ImportError('History.plot needs matplotlib: pip install "nnx[plot]" (or pip install matplotlib)') \
                from None
        # Figure + Agg canvas directly, not pyplot: no global backend switch, no GUI, thread-safe.
        fig = Figure(figsize=(9, 3.6), dpi=100)
        FigureCanvasAgg(fig)
        ax_loss, ax_acc = fig.subplots(1, 2)
        x = np.asarray(self.epoch)
        for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
            for prefix, name, style in (("", "train", "o-"), ("val_", "validation", "s--")):
                y = np.asarray(getattr(self, prefix + key), dtype=float)
                if y.size and not np.all(np.isnan(y)):
                    ax.plot(x, y, style, label=name)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(os.fspath(path))

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, last={self.last()})"


def _loader(data, batch_size, shuffle, transform, name, ddp=None):
    """The DataLoader for `data`; for a DistributedDataParallel model, this rank's shard of the training
    set (a ready DataLoader must already be sharded for that many ranks)."""
    world = 1 if ddp is None else ddp.world_size
    if isinstance(data, DataLoader):
        if data.y is None:
            raise ValueError(f"{name}: expected a DataLoader with targets (built with y), got one without")
        if world > 1 and (data.world_size, data.rank) != (world, ddp.rank):
            raise ValueError(f"{name}: the model is data-parallel over {world} ranks, so each rank needs its "
                             f"shard: DataLoader(..., rank={ddp.rank}, world_size={world}, seed=...); got a "
                             f"loader for rank {data.rank} of {data.world_size}")
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        if world > 1:
            return DataLoader(data[0], data[1], batch_size=batch_size, shuffle=shuffle, transform=transform,
                              seed=ddp.shared_seed(), rank=ddp.rank, world_size=world)
        return DataLoader(data[0], data[1], batch_size=batch_size, shuffle=shuffle, transform=transform)
    raise TypeError(f"{name}: expected an (X, y) pair or a DataLoader, got {type(data).__name__}")


def _correct(out: np.ndarray, yb) -> float:
    """Number of rows whose argmax is the integer label; NaN when the task is not classification."""
    yb = np.asarray(yb)
    if out.ndim != 2 or yb.ndim != 1 or yb.dtype.kind not in "iu" or len(yb) != len(out):
        return float("nan")
    return float(np.count_nonzero(out.argmax(axis=1) == yb))


def _lr(optimizer):
    groups = getattr(optimizer, "param_groups", None)
    if groups:
        return groups[0].get("lr")
    return getattr(optimizer, "lr", None)


def _is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def evaluate(model, X, y=None, batch_size: int = 1000, loss_fn=None, transform=None):
    """(mean loss, accuracy) of `model` on (X, y), or on a DataLoader passed as X, under no_grad and in
    eval mode (dropout off); the model's previous mode is restored. loss_fn defaults to cross-entropy."""
    from .nn import CrossEntropyLoss
    from .tensor import no_grad

    loader = X if isinstance(X, DataLoader) else DataLoader(X, y, batch_size=batch_size, transform=transform)
    if loader.y is None:
        raise ValueError("y: evaluate needs targets (pass y, or a DataLoader built with y)")
    loss_fn = CrossEntropyLoss() if loss_fn is None else loss_fn
    was_training = getattr(model, "training", True)
    model.eval()
    total = 0
    loss_sum = correct = 0.0
    try:
        with no_grad():
            for xb, yb in loader:
                out = model(xb)
                n = len(yb)
                loss_sum += float(loss_fn(out, yb).item()) * n
                correct += _correct(out.numpy(), yb)
                total += n
    finally:
        model.train(was_training)
    if total == 0:
        return float("nan"), float("nan")
    return loss_sum / total, correct / total


def _train_step(model, loss_fn, optimizer, compile: bool):
    """The training step fit runs on each batch: (loss, output). With compile=True it is captured and
    replayed from C++ (nnx.compile) wherever it can be, with the same results bit for bit; a step that cannot
    be replayed (NumPy work between kernels) runs eagerly after one CompileWarning. A data-parallel model's step is never captured: its gradients are averaged
    from Python hooks."""
    def step(xb, yb):
        optimizer.zero_grad()
        out = model(xb)
        loss = loss_fn(out, yb)
        loss.backward()
        optimizer.step()
        return loss, out

    from .distributed.ddp import DistributedDataParallel

    # A data-parallel step averages gradients over MPI from Python hooks, which a captured plan cannot replay.
    if not compile or isinstance(model, DistributedDataParallel):
        return step
    from .compile import compile as nnx_compile
    return nnx_compile(step, warn=False)


def _train_epoch(train_step, loader, batch_scheduler, epoch: int, epochs: int, bar: bool):
    """One pass over the loader: (images seen, sum of loss * batch size, correct predictions, seconds).
    batch_scheduler (OneCycleLR) steps after every optimizer step; a non-finite loss stops training."""
    from tqdm.auto import tqdm

    seen = 0
    loss_sum = correct = 0.0
    progress = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False, disable=not bar, dynamic_ncols=True)
    start = time.perf_counter()
    try:
        for step, (xb, yb) in enumerate(loader):
            loss, out = train_step(xb, yb)
            if batch_scheduler is not None:
                batch_scheduler.step()
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"loss became {value} at epoch {epoch + 1}, batch {step + 1}; "
                                         f"try a smaller learning rate")
            n = len(yb)
            seen += n
            loss_sum += value * n
            correct += _correct(out.numpy(), yb)
            if not progress.disable:
                elapsed = time.perf_counter() - start
                progress.set_postfix(loss=f"{loss_sum / seen:.4f}", img_s=f"{seen / max(elapsed, 1e-9):.0f}",
                                     refresh=False)
                progress.update(1)
    finally:
        progress.close()
    return seen, loss_sum, correct, time.perf_counter() - start


def _epoch_line(r: dict, epoch: int, epochs: int, with_val: bool) -> str:
    """The summary line printed after each epoch."""
    line = f"epoch {epoch + 1}/{epochs}: loss {r['loss']:.4f}"
    if not math.isnan(r["accuracy"]):
        line += f", accuracy {r['accuracy']:.4f}"
    if with_val:
        line += f", val_loss {r['val_loss']:.4f}, val_accuracy {r['val_accuracy']:.4f}"
    return line + f" ({r['seconds']:.1f} s, {r['images_per_s']:.0f} img/s)"


def fit(model, loss_fn, optimizer, train, epochs: int = 1, batch_size: int = 64, val=None, callbacks=(),
        progress: bool = True, scheduler=None, start_epoch: int = 0, history: History | None = None,
        transform=None, compile: bool = True) -> History:
    """Trains `model` for epochs start_epoch+1 .. epochs and returns the History.

    train and val are (X, y) pairs (batched by a shuffling DataLoader of batch_size, with `transform`
    applied to each batch) or DataLoaders. Each step: zero_grad, forward, loss, backward, optimizer step;
    scheduler.step() after each epoch (after each step for a scheduler with per_batch = True, such as
    OneCycleLR; with the epoch's val_loss, or loss without val, for ReduceLROnPlateau). After each epoch
    every callback is called as callback(epoch, history) with the number of epochs completed; a callback
    may raise StopTraining. Callbacks with set_model(model) get the model before the first epoch, and
    those with on_train_end(history) are called once when training ends (see nnx.callbacks).
    With progress=True a tqdm bar shows loss and images/s on a terminal and a summary line is printed per
    epoch. Shuffling and dropout draw from nnx.random, so a run is reproducible under nnx.manual_seed and
    resuming from a checkpoint (start_epoch, history, restored RNG state) reproduces it exactly.

    With a nnx.distributed.DistributedDataParallel model, every rank calls fit: (X, y) is sharded across
    the ranks (a DataLoader must be built sharded), and after each epoch the BatchNorm running statistics
    are averaged over the ranks and the recorded loss, accuracy and images/s cover all of them. Pass
    progress and callbacks (checkpoints) on rank 0 only.

    compile=True (the default) captures the training step with nnx.compile and replays it from C++ where it
    applies (same results bit for bit); compile=False runs every step eagerly in Python.
    """
    from tqdm.auto import tqdm
    from .distributed.ddp import DistributedDataParallel

    if int(start_epoch) < 0 or int(start_epoch) > int(epochs):
        raise ValueError(f"start_epoch: expected 0 to epochs={epochs}, got {start_epoch}")
    ddp = model if isinstance(model, DistributedDataParallel) else None
    train_loader = _loader(train, batch_size, True, transform, "train", ddp)
    val_loader = None if val is None else _loader(val, max(batch_size, 1000), False, transform, "val")
    history = History() if history is None else history
    callbacks = [callbacks] if callable(callbacks) else list(callbacks)
    for cb in callbacks:  # callbacks that act on the model (EarlyStopping, ModelCheckpoint) get to see it
        if hasattr(cb, "set_model"):
            cb.set_model(model)
    per_batch = getattr(scheduler, "per_batch", False)  # OneCycleLR steps after every optimizer step
    show = bool(progress)
    train_step = _train_step(model, loss_fn, optimizer, bool(compile))
    for epoch in range(int(start_epoch), int(epochs)):
        model.train()
        lr = _lr(optimizer)
        if hasattr(train_loader, "set_epoch"):  # a seeded loader's permutation follows the epoch (resume)
            train_loader.set_epoch(epoch)
        seen, loss_sum, correct, seconds = _train_epoch(train_step, train_loader, scheduler if per_batch else None,
                                                        epoch, epochs, show and _is_tty())
        if ddp is not None:
            seen, loss_sum, correct = ddp.end_epoch(seen, loss_sum, correct)
        record = dict(loss=loss_sum / seen if seen else None, accuracy=correct / seen if seen else None,
                      seconds=seconds, images_per_s=seen / seconds if seconds > 0 else None, lr=lr)
        if val_loader is not None:
            record["val_loss"], record["val_accuracy"] = evaluate(model, val_loader, loss_fn=loss_fn)
        history.append(epoch + 1, **record)
        if getattr(scheduler, "needs_metric", False):  # ReduceLROnPlateau watches the validation loss
            r = history.last()
            scheduler.step(r["loss"] if math.isnan(r["val_loss"]) else r["val_loss"])
        elif scheduler is not None and not per_batch:
            scheduler.step()
        if show:
            refusals = getattr(train_step, "refusals", ())
            if refusals and epoch == int(start_epoch):
                tqdm.write(f"note: the training step runs eagerly (nnx.compile cannot replay it: {refusals[0]})",
                           file=sys.stderr)
            tqdm.write(_epoch_line(history.last(), epoch, epochs, val_loader is not None), file=sys.stdout)
            sys.stdout.flush()  # a log file sees each epoch as it ends
        stop = False
        for cb in callbacks:  # every callback sees the epoch, even after one asked to stop
            try:
                cb(epoch + 1, history)
            except StopTraining:
                stop = True
        if stop:
            break
    for cb in callbacks:
        if hasattr(cb, "on_train_end"):
            cb.on_train_end(history)
    return history


class Checkpoint:
    """Callback that saves, after every epoch and atomically (nnx.save), everything needed to resume
    exactly: model and optimizer (and scheduler) state, the number of epochs done, the nnx.random state,
    the History, and `extra` (e.g. the command-line configuration)."""

    def __init__(self, path, model, optimizer, scheduler=None, extra=None):
        self.path = os.fspath(path)
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.extra = {} if extra is None else dict(extra)

    def state(self, epoch: int, history: History) -> dict:
        ckpt = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": int(epoch),
                "rng": nnx_random.get_rng_state(), "history": history.to_dict(), "extra": self.extra}
        if self.scheduler is not None and hasattr(self.scheduler, "state_dict"):
            ckpt["scheduler"] = self.scheduler.state_dict()
        return ckpt

    def __call__(self, epoch: int, history: History) -> None:
        nnx_io.save(self.state(epoch, history), self.path)


def load_checkpoint(path, model, optimizer=None, scheduler=None, restore_rng: bool = True):
    """Restores a Checkpoint file into model (and optimizer, scheduler, nnx.random's state).

    Returns (epochs done, History, extra dict)."""
    ckpt = nnx_io.load(path)
    for key in ("model", "optimizer", "epoch", "rng", "history"):
        if key not in ckpt:
            raise nnx_io.CheckpointError(f"{os.fspath(path)}: not a training checkpoint (no {key!r} entry)")
    model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and "scheduler" in ckpt:
        scheduler.load_state_dict(ckpt["scheduler"])
    if restore_rng:
        nnx_random.set_rng_state(ckpt["rng"])
    return int(ckpt["epoch"]), History.from_dict(ckpt["history"]), ckpt.get("extra", {})
