import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nnx
from nnx import ops, reference as ref
from optest import assert_close, check_op, has_isa, random, winograd_dw_floor, winograd_floors

ALGOS = list(nnx.ops.conv.ALGORITHMS)  # every algorithm the extension knows (cpp/conv/conv.h)

# (x shape, w shape, conv kwargs): the benchmark layers in small-batch form plus odd cases.
CASES = {
    "lenet1": ((2, 1, 28, 28), (6, 1, 5, 5), dict(padding=2)),
    "lenet2": ((3, 6, 14, 14), (16, 6, 5, 5), {}),
    "resnet3x3": ((2, 8, 10, 10), (8, 8, 3, 3), dict(padding=1)),
    "strided3x3": ((2, 8, 11, 11), (16, 8, 3, 3), dict(stride=2, padding=1)),
    "strided_phases": ((2, 16, 11, 11), (24, 16, 3, 3), dict(stride=2, padding=1)),  # its dx in phases
    "1x1": ((2, 16, 5, 7), (8, 16, 1, 1), {}),
    "stem7x7": ((2, 3, 19, 19), (8, 3, 7, 7), dict(stride=2, padding=3)),
    "depthwise": ((2, 8, 9, 9), (8, 1, 3, 3), dict(padding=1, groups=8)),
    "depthwise_mult2_s2": ((2, 3, 10, 9), (6, 1, 3, 3), dict(stride=2, padding=1, groups=3)),
    "dilated": ((2, 3, 9, 11), (5, 3, 3, 2), dict(dilation=(2, 3), padding=(2, 1))),
    "groups2": ((2, 6, 7, 7), (4, 3, 3, 3), dict(groups=2, stride=(1, 2))),
    "odd": ((3, 5, 13, 17), (7, 5, 3, 5), dict(stride=(2, 3), padding=(1, 2))),
    "1x1_groups_dil": ((1, 4, 3, 3), (6, 2, 1, 1), dict(groups=2, dilation=3)),
    "whole_input": ((1, 2, 4, 3), (3, 2, 4, 3), {}),
    "one_pixel": ((1, 1, 1, 1), (1, 1, 1, 1), {}),
    "pad_beyond_kernel": ((2, 3, 6, 5), (4, 3, 2, 2), dict(padding=(3, 2))),
    "depthwise_pad_beyond": ((1, 2, 5, 4), (2, 1, 1, 2), dict(padding=2, groups=2)),
    # The depthwise forward on flat planes (simd/depthwise_flat.inc), where it applies: vectors of outputs that
    # span rows (8x8: two rows a 16-float vector), stride 2 through the phases with odd widths, two filters a
    # channel and a 5x5 filter, padding wider than the filter's half (stride 1, planes Q wider than W), unequal
    # strides (rows through phases, columns in place; with one filter per channel strided rows of 15 and more, as
    # narrower ones run the lane kernels on Zen 4's table). At stride 1 the dx is the same flat forward over dz
    # with the flipped filters (conv.cpp's backward_depthwise_flat_dx); depthwise_pad_beyond's padding past the filter
    # keeps the older dx.
    "depthwise_flat_8x8": ((3, 20, 8, 8), (20, 1, 3, 3), dict(padding=1, groups=20)),
    "depthwise_flat_s2_odd": ((2, 6, 15, 13), (12, 1, 5, 5), dict(stride=2, padding=2, groups=6)),
    "depthwise_flat_pad_wide": ((2, 4, 6, 5), (4, 1, 3, 3), dict(padding=2, groups=4)),
    "depthwise_flat_s21": ((2, 5, 9, 15), (5, 1, 3, 3), dict(stride=(2, 1), padding=1, groups=5)),
    # dx at stride 2 by its phases (conv.cpp's backward_depthwise_flat_dx2): odd width and a 5x5 filter
    "depthwise_flat_dx2_odd": ((2, 7, 8, 9), (7, 1, 5, 5), dict(stride=2, padding=2, groups=7)),
    # The backward passes of one filter per channel, and the forward where the flat planes do not apply (sw Q <
    # W; on Zen 4's table also strided rows under 15), run with the channels in the lanes (simd/depthwise.inc):
    # 11 channels = a whole
    # block of 8 floats and a partial one (4 doubles: two and a partial); stride 2 (dx by pixel classes, some
    # with no tap), stride 3 and a 7x7 filter (49 taps: weight-gradient groups of 9 and a short one),
    # dilation, unequal strides and paddings, planes narrower than a vector.
    "depthwise_s2": ((3, 11, 9, 10), (11, 1, 3, 3), dict(stride=2, padding=1, groups=11)),
    "depthwise_7x7_s3": ((2, 13, 15, 16), (13, 1, 7, 7), dict(stride=3, padding=3, groups=13)),
    "depthwise_dilated": ((2, 9, 12, 11), (9, 1, 3, 5), dict(stride=(1, 2), padding=(2, 3), dilation=(2, 1),
                                                             groups=9)),
    "depthwise_narrow": ((5, 17, 3, 2), (17, 1, 3, 3), dict(stride=2, padding=(1, 2), groups=17)),
    # rows of 32 at stride 1: the per-plane forward and dx with the lanes' weight gradient
    "depthwise_wide_rows": ((2, 3, 5, 32), (3, 1, 3, 3), dict(padding=1, groups=3)),
    "big_image": ((1, 4, 41, 43), (5, 4, 3, 3), dict(padding=1)),  # several column tiles per image
    # Wide register blocks of the AVX-512 kernels: 20 filters = a 12-filter block and a partial one
    # (direct), 4-filter weight-gradient blocks; 36 channels = 3 channel blocks, the last partial, and 63
    # pixels / 45 taps = full 12-tiles, 4-tiles and a partial one (implicit).
    "wide_direct": ((2, 2, 9, 13), (20, 2, 3, 3), dict(padding=1)),
    "wide_implicit": ((2, 5, 7, 9), (36, 5, 3, 3), dict(padding=1)),
    # 28 filters: one block of Zen 4's wide implicit tile (4 x 8 floats, 6 pixels or taps; 36 above stay narrow),
    # partly empty, 63 pixels and 45 taps = whole 6-tiles and a partial one.
    "wide_implicit_28": ((2, 5, 7, 9), (28, 5, 3, 3), dict(padding=1)),
}


def _applies(algo, w_shape, kw):
    if algo == "gemm1x1":
        s = kw.get("stride", 1)
        return w_shape[2:] == (1, 1) and s in (1, (1, 1)) and kw.get("padding", 0) in (0, (0, 0))
    if algo == "depthwise":
        return w_shape[1] == 1
    if algo == "winograd":
        return winograd_applies(w_shape, kw)
    return True


def winograd_applies(w_shape, kw):
    """3x3 or 5x5, stride 1, dilation 1, one group (cpp/conv/winograd.h)."""
    return (w_shape[2:] in ((3, 3), (5, 5)) and kw.get("stride", 1) in (1, (1, 1)) and kw.get("dilation", 1) in (1, (1, 1))
            and kw.get("groups", 1) == 1)


def _k(w_shape, dy_shape):
    return max(int(np.prod(w_shape[1:])), dy_shape[0] * dy_shape[2] * dy_shape[3], w_shape[0])


@pytest.mark.parametrize("case,algo", [(c, a) for c in CASES for a in ALGOS if _applies(a, CASES[c][1], CASES[c][2])])
def test_conv2d_matches_reference(isa, dtype, rng, case, algo):
    xs, ws, kw = CASES[case]
    x, w, b = random(rng, xs, dtype), random(rng, ws, dtype), random(rng, ws[:1], dtype)
    y = ops.conv2d(x, w, b, algorithm=algo, **kw)
    dy = random(rng, y.shape, dtype)
    fy, fdx = winograd_floors(algo, dy, x, w, kw)
    assert_close(y, ref.conv2d(x, w, b, **kw), dtype, k=int(np.prod(ws[1:])), name=f"conv2d {algo}", floor=fy)
    got = ops.conv2d_backward(dy, x, w, b, algorithm=algo, **kw)
    want = ref.conv2d_backward(dy, x, w, b, **kw)
    k = _k(ws, y.shape)
    fdw = winograd_dw_floor(algo, dy, x, w, kw)
    for name, g, wnt, fl in zip(("dx", "dw", "db"), got, want, (fdx, fdw, 0.0)):
        assert_close(g, wnt, dtype, k=k, name=f"{name} {algo}", floor=fl)
        assert g.flags.c_contiguous


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("case", ["lenet1", "stem7x7", "depthwise", "1x1"])
def test_fused_activation_forward_backward(isa, dtype, rng, activation, case):
    xs, ws, kw = CASES[case]
    x, w, b = random(rng, xs, dtype), random(rng, ws, dtype), random(rng, ws[:1], dtype)
    kw = dict(kw, activation=activation, negative_slope=0.2)
    y = ops.conv2d(x, w, b, **kw)
    assert_close(y, ref.conv2d(x, w, b, **kw), dtype, k=int(np.prod(ws[1:])))
    dy = random(rng, y.shape, dtype)
    got = ops.conv2d_backward(dy, x, w, b, y=y, **kw)
    want = ref.conv2d_backward(dy, x, w, b, y=y, **kw)
    for name, g, wnt in zip(("dx", "dw", "db"), got, want):
        assert_close(g, wnt, dtype, k=_k(ws, y.shape), name=name)


