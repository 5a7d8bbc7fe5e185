"""Where a training step of bench/network_ab.py's networks spends its time, op by op, nnx and PyTorch.

    python bench/network_profile.py [--nets bn resnet20] [--threads 1] [--steps 6] [--top 25]

nnx: every function of nnx.ops (and Tensor.__add__, the residual add) is wrapped in a timer for the run;
times are exclusive (an op that calls another op is charged only its own part), keyed by op and input
shape, summed over the steps and divided by their number; "rest" is the step's time outside every timed
op (autograd bookkeeping, gradient accumulation at branch points, the optimizer's NumPy); nnx's times are
process CPU time at 1 thread (wall clock otherwise). PyTorch: its profiler's self CPU time per aten op and
input shapes, which the profiler takes from the wall clock and inflates with its own overhead: on a loaded
machine read its shares, not its totals (bench/conv_layers_ab.py --passes compares the conv passes in CPU
time). After 3 warm-up steps. A profile, not an A/B: compare it with bench/network_ab.py's totals.
Python's cyclic garbage collector is paused while the steps are timed (after a full collection): with
PyTorch imported a full collection walks its ~170,000 objects in about 75 ms, and the one that fell in a
6-step profile was charged to whichever op happened to allocate then (ResNet-20's 64 -> 10 linear, 12-15
ms a step, where the op itself takes 0.03 ms).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import gc
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from network_ab import nnx_step, torch_step  # noqa: E402


def _shape(a):
    s = getattr(a, "shape", None)
    return "x".join(map(str, s)) if s is not None else ""


class OpTimer:
    """Wraps the functions of nnx.ops in exclusive timers while active."""

    def __init__(self, clock):
        self.clock = clock
        self.total = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.stack = []  # time spent in children, per open frame
        self.saved = []

    def wrap(self, name, fn):
        @functools.wraps(fn)
        def timed(*args, **kw):
            self.stack.append(0.0)
            t = self.clock()
            try:
                return fn(*args, **kw)
            finally:
                dt = self.clock() - t
                child = self.stack.pop()
                key = f"{name} {_shape(args[0]) if args else ''}"
                if name.endswith("conv2d_backward") and "needs" in kw:
                    key += " needs=" + "".join("x" if n else "-" for n in kw["needs"])
                self.total[key] += dt - child
                self.calls[key] += 1
                if self.stack:
                    self.stack[-1] += dt
        return timed

    def __enter__(self):
        from nnx import ops
        from nnx.tensor import Tensor
        for name in dir(ops):
            fn = getattr(ops, name)
            if callable(fn) and not name.startswith("_") and not isinstance(fn, type):
                self.saved.append((ops, name, fn))
                setattr(ops, name, self.wrap(name, fn))
        self.saved.append((Tensor, "__add__", Tensor.__add__))
        Tensor.__add__ = self.wrap("Tensor.__add__", Tensor.__add__)
        return self

    def __exit__(self, *exc):
        for obj, name, fn in reversed(self.saved):
            setattr(obj, name, fn)


@contextlib.contextmanager
def gc_paused():
    """A full collection first, then none until the block ends (see the module's docstring)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def profile_nnx(net, steps, clock):
    step = nnx_step(net)
    for _ in range(3):
        step()
    with gc_paused(), OpTimer(clock) as timer:
        t = clock()
        for _ in range(steps):
            step()
        total = clock() - t
    rows = sorted(timer.total.items(), key=lambda kv: -kv[1])
    timed = sum(timer.total.values())
    return total / steps, [(k, v / steps, timer.calls[k] // steps) for k, v in rows], (total - timed) / steps


def profile_torch(net, steps):
    import torch
    step = torch_step(net)
    for _ in range(3):
        step()
    with gc_paused(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                             record_shapes=True) as prof:
        for _ in range(steps):
            step()
    rows = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.self_cpu_time_total > 0:
            shapes = next((s for s in e.input_shapes if s), [])
            rows.append((f"{e.key} {'x'.join(map(str, shapes))}", e.self_cpu_time_total / 1e6 / steps, e.count // steps))
    rows.sort(key=lambda r: -r[1])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["bn", "resnet20"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    import nnx
    import torch
    nnx.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    for net in args.nets:
        step_s, rows, rest = profile_nnx(net, args.steps, clock)
        print(f"\n### {net}, {args.threads} thread(s): nnx {step_s * 1e3:.1f} ms/step "
              f"({'CPU' if args.threads == 1 else 'wall'} time)\n")
        print("| nnx op, first input's shape | calls/step | ms/step | share |\n|---|---|---|---|")
        for k, v, c in rows[:args.top]:
            print(f"| {k} | {c} | {v * 1e3:.2f} | {v / step_s:.0%} |")
        print(f"| rest (autograd, accumulation, optimizer) | | {rest * 1e3:.2f} | {rest / step_s:.0%} |")
        trows = profile_torch(net, args.steps)
        ttotal = sum(r[1] for r in trows)
        print(f"\n| torch op (self CPU), first input's shape | calls/step | ms/step | share of {ttotal * 1e3:.1f} ms |"
              "\n|---|---|---|---|")
        for k, v, c in trows[:args.top]:
            print(f"| {k} | {c} | {v * 1e3:.2f} | {v / ttotal:.0%} |")


if __name__ == "__main__":
    main()
