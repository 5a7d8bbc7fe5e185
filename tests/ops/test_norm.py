"""batch_norm and layer_norm: nnx.ops against nnx.reference (every ISA, both dtypes), finite differences,
PyTorch when installed, thread-count determinism and argument errors."""
import numpy as np
import pytest

import nnx
from nnx import ops, reference as ref
from optest import assert_close, past_boundary, random, rtol_for as optest_rtol

# (N, C, *spatial): (N, C) row blocks (several blocks, several column groups), planes smaller and larger
# than one reduction chunk (4096), odd sizes that leave vector tails.
BN_SHAPES = [(5, 3), (64, 37), (300, 600), (2, 3), (4, 6, 7), (3, 5, 4, 4), (2, 3, 9, 11), (2, 2, 4100),
             (8, 16, 28, 28)]


def _bn_args(rng, shape, dtype, affine=True, offset=0.0):
    c = shape[1]
    x = (random(rng, shape, dtype, -2, 2) + dtype(offset)).astype(dtype)
    w = random(rng, (c,), dtype, 0.5, 1.5) if affine else None
    b = random(rng, (c,), dtype) if affine else None
    rm = random(rng, (c,), dtype)
    rv = random(rng, (c,), dtype, 0.5, 2.0)
    return x, w, b, rm, rv


def _count(shape):
    return int(np.prod(shape)) // shape[1]


def _assert_dx_close(got, dy, x, w, mean, invstd, y, activation, dtype, k):
    """dx of batch norm in training cancels (g - mean(g) - xhat mean(g xhat)): with few values per channel
    it is rounding noise of the size of the TERMS (for n = 2 it is exactly 0 in exact arithmetic). So the
    kernel is compared with the reference in float64 within rtol times (|dx| + the terms' magnitude)."""
    f64 = [None if a is None else np.asarray(a, np.float64) for a in (dy, x, w, mean, invstd, y)]
    dy64, x64, w64, m64, s64, y64 = f64
    want = ref.batch_norm_backward(dy64, x64, w64, None, activation=activation, y=y64, mean=m64, invstd=s64)[0]
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    g = dy64 * (y64 > 0) if activation == "relu" else dy64
    axes = (0,) + tuple(range(2, x.ndim))
    xhat = (x64 - m64.reshape(bshape)) * s64.reshape(bshape)
    scale = np.abs((w64 if w64 is not None else 1.0) * s64).reshape(bshape)
    terms = scale * (np.abs(g) + np.abs(g).mean(axis=axes, keepdims=True)
                     + np.abs(xhat) * np.abs(g * xhat).mean(axis=axes, keepdims=True))
    err = np.abs(got.astype(np.float64) - want)
    bound = optest_rtol(dtype, k) * (np.abs(want) + terms) + np.finfo(dtype).tiny
    bad = ~(err <= bound)
    assert not bad.any(), (f"dx: {int(bad.sum())} of {bad.size} off; first: got {got[bad][0]!r}, want "
                           f"{want[bad][0]!r}, bound {bound[bad][0]!r}")


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_batch_norm_training_matches_reference(isa, dtype, rng, shape, activation):
    x, w, b, rm, rv = _bn_args(rng, shape, dtype, offset=0.3)
    rm2, rv2 = rm.copy(), rv.copy()
    y, mean, invstd = ops.batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5, activation=activation, return_stats=True)
    yr, meanr, invstdr = ref.batch_norm(x, w, b, rm2, rv2, True, 0.1, 1e-5, activation=activation,
                                        return_stats=True)
    k = _count(shape)
    assert_close(y, yr, dtype, k, "y")
    assert_close(mean, meanr, dtype, k, "mean")
    assert_close(invstd, invstdr, dtype, k, "invstd")
    assert_close(rm, rm2, dtype, k, "running_mean")
    assert_close(rv, rv2, dtype, k, "running_var")
    dy = random(rng, shape, dtype)
    got = ops.batch_norm_backward(dy, x, w, b, activation=activation, y=y, mean=mean, invstd=invstd)
    want = ref.batch_norm_backward(dy, x, w, b, activation=activation, y=yr, mean=meanr, invstd=invstdr)
    _assert_dx_close(got[0], dy, x, w, mean, invstd, y, activation, dtype, k)
    for name, g, r in zip(("dweight", "dbias"), got[1:], want[1:]):
        assert_close(g, r, dtype, k, name)
    assert got[0].flags.c_contiguous
    # Without the saved statistics the backward recomputes them from x: the same gradients.
    again = ops.batch_norm_backward(dy, x, w, b, activation=activation, y=y)
    for g, a in zip(got, again):
        np.testing.assert_array_equal(g, a)


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_batch_norm_eval_matches_reference(isa, dtype, rng, shape, activation):
    x, w, b, rm, rv = _bn_args(rng, shape, dtype)
    before = rm.copy(), rv.copy()
    y = ops.batch_norm(x, w, b, rm, rv, False, activation=activation)
    yr = ref.batch_norm(x, w, b, rm, rv, False, activation=activation)
    assert_close(y, yr, dtype, 1, "y")
    np.testing.assert_array_equal(rm, before[0])  # evaluation never moves the running statistics
    np.testing.assert_array_equal(rv, before[1])
    dy = random(rng, shape, dtype)
    got = ops.batch_norm_backward(dy, x, w, b, rm, rv, False, activation=activation, y=y)
    want = ref.batch_norm_backward(dy, x, w, b, rm, rv, False, activation=activation, y=yr)
    for name, g, r in zip(("dx", "dweight", "dbias"), got, want):
        assert_close(g, r, dtype, _count(shape), name)


