import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nnx
from nnx import ops, reference as ref
from nnx.ops._fused import activation_backward_from_output
from nnx.reference._act import act_forward, act_grad_from_output
from optest import assert_close, check_op, has_isa, past_boundary, random, rtol_for

# (name, kwargs) of every element-wise activation
ELEMENTWISE = [("relu", {}), ("sigmoid", {}), ("tanh", {}), ("leaky_relu", {}), ("leaky_relu", dict(negative_slope=0.2)),
               ("elu", {}), ("elu", dict(alpha=0.5))]
EW_IDS = [f"{n}-{'-'.join(f'{k}{v}' for k, v in kw.items())}" if kw else n for n, kw in ELEMENTWISE]
SHAPES = [(1,), (7,), (8,), (13,), (1031,), (3, 5), (17, 31), (0,), (4, 0), (2, 3, 5, 7), (70001,)]


def _fn(name):
    return getattr(ops, name), getattr(ref, name), getattr(ops, name + "_backward"), getattr(ref, name + "_backward")


def _check_fwd_bwd(name, kw, x, dy, dtype, k=1):
    f, rf, b, rb = _fn(name)
    check_op(f, rf, (x,), kw, dtype, k=k, name=name)
    check_op(b, rb, (dy, x), kw, dtype, k=k, name=name + "_backward")


def _check_softmax_backward(name, dy, x, axis, dtype, k):
    """dx = s (dy - sum(dy s)) (or dy - s sum(dy)) cancels where dy is close to the sum: both the kernel
    and a float32 reference then carry rounding errors of the size of the TERMS, not of the result. So
    the kernel is compared with the reference evaluated in float64 on the same inputs, within rtol times
    (|dx| + the magnitude of the terms). Both kernels: from the input x, and from the output y (what
    nnx.functional runs), which agree with the same reference within the same bound."""
    y = getattr(ops, name)(x, axis=axis)
    for got in (getattr(ops, name + "_backward")(dy, x, axis=axis),
                getattr(ops, name + "_backward")(dy, None, axis=axis, y=y)):
        _check_softmax_gradient(name, got, dy, x, axis, dtype, k)


def _check_softmax_gradient(name, got, dy, x, axis, dtype, k):
    assert got.dtype == dtype and got.shape == x.shape and got.flags.c_contiguous
    if got.size == 0:
        return
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    with np.errstate(all="ignore"):
        want = getattr(ref, name + "_backward")(dy64, x64, axis=axis)
        s = ref.softmax(x64, axis=axis)
        if name == "softmax":
            terms = s * (np.abs(dy64) + np.abs(np.sum(dy64 * s, axis=axis, keepdims=True)))
        else:
            terms = np.abs(dy64) + s * np.abs(np.sum(dy64, axis=axis, keepdims=True))
        finite = np.isfinite(want)
        assert np.array_equal(np.isnan(got), np.isnan(want)), f"{name}_backward: NaN pattern differs"
        assert np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
        err = np.abs(got[finite] - want[finite])
        bound = rtol_for(dtype, k) * (np.abs(want[finite]) + terms[finite]) + np.finfo(dtype).tiny
        bad = ~(err <= bound)
        assert not bad.any(), (f"{name}_backward: {int(bad.sum())} of {bad.size} elements off; worst: got "
                               f"{got[finite][bad][0]!r}, want {want[finite][bad][0]!r}, bound {bound[bad][0]!r}")


