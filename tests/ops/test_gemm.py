import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nnx
from nnx import _C, ops, reference as ref
from optest import assert_close, check_op, random

SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (6, 16, 8), (7, 17, 13), (13, 31, 257), (64, 120, 400),
          (120, 400, 64), (97, 101, 103), (0, 5, 3), (4, 0, 3), (4, 5, 0), (300, 70, 520)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_gemm_matches_reference(isa, dtype, rng, m, n, k, ta, tb):
    a = random(rng, (k, m) if ta else (m, k), dtype)
    b = random(rng, (n, k) if tb else (k, n), dtype)
    c = random(rng, (m, n), dtype)
    check_op(ops.gemm, ref.gemm, (a, b), dict(trans_a=ta, trans_b=tb), dtype, k=k)
    check_op(ops.gemm, ref.gemm, (a, b, c), dict(trans_a=ta, trans_b=tb, alpha=-0.5, beta=2.0), dtype, k=k)


def test_gemm_beta_zero_never_reads_c(isa, dtype, rng):
    a, b = random(rng, (9, 5), dtype), random(rng, (5, 11), dtype)
    c = np.full((9, 11), np.nan, dtype)
    assert_close(ops.gemm(a, b, c, beta=0.0), ref.gemm(a, b), dtype, k=5)


def test_gemm_noncontiguous_and_readonly(isa, dtype, rng):
    big = random(rng, (40, 70), dtype)
    a = big[::3, 1::2][:, :30]  # strided rows and columns: (14, 30)
    b = random(rng, (60, 25), dtype)[::-2]  # negative row stride: (30, 25)
    a.setflags(write=False)
    check_op(ops.gemm, ref.gemm, (a, b), {}, dtype, k=30)
    bcast = np.broadcast_to(random(rng, (1, 7), dtype), (30, 7))  # zero row stride
    check_op(ops.gemm, ref.gemm, (a, bcast), {}, dtype, k=30)


def test_gemm_errors():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="b: expected op\\(b\\) with 4 rows"):
        ops.gemm(a, np.ones((5, 2), np.float32))
    with pytest.raises(TypeError, match="a is float32 but b is float64"):
        ops.gemm(a, np.ones((4, 2), np.float64))
    with pytest.raises(TypeError, match="a: expected a float32 or float64 array"):
        ops.gemm(np.ones((3, 4), np.int32), np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="a: expected a 2-D array"):
        ops.gemm(np.ones(3, np.float32), np.ones((3, 2), np.float32))


def test_gemm_fast_path_falls_back(rng, monkeypatch):
    """ops.gemm hands two plain arrays straight to _C.matmul; what that refuses takes the general path: data
    not aligned to its item size (copied first), and results past SMALL_ALLOC (checked against the free
    memory before they are allocated)."""
    gemm_mod = sys.modules["nnx.ops.gemm"]  # (nnx.ops.gemm is the function)
    buf = bytearray(4 * 12 + 1)
    a = np.frombuffer(buf, np.float32, count=12, offset=1).reshape(3, 4)
    a[...] = random(rng, (3, 4), np.float32)
    assert not a.flags.aligned
    b = random(rng, (4, 5), np.float32)
    assert_close(ops.gemm(a, b), ref.gemm(a.copy(), b), np.float32, k=4)
    allocated = []
    real_empty = gemm_mod.empty
    monkeypatch.setattr(gemm_mod, "empty", lambda *args: allocated.append(args[0]) or real_empty(*args))
    monkeypatch.setattr(gemm_mod, "SMALL_ALLOC", 14)
    assert_close(ops.gemm(a.copy(), b), ref.gemm(a.copy(), b), np.float32, k=4)  # 15 elements: general path
    assert allocated == [(3, 5)]
    monkeypatch.setattr(gemm_mod, "SMALL_ALLOC", 15)
    ops.gemm(a.copy(), b)  # the fast path: empty() not called
    assert allocated == [(3, 5)]
    # m * n past int64 from arrays with no elements: refused by the fast path without overflowing
    with pytest.raises(ValueError, match="overflows a 64-bit size"):
        ops.gemm(np.empty((2**40, 0), np.float32), np.empty((0, 2**40), np.float32))


