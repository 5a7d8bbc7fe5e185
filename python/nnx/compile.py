"""nnx.compile: capture a whole step (forward, backward, optimizer) and replay it from C++.

    @nnx.compile
    def step(xb, yb):
        opt.zero_grad(); loss = loss_fn(model(xb), yb); loss.backward(); opt.step(); return loss

    predict = nnx.compile(model)          # inference (call model.eval() first)

How it works. The first two calls with a given signature (input shapes and dtypes, other arguments) run the
step eagerly while every kernel call is recorded (cpp/bindings/record.h) with the arrays it reads and writes.
A recording is accepted only when
  - every array a kernel reads was written by an earlier kernel of the step, or is a step input, a parameter
    or buffer of a module called in the step, an optimizer's state or hyperparameter array, or a constant of
    the ops: nothing computed by NumPy or Python in between, which a replay would not redo;
  - the two recordings ran the same kernels with the same scalars on the same state (no data-dependent
    control flow that showed up between them);
  - replaying the second one from the state before it reproduces the eager call bit for bit (parameters,
    optimizer state, outputs), which catches in-place NumPy changes to state inside the step.
While a step is captured, op results take their memory from the plan (nnx._args.empty -> Plan.empty), and a
result dropped during the capture gives its block back for a later result of at most twice its size, as malloc
does for the eager step: the plan holds about the eager step's working set, not every intermediate array apart.
The capture runs with Python's cycle collector off, so that two recordings release their results alike.
Later calls with the same signature copy the inputs into the captured input buffers, let each optimizer write
its hyperparameters (learning rate, step counts) into the arrays its kernels read, replay the kernel calls in
C++ without the GIL, set each parameter's .grad to its captured gradient array and return copies of the
outputs (Tensors without a graph). A new signature captures a new plan (up to `cache_size`, least recently
used dropped).

What is refused (a CompileWarning and eager calls for that signature, or CompileError with strict=True):
NumPy work between kernels (Tensor arithmetic, gradient accumulation across steps, fancy indexing, dtype
conversions of inputs; a sum of two tensors, or of two gradients of one tensor, is a recorded kernel call when
both have one shape and float dtype and are C-contiguous, as a residual block's are), steps whose kernels or scalars differ between
calls, outputs that are not arrays/Tensors made by kernels. Values Python computes per call for a kernel
(dropout seeds, batch norm's momentum and num_batches_tracked) are replay values: refreshed before each
replay by the code that computes them eagerly (_Recording.replay_value). Layout copies made while capturing
(contiguous copies of transposes, slice gradients, zero initial states) are recorded kernels (cpp/layout). Detected before each replay, and answered by capturing again:
a parameter array replaced (p.data = ...), optimizer state replaced (load_state_dict), a hyperparameter that
decides which state exists (momentum switched on), a module's train/eval mode changed. Calls from two threads
at once raise RuntimeError. In-place changes to parameters between calls (load_state_dict, manual edits) are
seen by the replay, which reads the parameter arrays themselves.

What cannot be detected: Python control flow that depends on values (`if loss.item() > 1`) and changes only
after capture; values computed in Python and passed to kernels as scalars, frozen at capture. Pass such
values as array arguments, or use check_every=N, which reruns every N-th call eagerly, compares its kernel
sequence with the plan and refuses on a difference.
"""
from __future__ import annotations

import functools
import gc
import threading
import time
import warnings
from collections import OrderedDict

import numpy as np

from . import _capture
from . import anomaly as _anomaly
from . import functional as _functional
from . import ops as _ops
from ._backend import _C
from .ops import _checks
from .tensor import Tensor, is_grad_enabled, no_grad

try:
    from numpy.lib.array_utils import byte_bounds as _byte_bounds
except ImportError:  # NumPy < 2
    _byte_bounds = np.byte_bounds

__all__ = ["compile", "CompileError", "CompileWarning", "CompiledStep"]

_AGREE_ATTEMPTS = 4  # recordings in a row that may disagree before the step is refused


class CompileError(RuntimeError):
    """nnx.compile cannot replay this step (strict=True); the call that raised it ran eagerly and its
    effects (parameter updates) stand."""


