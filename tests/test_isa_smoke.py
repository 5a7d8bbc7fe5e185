"""The emulated-CPU matrix's test (scripts/isa_matrix.sh runs this file under qemu-x86_64 -cpu Nehalem,
SandyBridge and Haswell-v4, and natively): every op family forward and backward against nnx.reference, a
training step of a small network through nn/autograd, and every optimizer. It also runs in the normal suite.

Under emulation a kernel compiled for an ISA the emulated CPU lacks dies with SIGILL, failing the run; the
file also asserts which ISA nnx chose when NNX_EXPECT_ISA names one (the matrix sets it per CPU model).
"""
import os

import numpy as np
import pytest

import nnx
from nnx import nn, optim
from nnx import reference as ref

from optest import assert_close, winograd_dw_floor, winograd_floors

RNG = np.random.default_rng(7)


def _r(*shape, dtype=np.float32):
    return RNG.uniform(-1, 1, size=shape).astype(dtype)


def test_expected_isa():
    want = os.environ.get("NNX_EXPECT_ISA")
    if not want:
        pytest.skip("NNX_EXPECT_ISA not set (set by scripts/isa_matrix.sh per emulated CPU)")
    assert nnx.cpu_info()["detected_isa"] == want
    assert nnx.cpu_info()["active_isa"] == want


X4 = _r(2, 3, 9, 9)
W4 = _r(4, 3, 3, 3)
B4 = _r(4)
LOGITS = _r(5, 7)
TARGET = np.array([0, 6, 3, 3, 1])

# name -> (args, kwargs): one small case per op of the ops contract; a new family adds its lines here.
CASES = {
    "gemm": ((_r(5, 6), _r(6, 7)), {}),
    "linear": ((_r(5, 6), _r(3, 6), _r(3)), {}),
    "relu": ((X4,), {}),
    "sigmoid": ((X4,), {}),
    "tanh": ((X4,), {}),
    "leaky_relu": ((X4,), {"negative_slope": 0.1}),
    "elu": ((X4,), {}),
    "softmax": ((LOGITS,), {}),
    "log_softmax": ((LOGITS,), {}),
    "cross_entropy": ((LOGITS, TARGET), {}),
    "mse_loss": ((LOGITS, _r(5, 7)), {}),
    "binary_cross_entropy_with_logits": ((LOGITS, (_r(5, 7) > 0).astype(np.float32)), {}),
    "multiclass_hinge_loss": ((LOGITS, TARGET), {}),
    "conv2d": ((X4, W4, B4), {"padding": 1}),
    "conv2d_stride2": ((X4, W4, B4), {"stride": 2}),
    "conv2d_depthwise": ((X4, _r(6, 1, 3, 3), None), {"groups": 3}),
    # one filter per channel: the lane kernels (simd/depthwise.inc), a partial block of channels, stride 2
    "conv2d_depthwise_lanes": ((X4, _r(3, 1, 3, 3), _r(3)), {"groups": 3, "stride": 2, "padding": 1}),
    "conv2d_wide": ((X4, _r(20, 3, 3, 3), _r(20)), {"padding": 1}),  # wide AVX-512 register blocks
    "conv2d_winograd": ((X4, W4, B4), {"padding": 1, "algorithm": "winograd"}),  # nnx only: not a reference kwarg
    "conv2d_winograd5": ((X4, _r(4, 3, 5, 5), _r(4)), {"padding": 2, "algorithm": "winograd"}),
    # Winograd's 3x3 variants (cpp/conv/winograd.cpp, conv_winograd_tile) and paths (simd/winograd.inc): on 9x9
    # above F(4x4) with vectors spanning tile rows (3 tiles a row); 18 columns, F(4x4) along a row of 5 tiles;
    # 4 columns, F(2x2) spanning rows; 130 filters, F(2x2) along a row of 9 tiles.
    "conv2d_winograd4": ((_r(2, 3, 7, 18), W4, B4), {"padding": 1, "algorithm": "winograd"}),
    "conv2d_winograd2": ((_r(2, 3, 5, 4), W4, B4), {"padding": 1, "algorithm": "winograd"}),
    "conv2d_winograd130": ((_r(1, 3, 5, 18), _r(130, 3, 3, 3), _r(130)), {"padding": 1, "algorithm": "winograd"}),
    # 5x5 on F(2x2, 5x5): 130 filters, a row of 9 tiles (up to 128 channels 5x5 takes F(4x4, 5x5)).
    "conv2d_winograd5_130": ((_r(1, 3, 5, 18), _r(130, 3, 5, 5), _r(130)), {"padding": 2, "algorithm": "winograd"}),
    # Rows of 8 tiles (F(4x4) on 32 columns) and of 4 (F(4x4, 5x5) on 14), 3 and 4 tile rows an image: the
    # full-width table's transforms take two rows a vector and the odd one alone (NNX_CONV_WINO_PAIR_ROWS).
    "conv2d_winograd_rows8": ((_r(2, 3, 9, 32), W4, B4), {"padding": 1, "algorithm": "winograd"}),
    "conv2d_winograd5_rows7": ((_r(2, 3, 14, 14), _r(4, 3, 5, 5), _r(4)), {"padding": 2, "algorithm": "winograd"}),
    # The implicit GEMM's two register tiles (conv_ukernels.h, igemm_for_channels): 12 filters take the narrow
    # channel block; 28 the wide one (one block, partly empty); 40 the wide one where it is faster per lane (the
    # full-width table) and three narrow blocks where not (Zen 4's, whose wide block is 32 floats).
    "conv2d_implicit": ((X4, _r(12, 3, 3, 3), _r(12)), {"padding": 1, "algorithm": "implicit"}),
    "conv2d_implicit28": ((X4, _r(28, 3, 3, 3), _r(28)), {"padding": 1, "algorithm": "implicit"}),
    "conv2d_implicit40": ((X4, _r(40, 3, 3, 3), _r(40)), {"stride": 2, "padding": 1, "algorithm": "implicit"}),
    "max_pool2d": ((X4,), {"kernel_size": 2}),
    "max_pool2d_3s2": ((X4,), {"kernel_size": 3, "stride": 2, "padding": 1}),
    "avg_pool2d": ((X4,), {"kernel_size": 2}),
    # Even H: the 2x2 average runs all planes' output rows in one call; the 3x3 stride-2 maximum on rows of more
    # than 7 outputs (one output row a vector; up to 7, as on X4, two a vector).
    "avg_pool2d_rows": ((_r(2, 3, 8, 9),), {"kernel_size": 2}),
    "max_pool2d_rows": ((_r(1, 2, 9, 40),), {"kernel_size": 3, "stride": 2, "padding": 1}),
    "lp_pool2d": ((np.abs(X4) + 0.1, 2.0, 3), {}),
    "global_avg_pool2d": ((X4,), {}),
    "batch_norm": ((X4, _r(3), _r(3)), {"training": True}),
    "batch_norm_eval": ((X4, _r(3), _r(3), _r(3), np.abs(_r(3)) + 0.5), {"training": False}),
    "layer_norm": ((X4, (9, 9), _r(9, 9), _r(9, 9)), {}),
    "dropout": ((X4,), {"p": 0.3, "seed": 5}),
    "maxout": ((_r(5, 12),), {"pieces": 3}),
    "maxout_channels": ((X4,), {"pieces": 3, "axis": 1}),
    "embedding": ((np.array([[1, 0, 4], [4, 2, 2]]), _r(5, 3)), {}),
}