@pytest.mark.parametrize("name,kw", ELEMENTWISE, ids=EW_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_elementwise_matches_reference(isa, dtype, rng, name, kw, shape):
    x = random(rng, shape, dtype, -6, 6)
    dy = random(rng, shape, dtype)
    _check_fwd_bwd(name, kw, x, dy, dtype)


@pytest.mark.parametrize("name,kw", ELEMENTWISE, ids=EW_IDS)
def test_elementwise_any_layout(isa, dtype, rng, name, kw):
    big = random(rng, (20, 30), dtype, -4, 4)
    dyb = random(rng, (20, 30), dtype)
    views = [(big.T, dyb.T), (big[::-1, ::2], dyb[::-1, 1::2]), (big[3:9, 5:27:3], dyb[:6, :8])]
    for x, dy in views:
        _check_fwd_bwd(name, kw, x, dy, dtype)
    ro = big.copy()
    ro.setflags(write=False)
    _check_fwd_bwd(name, kw, ro, dyb, dtype)
    bcast = np.broadcast_to(random(rng, (1, 30), dtype), (20, 30))
    _check_fwd_bwd(name, kw, bcast, dyb, dtype)


@pytest.mark.parametrize("name,kw", ELEMENTWISE, ids=EW_IDS)
@pytest.mark.parametrize("shape", [(2,), (1023,), (1025,), (3, 700), (5, 64, 33), (300001,)], ids=str)
def test_scalar_broadcast_dy_gives_the_bits_of_its_copy(isa, dtype, rng, name, kw, shape):
    # A sum's or mean's gradient reaches an activation's backward as one value broadcast over x (every stride 0);
    # the kernel reads that value for every element (act_backward_one_dy) instead of a copy spread over x's
    # size: the same bits as the copy, at 1 and 3 threads, across its 1024-element pieces and threads' ranges.
    x = random(rng, shape, dtype, -6, 6)
    b = getattr(ops, name + "_backward")
    before = nnx.get_num_threads()
    try:
        for value in (0.37, -2.5):
            dy = np.broadcast_to(np.asarray(value, dtype), shape)
            want = b(np.ascontiguousarray(dy), x, **kw)
            for threads in (1, 3):
                nnx.set_num_threads(threads)
                got = b(dy, x, **kw)
                assert got.dtype == dtype and got.flags.c_contiguous
                assert np.array_equal(got, want, equal_nan=True), f"{name}_backward of a broadcast {value}"
    finally:
        nnx.set_num_threads(before)
    assert_close(b(np.broadcast_to(np.asarray(0.37, dtype), shape), x, **kw),
                 getattr(ref, name + "_backward")(np.full(shape, 0.37, dtype), x, **kw), dtype)


@pytest.mark.parametrize("name,kw", ELEMENTWISE, ids=EW_IDS)
def test_elementwise_extreme_values(isa, dtype, name, kw):
    vals = [0.0, -0.0, 1e-30, -1e-30, 1e-6, -1e-6, 0.5, -0.5, 20.0, -20.0, 88.5, -88.5, 100.0, -100.0, 709.0, -709.0,
            800.0, -800.0, 1e4, -1e4, np.inf, -np.inf, np.nan]
    x = np.array(vals * 3, dtype=dtype)  # 69 values: full vectors and a ragged tail
    with np.errstate(all="ignore"):
        y = getattr(ops, name)(x, **kw)
        want = getattr(ref, name)(x, **kw)
        assert_close(y, want, dtype, name=name)
        assert np.array_equal(np.isnan(y), np.isnan(x)), f"{name}: NaN must propagate, and only NaN"
        assert np.all(np.isfinite(y[np.isfinite(x)])), f"{name}: overflow on a finite input"
        dy = np.ones_like(x)
        assert_close(getattr(ops, name + "_backward")(dy, x, **kw), getattr(ref, name + "_backward")(dy, x, **kw),
                     dtype, name=name + "_backward")


def test_sigmoid_tanh_accuracy_near_zero_and_large(isa, dtype):
    # Relative accuracy where naive formulas cancel (tiny |x|) or overflow (large |x|).
    x = np.concatenate([np.geomspace(1e-20, 30, 500), -np.geomspace(1e-20, 30, 500)]).astype(dtype)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert_close(ops.tanh(x), np.tanh(x.astype(np.float64)), dtype, rtol=tol, name="tanh")
    s64 = ref.sigmoid(x.astype(np.float64))
    assert_close(ops.sigmoid(x), s64, dtype, rtol=tol, name="sigmoid")
    assert_close(ops.elu(-np.abs(x)), np.expm1(-np.abs(x).astype(np.float64)), dtype, rtol=tol, name="elu")


def test_float32_tanh_dense(isa):
    """The float tanh of the vector kernels (a rational function, cpp/activation/tanh_rational.h) on 2 million
    values from 1e-30 to 12, both signs: within 4e-7 of tanh (6 float ulp near 1, its measured worst), odd to
    the bit, and ±0, ±inf and NaN kept as tanh keeps them."""
    mag = np.concatenate([np.geomspace(1e-30, 12, 1 << 20), np.linspace(0, 12, 1 << 20)]).astype(np.float32)
    y, y_neg = ops.tanh(mag), ops.tanh(-mag)
    assert_close(y, np.tanh(mag.astype(np.float64)), np.float32, rtol=4e-7, name="tanh")
    np.testing.assert_array_equal(y_neg, -y)
    assert np.all(np.abs(y) <= 1)
    special = ops.tanh(np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32))
    np.testing.assert_array_equal(special[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.signbit(special[1]) and not np.signbit(special[0]) and np.isnan(special[4])


SOFTMAX_CASES = [((1,), -1), ((5,), 0), ((13, 1), -1), ((4, 37), -1), ((4, 37), 0), ((3, 5, 7), 0), ((3, 5, 7), 1),
                 ((3, 5, 7), -1), ((2, 3, 4, 5), 0), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), 2), ((2, 3, 4, 5), -1),
                 ((2, 6, 300), 1), ((3, 1, 9), 1), ((0, 4), -1), ((4, 0), -1), ((4, 0), 0), ((2, 1000), 1),
                 ((3, 4, 1100), 1), ((2, 5, 20, 30), 1),  # several 256-column tiles a call, and a ragged last one
                 ((2, 3, 4500), 1), ((2, 300, 700), 1)]  # the backward from y: wide tiles, and narrow for many rows