class CompileWarning(UserWarning):
    """nnx.compile runs a step eagerly because it cannot replay it (the message says why)."""


class _Refuse(Exception):
    pass


def _bounds(a: np.ndarray):
    lo, hi = _byte_bounds(a)
    return lo, max(hi, lo + 1)  # an empty array still has an address, so it can be classified


class _Recording:
    """One eager run of the step with its kernel calls recorded (what _capture.current() returns on the
    capturing thread)."""

    def __init__(self, slots: dict):
        self.plan = _C.Plan()
        self.modules = {}
        self.opt_steps = []
        self.refusals = []
        self.slots = slots  # the signature's replay values, the same arrays in each of its recordings
        self._slot_counts = {}
        self.values = []  # (array, refresh) in call order
        self.python_buffers = set()  # (id(module), name) of buffers that hooks rebind, not kernels write

    def replay_value(self, kind: str, dtype, value, refresh) -> np.ndarray:
        """A one-element array holding `value`, for a kernel to read a value that Python computes per call
        (a dropout seed, batch norm's momentum): the k-th call of `kind` gets the same array in every
        recording of the step, and before each replay refresh() is called (in call order) and its result
        written into it, so the replay reads what the eager call would have computed."""
        k = self._slot_counts.get(kind, 0)
        self._slot_counts[kind] = k + 1
        a = self.slots.get((kind, k))
        if a is None or a.dtype != np.dtype(dtype):
            a = self.slots[(kind, k)] = np.zeros(1, dtype=dtype)
        a[0] = value
        self.values.append((a, refresh))
        return a

    def python_buffer(self, module, name: str) -> None:
        """A buffer of `module` that Python rebinds each call and a replay hook advances (batch norm's
        num_batches_tracked): not a replaced buffer when the replay finds a new array there."""
        self.python_buffers.add((id(module), name))

    def refuse(self, why: str) -> None:
        """Something in the step that a replay would not redo (said by the Python side, e.g. an optimizer)."""
        self.refusals.append(why)

    def add_module(self, module) -> None:
        self.modules[id(module)] = module

    def add_optimizer_step(self, opt, gi, key, group, params, hook) -> None:
        self.opt_steps.append((opt, params, hook))


def _refresh(array: np.ndarray, refresh) -> None:
    """A replay hook of a replay value (_Recording.replay_value): writes this call's value."""
    array[0] = refresh()