@pytest.mark.parametrize("needs", [(False, True, True), (True, False, False), (False, False, True),
                                   (False, False, False)])
def test_needs_skips_gradients(rng, needs):
    xs, ws, kw = CASES["lenet1"]
    x, w, b = random(rng, xs, np.float64), random(rng, ws, np.float64), random(rng, ws[:1], np.float64)
    dy = random(rng, (2, 6, 28, 28), np.float64)
    got = ops.conv2d_backward(dy, x, w, b, needs=needs, **kw)
    want = ref.conv2d_backward(dy, x, w, b, **kw)
    for need, g, wnt in zip(needs, got, want):
        if need:
            assert_close(g, wnt, np.float64, k=2 * 28 * 28)
        else:
            assert g is None
    assert ops.conv2d_backward(dy, x, w, None, **kw)[2] is None


def test_noncontiguous_and_readonly_inputs(isa, rng):
    dtype = np.float32
    big = random(rng, (3, 10, 13, 30), dtype)
    x = big[::-1, 1::2, :, ::3]  # negative and non-unit strides: (3, 5, 13, 10)
    w = np.transpose(random(rng, (3, 3, 5, 4), dtype), (3, 2, 0, 1))  # (4, 5, 3, 3), not contiguous
    b = random(rng, (8,), dtype)[::2]
    x.setflags(write=False)
    y = check_op(ops.conv2d, ref.conv2d, (x, w, b), dict(stride=2, padding=1), dtype, k=45)
    dy = np.asfortranarray(random(rng, y.shape, dtype))
    check_op(ops.conv2d_backward, ref.conv2d_backward, (dy, x, w, b), dict(stride=2, padding=1), dtype, k=45)


@pytest.mark.parametrize("case", ["lenet1", "lenet2", "depthwise", "1x1"])
def test_empty_batch(dtype, case):
    xs, ws, kw = CASES[case]
    x = np.zeros((0,) + xs[1:], dtype)
    w, b = np.ones(ws, dtype), np.ones(ws[:1], dtype)
    y = ops.conv2d(x, w, b, **kw)
    assert y.shape == ref.conv2d(x, w, b, **kw).shape and y.shape[0] == 0
    dx, dw, db = ops.conv2d_backward(y, x, w, b, **kw)
    assert dx.shape == x.shape and not dw.any() and not db.any() and dw.shape == w.shape


