import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nnx
from nnx import ops, reference as ref
from optest import assert_close, check_op, random

CLASS_LOSSES = [("cross_entropy", {}), ("multiclass_hinge_loss", {}), ("multiclass_hinge_loss", dict(margin=0.3))]
PAIR_LOSSES = ["mse_loss", "binary_cross_entropy_with_logits"]
CLASS_SHAPES = [(1, 1), (1, 5), (7, 3), (13, 10), (64, 1000), (257, 17), (0, 5), (3000, 7)]
PAIR_SHAPES = [(1,), (7,), (3, 5), (2, 3, 4), (0,), (4, 0), (100003,), (2, 1, 3, 1, 2, 1, 2, 1, 3)]


def _targets(rng, n, c):
    return rng.integers(0, c, n) if c else np.zeros(n, np.int64)


def _pair_args(rng, name, shape, dtype):
    pred = random(rng, shape, dtype, -4, 4)
    if name == "mse_loss":
        return pred, random(rng, shape, dtype, -4, 4)
    return pred, random(rng, shape, dtype, 0, 1)


def _check_loss(name, args, kw, dtype, k, dy=0.7):
    for reduction in ("mean", "sum"):
        kw2 = dict(kw, reduction=reduction)
        got = check_op(getattr(ops, name), getattr(ref, name), args, kw2, dtype, k=k, name=name)
        assert got.shape == () and got.dtype == dtype
        check_op(getattr(ops, name + "_backward"), getattr(ref, name + "_backward"), (dy,) + tuple(args), kw2, dtype,
                 k=k, name=name + "_backward")


@pytest.mark.parametrize("name,kw", CLASS_LOSSES, ids=["ce", "hinge", "hinge-m0.3"])
@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
def test_class_losses_match_reference(isa, dtype, rng, name, kw, shape):
    n, c = shape
    z = random(rng, shape, dtype, -5, 5)
    _check_loss(name, (z, _targets(rng, n, c)), kw, dtype, k=n * c)


@pytest.mark.parametrize("name", PAIR_LOSSES)
@pytest.mark.parametrize("shape", PAIR_SHAPES, ids=str)
def test_pair_losses_match_reference(isa, dtype, rng, name, shape):
    _check_loss(name, _pair_args(rng, name, shape, dtype), {}, dtype, k=int(np.prod(shape)))


WHOLE_SHAPES = [(), (1,), (7,), (3, 5), (0,), (4, 0), (4095,), (4097,), (100003,), (5, 64, 33)]


@pytest.mark.parametrize("name", ["sum", "mean"])
@pytest.mark.parametrize("shape", WHOLE_SHAPES, ids=str)
def test_whole_sums_match_reference(isa, dtype, rng, name, shape):
    # Terms of one sign, so that the float64 reference bounds the kernel's rounding relative to the result.
    x = random(rng, shape, dtype, 0.5, 3)
    k = max(1, int(np.prod(shape)))
    got = check_op(getattr(ops, name), getattr(ref, name), (x,), {}, dtype, k=k, name=name)
    assert got.shape == () and got.dtype == dtype
    if name == "mean" and x.size == 0:
        assert np.isnan(got)  # 0 / 0, as NumPy and PyTorch
    check_op(getattr(ops, name + "_backward"), getattr(ref, name + "_backward"), (0.7, x), {}, dtype, k=k,
             name=name + "_backward")
    if x.ndim:  # a transposed or reversed view: summed from a contiguous copy
        check_op(getattr(ops, name), getattr(ref, name), (x.T if x.ndim > 1 else x[::-1],), {}, dtype, k=k, name=name)


@pytest.mark.parametrize("n", [4095, 4097, 100003, 1 << 20])
def test_whole_sums_same_bits_for_any_thread_count(isa, dtype, rng, n):
    # Chunks of a fixed size, each summed by one thread, their sums added in chunk order.
    x = random(rng, (n,), dtype, -3, 3)
    before = nnx.get_num_threads()
    try:
        seen = set()
        for threads in (1, 2, 3, 5):
            nnx.set_num_threads(threads)
            seen.add(ops.sum(x).tobytes() + ops.mean(x).tobytes())
    finally:
        nnx.set_num_threads(before)
    assert len(seen) == 1