class _Analysis:
    """What a recording needs to be replayed, and the signature that two recordings must share."""

    def __init__(self, rec: _Recording, inputs: list, result):
        self.plan = rec.plan
        self.inputs = inputs
        self.hooks = [functools.partial(_refresh, a, f) for a, f in rec.values] + [h for _, _, h in rec.opt_steps]
        params = {}
        for m in rec.modules.values():
            for p in m.parameters():
                params[id(p)] = p
        for _, ps, _ in rec.opt_steps:
            for p in ps:
                params[id(p)] = p
        self.params = [(p, p.data) for p in params.values()]
        self.flags = [(m, m.training) for m in rec.modules.values()]
        self.buffers = [(m, n, b) for m in rec.modules.values() for n, b in m._own_buffers()
                        if isinstance(b, np.ndarray) and (id(m), n) not in rec.python_buffers]
        state = [d for _, d in self.params] + [b for _, _, b in self.buffers]
        # Hyperparameter arrays (rewritten by the optimizer before each call) and constants are read like state
        # but are not the step's state: a verifying replay neither restores nor compares them.
        settings = list(_checks.CONSTANTS.values()) + [a for a, _ in rec.values]
        for opt, ps, _ in rec.opt_steps:
            for p in ps:
                state += [v for v in opt.state.get(p, {}).values() if isinstance(v, np.ndarray)]
            settings += list(getattr(opt, "_hyper", {}).values())
        self._inputs = [(_bounds(a), j) for j, a in enumerate(inputs) if isinstance(a, np.ndarray)]
        self._state = [(_bounds(a), a, True) for a in state if isinstance(a, np.ndarray) and a.size]
        self._state += [(_bounds(a), a, False) for a in settings if a.size]
        self._temps = []  # (lo, hi) of regions first written by a kernel of this step, by index
        self.touched_state = {}
        calls = []
        refusals = rec.refusals + rec.plan.refusals()
        if refusals:
            raise _Refuse(refusals[0])
        for i, (op, attrs, arrays) in enumerate(rec.plan.log()):
            canon = []
            for a, use in arrays:
                c = self._classify(a)
                if c is None:
                    if use != "w":
                        raise _Refuse(
                            f"kernel call {i} ({op}) reads an array of shape {a.shape} that no earlier kernel of "
                            f"the step wrote and that is not a step input, a parameter or buffer of a module "
                            f"called in the step, optimizer state or a constant: it was computed by NumPy or "
                            f"Python between kernels (Tensor arithmetic, fancy indexing, gradient accumulation, "
                            f"a dtype conversion of an input), which a replay would not redo")
                    lo, hi = _bounds(a)
                    self._temps.append((lo, hi))
                    c = ("new", len(self._temps) - 1, hi - lo)
                canon.append((use, c, a.shape, a.strides, a.dtype.str))
            calls.append((op, attrs, tuple(canon)))
        self.outputs, out_sig = self._outputs(result)
        self.grads = []
        for p, _ in self.params:
            g = p.grad
            if g is not None and (not isinstance(g, np.ndarray) or self._classify(g) is None):
                raise _Refuse("a parameter's .grad after the step was not written by a kernel of the step "
                              "(gradients accumulated across steps? call zero_grad() inside the step)")
            self.grads.append((p, g))
        self.signature = (tuple(calls), out_sig, tuple(f for _, f in self.flags))
        self.nbytes = sum(hi - lo for lo, hi in self._temps) + sum(a.nbytes for a in inputs
                                                                    if isinstance(a, np.ndarray))

    def _classify(self, a: np.ndarray):
        lo, hi = _bounds(a)
        for (ilo, ihi), j in self._inputs:
            if ilo <= lo and hi <= ihi:
                return ("in", j, lo - ilo, hi - lo)
        for k, (tlo, thi) in enumerate(self._temps):
            if tlo <= lo and hi <= thi:
                return ("tmp", k, lo - tlo, hi - lo)
        for (slo, shi), arr, restore in self._state:
            if slo <= lo and hi <= shi:
                if restore and arr.flags.writeable:  # what a verifying replay restores and compares
                    self.touched_state[id(arr)] = arr
                return ("state", lo, hi)
        return None

    def _outputs(self, result):
        """(how to rebuild the result from arrays, its structural signature)."""
        if result is None:
            return None, None
        if isinstance(result, (Tensor, np.ndarray)):
            arr = result.data if isinstance(result, Tensor) else result
            c = self._classify(arr)
            if c is None:
                raise _Refuse(f"the step returns an array of shape {arr.shape} that no kernel of the step wrote "
                              f"(computed by NumPy or Python), which a replay would not recompute")
            kind = "T" if isinstance(result, Tensor) else "A"
            return (kind, arr), (kind, c)
        if isinstance(result, (tuple, list)):
            parts = [self._outputs(r) for r in result]
            return (type(result), [p[0] for p in parts]), (type(result).__name__, tuple(p[1] for p in parts))
        raise _Refuse(f"the step returns a {type(result).__name__}; a captured step can return Tensors, arrays, "
                      f"None and tuples or lists of them (return the loss Tensor, not loss.item())")


def _build(spec):
    if spec is None:
        return None
    kind, body = spec
    if kind == "T":
        return Tensor(body.copy())
    if kind == "A":
        return body.copy()
    return kind(_build(s) for s in body)


def _flat_arrays(spec, out):
    if spec is None:
        return out
    kind, body = spec
    if kind in ("T", "A"):
        out.append(body)
    else:
        for s in body:
            _flat_arrays(s, out)
    return out


class _Entry:
    """The state of one signature: recording ('pending'), a plan ('plan'), or refused ('eager')."""

    __slots__ = ("state", "analysis", "attempts", "calls", "capture_s", "reason", "slots")

    def __init__(self):
        self.slots = {}
        self.state = "pending"
        self.analysis = None
        self.attempts = 0
        self.calls = 0
        self.capture_s = 0.0
        self.reason = ""


