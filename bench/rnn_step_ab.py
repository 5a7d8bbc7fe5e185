"""Recurrent training steps (forward, cross-entropy, backward through time, SGD step), nnx against
PyTorch, interleaved in blocks (as bench/train_step_ab.py) so both see the same machine load.

    python bench/rnn_step_ab.py --threads 1 2 [--cases lstm28 gru28 ...] [--blocks 15] [--steps 5]

The six cases of the recurrent issue, batch-first input:
  {lstm,gru,rnn}28: LSTM/GRU/tanh RNN (28 -> 128), T = 28, batch 64, Linear(128 -> 10) on the last step
  {lstm,gru,rnn}64: Embedding(96 -> 64) + LSTM/GRU/RNN (64 -> 256), T = 64, batch 32, Linear(256 -> 96)
                    on every step (a character language model's step)
GFLOP/s counts the multiply-adds of the GEMMs (input projection, recurrent product, output Linear) forward,
times 3 for forward + backward (2 FLOPs per multiply-add); element-wise work is not counted. Peak is
bench/machine.json's measured FMA throughput per core times the thread count.

--clock cpu times each block with the process's CPU time instead of the wall clock: on a machine shared
with other jobs it counts only the cycles this process ran, so 1-thread ratios stay steady under load. With
more threads it sums the CPU time of all of them (the work done, not the latency), so use the wall clock
(the default) for multi-thread speed.
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

from train_step_ab import training_step  # noqa: E402

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CASES = {
    f"{m}28": dict(mode=m, kind="classifier", I=28, H=128, T=28, N=64, out=10) for m in GATES
} | {
    f"{m}64": dict(mode=m, kind="charlm", V=96, I=64, H=256, T=64, N=32, out=96) for m in GATES
}


def case_flops(c: dict) -> float:
    """FLOPs of one training step's GEMMs (3 x the forward's: backward does the dx and dW products)."""
    G, H, I, T, N = GATES[c["mode"]], c["H"], c["I"], c["T"], c["N"]
    macs = T * N * G * H * (I + H)
    macs += N * H * c["out"] * (T if c["kind"] == "charlm" else 1)
    return 3 * 2 * macs


def data(c: dict):
    rng = np.random.default_rng(5)
    if c["kind"] == "classifier":
        x = rng.standard_normal((c["N"], c["T"], c["I"])).astype(np.float32)
        y = rng.integers(0, c["out"], c["N"]).astype(np.int64)
    else:
        x = rng.integers(0, c["V"], (c["N"], c["T"])).astype(np.int64)
        y = rng.integers(0, c["V"], c["N"] * c["T"]).astype(np.int64)
    return x, y


def nnx_model(c: dict):
    import nnx
    from nnx import models, nn

    nnx.manual_seed(0)
    if c["kind"] == "classifier":
        return models.RowSequenceClassifier(c["mode"], c["I"], c["H"], c["out"])
    lm = models.CharLM(c["V"], c["I"], c["H"], c["mode"])

    class Flat(nn.Module):  # logits (N*T, V) for the loss
        def __init__(self):
            super().__init__()
            self.lm = lm

        def forward(self, ids):
            return self.lm(ids)[0].reshape((-1, c["V"]))

    return Flat()


def torch_model(c: dict):
    import torch
    tnn = torch.nn
    torch.manual_seed(0)
    layer = {"lstm": tnn.LSTM, "gru": tnn.GRU, "rnn": tnn.RNN}[c["mode"]]

    class Classifier(tnn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = layer(c["I"], c["H"], batch_first=True)
            self.fc = tnn.Linear(c["H"], c["out"])

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    class LM(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embed = tnn.Embedding(c["V"], c["I"])
            self.rnn = layer(c["I"], c["H"], batch_first=True)
            self.fc = tnn.Linear(c["H"], c["V"])

        def forward(self, ids):
            return self.fc(self.rnn(self.embed(ids))[0]).reshape(-1, c["V"])

    return Classifier() if c["kind"] == "classifier" else LM()


def nnx_step(c: dict):
    from nnx import nn, optim
    model = nnx_model(c)
    x, y = data(c)
    return training_step(model, optim.SGD(model.parameters(), lr=0.01), nn.CrossEntropyLoss(), x, y)


def torch_step(c: dict):
    import torch
    model = torch_model(c)
    x, y = (torch.from_numpy(a) for a in data(c))
    return training_step(model, torch.optim.SGD(model.parameters(), lr=0.01), torch.nn.CrossEntropyLoss(), x, y)


def block_times(step, n: int, clock) -> list:
    out = []
    for _ in range(n):
        t = clock()
        step()
        out.append(clock() - t)
    return out


def peak_gflops(threads: int) -> float:
    with open(os.path.join(HERE, "machine.json")) as f:
        return json.load(f)["fma_gflops_per_core"] * threads


def measure(name: str, threads: int, blocks: int, steps: int, clock=time.perf_counter) -> dict:
    import nnx
    import torch
    nnx.set_num_threads(threads)
    torch.set_num_threads(threads)
    c = CASES[name]
    a, b = nnx_step(c), torch_step(c)
    for _ in range(3):  # warm-up: workspaces, oneDNN primitive caches
        a()
        b()
    ta, tb, ratios = [], [], []
    for _ in range(blocks):
        xa, xb = block_times(a, steps, clock), block_times(b, steps, clock)
        ta += xa
        tb += xb
        ratios.append(np.median(xb) / np.median(xa))
    ma, mb = float(np.median(ta)), float(np.median(tb))
    q1, q3 = np.percentile(ratios, [25, 75])
    fl, peak = case_flops(c), peak_gflops(threads)
    return {"case": name, "threads": threads, "nnx_ms": ma * 1e3, "torch_ms": mb * 1e3,
            "ratio_of_medians": mb / ma, "paired_ratio_median": float(np.median(ratios)),
            "paired_ratio_iqr": [float(q1), float(q3)],
            "nnx_gflops": fl / ma / 1e9, "torch_gflops": fl / mb / 1e9,
            "nnx_peak_fraction": fl / ma / 1e9 / peak, "torch_peak_fraction": fl / mb / 1e9 / peak}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--blocks", type=int, default=15)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("PyTorch is not installed: pip install torch==2.13.0 (the CPU build)")
    import nnx
    rows = [measure(n, t, args.blocks, args.steps, clock) for n in args.cases for t in args.threads]
    print(f"Recurrent training steps, {args.blocks} interleaved blocks of {args.steps} steps, {args.clock} clock "
          f"(ISA {nnx.cpu_info()['active_isa']}, load average {os.getloadavg()[0]:.2f} at the end)")
    print("| case | threads | nnx ms | torch ms | torch/nnx (medians) | paired, IQR | nnx GFLOP/s (peak) | "
          "torch GFLOP/s (peak) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['threads']} | {r['nnx_ms']:.2f} | {r['torch_ms']:.2f} | "
              f"{r['ratio_of_medians']:.2f}x | {r['paired_ratio_median']:.2f}x "
              f"[{r['paired_ratio_iqr'][0]:.2f}, {r['paired_ratio_iqr'][1]:.2f}] | "
              f"{r['nnx_gflops']:.1f} ({100 * r['nnx_peak_fraction']:.0f}%) | "
              f"{r['torch_gflops']:.1f} ({100 * r['torch_peak_fraction']:.0f}%) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
