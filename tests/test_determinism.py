"""Determinism matrix: every kernel family, forward and backward, gives the same bits run to run and for
1, 2, 3 and 16 threads (16 is more than this machine's cores on purpose: oversubscription must not change
a result), on the detected ISA and on the portable one (the `isa` fixture). Then seeded training runs
(LeNet-5, an MLP with dropout) are bitwise reproducible run to run and between thread counts.

The shapes are chosen so that the kernels do split their work at every thread count tried; the figures in
the comments come from the thresholds in cpp/*/ (threads_for(work, grain, n) in cpp/common/threads.h
gives min(n, work / grain) threads):
  gemm          flops / 2**20          act       elements / 2**15 (softmax: elements / 2**13)
  loss          ceil(elements / 4096) chunks / 8                      optim  elements / 2**15
  pool          planes * window work / 2**15                           conv   units: images, tiles,
  filters or image chunks (16 per batch at most) over threads, or the GEMM's threads when units are few.
"""
import numpy as np
import pytest

import nnx
from nnx import nn, ops, optim

from optest import random

THREAD_RUNS = (1, 2, 3, 16, 16, 1)  # 1 and 16 twice: run to run at the extremes


def assert_same_bits_for_any_thread_count(compute, label):
    """compute() returns a tuple of arrays (None entries are skipped); every run must match the first
    one byte for byte (so -0.0 vs 0.0 or a different NaN payload would count as a difference)."""
    before = nnx.get_num_threads()
    runs = []
    try:
        for t in THREAD_RUNS:
            nnx.set_num_threads(t)
            runs.append([np.asarray(a) for a in compute() if a is not None])
    finally:
        nnx.set_num_threads(before)
    first = runs[0]
    assert first, f"{label}: nothing to compare"
    for i, a in enumerate(first):
        # Bits of NaNs or infinities would match trivially; the inputs are chosen to give finite results.
        assert a.size and np.isfinite(a).all(), f"{label}: output {i} is empty or not finite"
    for t, outs in zip(THREAD_RUNS[1:], runs[1:]):
        assert len(outs) == len(first)
        for i, (a, b) in enumerate(zip(first, outs)):
            assert a.dtype == b.dtype and a.shape == b.shape, f"{label}: output {i} changed shape or dtype"
            assert a.tobytes() == b.tobytes(), (
                f"{label}: output {i} with {t} threads differs from 1 thread in "
                f"{int((a != b).sum())} of {a.size} elements")


# --- gemm / linear ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("m,n,k,ta,tb", [(301, 257, 300, False, True),   # 22 Mflop: 16 threads
                                         (64, 1000, 130, True, False),
                                         (30, 6, 6000, False, True),     # long K: several KC blocks
                                         (1000, 40, 70, False, False), (7, 3000, 100, False, True),
                                         (50, 200, 300, False, True)])
def test_gemm(isa, dtype, rng, m, n, k, ta, tb):
    a = random(rng, (k, m) if ta else (m, k), dtype)
    b = random(rng, (n, k) if tb else (k, n), dtype)
    c = random(rng, (m, n), dtype)
    dy = random(rng, (m, n), dtype)
    kw = dict(trans_a=ta, trans_b=tb, alpha=0.75, beta=0.25)
    assert_same_bits_for_any_thread_count(
        lambda: (ops.gemm(a, b, c, **kw),) + ops.gemm_backward(dy, a, b, c, **kw), f"gemm {m}x{n}x{k}")


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu", "sigmoid", "tanh"])
def test_linear(isa, rng, activation):
    x, w, b = random(rng, (512, 300), np.float32), random(rng, (200, 300), np.float32), random(rng, 200, np.float32)
    dy = random(rng, (512, 200), np.float32)

    def run():
        y = ops.linear(x, w, b, activation=activation)
        return (y,) + ops.linear_backward(dy, x, w, b, activation=activation, y=y)
    assert_same_bits_for_any_thread_count(run, f"linear {activation}")


# --- activations, softmax -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kw", [("relu", {}), ("sigmoid", {}), ("tanh", {}),
                                     ("leaky_relu", dict(negative_slope=0.1)), ("elu", dict(alpha=0.7)),
                                     ("softmax", dict(axis=-1)), ("softmax", dict(axis=0)),
                                     ("log_softmax", dict(axis=-1)), ("log_softmax", dict(axis=0))])
def test_activation(isa, rng, name, kw):
    x = random(rng, (600, 1000), np.float32, -5, 5)  # 600k elements: 16 threads element-wise
    dy = random(rng, x.shape, np.float32)
    f, b = getattr(ops, name), getattr(ops, name + "_backward")
    if name.endswith("softmax"):  # also the backward from the forward output, as nnx.functional runs it
        run = lambda: (f(x, **kw), b(dy, x, **kw), b(dy, None, y=f(x, **kw), **kw))  # noqa: E731
    else:
        run = lambda: (f(x, **kw), b(dy, x, **kw))  # noqa: E731
    assert_same_bits_for_any_thread_count(run, f"{name} {kw}")