class CompiledStep:
    """A step function captured and replayed by nnx.compile (see the module docstring)."""

    def __init__(self, fn, *, strict: bool = False, check_every: int = 0, cache_size: int = 8,
                 inference: bool = False, warn: bool = True, tune_threads: bool = True):
        if not callable(fn):
            raise TypeError(f"fn: expected a callable (a step function or an nnx.nn.Module), got "
                            f"{type(fn).__name__}")
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 0:
            raise ValueError(f"check_every: expected an int >= 0, got {check_every!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size: expected an int >= 1, got {cache_size!r}")
        self.fn = fn
        self.strict = bool(strict)
        self.warn = bool(warn)
        self.check_every = check_every
        self.cache_size = cache_size
        self.tune_threads = bool(tune_threads)
        self.inference = inference
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._owner = None
        self.refusals: list = []
        functools.update_wrapper(self, fn, updated=())

    # ------------------------------------------------------------------ public
    def __call__(self, *args, **kwargs):
        if not self._lock.acquire(blocking=False):
            if self._owner == threading.get_ident():
                raise RuntimeError("nnx.compile: the compiled step was called from inside itself")
            raise RuntimeError("nnx.compile: the compiled step is already running in another thread; a captured "
                               "step replays into fixed buffers, so calls from two threads at once are refused "
                               "(compile one step per thread)")
        self._owner = threading.get_ident()
        try:
            return self._call(args, kwargs)
        finally:
            self._owner = None
            self._lock.release()

    def stats(self) -> list:
        """One dict per cached signature: state ('plan', 'pending' or 'eager'), kernel calls, bytes held
        by the plan (inputs and intermediate arrays; parameters and optimizer state not counted), capture
        seconds (the recorded eager calls, their checks and the verifying replay), calls so far, the thread
        count chosen for each kernel call and the replay-time scores (seconds) of the three candidates it was
        chosen from (per-call choice, all on one thread, all on every thread; empty until chosen, see
        tune_threads in nnx.compile), and why a refused signature runs eagerly."""
        out = []
        for key, e in self._cache.items():
            a = e.analysis if e.state == "plan" else None
            out.append({"state": e.state, "kernel_calls": len(a.plan) if a is not None else 0,
                        "plan_bytes": a.nbytes if a is not None else 0,
                        "threads": list(a.plan.thread_choice()) if a is not None else [],
                        "thread_candidates_s": list(a.plan.candidate_times()) if a is not None else [],
                        "capture_seconds": e.capture_s, "calls": e.calls, "reason": e.reason, "key": key})
        return out

    def reset(self) -> None:
        """Drops every captured plan (the next calls capture again)."""
        self._cache.clear()

    # ------------------------------------------------------------------ internals
    def _run_fn(self, args, kwargs):
        if self.inference:
            with no_grad():
                return self.fn(*args, **kwargs)
        return self.fn(*args, **kwargs)

    def _key(self, args, kwargs):
        parts = []
        for a in args:
            if type(a) is np.ndarray:
                parts.append((a.shape, a.dtype))
            elif isinstance(a, Tensor):
                parts.append(("T", a.shape, a.dtype, a.requires_grad))
            else:
                parts.append(("V", type(a), a))
        if kwargs:
            parts.append(tuple(sorted(kwargs.items())))
        parts.append(is_grad_enabled())
        key = tuple(parts)
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def _call(self, args, kwargs):
        if _anomaly.active or _functional.get_backend() is not _ops:
            return self._run_fn(args, kwargs)  # anomaly checks and the NumPy reference run in Python
        key = self._key(args, kwargs)
        if key is None:
            return self._run_fn(args, kwargs)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = _Entry()
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        entry.calls += 1
        if entry.state == "eager":
            return self._run_fn(args, kwargs)
        if entry.state == "plan":
            if self.check_every and entry.calls % self.check_every == 0:
                return self._check(entry, args, kwargs)
            try:
                return self._replay(entry.analysis, args)
            except _capture.Stale:
                entry.state, entry.analysis, entry.attempts = "pending", None, 0
        return self._capture(entry, args, kwargs)

    def _replay(self, a: _Analysis, args):
        for m, flag in a.flags:
            if m.training is not flag:
                raise _capture.Stale("a module's train/eval mode changed")
        for p, d in a.params:
            if p.data is not d:
                raise _capture.Stale("a parameter array was replaced")
        for m, n, b in a.buffers:
            if getattr(m, n) is not b:
                raise _capture.Stale("a module buffer was replaced")
        after = [h() for h in a.hooks]
        for buf, x in zip(a.inputs, args):
            if type(buf) is np.ndarray:
                np.copyto(buf, x.data if isinstance(x, Tensor) else x)
        a.plan.run()
        for f in after:
            if f is not None:
                f()
        for p, g in a.grads:
            p.grad = g
        return _build(a.outputs)

    def _inputs(self, args):
        """Copies of the array arguments (the buffers a plan reads its inputs from) and the arguments to call
        the step with during a capture."""
        bufs, call = [], []
        for a in args:
            if isinstance(a, Tensor):
                b = np.array(a.data, order="C", copy=True)
                bufs.append(b)
                call.append(Tensor(b))
            elif type(a) is np.ndarray:
                b = np.array(a, order="C", copy=True)
                bufs.append(b)
                call.append(b)
            else:
                bufs.append(None)
                call.append(a)
        return bufs, call

    def _record(self, entry: _Entry, args, kwargs):
        """Runs the step eagerly on copies of its inputs while recording: (analysis or refusal, result)."""
        if _capture.current() is not None:
            raise RuntimeError("nnx.compile: a compiled step was called while another one is being captured on this "
                               "thread (nested compiled steps are not supported)")
        bufs, call = self._inputs(args)
        rec = _Recording(entry.slots)
        rec.plan.set_tuning(self.tune_threads)
        _capture.set_current(rec)
        rec.plan.begin()
        # The op results of the capture share the plan's blocks as they are dropped (nnx._args.empty, Plan.empty):
        # releases only by reference counts, in the step's own order, so that two recordings of one step release
        # alike (the cycle collector would free cyclic garbage at moments of its own).
        collecting = gc.isenabled()
        gc.disable()
        try:
            result = self._run_fn(call, kwargs)
        finally:
            if collecting:
                gc.enable()
            rec.plan.end()
            _capture.set_current(None)
        try:
            return _Analysis(rec, bufs, result), result
        except _Refuse as why:
            return why, result

    def _refuse(self, entry: _Entry, reason: str):
        entry.state, entry.analysis, entry.reason = "eager", None, reason
        self.refusals.append(reason)
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        msg = f"nnx.compile: {name} cannot be replayed, so it runs eagerly: {reason}"
        if self.strict:
            raise CompileError(msg + " (this call ran eagerly)")
        if self.warn:
            warnings.warn(msg, CompileWarning, stacklevel=4)

    def _capture(self, entry: _Entry, args, kwargs):
        if any(isinstance(a, Tensor) and a.requires_grad for a in args):
            self._refuse(entry, "an input Tensor requires grad; pass data (ndarrays, or Tensors without grad)")
            return self._run_fn(args, kwargs)
        t0 = time.perf_counter()
        prev = entry.analysis
        snapshot = None
        if prev is not None:  # the state this call starts from, to verify a replay against the eager call
            snapshot = [(arr, arr.copy()) for arr in prev.touched_state.values()]
        analysis, result = self._record(entry, args, kwargs)
        if isinstance(analysis, _Refuse):
            entry.capture_s += time.perf_counter() - t0
            self._refuse(entry, str(analysis))
            return result
        if prev is None or prev.signature != analysis.signature:
            entry.attempts += 1
            entry.analysis = analysis
            entry.capture_s += time.perf_counter() - t0
            if entry.attempts >= _AGREE_ATTEMPTS:
                self._refuse(entry, f"{entry.attempts} recordings in a row ran different kernels or scalars "
                                    f"(Python control flow or values that change from call to call)")
            return result
        why = self._verify(analysis, args, snapshot, result)
        entry.capture_s += time.perf_counter() - t0
        if why:
            self._refuse(entry, why)
            return result
        entry.state, entry.analysis = "plan", analysis
        # The eager result's arrays are now the plan's buffers, which the next replay overwrites: return
        # copies, as a replay does.
        return _build(analysis.outputs)

    def _verify(self, a: _Analysis, args, snapshot, result) -> str:
        """Replays the recording from the state before the eager call and compares: '' when bit-identical.
        Leaves the state as the eager call made it."""
        after = [(arr, arr.copy()) for arr in a.touched_state.values()]
        outs = [o.copy() for o in _flat_arrays(a.outputs, [])]
        before = {id(arr): copy for arr, copy in snapshot}
        if set(before) != {id(arr) for arr, _ in after}:
            return "the step touched different state arrays on two calls"
        for arr, _ in after:
            np.copyto(arr, before[id(arr)])
        for buf, x in zip(a.inputs, args):
            if type(buf) is np.ndarray:
                np.copyto(buf, x.data if isinstance(x, Tensor) else x)
        why = ""
        try:
            a.plan.run()
        except Exception as exc:  # noqa: BLE001 - any failure means the plan is not replayable
            why = f"replaying the captured kernels failed: {exc}"
        if not why:
            for arr, copy in after:
                if arr.tobytes() != copy.tobytes():
                    why = (f"replaying the captured kernels does not reproduce the eager step (a state array of "
                           f"shape {arr.shape} differs): the step changes state in NumPy or Python between kernels")
                    break
        if not why:
            for o, copy in zip(_flat_arrays(a.outputs, []), outs):
                if o.tobytes() != copy.tobytes():
                    why = "replaying the captured kernels does not reproduce the eager step's outputs"
                    break
        if why:  # the eager call's effects stand
            for arr, copy in after:
                np.copyto(arr, copy)
            for o, copy in zip(_flat_arrays(a.outputs, []), outs):
                np.copyto(o, copy)
        return why

    def _check(self, entry: _Entry, args, kwargs):
        """A checking call: runs eagerly while recording and compares the kernels with the plan's."""
        analysis, result = self._record(entry, args, kwargs)
        if isinstance(analysis, _Refuse):
            self._refuse(entry, str(analysis))
        elif analysis.signature != entry.analysis.signature:
            self._refuse(entry, f"a checking call (every {self.check_every} calls) ran different kernels or scalars "
                                f"than the captured plan: Python control flow or values changed after capture")
        return result