def _op_name(case):
    for suffix in ("_stride2", "_depthwise_lanes", "_depthwise", "_wide", "_implicit28", "_implicit40", "_implicit",
                   "_winograd_rows8", "_winograd5_rows7", "_winograd5_130", "_winograd5", "_winograd4", "_winograd2",
                   "_winograd130", "_winograd", "_3s2", "_eval", "_channels", "_rows"):
        if case.endswith(suffix):
            return case[: -len(suffix)]
    return case


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_forward_backward_against_reference(case, dtype):
    name = _op_name(case)
    args, kwargs = CASES[case]
    args = tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args)
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "algorithm"}
    got, want = getattr(nnx.ops, name)(*args, **kwargs), getattr(ref, name)(*args, **ref_kwargs)
    dy = np.ones_like(want) if np.ndim(want) == 0 else _r(*np.shape(want), dtype=dtype)
    dy = np.asarray(dy, dtype=dtype)
    floors = (0.0, 0.0, 0.0)
    if name == "conv2d":  # Winograd rounds with the sizes of the terms, not of the result
        algo = kwargs.get("algorithm")
        floors = (*winograd_floors(algo, dy, args[0], args[1], ref_kwargs),
                  winograd_dw_floor(algo, dy, args[0], args[1], ref_kwargs))
    assert_close(got, want, dtype=dtype, k=64, name=f"{case} forward", floor=floors[0])
    g_got = getattr(nnx.ops, name + "_backward")(dy, *args, **kwargs)
    g_want = getattr(ref, name + "_backward")(dy, *args, **ref_kwargs)
    g_got = g_got if isinstance(g_got, tuple) else (g_got,)
    g_want = g_want if isinstance(g_want, tuple) else (g_want,)
    for i, (g, w) in enumerate(zip(g_got, g_want)):
        if w is None:
            assert g is None
        else:
            assert_close(g, w, dtype=dtype, k=256, name=f"{case} backward, gradient {i}",
                         floor=floors[i + 1] if i < 2 else 0.0)


@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_recurrent_forward_backward_against_reference(cell, gates, dtype):
    T, N, I, H = 5, 3, 4, 6
    x, h0, c0 = _r(T, N, I, dtype=dtype), _r(N, H, dtype=dtype), _r(N, H, dtype=dtype)
    w = (_r(gates * H, I, dtype=dtype), _r(gates * H, H, dtype=dtype), _r(gates * H, dtype=dtype),
         _r(gates * H, dtype=dtype))
    states = (h0, c0) if cell == "lstm" else (h0,)
    got, want = getattr(nnx.ops, cell)(x, *states, *w), getattr(ref, cell)(x, *states, *w)
    for i, (g, v) in enumerate(zip(got, want)):
        assert_close(g, v, dtype=dtype, k=64, name=f"{cell} forward, output {i}")
    upstream = tuple(_r(*np.shape(v), dtype=dtype) for v in want)  # dy, dh_n (, dc_n)
    g_got = getattr(nnx.ops, cell + "_backward")(*upstream, x, *states, *w)
    g_want = getattr(ref, cell + "_backward")(*upstream, x, *states, *w)
    for i, (g, v) in enumerate(zip(g_got, g_want)):
        assert_close(g, v, dtype=dtype, k=256, name=f"{cell} backward, gradient {i}")


@pytest.mark.parametrize("make_opt", [
    lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
    lambda p: optim.Adam(p, lr=0.01),
    lambda p: optim.RMSprop(p, lr=0.01),
    lambda p: optim.Adagrad(p, lr=0.05),
    lambda p: optim.Adadelta(p, lr=1.0),
], ids=["sgd", "adam", "rmsprop", "adagrad", "adadelta"])
def test_training_step_lowers_loss(make_opt):
    nnx.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = make_opt(model.parameters())
    x = _r(12, 1, 8, 8)
    y = np.arange(12) % 3
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0], losses