@pytest.mark.parametrize("n", [3, 16, 100, 256, 257])
def test_log_softmax_rows_alone_and_in_blocks(isa, dtype, rng, n):
    """Short rows take their logs a block of rows at a time (after the block's sums): each row has the bits it
    has computed alone, and cross-entropy's per-row terms (through the same blocks) sum to the reference's."""
    x = random(rng, (37, n), dtype, -20, 20)
    whole = ops.log_softmax(x, axis=-1)
    for i in range(x.shape[0]):
        assert np.array_equal(whole[i], ops.log_softmax(x[i:i + 1], axis=-1)[0]), i
    t = rng.integers(0, n, x.shape[0])
    assert_close(ops.cross_entropy(x, t), ref.cross_entropy(x, t), dtype, n, "cross_entropy")


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=str)
def test_softmax_matches_reference(isa, dtype, rng, name, shape, axis):
    x = random(rng, shape, dtype, -5, 5)
    dy = random(rng, shape, dtype)
    n = shape[axis] if len(shape) else 1
    f, rf, b, rb = _fn(name)
    check_op(f, rf, (x,), dict(axis=axis), dtype, k=n, name=name)
    _check_softmax_backward(name, dy, x, axis, dtype, n)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_any_layout(isa, dtype, rng, name):
    big = random(rng, (6, 40, 20), dtype, -3, 3)
    f, rf, b, rb = _fn(name)
    for x in (big.transpose(2, 0, 1), big[::-1, ::3, 1::2], np.broadcast_to(big[:1], (6, 40, 20))):
        dy = random(rng, x.shape, dtype)
        for axis in (0, 1, -1):
            check_op(f, rf, (x,), dict(axis=axis), dtype, k=x.shape[axis], name=name)
            _check_softmax_backward(name, dy, x, axis, dtype, x.shape[axis])


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_extreme_values(isa, dtype, axis):
    rows = [[1e4, 0.0, -1e4, 3.0], [1e4, 1e4, 1e4, 1e4], [-1e4, -1e4, -1e4, -1e4], [0.0, -np.inf, 1.0, -np.inf],
            [np.inf, 0.0, 1.0, 2.0], [np.nan, 0.0, 1.0, 2.0], [-np.inf] * 4, [80.0, 90.0, 100.0, 700.0]]
    x = np.array(rows, dtype=dtype)
    x = x if axis == -1 else np.ascontiguousarray(x.T)
    dy = np.linspace(-1, 1, x.size).reshape(x.shape).astype(dtype)
    with np.errstate(all="ignore"):
        for name in ("softmax", "log_softmax"):
            f, rf, b, rb = _fn(name)
            assert_close(f(x, axis=axis), rf(x, axis=axis), dtype, k=4, name=name)
            _check_softmax_backward(name, dy, x, axis, dtype, 4)
    s = ops.softmax(x, axis=axis)
    finite_rows = np.all(np.isfinite(x), axis=axis)
    assert np.all(np.isfinite(np.compress(finite_rows, s, axis=1 - (axis % 2)))), "softmax of finite rows must be finite"


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu", "sigmoid", "tanh"])
def test_activation_backward_from_output(isa, dtype, rng, activation):
    z = random(rng, (37, 19), dtype, -3, 3)
    y = act_forward(z, activation, 0.1)
    dy = random(rng, z.shape, dtype)
    got = activation_backward_from_output(dy, y, activation, 0.1)
    assert got.flags.c_contiguous and got.dtype == dtype
    assert_close(got, dy * act_grad_from_output(y, activation, 0.1), dtype)
    got_t = activation_backward_from_output(dy.T, y.T, activation, 0.1)  # any layout
    assert_close(got_t, (dy * act_grad_from_output(y, activation, 0.1)).T, dtype)