def test_gemm_deep_kc_blocks(rng):
    """A C of more than 8 MiB with K of 4 KC blocks runs blocks twice as deep (gemm_config.h,
    kDeepKcMinCBytes): against the reference, and the same bits at 1 and 2 threads."""
    a, b = rng.standard_normal((1040, 1024)), rng.standard_normal((1024, 1030))  # C: 8.2 MiB of float64
    before = nnx.get_num_threads()
    try:
        nnx.set_num_threads(1)
        one = ops.gemm(a, b)
        nnx.set_num_threads(2)
        two = ops.gemm(a, b)
    finally:
        nnx.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    assert_close(one, a @ b, np.float64, k=1024)


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 5])
def test_gemm_streamed_c_gives_the_cached_bits(isa, dtype, rng, offset):
    """A C of at least 4 MiB written in one KC block with beta = 0 (a weight gradient, K = the batch) goes to
    memory with non-temporal stores (gemm_config.h, kStreamCMinBytes), its leading columns as usual until
    the rows reach a cache line. For every misalignment of C: the bits of the same product computed in row
    blocks too small to stream, the same bits at 1 and 2 threads, and close to the reference."""
    m = 1024 if dtype == np.float32 else 512
    n, k = 1040, 64  # rows of 65 (float32) / 130 (float64) cache lines; C just over 4 MiB
    a, b = random(rng, (k, m), dtype).T, random(rng, (k, n), dtype)  # a^T x: a weight gradient's layout
    buf = np.full(m * n + 16, np.nan, dtype)
    c = buf[offset:offset + m * n].reshape(m, n)
    blocks = np.full((m, n), np.nan, dtype)
    before = nnx.get_num_threads()
    try:
        nnx.set_num_threads(1)
        for i in range(0, m, 128):
            _C.gemm(a[i:i + 128], b, blocks[i:i + 128], 1.0, 0.0)
        _C.gemm(a, b, c, 1.0, 0.0)
        one = c.copy()
        nnx.set_num_threads(2)
        c[:] = np.nan
        _C.gemm(a, b, c, 1.0, 0.0)
    finally:
        nnx.set_num_threads(before)
    np.testing.assert_array_equal(one, blocks)
    np.testing.assert_array_equal(c, one)
    assert_close(one, (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype), dtype, k=k)


def _assert_packed_bits(rng, a, b, b_packed):
    """_C.gemm of a by b (read in place) gives the bits of a by b_packed (b's values in a layout that is packed), at
    alpha 1 beta 0 and at alpha 0.5 beta 2; and agrees with the float64 product."""
    (m, k), n, dtype = a.shape, b.shape[1], a.dtype
    got, packed = np.full((m, n), np.nan, dtype), np.full((m, n), np.nan, dtype)
    _C.gemm(a, b, got, 1.0, 0.0)
    _C.gemm(a, b_packed, packed, 1.0, 0.0)
    np.testing.assert_array_equal(got, packed)
    assert_close(got, (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype), dtype, k=k)
    c0 = random(rng, (m, n), dtype)
    got, packed = c0.copy(), c0.copy()
    _C.gemm(a, b, got, 0.5, 2.0)
    _C.gemm(a, b_packed, packed, 0.5, 2.0)
    np.testing.assert_array_equal(got, packed)


@pytest.mark.parametrize("m,n,k", [(64, 64, 64), (37, 40, 29), (300, 70, 16), (8, 256, 32), (5, 33, 1)])
def test_gemm_in_place_b_gives_the_packed_bits(isa, dtype, rng, m, n, k):
    """A small B with contiguous rows, beside an A read in place (few slivers of B), is read in place as well
    on the AVX-512 tables (gemm_config.h, kInPlaceBMaxBytes): its full slivers unpacked, a partial last one
    packed, M past one MC block. The same product with B laid out by columns (so packed): the same bits. A is laid
    out by columns too (read in place either way), or the few-row products would take the dot form (gemv_rows)."""
    a, b = np.asfortranarray(random(rng, (m, k), dtype)), random(rng, (k, n), dtype)
    b_cols = np.asfortranarray(b)
    _assert_packed_bits(rng, a, b, b_cols)


