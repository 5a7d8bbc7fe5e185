"""Data-parallel scaling on paper: an alpha-beta model of ring allreduce fed with measured compute times.

    python bench/ddp_scaling_model.py [--repeats 7] [--json out.json]

1. Counts the gradient each model sends per step (its parameters, float32): LeNet-5 and the convnet of
   nnx.models, and ResNet-20 (He et al. 2016, CIFAR-10: a 3x3 conv to 16 channels, 3 stages of 3 basic
   blocks of two 3x3 convs with 16/32/64 channels, BatchNorm after every conv, parameter-free shortcuts
   (option A: stride-2 subsampling and zero channels), global average pooling, fc 64-10), built here.
2. Measures one rank's compute per step (forward, backward, SGD; 1 thread) at per-rank batch 32,
   interleaved across models, median over `repeats`, and takes t(b) = b * t_img with t_img = t(32) / 32.
   Proportional time is the conservative choice: a step's fixed costs (the SGD update, Python) make a
   smaller batch take longer than that, which only helps efficiency.
3. Models the allreduce of S bytes over p ranks in B bytes/s with per-message latency alpha, for a
   gradient split into k buckets: T(p) = 2(p-1)/p * S/B + k * 2(p-1) * alpha, and the efficiency of p
   ranks against one, per-rank batch b fixed, when communication is not hidden at all:
   E = t(b) / (t(b) + T(p)); and the smallest per-rank batch with E >= 0.9: b t_img >= 9 T(p).
   With overlap, backward (about 2/3 of t(b)) can hide up to that much of T(p): E_overlap =
   t(b) / (t(b) + max(0, T(p) - 2/3 t(b))).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import numpy as np

NETWORKS = {"10 Gb/s Ethernet (alpha 30 us)": (10e9 / 8, 30e-6), "100 Gb/s InfiniBand (alpha 3 us)": (100e9 / 8, 3e-6)}
RANKS = (8, 64, 512)
BUCKET_CAP_MB = 4.0


def resnet20(num_classes: int = 10):
    import nnx
    from nnx import nn

    class Shortcut(nn.Module):
        """Option A: x[:, :, ::2, ::2] with zero channels appended (no parameters)."""

        def __init__(self, extra: int):
            super().__init__()
            self.extra = extra

        def forward(self, x):
            x = x[:, :, ::2, ::2]
            zeros = nnx.Tensor(np.zeros((x.shape[0], self.extra) + x.shape[2:], dtype=x.dtype))
            return nnx.cat([x, zeros], axis=1)

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.shortcut = Shortcut(cout - cin) if stride != 1 or cin != cout else None

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))

    layers = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(BasicBlock(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [nn.GlobalAvgPool2d(), nn.Flatten(), nn.Linear(64, num_classes)]
    return nn.Sequential(*layers)


def resnet20_parameter_count() -> int:
    """ResNet-20's parameters counted from the architecture alone (independent of the code above)."""
    conv = lambda cin, cout: 9 * cin * cout  # noqa: E731  (3x3, no bias: BatchNorm follows)
    bn = lambda c: 2 * c  # noqa: E731  (weight and bias)
    total = conv(3, 16) + bn(16)
    cin = 16
    for cout in (16, 32, 64):
        for _ in range(3):
            total += conv(cin, cout) + bn(cout) + conv(cout, cout) + bn(cout)
            cin = cout
    return total + 64 * 10 + 10


MODELS = {"lenet5": (1, 28), "convnet": (1, 28), "resnet20": (3, 32)}


def _build(name):
    import nnx
    return resnet20() if name == "resnet20" else nnx.models.build(name)


def _step_time(name: str, batch: int, steps: int = 5) -> float:
    import nnx
    from nnx import nn, optim
    nnx.manual_seed(0)
    model = _build(name)
    c, hw = MODELS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, hw, hw)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def n_buckets(sizes_bytes, cap=BUCKET_CAP_MB * 2 ** 20) -> int:
    """Buckets DistributedDataParallel makes for these parameter sizes (reverse order, same rule)."""
    count, current = 0, None
    for s in reversed(sizes_bytes):
        if current is None or (current and current + s > cap):
            count, current = count + 1, 0
        current += s
    return count


def allreduce_time(p: int, nbytes: float, buckets: int, bandwidth: float, alpha: float) -> float:
    return 2 * (p - 1) / p * nbytes / bandwidth + buckets * 2 * (p - 1) * alpha


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import nnx
    nnx.set_num_threads(1)
    info = {}
    for name in MODELS:
        model = _build(name)
        sizes = [p.data.nbytes for p in model.parameters()]
        info[name] = {"parameters": sum(p.data.size for p in model.parameters()), "bytes": sum(sizes),
                      "buckets": n_buckets(sizes), "t32": []}
    assert info["resnet20"]["parameters"] == resnet20_parameter_count(), info["resnet20"]["parameters"]
    for r in range(args.repeats):  # interleaved: every model and batch sees the same stretch of load
        for name in MODELS:
            info[name]["t32"].append(_step_time(name, 32))
        print(f"repeat {r + 1}: " + ", ".join(f"{n} {statistics.median(i['t32']) * 1e3:.1f} ms" for n, i in info.items()),
              flush=True)
    rows = []
    for name, i in info.items():
        t32 = statistics.median(i["t32"])
        t_img = t32 / 32
        i.update(t32_s=t32, t_img_s=t_img)
        print(f"\n{name}: {i['parameters']} parameters ({i['bytes'] / 2 ** 20:.2f} MiB, {i['buckets']} bucket(s)); "
              f"1-thread step {t32 * 1e3:.1f} ms at batch 32 = {t_img * 1e3:.3f} ms/image")
        for net, (bw, alpha) in NETWORKS.items():
            for p in RANKS:
                T = allreduce_time(p, i["bytes"], i["buckets"], bw, alpha)
                t = 32 * t_img
                e = t / (t + T)
                e_ov = t / (t + max(0.0, T - 2 / 3 * t))
                # E >= 0.9 needs t(b) >= 9 T without overlap, t(b) >= 9/7 T with it (T <= (2/3 + 1/9) t).
                b90 = max(1, math.ceil(9 * T / t_img))
                b90_ov = max(1, math.ceil(9 / 7 * T / t_img))
                rows.append(dict(model=name, network=net, ranks=p, allreduce_ms=T * 1e3, efficiency_b32=e,
                                 efficiency_b32_overlap=e_ov, batch_for_90=b90, batch_for_90_overlap=b90_ov))
                print(f"  {net:34s} p={p:3d}: allreduce {T * 1e3:8.2f} ms; efficiency at b=32 {e:5.1%} "
                      f"(with overlap {e_ov:5.1%}); per-rank batch for >= 90%: {b90} ({b90_ov} with overlap); global "
                      f"batch {p * b90} ({p * b90_ov})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"models": info, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
