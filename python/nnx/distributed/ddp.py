"""DistributedDataParallel: gradients averaged across ranks in flat buckets, overlapped with backward.

PyTorch's design (Li et al., "PyTorch Distributed", VLDB 2020) on nnx's autograd:
- the parameters are split into buckets of about bucket_cap_mb each, walking them in reverse order,
  because backward produces the last layer's gradients first;
- a gradient-ready hook on every parameter (Tensor.register_grad_ready_hook) copies its gradient into
  the bucket's flat buffer; when a bucket is full its MPI_Iallreduce starts at once, while backward goes
  on with the earlier layers. A bucket that holds one parameter (one larger than bucket_cap_mb, such as
  the convnet's 12 MiB fc weight) is reduced in place in that parameter's .grad, without the copy in and
  out of a flat buffer: those two passes over the gradient cost more CPU than the allreduce's own
  copies here (measured in docs/DISTRIBUTED.md). Buckets start strictly in index order, so every rank
  issues the same sequence of collectives whatever order its gradients come in;
- MPI only moves a non-blocking collective forward while some thread is inside MPI, so a progress
  thread tests the requests in flight every progress_interval seconds (it sleeps otherwise; the C++
  kernels release the GIL, so it runs beside them);
- when the last gradient is in, backward waits for the buckets and writes sum / world_size back into
  every parameter's .grad, so optimizer.step() sees the averaged gradient and needs no change.
"""
from __future__ import annotations

import contextlib
import threading
import time

import numpy as np

from . import comm as _c

DEFAULT_BUCKET_CAP_MB = 4.0
# 0.5 ms: an Iallreduce of 2 ranks over shared memory needs 6-7 progress calls here whatever its size,
# so a few ms of polling finishes it; each poll costs ~10 us of one core.
DEFAULT_PROGRESS_INTERVAL = 5e-4
# Waiting at the end of backward: spin this long (a quiet machine finishes a small allreduce within it),
# then test every WAIT_NAP_S, sleeping in between so that an oversubscribed core goes to the peer rank.
WAIT_SPIN_S = 2e-4
WAIT_NAP_S = 1e-4


class _Bucket:
    def __init__(self, index: int, dtype):
        self.index, self.dtype = index, np.dtype(dtype)
        self.params, self.offsets = [], []
        self.size = 0
        self.buffer = None  # the flat buffer (a one-parameter bucket makes it only when it needs it)
        self.ready = None   # per parameter: its gradient of this round is in the buffer
        self.n_ready = 0
        self.inplace = None  # this round, a one-parameter bucket's gradient array, reduced in place

    @property
    def single(self) -> bool:
        return len(self.params) == 1

    def flat(self) -> np.ndarray:
        if self.buffer is None:
            self.buffer = np.empty(self.size, self.dtype)
        return self.buffer

    def reduced(self) -> np.ndarray:
        """The array this round's Iallreduce works on."""
        return self.inplace if self.inplace is not None else self.flat()

    def add(self, p) -> None:
        self.params.append(p)
        self.offsets.append(self.size)
        self.size += p.data.size

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def view(self, i: int) -> np.ndarray:
        off = self.offsets[i]
        return self.flat()[off:off + self.params[i].data.size].reshape(self.params[i].shape)