@pytest.mark.parametrize("m,n,k", [(10, 256, 1024), (16, 200, 700), (9, 1000, 64), (2, 96, 513), (16, 2048, 40)])
@pytest.mark.parametrize("a_layout", ["rows", "columns"])
def test_gemm_few_rows_read_large_b_in_place_with_the_packed_bits(isa, dtype, rng, m, n, k, a_layout):
    """Where A has at most two MR-row slivers, B is read in place at any size (gemm_config.h,
    kInPlaceBMaxASlivers), A read in place or packed (a linear layer's weight gradient dy^T x, a small batch's dx);
    not where B's rows are 8 KiB apart (2048 floats). K past one KC block, a partial last sliver of B. The same
    product with B's elements two apart along its rows (so packed; laid out by columns it would take the few-row
    dot form for a row-major A): the same bits, at beta 0 and 2, and on two threads."""
    a = random(rng, (m, k), dtype)
    a = np.asfortranarray(a) if a_layout == "columns" else a
    b = random(rng, (k, n), dtype)
    b_cols = np.zeros((k, 2 * n), dtype)[:, ::2]
    b_cols[...] = b
    _assert_packed_bits(rng, a, b, b_cols)
    before = nnx.get_num_threads()
    try:
        nnx.set_num_threads(2)
        two = np.full((m, n), np.nan, dtype)
        _C.gemm(a, b, two, 0.5, 0.0)
    finally:
        nnx.set_num_threads(before)
    one = np.full((m, n), np.nan, dtype)
    _C.gemm(a, b, one, 0.5, 0.0)
    np.testing.assert_array_equal(two, one)


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu", "sigmoid", "tanh"])
def test_linear_forward_backward(isa, dtype, rng, activation):
    x, w, b = random(rng, (33, 17), dtype), random(rng, (10, 17), dtype), random(rng, (10,), dtype)
    y = check_op(ops.linear, ref.linear, (x, w, b), dict(activation=activation), dtype, k=17)
    dy = random(rng, y.shape, dtype)
    check_op(ops.linear_backward, ref.linear_backward, (dy, x, w, b), dict(activation=activation, y=y),
             dtype, k=33)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("m,n,k", [(256, 256, 300), (37, 10, 33), (1, 45, 20), (45, 1, 20), (3, 200, 17),
                                   (20, 5, 0)])
def test_fused_sigmoid_tanh_give_the_activation_ops_bits(isa, dtype, rng, activation, m, n, k):
    """The GEMM's fused sigmoid / tanh run the activation family's kernels on the summed tile, so they give the
    bits of ops.sigmoid / ops.tanh on the unfused product at every position of C: tiles of either operand order
    (3 x 200 is computed transposed), the narrow tiles, one-row and one-column products, and K = 0."""
    x, w, b = random(rng, (m, k), dtype), random(rng, (n, k), dtype), random(rng, (n,), dtype)
    fused = ops.linear(x, w, b, activation=activation)
    np.testing.assert_array_equal(fused, getattr(ops, activation)(ops.linear(x, w, b)))
    # The sums' rounding passes through the activation (slope up to 1) at the scale of the sums, not of the
    # squashed outputs: compared with that floor.
    z = ref.linear(x, w, b)
    assert_close(fused, ref.linear(x, w, b, activation=activation), dtype, k=max(k, 1), floor=np.abs(z).max())


def test_linear_skips_unneeded_gradients(rng):
    x, w = random(rng, (4, 3), np.float64), random(rng, (2, 3), np.float64)
    dx, dw, db = ops.linear_backward(np.ones((4, 2)), x, w, None, needs=(False, True, True))
    assert dx is None and db is None
    assert_close(dw, np.ones((4, 2)).T @ x)


def test_reference_gemm_and_linear_gradcheck(rng):
    a, b, c = rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), rng.standard_normal((1, 5))
    kw = dict(trans_b=True, alpha=0.7, beta=1.3)
    nnx.gradcheck(lambda a, b, c: ref.gemm(a, b, c, **kw), (a, b, c),
                  lambda dy, a, b, c: ref.gemm_backward(dy, a, b, c, **kw))
    x, w, bias = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    for act in [None, "tanh", "sigmoid"]:
        nnx.gradcheck(lambda x, w, b: ref.linear(x, w, b, activation=act), (x, w, bias),
                      lambda dy, x, w, b: ref.linear_backward(dy, x, w, b, activation=act,
                                                              y=ref.linear(x, w, b, activation=act)))


