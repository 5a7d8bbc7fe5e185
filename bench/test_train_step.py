"""One training step (forward, cross-entropy loss, backward, SGD momentum update) of whole networks:
nnx against PyTorch (same architecture, same thread count) and nnx running on its NumPy reference.

    python -m pytest bench/test_train_step.py --threads 2 --benchmark-only
    python bench/report.py bench/test_train_step.py --threads 1 2

Groups:
  "train step lenet5 b64": LeNet-5 of DESIGN.md on a batch of 64 28x28 images. images/s = batch_size
      (extra_info) / median time. flops is the usual 3 x forward estimate (backward ~ 2 x forward).
  "train step mlp b1": the 784-256-128-10 MLP on a single image: almost no arithmetic, so this measures
      the Python/framework overhead per step (target: within 2x of PyTorch).
"""
from __future__ import annotations

import numpy as np
import pytest

import nnx
from conftest import rand, record
from train_step_ab import torch_lenet5, training_step

nn = pytest.importorskip("nnx.nn", reason="nnx.nn not merged yet")
optim = pytest.importorskip("nnx.optim", reason="nnx.optim not merged yet")

# Multiply-accumulates of one LeNet-5 forward pass on a 1x28x28 image.
LENET_MACS = (6 * 28 * 28 * 25          # conv1 5x5, 1 -> 6 channels, padding 2
              + 16 * 10 * 10 * 6 * 25   # conv2 5x5, 6 -> 16 channels
              + 400 * 120 + 120 * 84 + 84 * 10)
MLP_MACS = 784 * 256 + 256 * 128 + 128 * 10
CASES = {
    "lenet5": dict(batch=64, shape=(1, 28, 28), macs=LENET_MACS, ops=("conv2d", "max_pool2d", "relu")),
    "mlp": dict(batch=1, shape=(784,), macs=MLP_MACS, ops=("relu",)),
}


def _data(case):
    c = CASES[case]
    x = rand((c["batch"],) + c["shape"], np.float32, seed=3)
    y = np.random.default_rng(4).integers(0, 10, c["batch"]).astype(np.int64)
    return x, y


def _record(benchmark, case, impl):
    c = CASES[case]
    record(benchmark, f"train step {case} b{c['batch']}", impl, flops=3 * 2 * c["macs"] * c["batch"])
    benchmark.extra_info["batch_size"] = c["batch"]


def _nnx_model(case):
    nnx.manual_seed(0)
    return nnx.models.lenet5() if case == "lenet5" else nnx.models.mlp(hidden=(256, 128))


def _nnx_step(case):
    missing = [op for op in CASES[case]["ops"] + ("cross_entropy",) if not hasattr(nnx.ops, op)]
    if missing:
        pytest.skip(f"nnx.ops lacks {', '.join(missing)}")
    model = _nnx_model(case)
    x, y = _data(case)
    return training_step(model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9), nn.CrossEntropyLoss(), x, y)


def _run(benchmark, step, case):
    step()  # warm-up: workspaces, momentum buffers
    if case == "lenet5":
        benchmark.pedantic(step, rounds=20, iterations=1, warmup_rounds=2)
    else:
        benchmark(step)


@pytest.mark.parametrize("case", list(CASES))
def test_train_step_nnx(benchmark, case):
    step = _nnx_step(case)
    _record(benchmark, case, "nnx")
    _run(benchmark, step, case)


@pytest.mark.parametrize("case", list(CASES))
def test_train_step_reference(benchmark, case):
    step = _nnx_step(case)
    _record(benchmark, case, "reference")
    with nnx.functional.use_backend(nnx.reference):
        step()
        benchmark.pedantic(step, rounds=5 if case == "lenet5" else 50, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("case", list(CASES))
def test_train_step_torch(benchmark, torch_or_skip, case):
    torch = torch_or_skip
    tnn = torch.nn
    torch.manual_seed(0)
    if case == "lenet5":
        model = torch_lenet5(tnn)
    else:
        model = tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 256), tnn.ReLU(), tnn.Linear(256, 128), tnn.ReLU(),
                               tnn.Linear(128, 10))
    x, y = (torch.from_numpy(a) for a in _data(case))
    step = training_step(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), tnn.CrossEntropyLoss(),
                         x, y)
    _record(benchmark, case, "torch")
    _run(benchmark, step, case)