class _Progress:
    """Keeps MPI's non-blocking collectives moving while the main thread computes. Only this object
    touches the requests, always under its lock, so two threads never use one request at once."""

    def __init__(self, MPI, interval: float, thread: bool):
        self._MPI, self._interval = MPI, float(interval)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending = []
        self.use_thread = thread
        self._thread = None
        self.events = []  # (what, perf_counter) of the current step: start, done, wait, end

    def add(self, request) -> None:
        with self._lock:
            self._pending.append(request)
            self.events.append(("start", time.perf_counter()))
        if self.use_thread:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nnx-mpi-progress", daemon=True)
                self._thread.start()
            self._wake.set()

    def poke(self) -> None:
        """One progress step from the calling thread (the gradient hooks call it: it is cheap)."""
        with self._lock:
            self._test()

    def _test(self) -> None:  # under the lock
        if self._pending and self._MPI.Request.Testall(self._pending):
            self._pending = []
            self.events.append(("done", time.perf_counter()))

    def wait_all(self) -> None:
        """Waits for every request: spinning first, then testing with naps. MPI_Waitall spins, which on a
        machine with more runnable threads than cores keeps the core from the peer rank that the wait is
        for: a 0.24 MiB Iallreduce of 2 ranks took 10 ms that way under load here, 2.4 ms with naps."""
        with self._lock:
            requests, self._pending = self._pending, []
            self.events.append(("wait", time.perf_counter()))
        if requests:  # handed over under the lock: the progress thread no longer sees them
            test = self._MPI.Request.Testall
            give_up_spinning = time.perf_counter() + WAIT_SPIN_S
            while not test(requests):
                if time.perf_counter() > give_up_spinning:
                    time.sleep(WAIT_NAP_S)
        self.events.append(("end", time.perf_counter()))

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                self._test()
                busy = bool(self._pending)
                if not busy:
                    self._wake.clear()
            if busy:
                time.sleep(self._interval)


def _reducible_in_place(g, p) -> bool:
    """Whether `g` can take the averaged gradient of `p` in place (else a new array replaces it)."""
    return (type(g) is np.ndarray and g.dtype == p.dtype and g.shape == p.shape and g.flags.c_contiguous
            and g.flags.writeable and g.flags.aligned)