def test_batch_norm_without_affine_and_needs(isa, dtype, rng):
    x, _, _, _, _ = _bn_args(rng, (6, 4, 5, 5), dtype, affine=False)
    y = ops.batch_norm(x)
    assert_close(y, ref.batch_norm(x), dtype, 150, "y")
    axes = (0, 2, 3)
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(y.var(axis=axes), 1, rtol=1e-4)  # var / (var + eps), var about 1/3
    dy = random(rng, x.shape, dtype)
    dx, dw, db = ops.batch_norm_backward(dy, x)
    assert dw is None and db is None
    _, mean, invstd = ops.batch_norm(x, return_stats=True)
    _assert_dx_close(dx, dy, x, None, mean, invstd, None, None, dtype, 150)
    w, b = np.ones(4, dtype), np.zeros(4, dtype)
    dx2, dw2, db2 = ops.batch_norm_backward(dy, x, w, b, needs=(False, True, False))
    assert dx2 is None and db2 is None and dw2.shape == (4,)


def test_batch_norm_large_offset_variance(isa, rng):
    # float32 values around 1e4 with unit spread: E[x^2] - E[x]^2 would lose every digit of the variance.
    x = (1e4 + rng.standard_normal((32, 3, 40, 40))).astype(np.float32)
    _, mean, invstd = ops.batch_norm(x, return_stats=True)
    x64 = x.astype(np.float64)
    var64 = x64.var(axis=(0, 2, 3))
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(1 / invstd.astype(np.float64) ** 2 - 1e-5, var64, rtol=1e-4)


def test_batch_norm_any_layout_and_running_views(isa, dtype, rng):
    big = random(rng, (10, 6, 7, 8), dtype)
    x = big[::2, :, 1:, ::-1]
    store = np.zeros((2, 12), dtype)
    store[1] = 1
    rm, rv = store[0, ::2], store[1, ::2]  # non-contiguous (C,) views: updated in place all the same
    rm2, rv2 = np.array(rm), np.array(rv)
    y = ops.batch_norm(x, None, None, rm, rv, True, 0.2)
    yr = ref.batch_norm(np.ascontiguousarray(x), None, None, rm2, rv2, True, 0.2)
    assert_close(y, yr, dtype, 240, "y")
    assert_close(rm, rm2, dtype, 240, "running_mean")
    assert_close(rv, rv2, dtype, 240, "running_var")
    ro = np.array(x)
    ro.setflags(write=False)
    assert_close(ops.batch_norm(ro), ref.batch_norm(ro), dtype, 240, "read-only x")
    rmo, rvo = np.zeros(6, dtype), np.ones(6, dtype)
    rmo.setflags(write=False)
    rvo.setflags(write=False)
    assert_close(ops.batch_norm(ro, None, None, rmo, rvo, False), ref.batch_norm(ro, None, None, rmo, rvo, False),
                 dtype, 1, "read-only running stats in evaluation")