def test_losses_any_layout(isa, dtype, rng):
    big = random(rng, (40, 30), dtype, -3, 3)
    t = rng.integers(0, 40, 60)[::2]  # (30,) strided int64 targets
    for z in (big.T, big[::-1, ::-1].T):  # (30, 40): transposed, negative strides
        for name, kw in CLASS_LOSSES:
            _check_loss(name, (z, t.astype(np.int32)), kw, dtype, k=z.size)
    ro = big.copy()
    ro.setflags(write=False)
    for name in PAIR_LOSSES:
        p, q = _pair_args(rng, name, (30, 40), dtype)
        _check_loss(name, (ro.T, q[::-1]), {}, dtype, k=ro.size)
        _check_loss(name, (np.broadcast_to(p[:1], p.shape), q), {}, dtype, k=p.size)


def test_dy_forms(isa, dtype, rng):
    z = random(rng, (5, 4), dtype)
    t = rng.integers(0, 4, 5)
    want = ref.cross_entropy_backward(1.5, z, t)
    for dy in (1.5, np.float32(1.5), np.array(1.5), np.array([1.5]), np.asarray(1.5, dtype)):
        assert_close(ops.cross_entropy_backward(dy, z, t), want, dtype)


def test_extreme_values(isa, dtype):
    z = np.array([[1e4, 0, -1e4], [-1e4, -1e4, 1e4], [1e4, 1e4, 1e4], [88.0, 89.0, 700.0], [0, 0, 0]], dtype)
    t = np.array([0, 0, 2, 1, 1])
    for name, kw in CLASS_LOSSES:
        _check_loss(name, (z, t), kw, dtype, k=z.size)
    assert np.isfinite(ops.cross_entropy(z, t)), "cross_entropy must not overflow on large logits"
    zb = np.array([1e4, -1e4, 100.0, -100.0, 50.0, -50.0, 0.0, 1e-8], dtype)
    tb = np.array([0, 1, 0, 1, 0.5, 0.5, 1, 0], dtype)
    _check_loss("binary_cross_entropy_with_logits", (zb, tb), {}, dtype, k=zb.size)
    assert np.isfinite(ops.binary_cross_entropy_with_logits(zb, tb))
    with np.errstate(all="ignore"):
        znan = z.copy()
        znan[2, 1] = np.nan
        for name, kw in CLASS_LOSSES:
            assert np.isnan(getattr(ops, name)(znan, t, **kw)), f"{name}: NaN must propagate to the loss"
            assert np.isnan(getattr(ref, name)(znan, t, **kw))


def test_empty_batch(isa, dtype):
    z = np.zeros((0, 4), dtype)
    t = np.zeros(0, np.int64)
    for name, kw in CLASS_LOSSES:
        assert np.isnan(getattr(ops, name)(z, t, **kw)), "mean over an empty batch is NaN (as PyTorch)"
        assert getattr(ops, name)(z, t, reduction="sum", **kw) == 0
        g = getattr(ops, name + "_backward")(1.0, z, t, **kw)
        assert g.shape == (0, 4) and g.dtype == dtype
    for name in PAIR_LOSSES:
        e = np.zeros((0, 3), dtype)
        assert np.isnan(getattr(ops, name)(e, e)) and getattr(ops, name)(e, e, reduction="sum") == 0