class DistributedDataParallel:
    """Wraps a model so that backward() leaves on every parameter the gradient averaged over all ranks.

    Use it like the model (calling it runs the model's forward); attributes it lacks (state_dict,
    load_state_dict, parameters, train, eval...) are the model's, so a checkpoint of the wrapper has the
    same keys as one of the bare model. Construction broadcasts rank 0's parameters to every rank
    (broadcast_parameters), checking that all ranks built the same architecture.

    Each rank feeds its own shard of the data (DataLoader(..., rank=, world_size=, seed=)); after
    loss.backward() the gradients are the mean over the ranks, so with per-rank batch B and p ranks a
    step equals one step on a batch of p*B (up to float32 rounding: the mean of p per-rank means).

    BatchNorm: each rank normalises with its own batch statistics (no synchronised batch norm) and its
    running statistics follow its shard; end_epoch() (nnx.fit calls it after each epoch) replaces them
    by their mean over the ranks, so evaluation and checkpoints see the same model on every rank.

    Every parameter must receive a gradient in every backward. When some may not (a branch not taken),
    call synchronize() after backward: it reduces the missing ones as zeros. Without it the next forward
    raises RuntimeError naming them. Inside `with ddp.no_sync():` gradients accumulate locally (gradient
    accumulation); the first backward outside averages the accumulated sums.

    bucket_cap_mb: bucket size (a parameter larger than that gets a bucket of its own). overlap=False
    waits for all the communication at the end of backward instead of progressing it in a thread.
    """

    def __init__(self, module, bucket_cap_mb: float = DEFAULT_BUCKET_CAP_MB, broadcast: bool = True,
                 overlap: bool = True, comm=None, progress_interval: float = DEFAULT_PROGRESS_INTERVAL):
        from ..nn import Module

        if not isinstance(module, Module):
            raise TypeError(f"module: expected an nnx.nn.Module, got {type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb: expected a positive number of MiB, got {bucket_cap_mb!r}")
        if not isinstance(progress_interval, (int, float)) or not progress_interval > 0:
            raise ValueError(f"progress_interval: expected a positive number of seconds, got {progress_interval!r}")
        self.module = module
        self.comm = _c._comm(comm)
        self.world_size = 1 if self.comm is None else self.comm.Get_size()
        self.rank = 0 if self.comm is None else self.comm.Get_rank()
        self._params = [p for p in module.parameters() if p.requires_grad]
        if broadcast:
            _c.broadcast_parameters(module, comm=self.comm)
        self._buckets = self._make_buckets(float(bucket_cap_mb) * 2 ** 20)
        self._slot = {id(p): (b, i) for b in self._buckets for i, p in enumerate(b.params)}
        self._progress = None
        self._hooks = []
        self._no_sync = 0
        self._state = "idle"           # idle | armed (forward ran) | partial (some gradients are in)
        self._n_ready = 0
        self._next = 0                 # the next bucket to start, in index order
        self.comm_wait_seconds = 0.0   # time backward spent waiting for the allreduces (all steps)
        self.reductions = 0            # completed gradient averagings
        if self.comm is not None:
            from mpi4py import MPI
            self._threads_ok = MPI.Query_thread() >= MPI.THREAD_MULTIPLE
            self._progress = _Progress(MPI, progress_interval, thread=bool(overlap) and self._threads_ok)
            self._MPI = MPI
            self._hooks = [p.register_grad_ready_hook(self._on_grad_ready) for p in self._params]

    # ------------------------------------------------------------------ the model's face
    def __getattr__(self, name):
        if name == "module":  # not set yet (during __init__): avoid recursing
            raise AttributeError(name)
        return getattr(self.module, name)

    def __call__(self, *args, **kwargs):
        from ..tensor import is_grad_enabled

        if self._progress is not None and not self._no_sync and is_grad_enabled():
            if self._state == "partial":
                missing = [name for name, p in self.module.named_parameters()
                           if p.requires_grad and id(p) in self._slot and not self._is_ready(p)]
                raise RuntimeError(
                    "DistributedDataParallel: the previous backward left parameters without a gradient, so "
                    "their averaging never finished: " + ", ".join(missing[:8]) +
                    (" ..." if len(missing) > 8 else "") + ". Call ddp.synchronize() after backward when "
                    "some parameters may get no gradient, or freeze them (requires_grad=False) before "
                    "wrapping the model")
            self._state = "armed"
        return self.module(*args, **kwargs)

    def train(self, mode: bool = True) -> "DistributedDataParallel":
        self.module.train(mode)
        return self

    def eval(self) -> "DistributedDataParallel":
        return self.train(False)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{b.nbytes / 2 ** 20:.2f}" for b in self._buckets)
        return (f"DistributedDataParallel(rank {self.rank} of {self.world_size}, buckets MiB [{sizes}],\n  "
                + repr(self.module).replace("\n", "\n  ") + "\n)")

    @property
    def overlap(self) -> bool:
        """Whether a thread progresses the allreduces during backward (settable between steps)."""
        return self._progress is not None and self._progress.use_thread

    @overlap.setter
    def overlap(self, value: bool) -> None:
        if self._progress is not None:
            self._progress.use_thread = bool(value) and self._threads_ok

    @property
    def timeline(self) -> list:
        """The last averaging's events as (what, seconds since its first gradient was ready): "start" per
        bucket launched, "done" when the progress thread or a hook saw everything launched so far
        complete, "wait" when backward began waiting for the rest, "end" when it had them all."""
        events = [] if self._progress is None else list(self._progress.events)
        return [(what, t - events[0][1]) for what, t in events] if events else []

    @property
    def bucket_sizes(self) -> list:
        """Number of values in each bucket, in the order they are reduced (last layers first)."""
        return [b.size for b in self._buckets]

    @property
    def bucket_parameters(self) -> list:
        """For each bucket, the dotted names of its parameters."""
        names = {id(p): n for n, p in self.module.named_parameters()}
        return [[names[id(p)] for p in b.params] for b in self._buckets]

    # ------------------------------------------------------------------ buckets
    def _make_buckets(self, cap_bytes: float) -> list:
        buckets = []
        for p in reversed(self._params):
            b = buckets[-1] if buckets else None
            if b is None or b.dtype != p.dtype or (b.size and b.nbytes + p.data.nbytes > cap_bytes):
                b = _Bucket(len(buckets), p.dtype)
                buckets.append(b)
            b.add(p)
        for b in buckets:
            if not b.single:
                b.flat()
            b.ready = [False] * len(b.params)
        return buckets

    def _is_ready(self, p) -> bool:
        b, i = self._slot[id(p)]
        return b.ready[i]

    def _on_grad_ready(self, p) -> None:
        if self._no_sync:
            return
        b, i = self._slot[id(p)]
        if b.ready[i]:
            raise RuntimeError("DistributedDataParallel: a parameter received a second gradient before the "
                               "previous averaging finished (a backward left other parameters without a "
                               "gradient); call ddp.synchronize() after each backward in that case")
        if self._n_ready == 0:
            self._progress.events = [("first_grad", time.perf_counter())]
        g = p.grad
        if b.single and _reducible_in_place(g, p):
            b.inplace = g
        else:
            np.copyto(b.view(i), g)
        b.ready[i] = True
        b.n_ready += 1
        self._n_ready += 1
        self._state = "partial"
        if b.n_ready == len(b.params):
            self._start_in_order()
        else:
            self._progress.poke()
        if self._n_ready == len(self._params):
            self._finish()

    def _start_in_order(self) -> None:
        while self._next < len(self._buckets) and self._buckets[self._next].n_ready == len(self._buckets[self._next].params):
            b = self._buckets[self._next]
            self._progress.add(self.comm.Iallreduce(self._MPI.IN_PLACE, b.reduced(), op=self._MPI.SUM))
            self._next += 1

    def _average(self, total: np.ndarray, out=None) -> np.ndarray:
        """total / world_size; for a power-of-two world as a multiplication by its inverse, which gives the
        same bits (both are the correctly rounded total * 2**-k) and costs less than a division."""
        world = self.world_size
        if world & (world - 1) == 0:
            return np.multiply(total, 1.0 / world, out=out, dtype=total.dtype)
        return np.divide(total, world, out=out, dtype=total.dtype)

    def _finish(self) -> None:
        start = time.perf_counter()
        self._progress.wait_all()
        self.comm_wait_seconds += time.perf_counter() - start
        average = self._average
        for b in self._buckets:
            if b.inplace is not None:  # the sum is in the gradient array itself
                g, b.inplace = b.inplace, None
                average(g, out=g)
                b.params[0].grad = g
                b.ready[0] = False
                b.n_ready = 0
                continue
            for i, p in enumerate(b.params):
                g = p.grad
                if _reducible_in_place(g, p):
                    average(b.view(i), out=g)
                else:
                    p.grad = average(b.view(i))
                b.ready[i] = False
            b.n_ready = 0
        self._n_ready = 0
        self._next = 0
        self._state = "idle"
        self.reductions += 1

    def synchronize(self) -> None:
        """Finishes this step's averaging when some parameters got no gradient in backward: their share is
        their current .grad (zeros when None). Does nothing when backward already finished it."""
        if self._progress is None or self._state == "idle":
            return
        for b in self._buckets:
            for i, p in enumerate(b.params):
                if not b.ready[i]:
                    if p.grad is None:
                        b.view(i).fill(0)
                    else:
                        np.copyto(b.view(i), p.grad)
                    b.ready[i] = True
                    b.n_ready += 1
                    self._n_ready += 1
        self._start_in_order()
        self._finish()

    @contextlib.contextmanager
    def no_sync(self):
        """Inside: backward accumulates gradients locally, without communication."""
        self._no_sync += 1
        try:
            yield
        finally:
            self._no_sync -= 1

    # ------------------------------------------------------------------ once per epoch
    def end_epoch(self, *totals):
        """Averages the floating-point buffers (BatchNorm running statistics) over the ranks and returns
        `totals` (numbers such as the epoch's sample count and loss sum) summed over the ranks."""
        _c.average_buffers(self.module, comm=self.comm)
        if self.comm is None or self.world_size == 1:
            return totals
        summed = np.array(totals, dtype=np.float64)
        self.comm.Allreduce(self._MPI.IN_PLACE, summed, op=self._MPI.SUM)
        return tuple(float(v) for v in summed)

    def shared_seed(self) -> int:
        """A seed drawn from rank 0's nnx.random and given to every rank (for sharded shuffling)."""
        from .. import random as nnx_random
        seed = int(nnx_random.get_rng().integers(2 ** 62)) if self.rank == 0 else None
        return seed if self.comm is None else self.comm.bcast(seed, root=0)

    def remove_hooks(self) -> None:
        """Detaches the wrapper from the model's parameters (the model then trains alone again)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._progress = None