def test_errors():
    x = np.ones((2, 6, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"w: expected shape \(K, 3, R, S\).*groups=2.*got \(16, 4, 5, 5\)"):
        ops.conv2d(x, np.ones((16, 4, 5, 5), np.float32), groups=2)
    with pytest.raises(ValueError, match="groups: expected a divisor of the 6 input channels"):
        ops.conv2d(x, np.ones((4, 1, 3, 3), np.float32), groups=4)
    with pytest.raises(TypeError, match="x is float32 but w is float64"):
        ops.conv2d(x, np.ones((4, 6, 3, 3)))
    with pytest.raises(TypeError, match="x: expected a float32 or float64 array"):
        ops.conv2d(x.astype(np.int32), np.ones((4, 6, 3, 3), np.float32))
    with pytest.raises(ValueError, match="x: expected a 4-D array"):
        ops.conv2d(x[0], np.ones((4, 6, 3, 3), np.float32))
    with pytest.raises(ValueError, match="larger than the input 8x8"):
        ops.conv2d(x, np.ones((4, 6, 9, 3), np.float32))
    with pytest.raises(ValueError, match="dilation"):
        ops.conv2d(x, np.ones((4, 6, 3, 3), np.float32), dilation=4)
    with pytest.raises(ValueError, match="stride: expected an int >= 1"):
        ops.conv2d(x, np.ones((4, 6, 3, 3), np.float32), stride=0)
    with pytest.raises(ValueError, match="padding: expected an int >= 0"):
        ops.conv2d(x, np.ones((4, 6, 3, 3), np.float32), padding=(1, -1))
    with pytest.raises(ValueError, match="stride: expected an int or a pair"):
        ops.conv2d(x, np.ones((4, 6, 3, 3), np.float32), stride=(1, 2, 3))
    with pytest.raises(ValueError, match=r"b: expected shape \(4,\)"):
        ops.conv2d(x, np.ones((4, 6, 3, 3), np.float32), np.ones(5, np.float32))
    with pytest.raises(ValueError, match="algorithm: 'gemm1x1' needs a 1x1 kernel"):
        ops.conv2d(x, np.ones((4, 6, 3, 3), np.float32), algorithm="gemm1x1")
    with pytest.raises(ValueError, match="algorithm: 'depthwise' needs one input channel per group"):
        ops.conv2d(x, np.ones((4, 6, 3, 3), np.float32), algorithm="depthwise")
    with pytest.raises(ValueError, match="algorithm: expected one of"):
        ops.conv2d(x, np.ones((4, 6, 3, 3), np.float32), algorithm="fft")
    with pytest.raises(ValueError, match="activation: expected one of"):
        ops.conv2d(x, np.ones((4, 6, 3, 3), np.float32), activation="gelu")
    w = np.ones((4, 6, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 4, 6, 6\)"):
        ops.conv2d_backward(np.ones((2, 4, 5, 6), np.float32), x, w)
    with pytest.raises(ValueError, match="y: conv2d_backward with an activation needs the forward output y"):
        ops.conv2d_backward(np.ones((2, 4, 6, 6), np.float32), x, w, activation="relu")
    with pytest.raises(TypeError, match="x is float32 but dy is float64"):
        ops.conv2d_backward(np.ones((2, 4, 6, 6)), x, w)


def test_bindings_check_shapes_themselves():
    """The extension must raise, not crash, when called directly with arrays that do not match the plan."""
    from nnx._backend import _C

    x = np.ones((1, 2, 4, 4), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    plan = _C.conv2d_plan(x.shape, w.shape, (1, 1), (0, 0), (1, 1), 1)
    assert plan.out_shape == (1, 3, 2, 2) and plan.x_shape == x.shape and plan.w_shape == w.shape
    out = np.empty((1, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="larger than the input"):
        _C.conv2d_plan(x.shape, (3, 2, 5, 5), (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=r"out: expected shape \(1, 3, 2, 2\)"):
        _C.conv2d(x, w, None, np.empty((1, 3, 1, 1), np.float32), plan)
    with pytest.raises(ValueError, match=r"w: expected shape \(3, 2, 3, 3\)"):
        _C.conv2d(x, np.ones((3, 2, 5, 5), np.float32), None, out, plan)
    with pytest.raises(ValueError, match=r"x: expected shape \(1, 2, 4, 4\)"):
        _C.conv2d(np.ones((2, 2, 4, 4), np.float32), w, None, out, plan)
    with pytest.raises(ValueError, match=r"b: expected shape \(3,\)"):
        _C.conv2d(x, w, np.ones(2, np.float32), out, plan)
    with pytest.raises(TypeError):
        _C.conv2d(x, np.ones((3, 2, 3, 3)), None, out, plan)
    with pytest.raises(ValueError, match="dx: expected shape"):
        _C.conv2d_backward(np.ones((1, 3, 2, 2), np.float32), x, w, None, np.empty((1, 2, 4, 5), np.float32), None,
                           None, plan)
    with pytest.raises(ValueError, match="dy: expected shape"):
        _C.conv2d_backward(np.ones((1, 3, 2, 3), np.float32), x, w, None, None, None, None, plan)


def test_algorithm_choice():
    assert ops.conv2d_algorithm((64, 1, 28, 28), (6, 1, 5, 5), padding=2) == "direct"
    assert ops.conv2d_algorithm((64, 6, 14, 14), (16, 6, 5, 5)) == "implicit"
    # 25 taps: the stores weigh, unless the implicit GEMM's 32-channel tile runs on full-width 512-bit pipes
    wide = nnx.cpu_info()["wide_vector_fma"] and nnx.cpu_info()["active_isa"] == "avx512"
    assert ops.conv2d_algorithm((64, 1, 28, 28), (32, 1, 5, 5), padding=2) == ("implicit" if wide else "direct")
    assert ops.conv2d_algorithm((64, 3, 32, 32), (16, 3, 3, 3), padding=1) == "direct"  # ResNet's stem, 16 filters
    # Winograd (cpp/conv/conv.cpp): 3x3 with both channel counts >= 64 on any map, >= 32 on maps at least 6
    # wide, >= 16 at least 8 wide; 5x5 below.
    assert ops.conv2d_algorithm((16, 64, 32, 32), (64, 64, 3, 3), padding=1) == "winograd"
    assert ops.conv2d_algorithm((16, 128, 8, 8), (128, 128, 3, 3), padding=1) == "winograd"
    assert ops.conv2d_algorithm((64, 16, 32, 32), (16, 16, 3, 3), padding=1) == "winograd"  # ResNet-20
    assert ops.conv2d_algorithm((64, 32, 14, 14), (64, 32, 5, 5), padding=2) == "winograd"  # BatchNorm net conv2
    assert ops.conv2d_algorithm((64, 16, 8, 8), (16, 16, 3, 3), padding=1) == "winograd"  # 8 wide
    assert ops.conv2d_algorithm((64, 16, 4, 4), (16, 16, 3, 3), padding=1) == "implicit"  # 4 wide, 16 channels
    assert ops.conv2d_algorithm((64, 16, 6, 6), (16, 16, 3, 3), padding=1) == "implicit"  # 6 wide, 16 channels
    assert ops.conv2d_algorithm((64, 32, 6, 6), (32, 32, 3, 3), padding=1) == "winograd"  # 6 wide, 32 channels
    assert ops.conv2d_algorithm((64, 64, 5, 5), (64, 64, 3, 3), padding=1) == "winograd"  # 5 wide, 64 channels
    assert ops.conv2d_algorithm((64, 32, 5, 5), (32, 32, 3, 3), padding=1) == "implicit"  # 5 wide, 32 channels
    assert ops.conv2d_algorithm((16, 512, 4, 4), (512, 512, 3, 3), padding=1) == "winograd"  # 4 wide, 512
    assert ops.conv2d_algorithm((64, 8, 32, 32), (16, 8, 3, 3), padding=1) == "direct"  # 8 channels
    # 5x5 up to 128 channels (F(4x4, 5x5)): see test_winograd_5x5_choice_per_table
    assert ops.conv2d_algorithm((64, 32, 7, 7), (64, 32, 5, 5), padding=2) == "winograd"
    assert ops.conv2d_algorithm((64, 32, 5, 5), (64, 32, 5, 5), padding=2) == "winograd"
    assert ops.conv2d_algorithm((64, 32, 4, 4), (64, 32, 5, 5), padding=2) == "winograd"
    # wider 5x5 layers (F(2x2, 5x5)): >= 5 tiles of 2 a row (4 on the full-width AVX-512 table), else im2col
    # (6400 taps: past the implicit GEMM's 1024 and 4096)
    assert ops.conv2d_algorithm((16, 256, 14, 14), (256, 256, 5, 5), padding=2) == "winograd"
    assert ops.conv2d_algorithm((16, 256, 7, 7), (256, 256, 5, 5), padding=2) == ("winograd" if wide else "im2col")
    assert ops.conv2d_algorithm((16, 256, 5, 5), (256, 256, 5, 5), padding=2) == "im2col"  # 3 tiles a row
    # The implicit GEMM up to 1024 taps on the AVX2 and portable tables, 4096 on the AVX-512 ones (the wide tile of
    # full-width 512-bit pipes; Zen 4's measured bound, cpp/conv/conv_ukernels_avx512.cpp)
    upto4096 = nnx.cpu_info()["active_isa"] == "avx512"
    assert ops.conv2d_algorithm((16, 256, 8, 8), (128, 128, 3, 3), padding=1, groups=2) == (
        "implicit" if upto4096 else "im2col")  # 1152 taps
    assert ops.conv2d_algorithm((16, 256, 16, 16), (256, 256, 3, 3), stride=2, padding=1) == (
        "implicit" if upto4096 else "im2col")  # 2304 taps
    assert ops.conv2d_algorithm((16, 64, 32, 32), (64, 64, 7, 7), padding=3) == (
        "implicit" if upto4096 else "im2col")  # 3136 taps
    # small outputs too, the implicit GEMM's pixel tiles being of nearly equal size (7x7 here)
    assert ops.conv2d_algorithm((16, 256, 14, 14), (512, 256, 3, 3), stride=2, padding=1) == (
        "implicit" if upto4096 else "im2col")
    assert ops.conv2d_algorithm((16, 128, 14, 14), (256, 128, 3, 3), stride=2, padding=1) == (
        "implicit" if upto4096 else "im2col")  # 1152 taps, filters past 1 MiB
    assert ops.conv2d_algorithm((16, 512, 8, 8), (512, 512, 3, 3), stride=2, padding=1) == "im2col"  # 4608 taps
    # but im2col's deep tiles where filters past 1 MiB meet a batch of under 256 output pixels (the filters'
    # packing per call weighs)
    assert ops.conv2d_algorithm((1, 256, 8, 8), (256, 256, 3, 3), padding=1) == "im2col"
    assert ops.conv2d_algorithm((4, 256, 8, 8), (256, 256, 3, 3), padding=1) == "winograd"
    assert ops.conv2d_algorithm((4, 256, 16, 16), (512, 256, 3, 3), stride=2, padding=1) == (
        "implicit" if upto4096 else "im2col")
    assert ops.conv2d_algorithm((2, 256, 16, 16), (512, 256, 3, 3), stride=2, padding=1) == "im2col"
    # Winograd transforms every filter per call: it needs 32 output tiles in the batch (64 past 8 MiB of them,
    # or 2 MiB of F(2x2, 3x3) ones)
    assert ops.conv2d_algorithm((1, 64, 8, 8), (64, 64, 3, 3), padding=1) == "implicit"  # 4 tiles of 4x4
    assert ops.conv2d_algorithm((7, 64, 8, 8), (64, 64, 3, 3), padding=1) == "implicit"  # 28 tiles
    assert ops.conv2d_algorithm((8, 64, 8, 8), (64, 64, 3, 3), padding=1) == "winograd"  # 32 tiles
    assert ops.conv2d_algorithm((1, 64, 16, 16), (64, 64, 3, 3), padding=1) == "implicit"  # 16 tiles
    assert ops.conv2d_algorithm((2, 64, 16, 16), (64, 64, 3, 3), padding=1) == "winograd"
    assert ops.conv2d_algorithm((1, 32, 14, 14), (64, 32, 5, 5), padding=2) == "implicit"  # 16 tiles, 5x5
    assert ops.conv2d_algorithm((2, 32, 14, 14), (64, 32, 5, 5), padding=2) == "winograd"
    assert ops.conv2d_algorithm((8, 512, 4, 4), (512, 512, 3, 3), padding=1) == "im2col"  # 32 of 2x2, 16.8 MB
    assert ops.conv2d_algorithm((16, 512, 4, 4), (512, 512, 3, 3), padding=1) == "winograd"  # 64
    # F(2x2, 3x3) from 2 MiB of transformed filters (128 -> 256 and wider) needs 64 tiles too; F(4x4, 3x3) not
    assert ops.conv2d_algorithm((2, 128, 8, 8), (256, 128, 3, 3), padding=1) == "im2col"  # 32 tiles, 2 MiB
    assert ops.conv2d_algorithm((3, 256, 8, 8), (256, 256, 3, 3), padding=1) == "im2col"  # 48 tiles, 4 MiB
    assert ops.conv2d_algorithm((2, 128, 16, 16), (128, 128, 3, 3), padding=1) == "winograd"  # F(4x4), 2.4 MB
    assert ops.conv2d_algorithm((16, 256, 16, 16), (64, 256, 1, 1)) == "gemm1x1"
    assert ops.conv2d_algorithm((16, 64, 32, 32), (64, 1, 3, 3), padding=1, groups=64) == "depthwise"
    assert ops.conv2d_algorithm((8, 3, 64, 64), (32, 3, 7, 7), stride=2, padding=3) == "implicit"
    assert ops.conv2d_algorithm((16, 64, 32, 32), (128, 64, 3, 3), stride=2, padding=1) == "implicit"
    # A strided 1x1 projection: im2col's subsampling GEMM, or the implicit GEMM's 32-channel tile on full-width
    # 512-bit pipes (its 16-channel one stays im2col)
    assert ops.conv2d_algorithm((16, 16, 32, 32), (32, 16, 1, 1), stride=2) == ("implicit" if wide else "im2col")
    assert ops.conv2d_algorithm((16, 32, 32, 32), (16, 32, 1, 1), stride=2) == "im2col"
    with pytest.raises(ValueError, match="w: expected shape"):
        ops.conv2d_algorithm((1, 4, 8, 8), (2, 3, 3, 3))


@pytest.mark.parametrize("case,act", [("dilated", None), ("groups2", "sigmoid"), ("depthwise_mult2_s2", "tanh"),
                                      ("stem7x7", None)])
def test_reference_gradcheck(rng, case, act):
    xs, ws, kw = CASES[case]
    xs = (1,) + xs[1:3] + (min(xs[3], 7),) if case == "stem7x7" else (1,) + xs[1:]
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws) * 0.3, rng.standard_normal(ws[:1])

    def f(x, w, b):
        return ref.conv2d(x, w, b, activation=act, **kw)

    def bwd(dy, x, w, b):
        return ref.conv2d_backward(dy, x, w, b, activation=act, y=f(x, w, b), **kw)

    nnx.gradcheck(f, (x, w, b), bwd)


def test_cpp_backward_gradcheck_float64(rng):
    """The C++ backward itself (float64) against finite differences, not only against the reference."""
    kw = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    x, w, b = rng.standard_normal((2, 4, 6, 7)), rng.standard_normal((4, 2, 3, 2)), rng.standard_normal(4)
    for algo in ("im2col", "direct", "implicit"):
        nnx.gradcheck(lambda x, w, b: ops.conv2d(x, w, b, algorithm=algo, **kw), (x, w, b),
                      lambda dy, x, w, b: ops.conv2d_backward(dy, x, w, b, algorithm=algo, **kw))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 3), cg=st.integers(1, 4), groups=st.integers(1, 3), kg=st.integers(1, 4),
       h=st.integers(1, 12), wid=st.integers(1, 12), r=st.integers(1, 4), s=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       dh=st.integers(1, 2), dw=st.integers(1, 2), f64=st.booleans(), seed=st.integers(0, 2**31),
       algo=st.sampled_from(ALGOS))
def test_conv2d_random_shapes(n, cg, groups, kg, h, wid, r, s, sh, sw, ph, pw, dh, dw, f64, seed, algo):
    dtype = np.float64 if f64 else np.float32
    kw = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    ws = (kg * groups, cg, r, s)
    if dh * (r - 1) + 1 > h + 2 * ph or dw * (s - 1) + 1 > wid + 2 * pw:
        with pytest.raises(ValueError, match="larger than the input"):
            ops.conv2d(np.zeros((n, cg * groups, h, wid), dtype), np.zeros(ws, dtype), **kw)
        return
    if algo == "gemm1x1" and not (r == s == 1 and sh == sw == 1 and ph == pw == 0):
        algo = "auto"
    if algo == "depthwise" and cg != 1:
        algo = "auto"
    if algo == "winograd" and not winograd_applies(ws, kw):
        algo = "auto"
    g = np.random.default_rng(seed)
    x, w, b = random(g, (n, cg * groups, h, wid), dtype), random(g, ws, dtype), random(g, ws[:1], dtype)
    y = ops.conv2d(x, w, b, algorithm=algo, **kw)
    dy = random(g, y.shape, dtype)
    fy, fdx = winograd_floors(algo, dy, x, w, kw)
    assert_close(y, ref.conv2d(x, w, b, **kw), dtype, k=cg * r * s, floor=fy)
    got = ops.conv2d_backward(dy, x, w, b, algorithm=algo, **kw)
    want = ref.conv2d_backward(dy, x, w, b, **kw)
    for name, a, c, fl in zip(("dx", "dw", "db"), got, want, (fdx, 0.0, 0.0)):
        assert_close(a, c, dtype, k=max(1, _k(ws, y.shape)), name=name, floor=fl)


@pytest.mark.parametrize("kw", [dict(padding=1), dict(padding=(2, 0), dilation=(2, 1), groups=2), dict(padding=0)])
def test_dx_as_transposed_implicit_gemm(rng, kw):
    """Stride-1 dx of the direct/implicit algorithms on small maps runs as the implicit GEMM of the
    transposed convolution (many channels, rows shorter than a vector): against the reference in float64,
    and the C++ backward against finite differences."""
    x, w, b = rng.standard_normal((2, 16, 5, 4)), rng.standard_normal((16, 16 // kw.get("groups", 1), 3, 3)) * 0.3, \
        rng.standard_normal(16)
    y = ops.conv2d(x, w, b, algorithm="implicit", **kw)
    dy = rng.standard_normal(y.shape)
    for algo in ("implicit", "direct"):
        got = ops.conv2d_backward(dy, x, w, b, algorithm=algo, **kw)
        want = ref.conv2d_backward(dy, x, w, b, **kw)
        for g, r in zip(got, want):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)
    nnx.gradcheck(lambda x, w, b: ops.conv2d(x, w, b, algorithm="implicit", **kw), (x[:1], w, b),
                  lambda dy, x, w, b: ops.conv2d_backward(dy, x, w, b, algorithm="implicit", **kw))


@pytest.mark.parametrize("case", ["wide_direct", "wide_implicit", "lenet1", "lenet2", "strided3x3", "odd",
                                  "strided_phases"])
@pytest.mark.parametrize("algo", ["direct", "implicit"])
def test_avx512_kernels_give_the_avx2_bits(dtype, rng, case, algo, forced_dx_path):
    """The AVX-512 conv kernels block differently but sum every output in the AVX2 kernels' order, so
    conv.cpp may pick either table per shape: forward and every gradient are bitwise equal. Two exceptions
    on CPUs with full-width 512-bit FMA, which only agree to rounding: the kvec dx sums filters k and k + 8
    (float; 4 for double) in lanes of their own where the filters fill whole 64-byte vectors
    (simd/kvec_dx.inc), and the direct weight gradient of stride-1 3x3 and 5x5 filters sums 64-byte column
    blocks (simd/direct.inc, dw_rows_block)."""
    if not has_isa("avx512"):
        pytest.skip("this CPU has no AVX-512")
    xs, ws, kw = CASES[case]
    x, w, b = random(rng, xs, dtype), random(rng, ws, dtype), random(rng, ws[:1], dtype)
    dy = None
    out, dx_path = {}, {}
    before = nnx.cpu_info()["active_isa"]
    try:
        # Which dx path the model picks is the table's (conv_ukernels_<isa>.cpp's rates); the bits compared are the
        # kernels', so both tables run the AVX2 table's path (the phases, for strided_phases).
        nnx.set_isa("avx2")
        forced_dx_path("implicit" if case == "strided_phases" else ops.conv2d_dx_path(xs, ws, algorithm=algo, **kw))
        for isa in ("avx2", "avx512"):
            nnx.set_isa(isa)
            y = ops.conv2d(x, w, b, algorithm=algo, activation="relu", **kw)
            dy = random(rng, y.shape, dtype) if dy is None else dy
            out[isa] = (y,) + ops.conv2d_backward(dy, x, w, b, algorithm=algo, activation="relu", y=y, **kw)
            dx_path[isa] = ops.conv2d_dx_path(xs, ws, algorithm=algo, **kw)
    finally:
        nnx.set_isa(before)
    filters = ws[0] // kw.get("groups", 1)
    wide_kvec = (nnx.cpu_info()["wide_vector_fma"] and dx_path["avx512"] == "kvec"
                 and filters % (64 // np.dtype(dtype).itemsize) == 0)
    wide_dw_rows = (nnx.cpu_info()["wide_vector_fma"] and algo == "direct" and ws[2] == ws[3] in (3, 5)
                    and kw.get("stride", 1) == 1 and kw.get("dilation", 1) == 1)
    assert dx_path["avx2"] == dx_path["avx512"]
    for name, a, c in zip(("y", "dx", "dw", "db"), out["avx2"], out["avx512"]):
        if name == "dw" and wide_dw_rows:
            assert_close(c, a, dtype, k=xs[0] * xs[2] * xs[3], name=name)
        elif name == "dx" and wide_kvec:
            assert_close(c, a, dtype, k=max(1, ws[0] * ws[2] * ws[3]), name=name)
        else:
            assert np.array_equal(a, c), f"{name}: AVX-512 differs from AVX2"


DX_PATHS = ("direct", "implicit", "kvec", "winograd")


@pytest.fixture
def forced_dx_path():
    """Sets the dx path with nnx._C.set_conv_dx_path and restores the automatic choice afterwards."""
    from nnx import _C
    yield _C.set_conv_dx_path
    _C.set_conv_dx_path("auto")


@pytest.mark.parametrize("case", ["lenet2", "resnet3x3", "dilated", "groups2", "pad_beyond_kernel", "one_pixel",
                                  "whole_input", "big_image", "wide_direct", "wide_implicit"])
@pytest.mark.parametrize("path", DX_PATHS)
def test_every_stride1_dx_path_matches_reference(isa, dtype, rng, case, path, forced_dx_path):
    """Each way of computing a stride-1 dx (direct's full correlation, the transposed implicit GEMM, kvec's
    sum over the filters of only the taps on dz), forced where it applies, against the reference; strided
    cases run the implicit GEMM in phases where it is forced (groups2, stride (1, 2)) and otherwise fall
    back to the automatic choice."""
    xs, ws, kw = CASES[case]
    x, w, b = random(rng, xs, dtype), random(rng, ws, dtype), random(rng, ws[:1], dtype)
    dy = random(rng, ref.conv2d(x, w, b, **kw).shape, dtype)
    want = ref.conv2d_backward(dy, x, w, b, **kw)
    forced_dx_path(path)
    for algo in ("direct", "implicit"):
        got = ops.conv2d_backward(dy, x, w, b, algorithm=algo, activation=None, **kw)
        for name, a, c in zip(("dx", "dw", "db"), got, want):
            assert_close(a, c, dtype, k=max(1, _k(ws, dy.shape)), name=f"{path} {algo} {name}")


@pytest.mark.parametrize("kw", [dict(), dict(padding=2), dict(padding=(1, 3), dilation=(2, 1)), dict(groups=3)])
def test_kvec_dx_float64_and_gradcheck(rng, kw, forced_dx_path):
    """kvec in float64 to 1e-10 of the reference for filter counts around the vector width (3, 12 and 20
    filters per group: partial vectors, one and a half, two and a half), odd widths (a single pixel after
    the pairs) and, through nnx.gradcheck, the C++ backward against finite differences."""
    forced_dx_path("kvec")
    for k in (3, 12, 20):
        cg = 2
        groups = kw.get("groups", 1)
        x = rng.standard_normal((2, cg * groups, 7, 9))
        w = rng.standard_normal((k * groups, cg, 3, 4)) * 0.3
        b = rng.standard_normal(k * groups)
        dy = rng.standard_normal(ref.conv2d(x, w, b, **kw).shape)
        got = ops.conv2d_backward(dy, x, w, b, algorithm="direct", **kw)[0]
        np.testing.assert_allclose(got, ref.conv2d_backward(dy, x, w, b, **kw)[0], rtol=1e-10, atol=1e-10)
    nnx.gradcheck(lambda x, w, b: ops.conv2d(x, w, b, algorithm="direct", **kw), (x[:1], w, b),
                  lambda dy, x, w, b: ops.conv2d_backward(dy, x, w, b, algorithm="direct", **kw))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 3, 5, 7, 11, 13, 25])
def test_implicit_forward_tiles_of_every_size(dtype, rng, width):
    """The implicit GEMM splits an image's output pixels into tiles of nearly equal size, none past the table's MR
    (6 or 12): outputs of 1 x width pixels (and width x width) reach every tile size. Each output is its taps' sum
    in tap order whatever its tile, so the AVX2 table (tiles of 6) and the AVX-512 one (12) agree bitwise, and
    both agree with the reference."""
    isas = ["avx2", "avx512"] if has_isa("avx512") else ["avx2"] if has_isa("avx2") else [nnx.cpu_info()["active_isa"]]
    before = nnx.cpu_info()["active_isa"]
    for shape in ((3, 16, 1, width), (2, 16, width, width)):
        x = random(rng, shape, dtype)
        for filters in (16, 48):  # the narrow tile (one 16-channel block) and the wide one
            w, b = random(rng, (filters, 16, 1, 3), dtype), random(rng, (filters,), dtype)
            kw = dict(padding=(0, 1))
            outs = []
            try:
                for isa in isas:
                    nnx.set_isa(isa)
                    outs.append(ops.conv2d(x, w, b, algorithm="implicit", **kw))
            finally:
                nnx.set_isa(before)
            assert_close(outs[0], ref.conv2d(x, w, b, **kw), dtype, k=16 * 3, name=f"conv2d {shape} -> {filters}")
            for y in outs[1:]:
                assert np.array_equal(y, outs[0]), f"{shape} -> {filters}: the tables' tiles differ in bits"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_implicit_weight_gradient_past_l2_goes_through_the_gemm(rng, dtype):
    """The implicit GEMM's weight gradient accumulates dwT (taps x filters) image by image; past 1 MiB of it
    (conv.cpp's kImplicitDwMaxBytes) the layer takes im2col's GEMM weight gradient instead, in the large-dw
    chunks and tiles (kDwGemmLargeBytes): the bits of algorithm="im2col" at 1, 2 and 3 threads, close to the
    reference. Below it, its own (other sums, also close). And im2col's forward and dx of filters past 1 MiB, on
    tiles of several images."""
    before = nnx.get_num_threads()
    try:
        for (c, k), gemm in (((256, 512), True), ((64, 64), False)):
            x, w = random(rng, (3, c, 5, 6), dtype), random(rng, (k, c, 3, 3), dtype)
            dy = random(rng, (3, k, 3, 3), dtype)
            kw = dict(stride=2, padding=1)
            outs = []
            for t in (1, 2, 3):
                nnx.set_num_threads(t)
                outs.append(ops.conv2d_backward(dy, x, w, None, algorithm="implicit", needs=(False, True, False),
                                                **kw)[1])
            via_gemm = ops.conv2d_backward(dy, x, w, None, algorithm="im2col", needs=(False, True, False), **kw)[1]
            assert all(np.array_equal(outs[0], o) for o in outs[1:])
            if gemm:
                np.testing.assert_array_equal(outs[0], via_gemm)
            assert_close(outs[0], ref.conv2d_backward(dy, x, w, None, **kw)[1], dtype, k=3 * 3 * 3, name="dw")
            # Filters past 1 MiB: im2col's forward and dx on tiles of several images (kDeepTileCols)
            assert_close(ops.conv2d(x, w, None, algorithm="im2col", **kw), ref.conv2d(x, w, None, **kw), dtype,
                         k=c * 9, name="y")
            dxs = []
            for t in (1, 2):
                nnx.set_num_threads(t)
                dxs.append(ops.conv2d_backward(dy, x, w, None, algorithm="im2col", needs=(True, False, False),
                                               **kw)[0])
            np.testing.assert_array_equal(dxs[0], dxs[1])
            assert_close(dxs[0], ref.conv2d_backward(dy, x, w, None, **kw)[0], dtype, k=k * 9, name="dx")
    finally:
        nnx.set_num_threads(before)


def test_dx_path_choice(forced_dx_path):
    """The modelled choice of conv.cpp's conv_dx_path on the layers it was fitted to (1 thread, AVX-512), with the
    rates and kvec bounds of the active table (Zen 4's table, AVX-512 on 256-bit halves, has its own)."""
    info = nnx.cpu_info()
    zen4 = info["active_isa"] == "avx512" and not info["wide_vector_fma"]
    assert ops.conv2d_dx_path((64, 6, 14, 14), (16, 6, 5, 5)) == "kvec"             # LeNet conv2: half its taps on padding
    # kvec only while an image's dz fits in 32 KB (L1): 16 x 28 x 28 floats do not; on Zen 4 up to 1024 pixels
    # and 256 KB, where it measured as fast as the direct kernel or faster
    assert ops.conv2d_dx_path((64, 6, 28, 28), (16, 6, 5, 5), padding=2) == ("kvec" if zen4 else "direct")
    assert ops.conv2d_dx_path((64, 8, 28, 28), (16, 8, 5, 5), padding=2, algorithm="implicit") == (
        "kvec" if zen4 else "direct")  # (a Winograd plan otherwise)
    # (Zen 4: since the direct dx keeps its accumulators in registers, 4.0 ms against kvec's 5.0 here)
    assert ops.conv2d_dx_path((64, 3, 32, 32), (32, 3, 5, 5), padding=2) == "direct"
    assert ops.conv2d_dx_path((64, 3, 48, 48), (32, 3, 5, 5), padding=2) == "direct"
    assert ops.conv2d_dx_path((64, 16, 32, 32), (16, 16, 3, 3), padding=1) == "winograd"  # Winograd plans
    assert ops.conv2d_dx_path((64, 64, 8, 8), (64, 64, 3, 3), padding=1) == "winograd"
    assert ops.conv2d_dx_path((64, 32, 14, 14), (64, 32, 5, 5), padding=2) == "winograd"
    # (Zen 4: the implicit GEMM was 1.5x faster than the direct kernel there; since the direct dx keeps its
    # accumulators in registers the implicit GEMM is 1.2x slower, 3.4 ms against 2.9: a miss the model keeps)
    assert ops.conv2d_dx_path((64, 16, 32, 32), (16, 16, 3, 3), padding=1, algorithm="implicit") == (
        "implicit" if zen4 else "direct")
    assert ops.conv2d_dx_path((64, 64, 8, 8), (64, 64, 3, 3), padding=1, algorithm="implicit") == "implicit"
    assert ops.conv2d_dx_path((64, 32, 14, 14), (64, 32, 5, 5), padding=2, algorithm="implicit") == "implicit"
    # Strided: in phases where every phase has taps and 16-channel blocks are at least 3/4 full
    assert ops.conv2d_dx_path((64, 16, 32, 32), (32, 16, 3, 3), stride=2, padding=1) == "implicit"  # ResNet-20
    # from 64 output pixels; on Zen 4 from 16 up to 1024 taps, from 100 past them
    assert ops.conv2d_dx_path((64, 32, 12, 12), (64, 32, 3, 3), stride=2, padding=1) == (
        "implicit" if zen4 else "col2im")
    assert ops.conv2d_dx_path((16, 256, 16, 16), (512, 256, 3, 3), stride=2, padding=1, algorithm="implicit") == (
        "col2im" if zen4 else "implicit")
    assert ops.conv2d_dx_path((16, 128, 20, 20), (128, 128, 3, 3), stride=2, padding=1, algorithm="implicit") == \
        "implicit"
    assert ops.conv2d_dx_path((64, 12, 32, 32), (24, 12, 3, 3), stride=2, padding=1) == "implicit"
    assert ops.conv2d_dx_path((64, 8, 32, 32), (16, 8, 3, 3), stride=2, padding=1) == "col2im"
    assert ops.conv2d_dx_path((64, 16, 32, 32), (32, 16, 1, 1), stride=2) == "col2im"  # 3 phases of 4 without taps
    assert ops.conv2d_dx_path((8, 3, 64, 64), (32, 3, 7, 7), stride=2, padding=3) == "col2im"
    assert ops.conv2d_dx_path((64, 16, 32, 32), (32, 16, 3, 3), stride=2, dilation=2, padding=2) == "col2im"
    assert ops.conv2d_dx_path((64, 256, 16, 16), (64, 256, 1, 1)) == "col2im"
    forced_dx_path("kvec")
    assert ops.conv2d_dx_path((64, 64, 8, 8), (64, 64, 3, 3), padding=1) == "kvec"  # forced, even on a Winograd plan
    assert ops.conv2d_dx_path((64, 8, 32, 32), (16, 8, 3, 3), stride=2, padding=1) == "col2im"  # stride 1 only
    forced_dx_path("implicit")  # in phases on any strided layer without dilation, but never dilated
    assert ops.conv2d_dx_path((64, 8, 32, 32), (16, 8, 3, 3), stride=2, padding=1) == "implicit"
    assert ops.conv2d_dx_path((64, 16, 32, 32), (32, 16, 3, 3), stride=2, dilation=2, padding=2) == "col2im"
    forced_dx_path("winograd")  # applies to 3x3 / 5x5 stride-1 layers whose padding is at most R - 1
    assert ops.conv2d_dx_path((64, 64, 8, 8), (64, 64, 3, 3), padding=1) == "winograd"
    assert ops.conv2d_dx_path((64, 64, 8, 8), (64, 64, 3, 3), padding=3) != "winograd"
    assert ops.conv2d_dx_path((64, 6, 14, 14), (16, 6, 5, 5)) == "winograd"
    assert ops.conv2d_dx_path((64, 6, 14, 14), (16, 6, 3, 4)) != "winograd"
    with pytest.raises(ValueError, match="set_conv_dx_path: expected one of 'auto', .*'winograd', got 'fft'"):
        forced_dx_path("fft")


def test_kvec_dx_is_thread_count_invariant(rng, forced_dx_path):
    forced_dx_path("kvec")
    x, w = random(rng, (5, 6, 14, 14), np.float32), random(rng, (16, 6, 5, 5), np.float32)
    dy = random(rng, (5, 16, 10, 10), np.float32)
    before = nnx.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            nnx.set_num_threads(t)
            outs.append(ops.conv2d_backward(dy, x, w, None, algorithm="implicit", needs=(True, False, False))[0])
    finally:
        nnx.set_num_threads(before)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


# Strided layers whose dx runs in phases (conv.cpp's DxPhases): strides 2 and 3 and mixed, paddings from none to
# beyond the kernel, kernels smaller than the stride (phases without taps: zeros), larger than it, even and
# odd sizes, an image narrower than the stride, and groups.
PHASE_CASES = [
    ((2, 16, 11, 11), (24, 16, 3, 3), dict(stride=2, padding=1)),
    ((2, 6, 12, 12), (8, 6, 5, 5), dict(stride=2, padding=2)),
    ((2, 4, 8, 9), (4, 4, 4, 4), dict(stride=2, padding=1)),
    ((2, 3, 13, 11), (4, 3, 3, 2), dict(stride=3, padding=1)),
    ((2, 5, 10, 11), (7, 5, 3, 3), dict(stride=(2, 3), padding=(0, 1))),
    ((2, 6, 9, 9), (6, 6, 3, 3), dict(stride=(2, 1), padding=(1, 0))),
    ((1, 4, 7, 8), (3, 4, 1, 1), dict(stride=2)),
    ((2, 8, 10, 10), (8, 4, 1, 1), dict(stride=3, groups=2)),
    ((2, 4, 6, 6), (4, 2, 3, 3), dict(stride=2, padding=3, groups=2)),
    ((1, 4, 1, 5), (4, 4, 3, 3), dict(stride=2, padding=1)),
]


@pytest.mark.parametrize("case", range(len(PHASE_CASES)))
def test_strided_dx_in_phases_matches_reference(isa, dtype, rng, case, forced_dx_path):
    xs, ws, kw = PHASE_CASES[case]
    x, w = random(rng, xs, dtype), random(rng, ws, dtype)
    dy = random(rng, ref.conv2d(x, w, None, **kw).shape, dtype)
    forced_dx_path("implicit")
    assert ops.conv2d_dx_path(xs, ws, algorithm="implicit", **kw) == "implicit"
    for algo in ("direct", "implicit"):
        got = ops.conv2d_backward(dy, x, w, None, algorithm=algo, needs=(True, False, False), **kw)[0]
        assert_close(got, ref.conv2d_backward(dy, x, w, None, **kw)[0], dtype, k=max(1, _k(ws, dy.shape)),
                     name=f"{algo} dx")


@pytest.mark.parametrize("case", [0, 3, 7])
def test_strided_dx_in_phases_float64_gradcheck_and_threads(rng, case, forced_dx_path):
    """In phases: float64 to 1e-10 of the reference, the C++ backward against finite differences, and the same
    bits at 1, 2 and 3 threads (each image's dx is one thread's, its sums in tap order)."""
    xs, ws, kw = PHASE_CASES[case]
    forced_dx_path("implicit")
    x, w = rng.standard_normal(xs), rng.standard_normal(ws) * 0.3
    dy = rng.standard_normal(ref.conv2d(x, w, None, **kw).shape)
    got = ops.conv2d_backward(dy, x, w, None, algorithm="implicit", needs=(True, False, False), **kw)[0]
    np.testing.assert_allclose(got, ref.conv2d_backward(dy, x, w, None, **kw)[0], rtol=1e-10, atol=1e-10)
    nnx.gradcheck(lambda x, w: ops.conv2d(x, w, None, algorithm="implicit", **kw), (x[:1], w),
                  lambda dy, x, w: ops.conv2d_backward(dy, x, w, None, algorithm="implicit", needs=(True, True, False),
                                                       **kw)[:2])
    xf = random(rng, (5,) + xs[1:], np.float32)
    wf, dyf = w.astype(np.float32), random(rng, (5,) + dy.shape[1:], np.float32)
    before = nnx.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            nnx.set_num_threads(t)
            outs.append(ops.conv2d_backward(dyf, xf, wf, None, algorithm="implicit", needs=(True, False, False),
                                            **kw)[0])
    finally:
        nnx.set_num_threads(before)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@pytest.fixture
def winograd_tile(request):
    """Runs the test with every Winograd layer on the tile given as the test's parameter (F(2x2) or F(4x4),
    3x3 or 5x5, nnx._C.set_winograd_tile); the choice by shape is restored afterwards."""
    from nnx import _C
    _C.set_winograd_tile(request.param)
    yield request.param
    _C.set_winograd_tile(0)


WINOGRAD_SHAPES = [
    ((2, 3, 7, 9, 5, 3), 1),      # odd output sizes: partial tiles on the last row and column
    ((3, 6, 8, 8, 4, 3), 0),      # no padding; a band spans several images
    ((2, 4, 5, 7, 3, 3), 2),      # padding 2: dx's transposed padding 0
    ((1, 5, 9, 37, 7, 3), 1),     # 19 (F(2x2)) or 10 (F(4x4)) tiles a row: blocks straddle the GEMM's slivers
    ((2, 9, 16, 66, 11, 3), 1),   # rows of 33 or 17 tiles, several bands per image
    ((1, 3, 3, 2, 2, 3), 1),      # one partial tile: an F(4x4) tile of 3x2 outputs
    ((2, 3, 9, 11, 5, 5), 2),     # 5x5: odd sizes
    ((3, 4, 8, 7, 6, 5), 0),      # 5x5 without padding (dx's transposed padding 4)
    ((1, 6, 12, 40, 5, 5), 4),    # 5x5, padding 4 (dx's transposed padding 0), blocks straddling slivers
]


# Every shape on both tiles.
@pytest.mark.parametrize("shape,padding,winograd_tile", [(s, p, m) for s, p in WINOGRAD_SHAPES for m in (2, 4)],
                         indirect=["winograd_tile"])
def test_winograd_float64_and_gradcheck(rng, winograd_tile, shape, padding):
    """Winograd F(2x2, 3x3), F(4x4, 3x3), F(2x2, 5x5) and F(4x4, 5x5) forward, dx (the same algorithm over dy, filters
    flipped and transposed) and dw (the transformed products summed over the tiles) against the reference
    in float64 to 1e-10, with a fused activation; the C++ backward against finite differences."""
    n, c, h, wd, k, r = shape
    from nnx import _C
    assert _C.winograd_tile((n, c, h, wd), (k, c, r, r), (padding, padding)) == winograd_tile
    x, w, b = rng.standard_normal((n, c, h, wd)), rng.standard_normal((k, c, r, r)) * 0.3, rng.standard_normal(k)
    for act in (None, "sigmoid"):
        y = ops.conv2d(x, w, b, padding=padding, activation=act, algorithm="winograd")
        np.testing.assert_allclose(y, ref.conv2d(x, w, b, padding=padding, activation=act), rtol=1e-10, atol=1e-10)
        dy = rng.standard_normal(y.shape)
        got = ops.conv2d_backward(dy, x, w, b, padding=padding, activation=act, y=y, algorithm="winograd")
        want = ref.conv2d_backward(dy, x, w, b, padding=padding, activation=act, y=y)
        for name, g, wnt in zip(("dx", "dw", "db"), got, want):
            np.testing.assert_allclose(g, wnt, rtol=1e-10, atol=1e-10, err_msg=name)
    assert ops.conv2d_dx_path(x.shape, w.shape, padding=padding, algorithm="winograd") == "winograd"
    small = x[:1, :, :6, :7] if r == 3 else x[:1, :, :7, :8]
    nnx.gradcheck(lambda x, w, b: ops.conv2d(x, w, b, padding=padding, algorithm="winograd"), (small, w, b),
                  lambda dy, x, w, b: ops.conv2d_backward(dy, x, w, b, padding=padding, algorithm="winograd"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# Widths with fewer tiles a row than half the lanes: 8 float32 lanes take all; 4 float64 lanes only 1 tile.
@pytest.mark.parametrize("tile,width", [(2, 6), (4, 8), (4, 10), (2, 2), (4, 4)])
def test_winograd_row_spanning_path_gives_the_row_paths_bits(rng, dtype, tile, width):
    """On maps with fewer tiles a row than half a vector's lanes the transforms take their vectors across
    tile rows (gathers); on wide maps, along a row (cpp/conv/simd/winograd.inc). Each tile's arithmetic is
    the same, so a narrow image and the same image followed by zero columns (which are the narrow one's
    padding) give the same bits in the narrow image's output columns."""
    from nnx import _C
    x = random(rng, (3, 5, 9, width), dtype)
    w, b = random(rng, (7, 5, 3, 3), dtype), random(rng, (7,), dtype)
    wide = np.zeros((3, 5, 9, 40), dtype)
    wide[..., :width] = x
    try:
        _C.set_winograd_tile(tile)
        narrow_y = ops.conv2d(x, w, b, padding=1, activation="relu", algorithm="winograd")
        wide_y = ops.conv2d(wide, w, b, padding=1, activation="relu", algorithm="winograd")
    finally:
        _C.set_winograd_tile(0)
    assert np.array_equal(narrow_y, wide_y[..., :width])
    assert_close(narrow_y, ref.conv2d(x, w, b, padding=1, activation="relu"), dtype, k=45,
                 floor=winograd_floors("winograd", narrow_y, x, w, dict(padding=1))[0])


def test_winograd_5x5_choice_per_table(isa):
    """5x5 layers of up to 128 channels go Winograd (F(4x4, 5x5)) from 8 channels each way and 4 outputs a row
    on the AVX-512 and portable tables; the AVX2 table, where 8 -> 16 and 16 -> 16 measured slower than the
    implicit GEMM, from 16 channels each way and 48 both ways together (cpp/conv/conv_ukernels_avx2.cpp)."""
    avx2 = isa == "avx2"
    assert ops.conv2d_algorithm((64, 32, 14, 14), (64, 32, 5, 5), padding=2) == "winograd"
    assert ops.conv2d_algorithm((64, 16, 28, 28), (32, 16, 5, 5), padding=2) == "winograd"
    assert (ops.conv2d_algorithm((64, 8, 16, 16), (16, 8, 5, 5), padding=2) == "winograd") == (not avx2)
    assert (ops.conv2d_algorithm((64, 16, 14, 14), (16, 16, 5, 5), padding=2) == "winograd") == (not avx2)
    assert ops.conv2d_algorithm((64, 16, 6, 6), (16, 16, 5, 5)) != "winograd"  # 2 outputs a row
    assert ops.conv2d_algorithm((64, 6, 12, 12), (16, 6, 5, 5), padding=2) != "winograd"  # 6 channels


def test_winograd_tile_choice():
    """F(4x4, 3x3) where it measured faster (cpp/conv/winograd.cpp, conv_winograd_tile): at most 128 channels
    and at least 7 outputs a row; F(2x2, 3x3) on smaller maps and wider layers. 5x5: F(4x4, 5x5) up to 128
    channels on any map, F(2x2, 5x5) on wider layers."""
    from nnx import _C
    tile = _C.winograd_tile
    assert tile((64, 16, 32, 32), (16, 16, 3, 3), (1, 1)) == 4    # ResNet-20's first stage
    assert tile((64, 32, 16, 16), (32, 32, 3, 3), (1, 1)) == 4    # 4 tiles a row
    assert tile((64, 64, 8, 8), (64, 64, 3, 3), (1, 1)) == 4      # 2 tiles a row: vectors span tile rows
    assert tile((64, 32, 7, 7), (32, 32, 3, 3), (1, 1)) == 4      # 7 outputs a row
    assert tile((64, 64, 6, 6), (64, 64, 3, 3), (1, 1)) == 2      # 6 outputs a row: 2x2 tiles cover it exactly
    assert tile((8, 256, 14, 14), (256, 256, 3, 3), (1, 1)) == 2  # 256 channels
    assert tile((8, 128, 14, 14), (256, 128, 3, 3), (1, 1)) == 2  # 256 filters
    assert tile((64, 32, 14, 14), (64, 32, 5, 5), (2, 2)) == 4    # the convnet's conv2
    assert tile((64, 32, 4, 4), (64, 32, 5, 5), (2, 2)) == 4
    assert tile((64, 128, 7, 7), (128, 128, 5, 5), (2, 2)) == 4
    assert tile((16, 128, 14, 14), (256, 128, 5, 5), (2, 2)) == 2  # 256 filters
    try:
        _C.set_winograd_tile(4)
        assert tile((64, 64, 4, 4), (64, 64, 3, 3), (1, 1)) == 4
        assert tile((16, 128, 14, 14), (256, 128, 5, 5), (2, 2)) == 4
        _C.set_winograd_tile(2)
        assert tile((64, 32, 14, 14), (64, 32, 5, 5), (2, 2)) == 2
    finally:
        _C.set_winograd_tile(0)
    assert tile((64, 64, 4, 4), (64, 64, 3, 3), (1, 1)) == 2
    with pytest.raises(ValueError, match="set_winograd_tile: expected 2, 4 or 0"):
        _C.set_winograd_tile(3)


def test_winograd_refuses_other_shapes():
    x = np.ones((1, 4, 8, 8), np.float32)
    for w, kw in ((np.ones((4, 4, 4, 4), np.float32), {}), (np.ones((4, 4, 3, 3), np.float32), dict(stride=2)),
                  (np.ones((4, 4, 3, 5), np.float32), {}),
                  (np.ones((4, 2, 3, 3), np.float32), dict(groups=2)),
                  (np.ones((4, 4, 3, 3), np.float32), dict(dilation=2))):
        with pytest.raises(ValueError, match="winograd.*3x3 or 5x5 kernel with stride 1, dilation 1 and one group"):
            ops.conv2d(x, w, algorithm="winograd", **kw)


@pytest.mark.parametrize("r,tile,tol", [(3, 4, 5e-5), (5, 4, 1e-4)])
def test_winograd_float32_accuracy(rng, r, tile, tol):
    """The transforms' rounding on 64-channel layers auto runs through Winograd: float32 forward and dx
    within 1e-5 (F(2x2, 3x3)), 5e-5 (F(4x4, 3x3)) and 1e-4 (F(4x4, 5x5) and F(2x2, 5x5)) of the float64
    reference, relative to the largest value (measured: 4e-7, 6e-6, 8e-6 and 6e-6). The six- and eight-point
    transforms round more: their points 2 and -2 scale terms by up to 8 and G holds sixths (ninths and
    forty-fifths for eight points)."""
    from nnx import _C
    x, w = rng.standard_normal((4, 64, 16, 16)), rng.standard_normal((64, 64, r, r)) / (8 * r)
    p = r // 2
    assert ops.conv2d_algorithm(x.shape, w.shape, padding=p) == "winograd"
    assert _C.winograd_tile(x.shape, w.shape, (p, p)) == tile  # 16x16 maps, 64 channels: F(4x4) for 3x3
    y = ops.conv2d(x.astype(np.float32), w.astype(np.float32), padding=p)
    want = ref.conv2d(x, w, padding=p)
    assert np.abs(y - want).max() <= tol * np.abs(want).max()
    dy = rng.standard_normal(want.shape)
    dx = ops.conv2d_backward(dy.astype(np.float32), x.astype(np.float32), w.astype(np.float32), padding=p,
                             needs=(True, False, False))[0]
    want_dx = ref.conv2d_backward(dy, x, w, padding=p, needs=(True, False, False))[0]
    assert np.abs(dx - want_dx).max() <= tol * np.abs(want_dx).max()
    if tile == 4:  # and the same layer on F(2x2, 3x3) or F(2x2, 5x5)
        try:
            _C.set_winograd_tile(2)
            y = ops.conv2d(x.astype(np.float32), w.astype(np.float32), padding=p)
            dx = ops.conv2d_backward(dy.astype(np.float32), x.astype(np.float32), w.astype(np.float32), padding=p,
                                     needs=(True, False, False))[0]
        finally:
            _C.set_winograd_tile(0)
        tol2 = 1e-5 if r == 3 else 1e-4
        assert np.abs(y - want).max() <= tol2 * np.abs(want).max()
        assert np.abs(dx - want_dx).max() <= tol2 * np.abs(want_dx).max()


def test_winograd_weight_gradient_falls_back_when_its_partials_are_large(rng):
    """A Winograd dw holds one transformed gradient (16 K C values) per chunk of images; past 64 MiB of them
    (256 -> 256 channels, 16 images: 16 chunks of 4 MiB) conv2d_backward computes dw by im2col instead
    (conv.cpp, winograd_dw_fits). On such a layer, dx (Winograd) and dw (that fallback) against the
    reference."""
    x, w = random(rng, (16, 256, 7, 7), np.float32), random(rng, (256, 256, 3, 3), np.float32) / 48
    dy = random(rng, (16, 256, 7, 7), np.float32)
    assert ops.conv2d_algorithm(x.shape, w.shape, padding=1) == "winograd"
    dx, dw, _ = ops.conv2d_backward(dy, x, w, padding=1)
    want_dx, want_dw, _ = ref.conv2d_backward(dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                              padding=1)
    fy, fdx = winograd_floors("winograd", dy, x, w, dict(padding=1))
    assert_close(dx, want_dx, np.float32, k=256 * 9, name="dx", floor=fdx)
    assert_close(dw, want_dw, np.float32, k=16 * 49, name="dw")


# --- a convolution followed by max pooling in one op ----------------------------------------------------

POOLED = [("lenet1", 2, None), ("lenet2", 2, 2), ("resnet3x3", 3, 2), ("strided3x3", 2, 1), ("odd", (2, 3), (1, 2)),
          ("groups2", 2, None), ("wide_direct", 3, 3), ("wide_implicit", 2, 2), ("big_image", 2, None),
          ("depthwise", 2, None)]


@pytest.mark.parametrize("case,k,s", POOLED)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv2d_max_pool2d_is_bitwise_the_two_ops(isa, dtype, rng, case, k, s, activation):
    # Image by image (direct, implicit) or from the whole batch (the other algorithms), the pooled values
    # and indices are those of conv2d then max_pool2d, bit for bit, for any thread count; and its backward
    # those of the two backwards. Against the reference too.
    xs, ws, kw = CASES[case]
    x, w, b = random(rng, xs, dtype), random(rng, ws, dtype), random(rng, ws[:1], dtype)
    for algo in [a for a in ALGOS if _applies(a, ws, kw)]:
        z = ops.conv2d(x, w, b, algorithm=algo, **kw)
        want, want_idx = ops.max_pool2d(z, k, s, return_indices=True, activation=activation)
        dy = random(rng, want.shape, dtype)
        dz = ops.max_pool2d_backward(dy, z, k, s, indices=want_idx, activation=activation, y=want)
        want_grads = ops.conv2d_backward(dz, x, w, b, algorithm=algo, **kw)
        for threads in (1, 2, 3):
            nnx.set_num_threads(threads)
            try:
                y, idx = ops.conv2d_max_pool2d(x, w, b, kernel_size=k, pool_stride=s, activation=activation,
                                               algorithm=algo, **kw)
                grads = ops.conv2d_max_pool2d_backward(dy, x, w, b, kernel_size=k, pool_stride=s, indices=idx,
                                                       activation=activation, y=y, algorithm=algo, **kw)
            finally:
                nnx.set_num_threads(1)
            np.testing.assert_array_equal(y, want, err_msg=f"{algo}, {threads} threads")
            np.testing.assert_array_equal(idx, want_idx)
            for g, wg in zip(grads, want_grads):
                np.testing.assert_array_equal(g, wg)
        # Against the reference, its backward from nnx's indices and output (rounding may pick another of two
        # near-equal maxima, or put a maximum near 0 on the other side of the ReLU's mask); Winograd's rounding
        # follows its transforms' intermediate values (winograd_floors).
        fy, fdx = winograd_floors(algo, dz, x, w, kw)
        y_ref, _ = ref.conv2d_max_pool2d(x, w, b, kernel_size=k, pool_stride=s, activation=activation, **kw)
        assert_close(y, y_ref, dtype, k=_k(ws, z.shape), name=f"y {algo}", floor=fy)
        grads_ref = ref.conv2d_max_pool2d_backward(dy, x, w, b, kernel_size=k, pool_stride=s, indices=idx,
                                                   activation=activation, y=y, **kw)
        for name, g, r, fl in zip(("dx", "dw", "db"), grads, grads_ref, (fdx, 0.0, 0.0)):
            assert_close(g, r, dtype, k=_k(ws, z.shape), name=f"{name} {algo}", floor=fl)


def test_conv2d_max_pool2d_gradcheck_float64(rng):
    x, w, b = rng.standard_normal((2, 2, 9, 8)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    for act in (None, "relu"):
        for backend in (ops, ref):
            def f(x, w, b):
                return backend.conv2d_max_pool2d(x, w, b, padding=1, kernel_size=2, activation=act)[0]

            def back(dy, x, w, b):
                y, idx = backend.conv2d_max_pool2d(x, w, b, padding=1, kernel_size=2, activation=act)
                return backend.conv2d_max_pool2d_backward(dy, x, w, b, padding=1, kernel_size=2, indices=idx,
                                                          activation=act, y=y)

            nnx.gradcheck(f, (x, w, b), back)


def test_conv2d_max_pool2d_errors(rng):
    x, w = random(rng, (1, 2, 6, 6), np.float32), random(rng, (3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="kernel_size"):
        ops.conv2d_max_pool2d(x, w, kernel_size=5)  # the window is larger than the 4x4 convolution output
    with pytest.raises(ValueError, match="activation"):
        ops.conv2d_max_pool2d(x, w, kernel_size=2, activation="tanh")
    with pytest.raises(ValueError, match="w"):
        ops.conv2d_max_pool2d(x, random(rng, (3, 1, 3, 3), np.float32), kernel_size=2)
    y, idx = ops.conv2d_max_pool2d(x, w, kernel_size=2)
    out, ind = np.empty_like(y), np.empty_like(idx)
    plan = ops.conv._plan(x, w, None, 1, 0, 1, 1, "auto")
    for bad_out, bad_idx, kh in [(out[:, :1], ind, 2), (out, ind.astype(np.int64), 2), (out, ind, 0),
                                 (out, ind[:, :, :1], 2)]:
        with pytest.raises(ValueError):
            nnx._C.conv2d_max_pool2d(x, w, None, bad_out, bad_idx, plan, kh, 2, 2, 2, False)
    empty_y, empty_idx = ops.conv2d_max_pool2d(x[:0], w, kernel_size=2)
    assert empty_y.shape == (0, 3, 2, 2) and empty_idx.shape == (0, 3, 2, 2)


@pytest.mark.parametrize("case", [(3, 1, 1, "relu"), (3, 1, 2, None), (5, 2, 1, "leaky_relu"), (5, 2, 2, "tanh")])
@pytest.mark.parametrize("height", [8, 13, 30])
def test_depthwise_forward_by_rows_matches_the_flat_vectors(dtype, rng, case, height):
    """At stride 1 with same-size outputs the flat depthwise forward runs blocks of output rows (simd/
    depthwise_flat.inc, flat_rows_block: each input row's shifted loads serve every output row that reads it) where
    its rows fill their vectors, else vectors of consecutive outputs across rows (flat_block). Both sum each
    output's taps in tap order, zeros where a tap lies on the padding: so a plane of 16 columns (8 in float64), by
    rows, gives bit for bit the outputs of the same plane cut to its first 12 (5) columns and zero past them, by
    flat vectors; forward and the stride-1 dx (the same forward over dz), every table, 3x3 and 5x5, one and two
    filters a channel, row blocks' tails (heights 8, 13, 30); and both agree with the reference."""
    r, pad, mult, act = case
    wide, narrow = (16, 12) if dtype == np.float32 else (8, 5)
    c = 3
    w, b = random(rng, (c * mult, 1, r, r), dtype), random(rng, (c * mult,), dtype)
    x = random(rng, (2, c, height, wide), dtype)
    x[..., narrow:] = 0
    dy = random(rng, (2, c * mult, height, wide), dtype)
    dy[..., narrow:] = 0
    kw = dict(padding=pad, groups=c)
    if act:
        kw["activation"] = act
    xn, dyn = np.ascontiguousarray(x[..., :narrow]), np.ascontiguousarray(dy[..., :narrow])
    isas = [isa for isa in ("avx2", "avx512") if has_isa(isa)]
    if not isas:
        pytest.skip("no table with the flat depthwise forward on this CPU")
    before = nnx.cpu_info()["active_isa"]
    try:
        for isa in isas:
            nnx.set_isa(isa)
            y, yn = ops.conv2d(x, w, b, **kw), ops.conv2d(xn, w, b, **kw)
            assert np.array_equal(y[..., :narrow], yn), f"{isa}: rows and flat vectors differ in bits"
            assert_close(y, ref.conv2d(x, w, b, **kw), dtype, k=r * r, name=f"{isa} depthwise forward")
            if act is None:  # the dx of the plain layer: dz = dy
                dx = ops.conv2d_backward(dy, x, w, b, needs=(True, False, False), **kw)[0]
                dxn = ops.conv2d_backward(dyn, xn, w, b, needs=(True, False, False), **kw)[0]
                assert np.array_equal(dx[..., :narrow], dxn), f"{isa}: the dx by rows and by flat vectors differ"
                assert_close(dx, ref.conv2d_backward(dy, x, w, b, **kw)[0], dtype, k=r * r * mult,
                             name=f"{isa} depthwise dx")
    finally:
        nnx.set_isa(before)


def test_depthwise_flat_plan_follows_the_geometry(dtype, rng):
    """The flat depthwise forward keeps the last plans (lane masks, tap offsets) a thread made: calls that alternate
    between geometries, and ones that change only the batch or the channels, must each get their own layer's
    result, the bits of a first call; more layers than it keeps plans (8), so some are made again."""
    layers = [((2, 6, 8, 8), dict(padding=1)), ((1, 6, 8, 8), dict(padding=1, stride=2)),
              ((3, 9, 8, 8), dict(padding=1)), ((2, 6, 7, 9), dict(padding=1)), ((2, 6, 8, 8), dict(padding=2)),
              # the same output shape from another padding: only the padding tells these two apart
              ((1, 6, 9, 8), dict(stride=(3, 1), padding=(0, 1))), ((1, 6, 9, 8), dict(stride=(3, 1), padding=1)),
              ((2, 4, 5, 5), dict(padding=1)), ((2, 4, 6, 6), dict(padding=1)), ((2, 4, 6, 6), dict(padding=(1, 2)))]
    args = []
    for xs, kw in layers:
        x, w, b = random(rng, xs, dtype), random(rng, (xs[1], 1, 3, 3), dtype), random(rng, (xs[1],), dtype)
        args.append((x, w, b, dict(kw, groups=xs[1])))
    first = [ops.conv2d(x, w, b, algorithm="depthwise", **kw) for x, w, b, kw in args]
    for (x, w, b, kw), y in zip(args, first):
        assert_close(y, ref.conv2d(x, w, b, **kw), dtype, k=9, name="depthwise flat")
    for (x, w, b, kw), y in reversed(list(zip(args, first))):
        np.testing.assert_array_equal(ops.conv2d(x, w, b, algorithm="depthwise", **kw), y)