def test_ops_gemm_backward_matches_reference(isa, dtype, rng):
    a, b, c = random(rng, (6, 4), dtype), random(rng, (4, 9), dtype), random(rng, (6, 1), dtype)
    dy = random(rng, (6, 9), dtype)
    check_op(ops.gemm_backward, ref.gemm_backward, (dy, a, b, c), dict(alpha=2.0, beta=0.5), dtype, k=9)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 70), n=st.integers(0, 70), k=st.integers(0, 300), ta=st.booleans(),
       tb=st.booleans(), f64=st.booleans(), seed=st.integers(0, 2**31))
def test_gemm_random_shapes(m, n, k, ta, tb, f64, seed):
    dtype = np.float64 if f64 else np.float32
    r = np.random.default_rng(seed)
    a = random(r, (k, m) if ta else (m, k), dtype)
    b = random(r, (n, k) if tb else (k, n), dtype)
    assert_close(ops.gemm(a, b, trans_a=ta, trans_b=tb), ref.gemm(a, b, trans_a=ta, trans_b=tb), dtype, k=k)


# Shapes that cross every blocking boundary of every ISA's configuration (cpp/gemm/gemm_config.h:
# MR 4/6, NR 4/8/16, KC 256, MC 64..144, NC 2048..4080, kPackBChunkBytes): M > MC, K > KC (and K = KC +- 1),
# N > NC, N over several chunks of B packed at a time (M <= MC; 416 and 240 columns a chunk here, the last
# one partial), and tiles one short of / one past MR and NR.
BOUNDARY_SHAPES = [(5, 15, 255), (7, 17, 257), (3, 9, 256), (6, 16, 1), (11, 33, 17), (145, 7, 513),
                   (290, 20, 300), (2, 4100, 3), (13, 2049, 9), (25, 6, 784), (40, 1000, 300), (64, 700, 520)]


@pytest.mark.parametrize("m,n,k", BOUNDARY_SHAPES)
def test_gemm_blocking_boundaries(isa, dtype, rng, m, n, k):
    a, b = random(rng, (m, k), dtype), random(rng, (n, k), dtype)
    c = random(rng, (m, n), dtype)
    check_op(ops.gemm, ref.gemm, (a, b), dict(trans_b=True), dtype, k=k)
    check_op(ops.gemm, ref.gemm, (b, a.T, c.T), dict(alpha=0.5, beta=-1.5), dtype, k=k)


@pytest.mark.parametrize("m,n,k", [(100, 70, 50), (13, 37, 300), (9, 6, 257), (17, 3, 8)])
@pytest.mark.parametrize("beta", [0.0, -1.5])
def test_gemm_edge_tiles_write_only_c_and_give_the_full_tiles_bits(isa, dtype, rng, m, n, k, beta):
    """Edge tiles (rows past the last whole MR, columns past the last whole NR; the x86 kernels store them with
    masked stores) write C and nothing past it; and each element has the bits it gets inside a full tile: the
    product padded with 48 more columns and 16 more rows (multiples of every table's MR and NR past these
    shapes' edges) agrees bitwise on the first m x n."""
    a, b = random(rng, (m + 16, k), dtype), random(rng, (k, n + 48), dtype)
    c0 = random(rng, (m + 16, n + 48), dtype)
    big = c0.copy()
    _C.gemm(a, b, big, 0.5, beta)
    buf = np.full(m * n + 32, np.inf, dtype)
    c = buf[16:16 + m * n].reshape(m, n)
    c[:] = c0[:m, :n]
    _C.gemm(a[:m], np.ascontiguousarray(b[:, :n]), c, 0.5, beta)
    np.testing.assert_array_equal(c, big[:m, :n])
    assert np.all(buf[:16] == np.inf) and np.all(buf[16 + m * n:] == np.inf), "an element past C was written"
    want = 0.5 * (a[:m].astype(np.float64) @ b[:, :n].astype(np.float64)) + beta * c0[:m, :n]
    assert_close(c, want.astype(dtype), dtype, k=k)


