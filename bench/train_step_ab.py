"""LeNet-5 training step (batch 64, cross-entropy, SGD momentum), nnx against PyTorch, interleaved.

    python bench/train_step_ab.py --threads 1 2 [--blocks 40] [--steps 10] [--json out.json]

bench/test_train_step.py times each framework in its own pytest-benchmark group, one after the other. On a
shared machine the load changes between those windows by more than the difference being measured (runs
of the same nnx step have differed by 30% minutes apart here). This script alternates the two: block i
runs `steps` nnx steps, then `steps` PyTorch steps, so both see the same conditions, and it reports the
median step time of each, the ratio of the medians and the median of the per-block ratios (paired), with
the interquartile range of those ratios. Same model, same data, same thread count for both.
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


def training_step(model, opt, loss_fn, x, y):
    """One SGD step as both frameworks spell it: their Module, loss and optimizer calls are the same."""
    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def torch_lenet5(tnn):
    """DESIGN.md's LeNet-5 (nnx.models.lenet5) in torch.nn."""
    return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                          tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
                          tnn.Linear(84, 10))


def _data(batch: int):
    rng = np.random.default_rng(3)
    return rng.standard_normal((batch, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, batch).astype(np.int64)


def nnx_step(batch: int):
    import nnx
    from nnx import nn, optim
    nnx.manual_seed(0)
    model = nnx.models.lenet5()
    x, y = _data(batch)
    return training_step(model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9), nn.CrossEntropyLoss(), x, y)


def torch_step(batch: int):
    import torch
    torch.manual_seed(0)
    model = torch_lenet5(torch.nn)
    x, y = (torch.from_numpy(a) for a in _data(batch))
    return training_step(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                         torch.nn.CrossEntropyLoss(), x, y)


# Untimed calls at the start of each block, after the switch from the other framework. nnx and PyTorch each run
# their own OpenMP runtime, and a runtime's threads spin-wait for a while after its last parallel region (libgomp's
# default): on 2 cores the other framework's spinning threads take a core from the first timed step, which
# then measures the two runtimes' contention, not a step. LeNet-5 at 2 threads (bench/network_ab.py, blocks of
# 2 steps): 3.08 ms (nnx) and 7.87 ms (PyTorch) per step; blocks of 6: 2.39 and 6.39 ms.
SETTLE_CALLS = 1


def settle(step) -> None:
    for _ in range(SETTLE_CALLS):
        step()


def block_times(step, n: int) -> list:
    settle(step)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        out.append(time.perf_counter() - t)
    return out


def measure(threads: int, blocks: int, steps: int, batch: int) -> dict:
    import nnx
    import torch
    nnx.set_num_threads(threads)
    torch.set_num_threads(threads)
    a, b = nnx_step(batch), torch_step(batch)
    for _ in range(5):  # warm-up: workspaces, momentum buffers, oneDNN primitive caches
        a()
        b()
    ta, tb, ratios = [], [], []
    for _ in range(blocks):
        xa = block_times(a, steps)
        xb = block_times(b, steps)
        ta += xa
        tb += xb
        ratios.append(np.median(xb) / np.median(xa))
    ma, mb = float(np.median(ta)), float(np.median(tb))
    q1, q3 = np.percentile(ratios, [25, 75])
    return {"threads": threads, "batch": batch, "steps": blocks * steps,
            "nnx_ms": ma * 1e3, "torch_ms": mb * 1e3, "nnx_img_s": batch / ma, "torch_img_s": batch / mb,
            "ratio_of_medians": mb / ma, "paired_ratio_median": float(np.median(ratios)),
            "paired_ratio_iqr": [float(q1), float(q3)]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("PyTorch is not installed: pip install '.[bench]' (torch==2.13.0, the CPU build)")
    import nnx
    rows = [measure(t, args.blocks, args.steps, args.batch) for t in args.threads]
    print(f"LeNet-5 training step, batch {args.batch}, {args.blocks} interleaved blocks of {args.steps} steps "
          f"(ISA {nnx.cpu_info()['active_isa']}, load average {os.getloadavg()[0]:.2f} at the end)")
    print("| threads | nnx ms | torch ms | nnx img/s | torch img/s | torch/nnx (medians) | paired, IQR |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['nnx_ms']:.3f} | {r['torch_ms']:.3f} | {r['nnx_img_s']:,.0f} | "
              f"{r['torch_img_s']:,.0f} | {r['ratio_of_medians']:.2f}x | {r['paired_ratio_median']:.2f}x "
              f"({r['paired_ratio_iqr'][0]:.2f}-{r['paired_ratio_iqr'][1]:.2f}) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
