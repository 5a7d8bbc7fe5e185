"""Captured steps (nnx.compile) against eager nnx and PyTorch, interleaved.

    python bench/compile_ab.py --threads 1 2 [--blocks 30] [--steps 20] [--torch-compile] [--json out.json]

Cases (same model, data and thread count for every framework):
  mlp-b1-step     MLP 784-256-128-10, one image, training step (zero_grad, forward, cross-entropy, backward,
                  SGD momentum step)
  mlp-b64-step    the same at batch 64
  lenet-b1-infer  LeNet-5 forward of one image in eval mode, no gradients (nnx.compile(model))
  lenet-b1-step   LeNet-5 training step, one image
  lenet-b64-step  LeNet-5 training step, batch 64
  bn-b16-step     convnet_bn (2 conv + BatchNorm2d + ReLU + pool, fc + BatchNorm1d) training step, batch 16
  lstm-b1-step    row LSTM classifier (28 rows of 28 pixels, LSTM 28-128, Linear on the last step), one image
  lstm-b16-step   the same at batch 16
For each case, block i runs `steps` calls of each implementation in turn (nnx eager, nnx compiled, torch eager
and, with --torch-compile, torch.compile'd), so all see the same machine load; the table gives median call
times and the ratios torch-eager / nnx of the medians. "kernels" is the share of the compiled call spent in the
C++ replay itself (Plan.run, timed alone on the captured plan), the rest being the Python around it.
With more than one thread, "compiled, all threads" is a second compiled copy with tune_threads=False (every
kernel call on all threads), and "calls on 1 thread" counts the calls the tuned plan chose to run on one thread.
The first calls of the compiled versions (capture, and torch.compile's compilation) are timed separately and
reported as compile times.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from train_step_ab import torch_lenet5, training_step  # noqa: E402

CASES = {
    "mlp-b1-step": ("mlp", 1, "step"),
    "mlp-b64-step": ("mlp", 64, "step"),
    "lenet-b1-infer": ("lenet", 1, "infer"),
    "lenet-b1-step": ("lenet", 1, "step"),
    "lenet-b64-step": ("lenet", 64, "step"),
    "bn-b16-step": ("convnet_bn", 16, "step"),
    "lstm-b1-step": ("lstm", 1, "step"),
    "lstm-b16-step": ("lstm", 16, "step"),
}
# Cases whose step takes milliseconds run fewer calls per block (steps // this), so each block stays short.
SLOW = {"bn-b16-step": 10, "lstm-b16-step": 4}


def _data(model: str, batch: int):
    rng = np.random.default_rng(3)
    shape = (batch, 784) if model == "mlp" else (batch, 1, 28, 28)
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, batch).astype(np.int64)


def nnx_calls(model: str, batch: int, kind: str):
    """(eager call, compiled call, compiled object, compiled call with every kernel on all threads) for nnx:
    three copies of the model, one per mode."""
    import nnx
    from nnx import nn, optim
    x, y = _data(model, batch)
    fns = []
    for _ in range(3):
        nnx.manual_seed(0)
        m = nnx.models.mlp(hidden=(256, 128)) if model == "mlp" else nnx.models.MODELS[
            "lenet5" if model == "lenet" else model]()
        if kind == "infer":
            m.eval()
            fns.append(m)
            continue
        opt, loss_fn = optim.SGD(m.parameters(), lr=0.01, momentum=0.9), nn.CrossEntropyLoss()

        def step(xb, yb, m=m, opt=opt, loss_fn=loss_fn):
            opt.zero_grad()
            loss = loss_fn(m(xb), yb)
            loss.backward()
            opt.step()
            return loss
        fns.append(step)
    compiled = nnx.compile(fns[1], strict=True)
    untuned = nnx.compile(fns[2], strict=True, tune_threads=False)
    if kind == "infer":
        def eager():
            with nnx.no_grad():
                return fns[0](x)
        return eager, (lambda: compiled(x)), compiled, (lambda: untuned(x))
    return (lambda: fns[0](x, y)), (lambda: compiled(x, y)), compiled, (lambda: untuned(x, y))


def torch_call(model: str, batch: int, kind: str, compiled: bool):
    import torch
    tn = torch.nn
    torch.manual_seed(0)
    if model == "lenet":
        m = torch_lenet5(tn)
    elif model == "convnet_bn":
        m = torch_convnet_bn(tn)
    elif model == "lstm":
        m = TorchRowLSTM(tn)
    else:
        m = tn.Sequential(tn.Flatten(), tn.Linear(784, 256), tn.ReLU(), tn.Linear(256, 128), tn.ReLU(),
                          tn.Linear(128, 10))
    x, y = (torch.from_numpy(a) for a in _data(model, batch))
    if kind == "infer":
        m.eval()
        fwd = torch.compile(m) if compiled else m

        def f():
            with torch.no_grad():
                return fwd(x)
        return f
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    step = training_step(m, opt, tn.CrossEntropyLoss(), x, y)
    return torch.compile(step) if compiled else step


def torch_convnet_bn(tn):
    """nnx.models.convnet_bn in torch.nn."""
    return tn.Sequential(tn.Conv2d(1, 32, 5, padding=2, bias=False), tn.BatchNorm2d(32), tn.ReLU(), tn.MaxPool2d(2),
                         tn.Conv2d(32, 64, 5, padding=2, bias=False), tn.BatchNorm2d(64), tn.ReLU(), tn.MaxPool2d(2),
                         tn.Flatten(), tn.Linear(7 * 7 * 64, 256, bias=False), tn.BatchNorm1d(256), tn.ReLU(),
                         tn.Linear(256, 10))


def TorchRowLSTM(tn):
    """nnx.models.row_lstm in torch.nn: LSTM(28, 128) over the rows, Linear on the last step's output."""
    class RowLSTM(tn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = tn.LSTM(28, 128, batch_first=True), tn.Linear(128, 10)

        def forward(self, x):
            y, _ = self.rnn(x.reshape(x.shape[0], x.shape[2], x.shape[3]))
            return self.fc(y[:, -1])
    return RowLSTM()


CLOCK = time.perf_counter


def block(f, n: int) -> float:
    t = CLOCK()
    for _ in range(n):
        f()
    return (CLOCK() - t) / n


def plan_run_time(compiled, n: int) -> float:
    entry = next(e for e in compiled._cache.values() if e.state == "plan")
    return block(entry.analysis.plan.run, n)


def measure(case: str, threads: int, blocks: int, steps: int, torch_compile: bool) -> dict:
    import nnx
    import torch
    nnx.set_num_threads(threads)
    torch.set_num_threads(threads)
    model, batch, kind = CASES[case]
    steps = max(1, steps // SLOW.get(case, 1))
    eager, comp, compiled, untuned = nnx_calls(model, batch, kind)
    t0, c0 = time.perf_counter(), time.process_time()
    comp()
    comp()  # capture: two recorded eager calls and a verifying replay
    capture_s, capture_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    impls = {"nnx eager": eager, "nnx compiled": comp, "torch eager": torch_call(model, batch, kind, False)}
    if threads > 1:
        impls["nnx compiled, all threads"] = untuned
    tc_s = None
    if torch_compile:
        tc = torch_call(model, batch, kind, True)
        t0 = time.perf_counter()
        tc()
        tc_s = time.perf_counter() - t0
        impls["torch.compile"] = tc
    for f in impls.values():  # warm-up (and the replays that choose threads per call, compile/plan.h)
        for _ in range(30):
            f()
    stats = compiled.stats()[0]
    times = {k: [] for k in impls}
    times["replay only"] = []
    for _ in range(blocks):
        for k, f in impls.items():
            times[k].append(block(f, steps))
        times["replay only"].append(plan_run_time(compiled, steps))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"case": case, "threads": threads, "median_s": med, "capture_s": capture_s, "capture_cpu_s": capture_cpu_s,
            "torch_compile_s": tc_s, "plan_bytes": stats["plan_bytes"], "kernel_calls": stats["kernel_calls"],
            "calls_on_one_thread": sum(t == 1 for t in stats["threads"]) if threads > 1 else stats["kernel_calls"],
            "eager_ratio": med["torch eager"] / med["nnx eager"],
            "compiled_ratio": med["torch eager"] / med["nnx compiled"],
            "kernel_share": med["replay only"] / med["nnx compiled"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--blocks", type=int, default=30)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--torch-compile", action="store_true", help="also time torch.compile (compiles on first call)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: elapsed time; cpu: this process's CPU time (all its threads), which a machine "
                         "shared with other jobs inflates less (with 1 thread it is the call's own cost)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("PyTorch is not installed: pip install '.[bench]' (torch==2.13.0, the CPU build)")
    import nnx
    print(f"nnx.compile vs eager nnx and PyTorch, {args.blocks} interleaved blocks of {args.steps} calls, "
          f"{args.clock} clock "
          f"(ISA {nnx.cpu_info()['active_isa']}, load average {os.getloadavg()[0]:.2f} at the start)")
    tc = " torch.compile us |" if args.torch_compile else ""
    print(f"| case | threads | nnx eager us | nnx compiled us | torch eager us |{tc} torch/nnx eager | "
          f"torch/nnx compiled | compiled, all threads us | calls on 1 thread | kernels' share | capture ms (cpu) | "
          f"plan KiB |")
    print("|---" * (12 + bool(args.torch_compile)) + "|", flush=True)
    rows = []
    for t, c in [(t, c) for t in args.threads for c in args.cases]:
        r = measure(c, t, args.blocks, args.steps, args.torch_compile)
        rows.append(r)
        m = r["median_s"]
        tcs = f" {m['torch.compile'] * 1e6:.1f} (compile {r['torch_compile_s']:.1f} s) |" if args.torch_compile else ""
        print(f"| {r['case']} | {r['threads']} | {m['nnx eager'] * 1e6:.1f} | {m['nnx compiled'] * 1e6:.1f} | "
              f"{m['torch eager'] * 1e6:.1f} |{tcs} {r['eager_ratio']:.2f}x | {r['compiled_ratio']:.2f}x | "
              f"{m.get('nnx compiled, all threads', m['nnx compiled']) * 1e6:.1f} | "
              f"{r['calls_on_one_thread']}/{r['kernel_calls']} | "
              f"{r['kernel_share'] * 100:.0f}% | {r['capture_s'] * 1e3:.1f} ({r['capture_cpu_s'] * 1e3:.1f}) | "
              f"{r['plan_bytes'] / 1024:.0f} |",
              flush=True)
    print(f"(load average {os.getloadavg()[0]:.2f} at the end)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