def test_gemm_bias_per_row_and_column(isa, dtype, rng):
    """The epilogue (bias + activation) through the raw kernel binding, bias per row and per column."""
    from nnx import _C
    m, n, k = 37, 45, 300
    a, b = random(rng, (m, k), dtype), random(rng, (k, n), dtype)
    br, bc = random(rng, (m,), dtype), random(rng, (n,), dtype)
    prod = a.astype(np.float64) @ b.astype(np.float64)
    for bias, per_row, want in [(br, True, prod + br[:, None]), (bc, False, prod + bc[None, :])]:
        for act, f in [(0, lambda v: v), (1, lambda v: np.maximum(v, 0)), (2, lambda v: np.where(v > 0, v, 0.01 * v))]:
            c = np.full((m, n), np.nan, dtype)
            _C.gemm(a, b, c, 1.0, 0.0, bias, per_row, act, 0.01)
            assert_close(c, f(want), dtype, k=k)
            # beta != 0: the bias is added once, after alpha/beta, even though K spans two KC blocks.
            c0 = random(rng, (m, n), dtype)
            c = c0.copy()
            _C.gemm(a, b, c, 2.0, 0.5, bias, per_row, act, 0.01)
            assert_close(c, f(2 * prod + 0.5 * c0 + (want - prod)), dtype, k=k)


def test_gemm_ukernel_name_follows_isa(isa):
    info = nnx.cpu_info()
    assert info["sgemm_ukernel"].startswith(f"sgemm_ukernel_{isa}_"), info
    assert info["dgemm_ukernel"].startswith(f"dgemm_ukernel_{isa}_"), info


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_fused_activation_propagates_nan(isa, dtype, activation):
    # A NaN must survive a fused relu like it survives ops.relu, so a diverging run is seen, not hidden.
    x = np.ones((3, 4), dtype)
    x[1, 2] = np.nan
    w = np.ones((5, 4), dtype)
    y = ops.linear(x, w, np.zeros(5, dtype), activation=activation)
    assert np.isnan(y[1]).all() and not np.isnan(y[[0, 2]]).any()
    xi = np.ones((1, 1, 6, 6), dtype)
    xi[0, 0, 2, 3] = np.nan
    yc = ops.conv2d(xi, np.ones((2, 1, 3, 3), dtype), np.zeros(2, dtype), activation=activation)
    assert np.isnan(yc).sum() == 2 * 9  # every output whose window holds the NaN, for both filters


@pytest.mark.parametrize("m,k", [(512, 128), (9, 33), (128, 3000)])
def test_gemm_one_column(isa, dtype, rng, m, k):
    # C (m x 1), e.g. a batch-1 recurrent step's W h: the transposed one-row product, also with a strided
    # column of B (gathered when k is short, the blocked product otherwise). Same bits for any thread count.
    a = random(rng, (m, k), dtype)
    wide = random(rng, (k, 7), dtype)
    bias = random(rng, (m,), dtype)
    threads = nnx.get_num_threads()
    try:
        for b in (np.ascontiguousarray(wide[:, 2:3]), wide[:, 2:3]):
            c = random(rng, (m, 1), dtype)
            check_op(ops.gemm, ref.gemm, (a, b), {}, dtype, k=k)
            check_op(ops.gemm, ref.gemm, (a, b, c), dict(alpha=-0.5, beta=2.0), dtype, k=k)
            outs = []
            for t in (1, 2, 3):
                nnx.set_num_threads(t)
                outs.append(ops.linear(b.T, a, None))
                outs.append(ops.gemm(a, b))
            assert_close(outs[0], ref.linear(b.T, a, None), dtype, k=k)
            assert outs[0].tobytes() == outs[2].tobytes() == outs[4].tobytes()
            assert outs[1].tobytes() == outs[3].tobytes() == outs[5].tobytes()
        x = random(rng, (5, k), dtype)  # a linear layer with one output: x @ w.T is one column
        check_op(ops.linear, ref.linear, (x, a[:1], bias[:1]), dict(activation="tanh"), dtype, k=k)
    finally:
        nnx.set_num_threads(threads)


@pytest.mark.parametrize("m,n,k", [(300, 100, 1), (64, 784, 3), (17, 16, 4), (129, 130, 2)])
def test_shallow_products_row_by_row_give_the_tiles_bits(isa, dtype, rng, m, n, k):
    # Depth 1 to 4 (an outer product: a one-sample weight gradient) runs row by row (gemm.cpp's shallow_rows) where
    # B's rows are contiguous; stored by columns, B takes the register tiles. Each element is the same multiply-add
    # chain either way.
    from nnx._backend import _C
    a, b = random(rng, (m, k), dtype), random(rng, (k, n), dtype)
    b_by_columns = np.ascontiguousarray(b.T).T
    for alpha in (1.0, -0.7):
        rows, tiles = np.empty((m, n), dtype), np.empty((m, n), dtype)
        _C.gemm(a, b, rows, alpha, 0.0)
        _C.gemm(a, b_by_columns, tiles, alpha, 0.0)
        assert np.array_equal(rows, tiles)
        assert_close(rows, alpha * (a.astype(np.float64) @ b.astype(np.float64)), dtype, k=k)