def compile(fn=None, *, strict: bool = False, check_every: int = 0, cache_size: int = 8, warn: bool = True,
            tune_threads: bool = True):
    """Captures `fn` (a step function, or an nnx.nn.Module for inference) and replays it from C++ on later
    calls with the same input shapes and dtypes. Usable as @nnx.compile or @nnx.compile(strict=True).

    strict: raise CompileError instead of warning (CompileWarning) and running eagerly when the step cannot
    be replayed (warn=False: run eagerly without a warning; the reasons are kept in .refusals).
    check_every: every N-th call runs eagerly and its kernels are compared with the plan.
    cache_size: plans kept, one per input signature.
    tune_threads: with more than one thread (nnx.set_num_threads), the first 24 replays time each kernel call
    at one thread and at all of them, then whole replays of that per-call choice, of all calls on one thread
    and of all on every thread, and later replays run the fastest (the bits are the same for any count; small
    kernels run faster on one thread). False: every call uses all threads.
    A Module is compiled for inference: called under
    no_grad (put it in eval mode first). See the module docstring for what is captured and what is refused."""
    if fn is None:
        return functools.partial(compile, strict=strict, check_every=check_every, cache_size=cache_size, warn=warn,
                                 tune_threads=tune_threads)
    from .nn.module import Module

    if isinstance(fn, Module):
        return CompiledStep(fn, strict=strict, check_every=check_every, cache_size=cache_size, inference=True,
                            warn=warn, tune_threads=tune_threads)
    return CompiledStep(fn, strict=strict, check_every=check_every, cache_size=cache_size, warn=warn,
                        tune_threads=tune_threads)