def test_batch_norm_running_stats_as_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = random(rng, (16, 5, 6, 6), np.float32)
    rm, rv = np.zeros(5, np.float32), np.ones(5, np.float32)
    trm, trv = torch.zeros(5), torch.ones(5)
    w, b = random(rng, (5,), np.float32, 0.5, 1.5), random(rng, (5,), np.float32)
    for _ in range(3):
        y = ops.batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
        ty = torch.nn.functional.batch_norm(torch.from_numpy(x), trm, trv, torch.from_numpy(w), torch.from_numpy(b),
                                            True, 0.1, 1e-5)
        assert_close(y, ty.numpy(), np.float32, 576, "y")
    assert_close(rm, trm.numpy(), np.float32, 576, "running_mean")
    assert_close(rv, trv.numpy(), np.float32, 576, "running_var")
    ye = ops.batch_norm(x, w, b, rm, rv, False)
    tye = torch.nn.functional.batch_norm(torch.from_numpy(x), trm, trv, torch.from_numpy(w), torch.from_numpy(b), False)
    assert_close(ye, tye.numpy(), np.float32, 1, "eval y")


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 6, 6)], ids=str)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_batch_norm_gradients_as_pytorch(rng, shape, activation):
    torch = pytest.importorskip("torch")
    x, w, b, _, _ = _bn_args(rng, shape, np.float64)
    dy = random(rng, shape, np.float64)
    y, mean, invstd = ops.batch_norm(x, w, b, activation=activation, return_stats=True)
    got = ops.batch_norm_backward(dy, x, w, b, activation=activation, y=y, mean=mean, invstd=invstd)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.batch_norm(tx, None, None, tw, tb, True, 0.1, 1e-5)
    if activation == "relu":
        ty = torch.relu(ty)
    ty.backward(torch.from_numpy(dy))
    assert_close(y, ty.detach().numpy(), np.float64, 1, "y")
    for name, g, t in zip(("dx", "dweight", "dbias"), got, (tx, tw, tb)):
        assert_close(g, t.grad.numpy(), np.float64, _count(shape), name)


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(isa, rng, activation, training):
    x, w, b, rm, rv = _bn_args(rng, (4, 3, 3, 2), np.float64)
    kw = dict(activation=activation)

    def f(xv, wv, bv):
        return ops.batch_norm(xv, wv, bv, rm.copy(), rv.copy(), training, **kw)

    def back(dy, xv, wv, bv):
        return ops.batch_norm_backward(dy, xv, wv, bv, rm, rv, training, y=f(xv, wv, bv), **kw)

    assert nnx.gradcheck(f, [x, w, b], back)
    assert nnx.gradcheck(lambda xv, wv, bv: ref.batch_norm(xv, wv, bv, rm.copy(), rv.copy(), training, **kw),
                         [x, w, b],
                         lambda dy, xv, wv, bv: ref.batch_norm_backward(
                             dy, xv, wv, bv, rm, rv, training,
                             y=ref.batch_norm(xv, wv, bv, rm.copy(), rv.copy(), training, **kw), **kw))


LN_CASES = [((6, 10), 10), ((4, 7), (7,)), ((3, 2, 5, 6), (5, 6)), ((2, 3, 37), 37), ((8, 5000), 5000),
            ((300, 40), 40), ((9,), 9)]


