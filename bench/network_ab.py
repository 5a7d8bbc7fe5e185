"""Whole training steps of four networks, nnx against PyTorch, interleaved in blocks (like train_step_ab.py).

    python bench/network_ab.py --threads 1 2 [--nets bn resnet20 lenet5 convnet] [--blocks 10] [--steps 3]
                               [--json out.json]

One step is forward, cross-entropy, backward and an SGD (momentum 0.9) update, on random data (speed only),
batch 64, float32, the same architecture and thread count in both frameworks:
  bn        conv5x5-32 pad 2 + BN + ReLU + maxpool 2, conv5x5-64 pad 2 + BN + ReLU + maxpool 2,
            fc 3136-256 + BN1d + ReLU, fc 256-10; 28x28x1 input (the Fashion-MNIST table's BatchNorm net)
  resnet20  CIFAR ResNet-20 (He et al. 2016, section 4.2): conv3x3-16 + BN + ReLU, three stages of three
            basic blocks (16, 32, 64 channels; the first block of stages 2 and 3 has stride 2 and a 1x1
            conv + BN projection shortcut), global average pooling, fc 64-10; 32x32x3 input
  lenet5    nnx.models.lenet5 (conv5x5-6 pad 2, pool, conv5x5-16, pool, fc 400-120-84-10); 28x28x1
  convnet   nnx.models.convnet (conv5x5-32, pool, conv5x5-64, pool, fc 3136-1024, dropout 0.4, fc 1024-10)

Block i runs `steps` nnx steps, then `steps` PyTorch steps, so both see the same load on a shared machine (each
block after an untimed step: train_step_ab.SETTLE_CALLS);
reported are the median step time of each, img/s, the ratio of the medians and the median (and IQR) of the
per-block ratios. GFLOP/s counts the multiply-adds of the convolutions and linear layers only (2 flops
each): forward, plus the weight gradient and the data gradient of every layer but the first (whose input
needs no gradient); BatchNorm, pooling, activations and the optimizer are not counted. The fraction of peak
divides by threads x the per-core float32 FMA peak of bench/machine.json (bench/machine_peak.py). Layers run
by Winograd do fewer multiply-adds than this direct count, so the rate is an effective one.
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

from train_step_ab import settle, torch_lenet5, training_step  # noqa: E402

BATCH = 64
NETS = ("bn", "resnet20", "lenet5", "convnet")
INPUT = {"bn": (1, 28, 28), "resnet20": (3, 32, 32), "lenet5": (1, 28, 28), "convnet": (1, 28, 28)}


# ------------------------------------------------------------------------------------------------ models
# Each builder takes a namespace with the frameworks' common spelling (nn, relu) so one definition serves
# both; only the residual block needs a forward of its own.

def _bn_net(nn):
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(7 * 7 * 64, 256), nn.BatchNorm1d(256), nn.ReLU(),
                         nn.Linear(256, 10))


def _convnet(nn):
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Dropout(0.4), nn.Linear(1024, 10))


def cifar_resnet(nn, relu, width: int, stages, blocks: int):
    """He et al.'s CIFAR ResNet: conv3x3-`width` + BN + ReLU, then for each (channels, stride) of `stages`,
    `blocks` basic blocks (the first with that stride and, where the shape changes, a 1x1 conv + BN projection
    shortcut), global average pooling and a linear layer to 10 classes."""
    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            h = relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            return relu(h + (x if self.short is None else self.short(x)))

    layers = [nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for cout, stride in stages:
        for i in range(blocks):
            layers.append(Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    pool = nn.GlobalAvgPool2d() if hasattr(nn, "GlobalAvgPool2d") else nn.AdaptiveAvgPool2d(1)
    layers += [pool, nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


def _resnet20(nn, relu):
    return cifar_resnet(nn, relu, 16, ((16, 1), (32, 2), (64, 2)), 3)


def build(net: str, framework: str):
    if framework == "nnx":
        import nnx
        from nnx import nn
        relu = nnx.functional.relu
        if net == "lenet5":
            return nnx.models.lenet5()
        if net == "convnet":
            return nnx.models.convnet()
    else:
        import torch
        nn, relu = torch.nn, torch.relu
        if net == "lenet5":
            return torch_lenet5(nn)
    if net == "bn":
        return _bn_net(nn)
    if net == "convnet":
        return _convnet(nn)
    return _resnet20(nn, relu)


# ------------------------------------------------------------------------------------------------ flops

def _layer_flops(model_layers, in_shape):
    """Multiply-add flops (x2) of the conv and linear layers of a torch model for one image, forward, found
    by running it once with hooks; returns (total, first layer's)."""
    import torch
    per = []

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.weight
            per.append(2 * out.shape[1] * out.shape[2] * out.shape[3] * k.shape[1] * k.shape[2] * k.shape[3])
        elif isinstance(mod, torch.nn.Linear):
            per.append(2 * mod.in_features * mod.out_features)

    handles = [m.register_forward_hook(hook) for m in model_layers.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model_layers.eval()
        model_layers(torch.zeros((1,) + in_shape))
        model_layers.train()
    for h in handles:
        h.remove()
    return sum(per), per[0]


def train_flops(net: str) -> float:
    """Flops of one training step at BATCH: forward + weight gradient + data gradient (not the first layer's)."""
    import torch
    torch.manual_seed(0)
    total, first = _layer_flops(build(net, "torch"), INPUT[net])
    return BATCH * (3 * total - first)


# ------------------------------------------------------------------------------------------------ steps

def _data(net: str):
    rng = np.random.default_rng(3)
    return (rng.standard_normal((BATCH,) + INPUT[net]).astype(np.float32),
            rng.integers(0, 10, BATCH).astype(np.int64))


def nnx_step(net: str):
    import nnx
    from nnx import nn, optim
    nnx.manual_seed(0)
    model = build(net, "nnx")
    x, y = _data(net)
    return training_step(model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9), nn.CrossEntropyLoss(), x, y)


def torch_step(net: str):
    import torch
    torch.manual_seed(0)
    model = build(net, "torch")
    x, y = (torch.from_numpy(a) for a in _data(net))
    return training_step(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                         torch.nn.CrossEntropyLoss(), x, y)


def block_times(step, n: int) -> tuple:
    """Wall-clock and process CPU-time seconds of each of n steps. On a machine shared with other jobs the
    CPU time of a 1-thread run is the steadier figure (it leaves out the time the process waits for a
    core); with 2 threads it also counts the threads' spin-waiting, so there the wall clock is the figure."""
    settle(step)
    wall, cpu = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


def measure(net: str, threads: int, blocks: int, steps: int, peak_per_core: float) -> dict:
    import nnx
    import torch
    nnx.set_num_threads(threads)
    torch.set_num_threads(threads)
    a, b = nnx_step(net), torch_step(net)
    for _ in range(3):  # warm-up: workspaces, momentum buffers, plan caches, oneDNN primitives
        a()
        b()
    ta, tb, ca, cb, ratios = [], [], [], [], []
    for _ in range(blocks):
        xa, ya = block_times(a, steps)
        xb, yb = block_times(b, steps)
        ta += xa
        tb += xb
        ca += ya
        cb += yb
        ratios.append(np.median(xb) / np.median(xa))
    ma, mb = float(np.median(ta)), float(np.median(tb))
    cpu_a, cpu_b = float(np.median(ca)), float(np.median(cb))
    q1, q3 = np.percentile(ratios, [25, 75])
    flops = train_flops(net)
    peak = peak_per_core * threads
    return {"net": net, "threads": threads, "batch": BATCH, "steps": blocks * steps, "gflop_per_step": flops / 1e9,
            "nnx_ms": ma * 1e3, "torch_ms": mb * 1e3, "nnx_img_s": BATCH / ma, "torch_img_s": BATCH / mb,
            "nnx_gflops": flops / ma / 1e9, "torch_gflops": flops / mb / 1e9,
            "nnx_peak_frac": flops / ma / 1e9 / peak, "torch_peak_frac": flops / mb / 1e9 / peak,
            "ratio_of_medians": mb / ma, "paired_ratio_median": float(np.median(ratios)),
            "paired_ratio_iqr": [float(q1), float(q3)],
            "nnx_cpu_ms": cpu_a * 1e3, "torch_cpu_ms": cpu_b * 1e3, "cpu_ratio": cpu_b / cpu_a}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("PyTorch is not installed: pip install '.[bench]' (torch==2.13.0, the CPU build)")
    import nnx
    with open(os.path.join(HERE, "machine.json")) as f:
        peak_per_core = json.load(f)["fma_gflops_per_core"]
    rows = [measure(n, t, args.blocks, args.steps, peak_per_core) for n in args.nets for t in args.threads]
    print(f"Training steps, batch {BATCH}, float32, {args.blocks} interleaved blocks of {args.steps} steps "
          f"(ISA {nnx.cpu_info()['active_isa']}, peak {peak_per_core:.1f} GFLOP/s per core, "
          f"load average {os.getloadavg()[0]:.2f} at the end)")
    print("| net | threads | GFLOP/step | nnx ms | torch ms | nnx img/s | torch img/s | nnx GFLOP/s (peak) | "
          "torch GFLOP/s (peak) | torch/nnx (medians) | paired, IQR | CPU ms nnx / torch (ratio) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['net']} | {r['threads']} | {r['gflop_per_step']:.3f} | {r['nnx_ms']:.2f} | {r['torch_ms']:.2f} | "
              f"{r['nnx_img_s']:,.0f} | {r['torch_img_s']:,.0f} | {r['nnx_gflops']:.1f} ({r['nnx_peak_frac']:.0%}) | "
              f"{r['torch_gflops']:.1f} ({r['torch_peak_frac']:.0%}) | {r['ratio_of_medians']:.2f}x | "
              f"{r['paired_ratio_median']:.2f}x ({r['paired_ratio_iqr'][0]:.2f}-{r['paired_ratio_iqr'][1]:.2f}) | "
              f"{r['nnx_cpu_ms']:.1f} / {r['torch_cpu_ms']:.1f} ({r['cpu_ratio']:.2f}x) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