@pytest.mark.parametrize("n,k", [(256, 784), (10, 33), (300, 15), (129, 7), (17, 300), (1000, 2), (8, 5)])
@pytest.mark.parametrize("tb", [False, True])
def test_gemm_one_row(isa, dtype, rng, n, k, tb):
    # A batch-1 layer: one-row products read B in place (dot products for W^T, row updates for row-major B: 8
    # vectors of outputs at a time, then one, then the first lanes of one: gemv_dot.h's axpy_row).
    a = random(rng, (1, k), dtype)
    b = random(rng, (n, k) if tb else (k, n), dtype)
    c = random(rng, (1, n), dtype)
    check_op(ops.gemm, ref.gemm, (a, b), dict(trans_b=tb), dtype, k=k)
    check_op(ops.gemm, ref.gemm, (a, b, c), dict(trans_b=tb, alpha=-0.5, beta=2.0), dtype, k=k)
    a_strided = random(rng, (1, 2 * k), dtype)[:, ::2]  # a row taken every other element
    check_op(ops.gemm, ref.gemm, (a_strided, b), dict(trans_b=tb), dtype, k=k)
    w, bias = random(rng, (n, k), dtype), random(rng, (n,), dtype)
    threads = nnx.get_num_threads()
    try:
        for act in (None, "relu", "tanh"):
            outs = []
            for t in (1, 2, 3):
                nnx.set_num_threads(t)
                outs.append(ops.linear(a, w, bias, activation=act))
            assert_close(outs[0], ref.linear(a, w, bias, activation=act), dtype, k=k)
            assert all(o.tobytes() == outs[0].tobytes() for o in outs)
    finally:
        nnx.set_num_threads(threads)