# --- losses -------------------------------------------------------------------------------------------------

def test_losses(isa, rng):
    z = random(rng, (60000, 10), np.float32, -4, 4)  # 147 chunks of 4096: 16 threads
    t = rng.integers(0, 10, 60000)
    p, q = random(rng, (600001,), np.float32), random(rng, (600001,), np.float32, 0, 1)
    assert_same_bits_for_any_thread_count(
        lambda: (ops.cross_entropy(z, t), ops.cross_entropy_backward(1.0, z, t),
                 ops.cross_entropy(z, t, reduction="sum"),
                 ops.multiclass_hinge_loss(z, t), ops.multiclass_hinge_loss_backward(1.0, z, t),
                 ops.mse_loss(p, q), ops.mse_loss_backward(1.0, p, q),
                 ops.binary_cross_entropy_with_logits(p, q),
                 ops.binary_cross_entropy_with_logits_backward(0.5, p, q)), "losses")


# --- conv2d: each algorithm, forward and dx/dw/db -----------------------------------------------------------

CONV_CASES = {
    # name: (x shape, w shape, conv kwargs, algorithm); the algorithm is passed explicitly as well, so
    # the case runs it even where "auto" would choose another.
    "direct_lenet1": ((50, 1, 28, 28), (6, 1, 5, 5), dict(padding=2), "direct"),
    "direct_lenet2": ((7, 6, 14, 14), (16, 6, 5, 5), {}, "direct"),
    "implicit_lenet2": ((50, 6, 14, 14), (16, 6, 5, 5), {}, "implicit"),
    "implicit_padded_groups": ((9, 8, 12, 12), (32, 4, 3, 3), dict(padding=1, groups=2), "implicit"),
    "implicit_strided": ((9, 3, 17, 17), (20, 3, 3, 3), dict(stride=2, padding=1), "implicit"),
    # stride 1, 32 channels on 6x6 maps: dx runs as the implicit GEMM of the transposed convolution.
    "implicit_dx_small_maps": ((9, 32, 6, 6), (32, 32, 3, 3), dict(padding=1), "implicit"),
    "depthwise": ((20, 32, 16, 16), (32, 1, 3, 3), dict(padding=1, groups=32), "depthwise"),
    "depthwise_mult2_s2": ((7, 8, 17, 15), (16, 1, 3, 3), dict(stride=2, padding=1, groups=8), "depthwise"),
    # one filter per channel (channels in the lanes): 4 blocks of 8 floats and a partial one over the threads
    "depthwise_lanes_s2": ((9, 35, 14, 13), (35, 1, 3, 3), dict(stride=2, padding=1, groups=35), "depthwise"),
    "gemm1x1": ((20, 64, 9, 9), (48, 64, 1, 1), {}, "gemm1x1"),
    # dw has 64*64*9 = 36864 elements: the sum over image chunks is split over threads as well.
    "im2col": ((18, 64, 10, 10), (64, 64, 3, 3), dict(padding=1), "im2col"),
    "im2col_strided": ((7, 8, 11, 11), (16, 8, 3, 3), dict(stride=2, padding=1), "im2col"),
    "im2col_strided_groups": ((7, 8, 15, 13), (16, 4, 3, 3), dict(stride=2, padding=1, groups=2), "im2col"),
    # Winograd: bands of tile rows spread over the threads, 17 tiles of 4x4 a row (blocks straddle tile
    # slivers); 64 channels on 8x8 (F(4x4), vectors spanning tile rows); 256 channels, F(2x2, 3x3).
    "winograd": ((6, 48, 20, 66), (48, 48, 3, 3), dict(padding=1), "winograd"),
    "winograd_8x8": ((20, 64, 8, 8), (64, 64, 3, 3), dict(padding=1), "winograd"),
    "winograd_2x2_tiles": ((4, 256, 9, 9), (256, 256, 3, 3), dict(padding=1), "winograd"),
    "winograd_5x5": ((7, 32, 14, 14), (64, 32, 5, 5), dict(padding=2), "winograd"),  # F(4x4, 5x5)
    "winograd_5x5_wide": ((3, 136, 9, 9), (136, 136, 5, 5), dict(padding=2), "winograd"),  # F(2x2, 5x5)
    "im2col_big_image": ((3, 4, 61, 63), (8, 4, 3, 3), dict(padding=1), "im2col"),  # several tiles per image
    # Fewer images than threads: the implicit forward splits each image's channel blocks between threads (3
    # blocks of up to 32 filters here, the last part-filled; strided: the tap runs of the padding rows).
    "implicit_one_image": ((1, 24, 13, 11), (80, 24, 3, 3), dict(padding=1), "implicit"),
    "implicit_two_images_strided": ((2, 16, 15, 15), (72, 16, 3, 3), dict(stride=2, padding=1), "implicit"),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv2d(isa, rng, case):
    xs, ws, kw, algo = CONV_CASES[case]
    x, w, b = random(rng, xs, np.float32), random(rng, ws, np.float32), random(rng, ws[:1], np.float32)

    def run():
        out = []
        for act in (None, "relu"):
            y = ops.conv2d(x, w, b, activation=act, algorithm=algo, **kw)
            dy = np.random.default_rng(7).standard_normal(y.shape).astype(np.float32)
            out += [y, *ops.conv2d_backward(dy, x, w, b, activation=act, y=y, algorithm=algo, **kw)]
        return out
    assert_same_bits_for_any_thread_count(run, f"conv2d {case}")


@pytest.mark.parametrize("algo", ["direct", "im2col", "implicit"])
def test_conv2d_forced_algorithm_f64(isa, rng, algo):
    x, w, b = random(rng, (19, 6, 14, 14), np.float64), random(rng, (16, 6, 5, 5), np.float64), None

    def run():
        y = ops.conv2d(x, w, b, algorithm=algo)
        return (y,) + ops.conv2d_backward(np.cos(y), x, w, b, algorithm=algo)
    assert_same_bits_for_any_thread_count(run, f"conv2d f64 {algo}")


# --- pooling ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,args", [("max_pool2d", (3, 2, 1)), ("max_pool2d", (2,)), ("avg_pool2d", (3, 1, 1)),
                                       ("avg_pool2d", (2,)), ("lp_pool2d", (2, 3, 1)), ("global_avg_pool2d", ())])