@pytest.mark.parametrize("name,kw", ELEMENTWISE + [("softmax", {}), ("log_softmax", {}), ("softmax", dict(axis=0))],
                         ids=EW_IDS + ["softmax", "log_softmax", "softmax-axis0"])
def test_reference_backward_gradcheck(rng, name, kw):
    x = rng.uniform(-2, 2, (3, 4))
    x[np.abs(x) < 0.05] = 0.3  # keep finite differences away from the kinks of relu / leaky_relu / elu
    f, b = getattr(ref, name), getattr(ref, name + "_backward")
    assert nnx.gradcheck(lambda v: f(v, **kw), [x], lambda dy, v: b(dy, v, **kw))


def test_ops_backward_gradcheck_float64(isa, rng):
    # The C++ backward itself, in float64, against finite differences of the C++ forward.
    x = rng.uniform(-2, 2, (2, 5))
    x[np.abs(x) < 0.05] = 0.3
    for name, kw in ELEMENTWISE + [("softmax", dict(axis=0)), ("log_softmax", {})]:
        f, b = getattr(ops, name), getattr(ops, name + "_backward")
        assert nnx.gradcheck(lambda v: f(v, **kw), [x], lambda dy, v: b(dy, v, **kw))


@pytest.mark.parametrize("activation,code", [(None, 0), ("relu", 1), ("leaky_relu", 2), ("sigmoid", 3), ("tanh", 4)])
def test_act_forward_inplace(isa, dtype, rng, activation, code):
    # The single-threaded in-place entry point the GEMM/conv epilogues may call (cpp/act/act.h).
    z = random(rng, (7, 13), dtype, -5, 5)
    x = z.copy()
    nnx._backend._C.act_forward_inplace(x, code, 0.1)
    assert_close(x, act_forward(z, activation, 0.1), dtype)


def test_many_dimensions(isa, rng):
    # More dimensions than the extension's array views hold (8): the ops pass flat / 3-D views.
    x = random(rng, (2, 1, 3, 1, 2, 1, 2, 1, 3, 2), np.float64, -3, 3)
    dy = random(rng, x.shape, np.float64)
    _check_fwd_bwd("tanh", {}, x, dy, np.float64)
    check_op(ops.softmax, ref.softmax, (x,), dict(axis=4), np.float64, k=2)
    _check_softmax_backward("log_softmax", dy, x, 8, np.float64, 3)


def test_errors():
    x32 = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="dy is float64 but x is float32|x is float32 but dy is float64|dy is float64"):
        ops.relu_backward(np.ones((3, 4)), x32)
    with pytest.raises(ValueError, match="dy: expected shape \\(3, 4\\)"):
        ops.sigmoid_backward(np.ones((4, 3), np.float32), x32)
    with pytest.raises(TypeError, match="x: expected a float32 or float64 array"):
        ops.tanh(np.ones(3, np.int32))
    with pytest.raises(ValueError, match="axis: expected an axis in \\[-2, 1\\]"):
        ops.softmax(x32, axis=2)
    with pytest.raises(TypeError, match="axis: expected an int"):
        ops.log_softmax(x32, axis=1.0)
    with pytest.raises(ValueError, match="x: expected an array with at least 1 dimension"):
        ops.softmax(np.float32(1.0))
    with pytest.raises(TypeError, match="negative_slope: expected a real number"):
        ops.leaky_relu(x32, negative_slope="0.1")
    with pytest.raises(TypeError, match="alpha: expected a real number"):
        ops.elu(x32, alpha=None)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=4), data=st.data())
def test_hypothesis_random_shapes(shape, data):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    isa = data.draw(st.sampled_from(["portable", nnx.cpu_info()["detected_isa"]]))
    before = nnx.cpu_info()["active_isa"]
    nnx.set_isa(isa)
    try:
        rng = np.random.default_rng(len(shape))
        x = random(rng, shape, dtype, -8, 8)
        dy = random(rng, shape, dtype)
        name, kw = data.draw(st.sampled_from(ELEMENTWISE))
        _check_fwd_bwd(name, kw, x, dy, dtype)
        axis = data.draw(st.integers(-len(shape), len(shape) - 1))
        for sm in ("softmax", "log_softmax"):
            f, rf, b, rb = _fn(sm)
            check_op(f, rf, (x,), dict(axis=axis), dtype, k=shape[axis], name=sm)
            _check_softmax_backward(sm, dy, x, axis, dtype, shape[axis])
    finally:
        nnx.set_isa(before)