@pytest.mark.parametrize("name,kw", CLASS_LOSSES, ids=["ce", "hinge", "hinge-m0.3"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reference_class_loss_gradcheck(rng, name, kw, reduction):
    z = rng.uniform(-2, 2, (4, 5))
    t = rng.integers(0, 5, 4)
    f, b = getattr(ref, name), getattr(ref, name + "_backward")
    assert nnx.gradcheck(lambda v, tt: f(v, tt, reduction=reduction, **kw), [z, t],
                         lambda dy, v, tt: b(dy, v, tt, reduction=reduction, **kw), wrt=[0])


@pytest.mark.parametrize("name", PAIR_LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reference_pair_loss_gradcheck(rng, name, reduction):
    p, q = _pair_args(rng, name, (3, 4), np.float64)
    f, b = getattr(ref, name), getattr(ref, name + "_backward")
    assert nnx.gradcheck(lambda v, tt: f(v, tt, reduction=reduction), [p, q],
                         lambda dy, v, tt: b(dy, v, tt, reduction=reduction), wrt=[0])


def test_ops_backward_gradcheck_float64(isa, rng):
    z = rng.uniform(-2, 2, (3, 4))
    t = rng.integers(0, 4, 3)
    for name, kw in CLASS_LOSSES:
        f, b = getattr(ops, name), getattr(ops, name + "_backward")
        assert nnx.gradcheck(lambda v, tt: f(v, tt, **kw), [z, t], lambda dy, v, tt: b(dy, v, tt, **kw), wrt=[0])
    for name in PAIR_LOSSES:
        p, q = _pair_args(rng, name, (3, 4), np.float64)
        f, b = getattr(ops, name), getattr(ops, name + "_backward")
        assert nnx.gradcheck(f, [p, q], lambda dy, v, tt: b(dy, v, tt), wrt=[0])


def test_errors():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match="target: expected integer class indices"):
        ops.cross_entropy(z, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="target: expected shape \\(3,\\)"):
        ops.cross_entropy(z, np.zeros((3, 1), np.int64))
    with pytest.raises(ValueError, match="target: class indices must lie in \\[0, 4\\), found 4"):
        ops.multiclass_hinge_loss(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="target: class indices must lie in \\[0, 4\\), found -1"):
        ops.cross_entropy_backward(1.0, z, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="logits: expected a 2-D array"):
        ops.cross_entropy(np.zeros(4, np.float32), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="reduction: expected 'mean' or 'sum', got 'max'"):
        ops.mse_loss(z, z, reduction="max")
    with pytest.raises(TypeError, match="pred is float32 but target is float64"):
        ops.mse_loss(z, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="target: expected shape \\(3, 4\\)"):
        ops.binary_cross_entropy_with_logits(z, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="dy: expected a scalar upstream gradient"):
        ops.mse_loss_backward(np.ones(2), z, z)
    with pytest.raises(TypeError, match="margin: expected a real number"):
        ops.multiclass_hinge_loss(z, np.zeros(3, np.int64), margin="1")
    # The extension checks what the kernels rely on even when called directly.
    with pytest.raises(ValueError, match="target"):
        nnx._backend._C.cross_entropy_sum(z, np.array([0, 9, 1], np.int64))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 40), c=st.integers(1, 33), data=st.data())
def test_hypothesis_random_shapes(n, c, data):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    isa = data.draw(st.sampled_from(["portable", nnx.cpu_info()["detected_isa"]]))
    before = nnx.cpu_info()["active_isa"]
    nnx.set_isa(isa)
    try:
        rng = np.random.default_rng(n * 100 + c)
        z = random(rng, (n, c), dtype, -6, 6)
        name, kw = data.draw(st.sampled_from(CLASS_LOSSES))
        _check_loss(name, (z, _targets(rng, n, c)), kw, dtype, k=n * c)
        pname = data.draw(st.sampled_from(PAIR_LOSSES))
        _check_loss(pname, _pair_args(rng, pname, (n, c), dtype), {}, dtype, k=n * c)
    finally:
        nnx.set_isa(before)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 31, 33, 1000, 4097, 100003])
def test_avx512_bce_sum_gives_the_avx2_bits(dtype, rng, n):
    # loss_ukernels_avx512.cpp keeps the AVX2 kernel's lanes and order of additions: the same double sum,
    # through every tail (a 16- or 8-float step, a 4-double step, the scalar rest), with values at the
    # exponential's and the log's edges.
    from nnx._backend import _C
    from test_activation import _assert_avx512_gives_the_avx2_bits

    z = (rng.standard_normal(n) * rng.choice([1.0, 30.0, 200.0], n)).astype(dtype)
    t = rng.random(n).astype(dtype)
    z[: min(n, 6)] = np.array([0.0, -0.0, -110.0, 110.0, 0.3466, -750.0], dtype)[: min(n, 6)]

    def sums():
        return (np.float64(_C.bce_with_logits_sum(z, t, None, 1.0)), np.float64(_C.bce_with_logits_sum(z, t, None, n or 1)))

    _assert_avx512_gives_the_avx2_bits(sums)