def test_pool(isa, rng, name, args):
    x = random(rng, (8, 32, 32, 32), np.float32)  # 256 planes: 16 threads for a 3x3 window
    x[0, 0, :4, :4] = 0.5  # ties in max pooling
    if name == "lp_pool2d":
        x = np.abs(x) + 0.1
    f, b = getattr(ops, name), getattr(ops, name + "_backward")

    def run():
        y = f(x, *args)
        return y, b(np.cos(np.arange(y.size)).reshape(y.shape).astype(x.dtype), x, *args)
    assert_same_bits_for_any_thread_count(run, f"{name}{args}")


# --- optimizers ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)),
                                    (optim.Adam, dict(lr=1e-2)), (optim.AdamW, dict(lr=1e-2, amsgrad=True)),
                                    (optim.RMSprop, dict(centered=True, momentum=0.5))])
def test_optimizer_step(isa, cls, kw):
    n = 600_003  # 18 blocks of 2**15: 16 threads, and an odd tail
    r = np.random.default_rng(4)
    p0 = r.standard_normal(n).astype(np.float32)
    grads = [r.standard_normal(n).astype(np.float32) for _ in range(3)]

    offsets = iter(range(len(THREAD_RUNS)))

    def run():
        # Each run also moves the parameter by a few floats from its allocation's alignment: the vectorised
        # loops' tails fall elsewhere, which must not change a bit either.
        off = next(offsets) % 4
        data = np.empty(n + 4, np.float32)[off:off + n]
        data[...] = p0
        p = nn.Parameter(data)
        assert p.data.ctypes.data == data.ctypes.data
        opt = cls([p], **kw)
        for g in grads:
            p.grad = g.copy()
            opt.step()
        return (p.data,) + tuple(v for v in opt.state_dict()["state"][0].values() if isinstance(v, np.ndarray))
    assert_same_bits_for_any_thread_count(run, cls.__name__)


# --- seeded training ----------------------------------------------------------------------------------------

def _train(model_fn, steps, batch_size=64, seed=3):
    """A manual training loop on the shipped sample; returns every parameter and the losses."""
    X, y = nnx.data.fashion_mnist_sample("train")
    X, y = X[:steps * batch_size], y[:steps * batch_size]
    nnx.manual_seed(seed)
    model = model_fn()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for xb, yb in nnx.data.DataLoader(X, y, batch_size=batch_size, shuffle=True,
                                      transform=nnx.data.to_float_images):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.state_dict(), np.array(losses)


@pytest.mark.parametrize("model_fn", [nnx.models.lenet5, lambda: nnx.models.mlp((128, 64), dropout=0.3)],
                         ids=["lenet5", "mlp_dropout"])
def test_seeded_training_is_reproducible(model_fn):
    before = nnx.get_num_threads()
    runs = []
    try:
        for t in (1, 1, 2):  # run to run, then another thread count
            nnx.set_num_threads(t)
            runs.append(_train(model_fn, steps=30))
    finally:
        nnx.set_num_threads(before)
    (params, losses), others = runs[0], runs[1:]
    assert len(losses) == 30 and np.isfinite(losses).all() and losses[-5:].mean() < losses[:5].mean()
    for t, (p, l) in zip((1, 2), others):
        assert np.array_equal(l, losses), f"losses differ with {t} thread(s)"
        assert p.keys() == params.keys()
        for k in params:
            assert np.array_equal(p[k], params[k]), f"parameter {k} differs with {t} thread(s)"