@pytest.mark.parametrize("n,k", [(13, 37), (64, 784), (9, 16), (5, 3)])
@pytest.mark.parametrize("m", [1, 3, 8, 15])
def test_few_row_dot_products_do_not_depend_on_their_neighbours(isa, dtype, rng, m, n, k):
    # Up to 15 rows of x W^T run as dot products, blocks of rows by blocks of outputs at once (gemv_dot.h): each
    # output has the bits of its product alone, so a row alone has the bits it has in the batch, at any thread
    # count, the fused bias and activation included.
    a, w, b = random(rng, (m, k), dtype), random(rng, (n, k), dtype), random(rng, (n,), dtype)
    y = ops.gemm(a, w, trans_b=True)
    assert_close(y, ref.gemm(a, w, trans_b=True), dtype, k=k)
    for i, j in [(0, 0), (m - 1, n - 1), (m // 2, n // 3)]:
        assert y[i, j].tobytes() == ops.gemm(a[i:i + 1], w[j:j + 1], trans_b=True)[0, 0].tobytes()
    before = nnx.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            nnx.set_num_threads(t)
            outs.append(ops.linear(a, w, b, activation="tanh"))
            for i in range(m):
                assert outs[-1][i].tobytes() == ops.linear(a[i:i + 1], w, b, activation="tanh")[0].tobytes()
    finally:
        nnx.set_num_threads(before)
    assert all(o.tobytes() == outs[0].tobytes() for o in outs)


@pytest.mark.parametrize("n", [2, 4, 8, 9, 16, 17, 24, 33, 40, 196])
def test_gemm_tail_columns_give_the_full_tiles_bits(isa, dtype, rng, n):
    # C's last sliver, when it is narrower than the tile by a vector or more, runs a narrower tile
    # (ukernel_simd.h): each of its columns must keep the bits it has inside a full tile of a wider product.
    # (One column is a matrix-vector product with an order of its own: test_gemm_one_column.)
    m, k, wide = 40, 300, 224
    a, b = random(rng, (m, k), dtype), random(rng, (k, wide), dtype)
    full = ops.gemm(a, b)
    part = ops.gemm(a, np.ascontiguousarray(b[:, :n]))
    assert_close(part, ref.gemm(a, b[:, :n]), dtype, k=k)
    assert part.tobytes() == np.ascontiguousarray(full[:, :n]).tobytes()


# matmul: NumPy's (and torch.matmul's) rules on the packed GEMM. Pairs of shapes: 2-D, 1-D operands, a batch
# against a shared matrix (one folded GEMM), batches broadcast against each other, empty axes.
MATMUL_SHAPES = [((5, 7), (7, 3)), ((7,), (7, 3)), ((5, 7), (7,)), ((7,), (7,)), ((4, 5, 7), (7, 3)),
                 ((4, 5, 7), (4, 7, 3)), ((2, 1, 5, 7), (3, 7, 4)), ((5, 7), (2, 7, 3)), ((1, 5, 7), (3, 7, 2)),
                 ((3, 5, 7), (7,)), ((7,), (3, 7, 2)), ((0, 5, 7), (7, 3)), ((5, 0), (0, 3)), ((2, 5, 7), (2, 7, 0))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_matches_reference_and_numpy(isa, dtype, rng, sa, sb):
    a, b = random(rng, sa, dtype), random(rng, sb, dtype)
    y = check_op(ops.matmul, ref.matmul, (a, b), {}, dtype, k=sa[-1])
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert y.shape == want.shape and y.dtype == dtype and y.flags.c_contiguous
    assert_close(y, want, dtype, k=sa[-1])
    dy = random(rng, want.shape, dtype)
    batch = max(1, int(np.prod(want.shape[:-2]))) if want.ndim > 2 else 1
    da, db = check_op(ops.matmul_backward, ref.matmul_backward, (dy, a, b), {}, dtype, k=max(sa + sb) * batch)
    assert da.shape == a.shape and db.shape == b.shape


def test_matmul_strided_and_transposed_operands(isa, dtype, rng):
    x = random(rng, (6, 9, 16), dtype)
    kT = np.swapaxes(random(rng, (6, 11, 16), dtype), 1, 2)  # attention's q @ k^T: a transposed view
    check_op(ops.matmul, ref.matmul, (x, kT), {}, dtype, k=16)
    check_op(ops.matmul, ref.matmul, (x[:, ::2, ::-1], random(rng, (16, 5), dtype)), {}, dtype, k=16)
    shared = np.broadcast_to(random(rng, (1, 16, 4), dtype), (6, 16, 4))  # zero batch stride
    check_op(ops.matmul, ref.matmul, (x, shared), {}, dtype, k=16)
    dy = random(rng, (6, 9, 4), dtype)
    check_op(ops.matmul_backward, ref.matmul_backward, (dy, x, shared), {}, dtype, k=16 * 6)


@pytest.mark.parametrize("sa,sb", [((32, 16, 64), (32, 64, 16)), ((8, 64, 64), (8, 64, 128)), ((5, 7, 9), (5, 9, 33)),
                                   ((3, 17, 40), (3, 40, 50)), ((4, 40, 24), (4, 24, 16)), ((6, 2, 300), (6, 300, 5)),
                                   ((3, 9, 7), (3, 7, 8))])
def test_batched_matmul_gives_each_products_bits(isa, dtype, rng, sa, sb):
    """A batch of small products runs straight through its tiles (gemm.cpp's batch_product_in_place: B read in
    place, narrow products on the one-vector AVX-512 table), past the per-product dispatch: every product keeps
    the bits of the same product alone (2-D, on the GEMM's general path), for 1 and 2 threads, with A also a
    transposed view (read in place by columns)."""
    a, b = random(rng, sa, dtype), random(rng, sb, dtype)
    a_cols = np.swapaxes(np.swapaxes(a, 1, 2).copy(), 1, 2)
    before = nnx.get_num_threads()
    try:
        for threads in (1, 2):
            nnx.set_num_threads(threads)
            for lhs in (a, a_cols):
                got = ops.matmul(lhs, b)
                for i in range(sa[0]):
                    np.testing.assert_array_equal(got[i], ops.matmul(lhs[i], b[i]))
    finally:
        nnx.set_num_threads(before)
    assert_close(got, np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(dtype), dtype, k=sa[-1])


def test_matmul_errors():
    f = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="b: expected 4 rows"):
        ops.matmul(f, np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match="do not broadcast"):
        ops.matmul(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 2), np.float32))
    with pytest.raises(ValueError, match="a: matmul needs at least 1-D"):
        ops.matmul(np.float32(2.0), f)
    with pytest.raises(TypeError, match="nnx does not mix"):
        ops.matmul(f, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(3, 2\)"):
        ops.matmul_backward(np.ones((3, 3), np.float32), f, np.ones((4, 2), np.float32))


def test_matmul_backward_skips_unneeded_gradients(rng):
    a, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((5, 2))
    da, db = ops.matmul_backward(np.ones((3, 4, 2)), a, b, needs=(False, True))
    assert da is None
    assert_close(db, np.einsum("bmk,bmn->kn", a, np.ones((3, 4, 2))))


def test_reference_matmul_gradcheck(rng):
    for sa, sb in [((3, 4), (4, 2)), ((4,), (2, 4, 3)), ((2, 1, 3, 4), (3, 4, 2)), ((2, 3, 4), (4,))]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        nnx.gradcheck(ref.matmul, (a, b), ref.matmul_backward)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_matmul_batch_same_bits_for_any_thread_count(dtype, rng, batch):
    # Whole products per thread (8 over 2 threads), products split between threads (1, and 3 over 2): gemm's
    # bits either way.
    a, b = random(rng, (batch, 70, 130), dtype), random(rng, (batch, 130, 90), dtype)
    before = nnx.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3, 16):
            nnx.set_num_threads(t)
            outs.append(ops.matmul(a, b))
        for i in range(batch):
            np.testing.assert_array_equal(outs[0][i], ops.gemm(a[i], b[i]))
    finally:
        nnx.set_num_threads(before)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


