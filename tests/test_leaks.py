"""Resource safety: LeNet-5 training keeps its memory flat after warm-up, and the kernels' scratch memory
(cpp/common/workspace.h) stays bounded when shapes change and is given back when a thread ends.

The training test runs 300 steps here; NNX_LONG=1 runs the 10,000 steps of the reliability issue and
prints the figures (pytest -s shows them):
    NNX_LONG=1 python -m pytest -q -s tests/test_leaks.py
"""
import gc
import os
import sys
import threading
import time

import numpy as np
import pytest

import nnx
from nnx import _C, nn, ops, optim

LONG = os.environ.get("NNX_LONG", "") not in ("", "0")
MiB = 1 << 20


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm (Linux)")


@needs_proc
def test_lenet_training_memory_is_flat():
    steps = 10_000 if LONG else 300
    warmup = 100
    X, y = nnx.data.fashion_mnist_sample("train")
    batches = [(nnx.data.to_float_images(X[i:i + 64]), y[i:i + 64]) for i in range(0, 64 * 20, 64)]
    nnx.manual_seed(0)
    model = nnx.models.lenet5()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(i):
        xb, yb = batches[i % len(batches)]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    for i in range(warmup):
        step(i)
    gc.collect()
    objects_before, rss_before, t0 = len(gc.get_objects()), rss_bytes(), time.perf_counter()
    rss_peak = rss_before
    losses = []
    for i in range(steps):
        losses.append(step(i))
        if i % 100 == 0:
            rss_peak = max(rss_peak, rss_bytes())
    seconds = time.perf_counter() - t0
    gc.collect()
    objects_after, rss_after = len(gc.get_objects()), rss_bytes()
    rss_peak = max(rss_peak, rss_after)
    print(f"\nLeNet-5, batch 64, {steps} steps after {warmup} warm-up: RSS {rss_before / MiB:.1f} MiB after "
          f"warm-up, {rss_after / MiB:.1f} MiB at the end (peak {rss_peak / MiB:.1f}), "
          f"{steps / seconds:.0f} steps/s, Python objects {objects_before} -> {objects_after}", file=sys.stderr)
    assert np.isfinite(losses).all() and np.mean(losses[-20:]) < np.mean(losses[:20])  # it did train
    # Every step allocates the same arrays (a 64-image batch alone is 200 KB, LeNet's activations and
    # gradients about 2 MB), so a leak of anything a step makes would grow RSS by far more than 2 MiB over
    # 300 steps; the allowance covers allocator noise (malloc arenas of the OpenMP threads, pymalloc pools).
    assert rss_after - rss_before < 2 * MiB and rss_peak - rss_before < 2 * MiB
    # No Python object survives a step (an autograd graph kept alive would leave hundreds per step).
    assert objects_after - objects_before < 50


def _conv_and_pool(n, c, hw, k):
    r = np.random.default_rng(n * 1000 + c)
    x = r.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = r.standard_normal((k, c, 3, 3)).astype(np.float32)
    y = ops.conv2d(x, w, padding=1, activation="relu")
    dx, dw, _ = ops.conv2d_backward(np.ones_like(y), x, w, padding=1, activation="relu", y=y)
    p = ops.max_pool2d(y, 2)
    dp = ops.max_pool2d_backward(np.ones_like(p), y, 2)
    return np.concatenate([dw.ravel(), dx.ravel(), dp.ravel()])


def test_workspace_is_bounded_when_shapes_change():
    # Increasing, decreasing and alternating shapes: the scratch buffers grow to the largest request and
    # are reused from then on, so repeating the sequence holds no more than the first pass did.
    shapes = [(2, 8, 12, 16), (16, 32, 20, 32), (1, 3, 28, 8), (8, 64, 10, 64), (4, 16, 30, 16), (3, 1, 9, 6)]
    for s in shapes:
        _conv_and_pool(*s)
    held = _C.workspace_bytes()
    assert held > 0
    for _ in range(5):
        for s in shapes[::-1] + shapes:
            dw = _conv_and_pool(*s)
            assert np.isfinite(dw).all()
        assert _C.workspace_bytes() == held


def test_concurrent_threads_compute_correctly_and_free_their_workspace():
    # Python threads run conv and pool at once (the GIL is released), each with its own workspace; their
    # results are bit for bit the single-threaded ones, and a finished thread's buffers are freed.
    want = _conv_and_pool(8, 16, 20, 16)
    before = _C.workspace_bytes()
    errors = []

    def work():
        try:
            got = _conv_and_pool(8, 16, 20, 16)
            if got.tobytes() != want.tobytes():
                errors.append(AssertionError("a concurrent conv2d_backward gave a different dw"))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    for _ in range(3):
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    # OpenMP's worker threads of a finished Python thread may take a moment to exit and free their buffers.
    deadline = time.monotonic() + 5
    while _C.workspace_bytes() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _C.workspace_bytes() == before