def _assert_avx512_gives_the_avx2_bits(run):
    """run() -> a tuple of arrays; computed on the AVX2 and on the AVX-512 kernels, bitwise equal (NaN = NaN)."""
    if not has_isa("avx512"):
        pytest.skip("this CPU has no AVX-512")
    out = {}
    before = nnx.cpu_info()["active_isa"]
    try:
        with np.errstate(all="ignore"):
            for isa in ("avx2", "avx512"):
                nnx.set_isa(isa)
                out[isa] = run()
    finally:
        nnx.set_isa(before)
    assert len(out["avx2"]) == len(out["avx512"])
    for a, b in zip(out["avx2"], out["avx512"]):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 23, 24, 31, 32, 33, 1000])
@pytest.mark.parametrize("axis", [-1, 0])
def test_avx512_softmax_gives_the_avx2_bits(rng, n, axis):
    """The float32 AVX-512 softmax kernels sum a row as AVX2's two accumulators do (their halves of one zmm
    register, the ragged tail in blocks of 8) and a column lane by lane: softmax, log_softmax and their
    backwards bitwise equal to AVX2's on every tail length, with extreme values among them."""
    rows = 5
    x = random(rng, (rows, n), np.float32) * 8
    x[1, :] = np.array([88.5, -88.5, 100.0, -100.0, 1e4, -1e4, 0.0, -0.0, 1e-30, -103.9, -104.3, -104.6] * n,
                       np.float32)[:n]
    x[2, n // 2] = np.inf
    x[3, (n - 1) // 3] = np.nan
    x[4, -1] = -np.inf
    dy = random(rng, x.shape, np.float32)
    if axis == 0:
        x, dy = x.T.copy(), dy.T.copy()
    _assert_avx512_gives_the_avx2_bits(
        lambda: tuple(f(x, axis=axis) for f in (ops.softmax, ops.log_softmax))
        + tuple(f(dy, x, axis=axis) for f in (ops.softmax_backward, ops.log_softmax_backward))
        + tuple(b(dy, None, axis=axis, y=f(x, axis=axis))
                for f, b in ((ops.softmax, ops.softmax_backward), (ops.log_softmax, ops.log_softmax_backward))))


@pytest.mark.parametrize("name,kw", ELEMENTWISE, ids=EW_IDS)
@pytest.mark.parametrize("n", [5, 16, 69, 1031])
def test_avx512_elementwise_gives_the_avx2_bits(rng, name, kw, n):
    """The float32 AVX-512 kernels compute each element as an AVX2 lane does (same polynomial, same
    steps), including extreme values and the ragged tails of masked loads: bitwise equal outputs."""
    # -103.9 .. -104.7: exp's last subnormal and the first results AVX-512 zeroes by mask (vec_avx512.h).
    vals = np.array([0.0, -0.0, 1e-30, 88.5, -88.5, 100.0, -100.0, 1e4, -1e4, np.inf, -np.inf, np.nan,
                     -103.9, -104.3, -104.5, -104.7], np.float32)
    x = np.concatenate([vals, random(rng, (n,), np.float32) * 8])[:n]
    dy = random(rng, x.shape, np.float32)

    def run():
        y = getattr(ops, name)(x, **kw)
        out = (y, getattr(ops, name + "_backward")(dy, x, **kw))
        if name != "elu":  # the fused epilogues' activations
            out += (activation_backward_from_output(dy, y, name, kw.get("negative_slope", 0.01)),)
        return out
    _assert_avx512_gives_the_avx2_bits(run)


def test_avx512_double_exp_near_underflow_gives_the_avx2_bits():
    """float64 exp around its last subnormal (e^-744.4 .. e^-745.2) and the results AVX-512 zeroes by mask (from
    e^-745.5): sigmoid and elu, and softmax rows spanning that range, bitwise as AVX2's."""
    x = np.array([-744.0, -744.4, -745.0, -745.1, -745.2, -745.4, -745.5, -745.6, -750.0, -800.0, 0.0, np.nan],
                 np.float64)
    rows = np.stack([x, x[::-1].copy()])
    _assert_avx512_gives_the_avx2_bits(
        lambda: (ops.sigmoid(x), ops.elu(x), ops.softmax(rows, axis=-1), ops.log_softmax(rows, axis=-1)))


# Results of at least STREAM_STORE_MIN_BYTES (cpp/common/stream_store.h) are written with streaming stores, from
# an L1 buffer or straight from the arithmetic, after a head that brings them to a vector boundary: the same
# values as through the caches. Each big result is checked against the reference; written by the raw kernels
# into outputs that start 0 to 15 elements past a 64-byte boundary (every head length), it must keep the same
# bits, and so must the same op on slices too small to stream (the first, one across the threads' split, the
# last with its tail).
STREAM_MIN = nnx._backend._C.STREAM_STORE_MIN_BYTES


def _same_bits_at_every_head(want, run, dtype):
    for k in ((0, 1, 6, 15) if dtype == np.float32 else (0, 1, 3, 7)):
        out = past_boundary(want.shape, dtype, k)
        run(out)
        assert np.array_equal(out, want, equal_nan=True), f"output {k} elements past a 64-byte boundary"


def _slices_agree(big, small_op, n):
    for lo, hi in ((0, 1000), (n // 2 - 777, n // 2 + 555), (n - 1234, n)):
        assert np.array_equal(big[lo:hi], small_op(slice(lo, hi)), equal_nan=True), (lo, hi)


@pytest.mark.parametrize("name,kw", [("relu", {}), ("sigmoid", {}), ("elu", dict(alpha=0.5))], ids=str)
def test_elementwise_results_past_the_caches(isa, dtype, name, kw):
    # A light map and a heavy one (both through the L1 buffer), and one with a parameter.
    n = STREAM_MIN // np.dtype(dtype).itemsize + 37
    rng = np.random.default_rng(7)
    x = random(rng, (n,), dtype, -6, 6)
    x[:5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    dy = random(rng, (n,), dtype)
    f, rf, b, rb = _fn(name)
    C = nnx._backend._C
    code = C.ACTIVATION_CODES[name]
    param = float(next(iter(kw.values()), {"leaky_relu": 0.01, "elu": 1.0}.get(name, 0.0)))  # the ops' default
    with np.errstate(all="ignore"):
        y = check_op(f, rf, (x,), kw, dtype, name=name)
        dx = check_op(b, rb, (dy, x), kw, dtype, name=name + "_backward")
    _same_bits_at_every_head(y, lambda out: C.act_forward(x, out, code, param), dtype)
    _same_bits_at_every_head(dx, lambda out: C.act_backward(dy, x, out, code, param), dtype)
    _slices_agree(y, lambda s: f(x[s], **kw), n)
    _slices_agree(dx, lambda s: b(dy[s], x[s], **kw), n)
    if name != "elu":  # the fused epilogues' backward from the output
        dz = activation_backward_from_output(dy, y, name, param)
        assert_close(dz, dy * act_grad_from_output(y, name, param), dtype)
        _same_bits_at_every_head(dz, lambda out: C.act_backward_from_output(dy, y, out, code, param), dtype)
        _slices_agree(dz, lambda s: activation_backward_from_output(dy[s], y[s], name, param), n)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("cols", [1000, 3001])  # softmax streams rows of up to 8 KiB from a buffer, longer ones not
def test_softmax_rows_past_the_caches(isa, dtype, name, cols):
    rows = STREAM_MIN // (np.dtype(dtype).itemsize * cols) + 3
    rng = np.random.default_rng(8)
    x = random(rng, (rows, cols), dtype, -8, 8)
    dy = random(rng, x.shape, dtype)
    f, rf, b, rb = _fn(name)
    log, C = name == "log_softmax", nnx._backend._C
    y = check_op(f, rf, (x,), dict(axis=1), dtype, k=cols, name=name)
    dx = b(dy, None, axis=1, y=y)
    _check_softmax_gradient(name, dx, dy, x, 1, dtype, cols)
    v = (rows, cols, 1)
    _same_bits_at_every_head(y, lambda out: C.softmax(x.reshape(v), out.reshape(v), 1, log), dtype)
    _same_bits_at_every_head(
        dx, lambda out: C.softmax_backward_from_output(dy.reshape(v), y.reshape(v), out.reshape(v), 1, log), dtype)
    small = max(1, 4000 // cols)
    for lo in (0, rows // 2, rows - small):
        s = slice(lo, lo + small)
        assert np.array_equal(y[s], f(x[s], axis=1))
        assert np.array_equal(dx[s], b(dy[s], None, axis=1, y=y[s]))