# x @ W^T for 16-64 rows, computed as (W x^T)^T when W is large or N leaves a partial sliver (gemm.cpp's
# transposed_c_pays): the same products in the same order as W x^T computed directly (120+ rows, not transposed),
# so the same bits, with the epilogue's bias and activation, at any thread count.
@pytest.mark.parametrize("m,k,n", [(16, 400, 120), (17, 33, 84), (33, 784, 512), (63, 300, 1100), (64, 120, 84),
                                   (16, 4096, 10)])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
def test_linear_transposed_product_gives_the_direct_bits(isa, dtype, rng, m, k, n, activation):
    x, w, b = random(rng, (m, k), dtype), random(rng, (n, k), dtype), random(rng, (n,), dtype)
    direct = ops.gemm(w, x, trans_b=True).T  # n >= 84 rows: the direct product
    np.testing.assert_array_equal(ops.gemm(x, w, trans_b=True), direct)
    y = ops.linear(x, w, b, activation=activation)
    assert_close(y, ref.linear(x, w, b, activation=activation), dtype, k=k)
    before = nnx.get_num_threads()
    try:
        for t in (1, 2, 3):
            nnx.set_num_threads(t)
            np.testing.assert_array_equal(ops.linear(x, w, b, activation=activation), y)
    finally:
        nnx.set_num_threads(before)


@pytest.mark.parametrize("trans_a", [False, True])
def test_deep_products_summed_in_halves_of_k(isa, dtype, rng, trans_a):
    # K >= 1024 with a C of at most 256 KiB (gemm.cpp's split_k_pays): two fixed halves of K, the second added to the
    # first, then the epilogue. Against float64 sums, with beta and alpha, a bias and an activation; the same bits for
    # any thread count, including teams split unevenly (3 threads) and more threads than the halves' tiles.
    M, N, K = 40, 70, 1500
    a = random(rng, (K, M) if trans_a else (M, K), dtype)
    b, c = random(rng, (K, N), dtype), random(rng, (M, N), dtype)
    opa = a.T if trans_a else a
    want = 0.5 * (opa.astype(np.float64) @ b.astype(np.float64)) - 1.5 * c
    w, bias = random(rng, (N, K), dtype), random(rng, (N,), dtype)
    want_linear = np.maximum(opa.astype(np.float64) @ w.astype(np.float64).T + bias, 0)
    before = nnx.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3, 16):
            nnx.set_num_threads(t)
            got = ops.gemm(a, b, c, trans_a=trans_a, alpha=0.5, beta=-1.5)
            lin = ops.linear(np.ascontiguousarray(opa), w, bias, activation="relu")
            assert_close(got, want, dtype, K)
            assert_close(lin, want_linear, dtype, K)
            outs.append((got, lin))
    finally:
        nnx.set_num_threads(before)
    for got, lin in outs[1:]:
        np.testing.assert_array_equal(got, outs[0][0])
        np.testing.assert_array_equal(lin, outs[0][1])