@pytest.mark.parametrize("shape,ns", LN_CASES, ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_reference(isa, dtype, rng, shape, ns, affine):
    nshape = (ns,) if isinstance(ns, int) else ns
    x = random(rng, shape, dtype, -2, 3)
    w = random(rng, nshape, dtype, 0.5, 1.5) if affine else None
    b = random(rng, nshape, dtype) if affine else None
    d = int(np.prod(nshape))
    y, mean, invstd = ops.layer_norm(x, ns, w, b, 1e-5, return_stats=True)
    yr, meanr, invstdr = ref.layer_norm(x, ns, w, b, 1e-5, return_stats=True)
    assert_close(y, yr, dtype, d, "y")
    assert_close(mean, meanr, dtype, d, "mean")
    assert_close(invstd, invstdr, dtype, d, "invstd")
    dy = random(rng, shape, dtype)
    got = ops.layer_norm_backward(dy, x, ns, w, b, 1e-5, mean=mean, invstd=invstd)
    want = ref.layer_norm_backward(dy, x, ns, w, b, 1e-5)
    rows = x.size // d
    for name, g, r, k in zip(("dx", "dweight", "dbias"), got, want, (d, rows, rows)):
        if r is None:
            assert g is None, f"{name}: expected None without weight/bias"
            continue
        assert_close(g, r, dtype, k, name)
    for g, a in zip(got, ops.layer_norm_backward(dy, x, ns, w, b, 1e-5)):
        assert (g is None) == (a is None)
        if g is not None:
            np.testing.assert_array_equal(g, a)


def test_layer_norm_backward_of_a_view_dy_is_that_of_its_copy(dtype, rng):
    # The gradient of a mean over positions reaches a sequence model's LayerNorm broadcast (a stride-0 view), and a
    # transpose hands back a strided one: either gives the bits of the same dy made contiguous, and the reference's
    # values.
    x = random(rng, (4, 6, 24), dtype, -2, 3)
    w, b = random(rng, (24,), dtype, 0.5, 1.5), random(rng, (24,), dtype)
    _, mean, invstd = ops.layer_norm(x, 24, w, b, 1e-5, return_stats=True)
    assert mean.shape == invstd.shape == (4, 6)
    # One row for every row (a sum's or mean's gradient) runs as that row alone (layer_norm_backward's ldy = 0).
    for dy in (np.broadcast_to(random(rng, (4, 1, 24), dtype), x.shape), random(rng, (6, 4, 24), dtype).transpose(1, 0, 2),
               np.broadcast_to(random(rng, (24,), dtype), x.shape), np.broadcast_to(np.asarray(0.4, dtype), x.shape)):
        want = ref.layer_norm_backward(dy, x, 24, w, b, 1e-5)
        for needs in (None, (True, True, True)):  # the layers' fast path, and the general one (nnx.functional's)
            got = ops.layer_norm_backward(dy, x, 24, w, b, 1e-5, mean=mean, invstd=invstd, needs=needs)
            plain = ops.layer_norm_backward(np.ascontiguousarray(dy), x, 24, w, b, 1e-5, mean=mean, invstd=invstd,
                                            needs=needs)
            for g, p, r, k in zip(got, plain, want, (24, 24, 24)):
                np.testing.assert_array_equal(g, p)
                assert_close(g, r, dtype, k, "grad")
    # Normalised over the last two axes: the repeated row is 6 x 24.
    w2, b2 = random(rng, (6, 24), dtype, 0.5, 1.5), random(rng, (6, 24), dtype)
    dy = np.broadcast_to(random(rng, (6, 24), dtype), x.shape)
    got = ops.layer_norm_backward(dy, x, (6, 24), w2, b2, 1e-5)
    plain = ops.layer_norm_backward(np.ascontiguousarray(dy), x, (6, 24), w2, b2, 1e-5)
    for g, p, r in zip(got, plain, ref.layer_norm_backward(dy, x, (6, 24), w2, b2, 1e-5)):
        np.testing.assert_array_equal(g, p)
        assert_close(g, r, dtype, 144, "grad")


def test_layer_norm_results_past_the_caches(isa, dtype, rng):
    # A result of STREAM_STORE_MIN_BYTES or more is written with streaming stores from each row's first vector
    # boundary: rows of 517 start at every offset within a vector, and so does the output placed 0 .. 15
    # elements past a 64-byte boundary. The same bits as smaller (cached) calls on slices of rows.
    C = nnx._backend._C
    d = 517
    rows = C.STREAM_STORE_MIN_BYTES // (np.dtype(dtype).itemsize * d) + 3
    x = random(rng, (rows, d), dtype, -2, 3)
    w, b = random(rng, (d,), dtype, 0.5, 1.5), random(rng, (d,), dtype)
    y, mean, invstd = ops.layer_norm(x, d, w, b, 1e-5, return_stats=True)
    yr = ref.layer_norm(x[:2000], d, w, b, 1e-5)
    assert_close(y[:2000], yr, dtype, d, "y")
    for lo in (0, rows // 2 + 1, rows - 40):
        assert np.array_equal(y[lo:lo + 40], ops.layer_norm(x[lo:lo + 40], d, w, b, 1e-5)), lo
    for k in ((1, 6, 15) if dtype == np.float32 else (1, 3, 7)):
        out = past_boundary(x.shape, dtype, k)
        C.layer_norm(x, out, w, b, 1e-5, np.empty(rows, dtype), np.empty(rows, dtype))
        assert np.array_equal(out, y), f"output {k} elements past a 64-byte boundary"


def test_layer_norm_backward_past_the_caches(isa, dtype, rng):
    # The backward's dx streams past the caches at STREAM_STORE_MIN_BYTES, as the forward's y, while each row's
    # apply pass fetches the next row: the same dx bits as small (cached) calls on slices of rows, the weight and
    # bias gradients as the reference's sums.
    C = nnx._backend._C
    d = 517
    rows = C.STREAM_STORE_MIN_BYTES // (np.dtype(dtype).itemsize * d) + 3
    x, dy = random(rng, (rows, d), dtype, -2, 3), random(rng, (rows, d), dtype)
    w, b = random(rng, (d,), dtype, 0.5, 1.5), random(rng, (d,), dtype)
    _, mean, invstd = ops.layer_norm(x, d, w, b, 1e-5, return_stats=True)
    dx, dw, db = ops.layer_norm_backward(dy, x, d, w, b, 1e-5, mean=mean, invstd=invstd)
    rdx, rdw, rdb = ref.layer_norm_backward(dy, x, d, w, b, 1e-5)
    assert_close(dx[:2000], rdx[:2000], dtype, d, "dx")
    assert_close(dw, rdw, dtype, rows, "dweight")
    assert_close(db, rdb, dtype, rows, "dbias")
    for lo in (0, rows // 2 + 1, rows - 40):
        sl = slice(lo, lo + 40)
        small = ops.layer_norm_backward(dy[sl], x[sl], d, w, b, 1e-5, mean=mean[sl], invstd=invstd[sl])[0]
        assert np.array_equal(dx[sl], small), lo
    for k in ((1, 6, 15) if dtype == np.float32 else (1, 3, 7)):
        out = past_boundary(x.shape, dtype, k)
        C.layer_norm_backward(dy, x, out, w, mean, invstd, None, None)
        assert np.array_equal(out, dx), f"dx {k} elements past a 64-byte boundary"


def test_layer_norm_as_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = random(rng, (4, 3, 16), np.float64)
    w, b = random(rng, (16,), np.float64, 0.5, 1.5), random(rng, (16,), np.float64)
    dy = random(rng, x.shape, np.float64)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.layer_norm(tx, (16,), tw, tb, 1e-5)
    ty.backward(torch.from_numpy(dy))
    assert_close(ops.layer_norm(x, 16, w, b), ty.detach().numpy(), np.float64, 16, "y")
    for name, g, t in zip(("dx", "dweight", "dbias"), ops.layer_norm_backward(dy, x, 16, w, b), (tx, tw, tb)):
        assert_close(g, t.grad.numpy(), np.float64, 16, name)


def test_layer_norm_gradcheck(isa, rng):
    x = random(rng, (3, 2, 5), np.float64)
    w, b = random(rng, (2, 5), np.float64, 0.5, 1.5), random(rng, (2, 5), np.float64)
    assert nnx.gradcheck(lambda *a: ops.layer_norm(a[0], (2, 5), a[1], a[2]), [x, w, b],
                         lambda dy, *a: ops.layer_norm_backward(dy, a[0], (2, 5), a[1], a[2]))
    assert nnx.gradcheck(lambda *a: ref.layer_norm(a[0], (2, 5), a[1], a[2]), [x, w, b],
                         lambda dy, *a: ref.layer_norm_backward(dy, a[0], (2, 5), a[1], a[2]))


@pytest.mark.parametrize("shape", [(8, 16, 28, 28), (2, 3, 9000), (300, 600)], ids=str)
def test_batch_norm_bitwise_across_thread_counts(rng, shape):
    x, w, b, rm, rv = _bn_args(rng, shape, np.float32, offset=1.0)
    dy = random(rng, shape, np.float32)
    before = nnx.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            nnx.set_num_threads(n)
            rmc, rvc = rm.copy(), rv.copy()
            y, mean, invstd = ops.batch_norm(x, w, b, rmc, rvc, True, activation="relu", return_stats=True)
            grads = ops.batch_norm_backward(dy, x, w, b, activation="relu", y=y, mean=mean, invstd=invstd)
            results.append((y, mean, invstd, rmc, rvc) + grads)
    finally:
        nnx.set_num_threads(before)
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_layer_norm_bitwise_across_thread_counts(rng):
    x = random(rng, (700, 300), np.float32)
    w, b = random(rng, (300,), np.float32), random(rng, (300,), np.float32)
    dy = random(rng, x.shape, np.float32)
    before = nnx.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            nnx.set_num_threads(n)
            results.append((ops.layer_norm(x, 300, w, b),) + ops.layer_norm_backward(dy, x, 300, w, b))
    finally:
        nnx.set_num_threads(before)
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_empty_batches(dtype):
    x = np.zeros((0, 3, 4, 4), dtype)
    rm, rv = np.zeros(3, dtype), np.ones(3, dtype)
    assert ops.batch_norm(x, None, None, rm, rv, False).shape == x.shape
    y, mean, invstd = ops.layer_norm(np.zeros((0, 5), dtype), 5, return_stats=True)
    assert y.shape == (0, 5) and mean.shape == (0,)
    dx, dw, db = ops.layer_norm_backward(np.zeros((0, 5), dtype), np.zeros((0, 5), dtype), 5, np.ones(5, dtype),
                                         np.zeros(5, dtype))
    assert dx.shape == (0, 5)
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_array_equal(db, 0)
    # Rows of no values: NaN statistics (the mean of an empty array), empty results; no channels: empty.
    y, mean, invstd = ops.layer_norm(np.zeros((3, 0), dtype), (0,), return_stats=True)
    assert y.shape == (3, 0) and np.isnan(mean).all() and np.isnan(invstd).all()
    x0 = np.zeros((4, 0, 3), dtype)
    y, mean, invstd = ops.batch_norm(x0, return_stats=True)
    assert y.shape == x0.shape and mean.shape == invstd.shape == (0,)
    assert ops.batch_norm_backward(x0, x0)[0].shape == x0.shape


def test_errors():
    x = np.zeros((4, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="x: expected an array .N, C"):
        ops.batch_norm(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"weight: expected shape \(3,\)"):
        ops.batch_norm(x, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
        ops.batch_norm(x, np.ones(3, np.float64))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ops.batch_norm(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="running_mean: evaluation"):
        ops.batch_norm(x, training=False)
    with pytest.raises(ValueError, match="activation: expected None or 'relu'"):
        ops.batch_norm(x, activation="tanh")
    with pytest.raises(TypeError, match="momentum"):
        ops.batch_norm(x, momentum="fast")
    with pytest.raises(ValueError, match="eps"):
        ops.batch_norm(x, eps=-1.0)
    with pytest.raises(TypeError, match="training: expected True or False"):
        ops.batch_norm(x, training="yes")
    with pytest.raises(TypeError, match="running_mean: expected an ndarray"):
        ops.batch_norm(x, None, None, [0.0, 0.0, 0.0], np.ones(3, np.float32))
    ro = np.zeros(3, np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="running_mean: expected a writeable array"):
        ops.batch_norm(x, None, None, ro, np.ones(3, np.float32), True)
    with pytest.raises(ValueError, match="y: batch_norm_backward with activation='relu' needs"):
        ops.batch_norm_backward(x, x, activation="relu")
    with pytest.raises(ValueError, match="dy: expected shape"):
        ops.batch_norm_backward(np.zeros((4, 3), np.float32), x)
    with pytest.raises(ValueError, match="mean: pass both"):
        ops.batch_norm_backward(x, x, mean=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="normalized_shape: expected the trailing dimensions"):
        ops.layer_norm(x, (3, 2))
    with pytest.raises(TypeError, match="normalized_shape: expected an int or a tuple"):
        ops.layer_norm(x, 2.0)
    with pytest.raises(ValueError, match=r"weight: expected shape \(2, 2\)"):
        ops.layer_norm(x, (2, 2), np.ones(4, np.float32))
    with pytest.raises(TypeError, match="x: expected a float32 or float64 array"):
        ops.layer_norm(np.zeros((2, 2), np.int8), 2)


@pytest.mark.parametrize("shape", [(64, 256), (4, 3, 5, 5), (2, 7)])
@pytest.mark.parametrize("act", [None, "relu"])
@pytest.mark.parametrize("training", [True, False])
def test_backward_fast_paths_give_the_general_paths_bits(rng, shape, act, training):
    # The layers' plain arguments take a shorter path to the kernel (needs=None or a tuple of bools); a list
    # of needs takes the general one: the same arrays, bit for bit.
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    y, mean, invstd = ops.batch_norm(x, w, b, None, None, True, 0.1, 1e-5, activation=act, return_stats=True)
    kw = dict(training=training, activation=act, y=y, mean=mean, invstd=invstd)
    fast = ops.batch_norm_backward(dy, x, w, b, **kw)
    fast_t = ops.batch_norm_backward(dy, x, w, b, needs=(True, False, True), **kw)
    general = ops.batch_norm_backward(dy, x, w, b, needs=[True, True, True], **kw)
    for a, g in zip(fast, general):
        np.testing.assert_array_equal(a, g)
    assert fast_t[1] is None
    np.testing.assert_array_equal(fast_t[0], general[0])
    if len(shape) == 2 and act is None and training:
        d = shape[1]
        y, m, s = ops.layer_norm(x, d, w, b, 1e-5, return_stats=True)
        for a, g in zip((y, m, s), ops.layer_norm(x, [d], w, b, 1e-5, return_stats=True)):  # a list: general
            np.testing.assert_array_equal(a, g)
        fast = ops.layer_norm_backward(dy, x, (d,), w, b, 1e-5, mean=m, invstd=s)
        general = ops.layer_norm_backward(dy, x, (d,), w, b, 1e-5, mean=m, invstd=s, needs=[True, True, True])
        for a, g in zip(fast, general):
            np.testing.assert_array_equal(a, g)
        # A tuple of needs (nnx.functional's) takes the fast path too, as rows or as a batch of sequences: the
        # arrays asked for, the general path's bits, None for the others.
        seq = (shape[0] // 2, 2, d)
        for needs in ((True, False, True), (False, True, False), (True, True, True)):
            for xs, dys, ms, ss in ((x, dy, m, s), (x.reshape(seq), dy.reshape(seq), m.reshape(seq[:2]),
                                                    s.reshape(seq[:2]))):
                part = ops.layer_norm_backward(dys, xs, (d,), w, b, 1e-5, mean=ms, invstd=ss, needs=needs)
                for a, g, n in zip(part, general, needs):
                    if n:
                        np.testing.assert_array_equal(a.reshape(g.shape), g)
                    else:
                        assert a is None
