"""The block cache behind large op results (cpp/common/block_cache.h, nnx._args.empty): results of at least
16 MiB (the size from which kernels write with streaming stores) take their memory from it, on a cache line, and
give it back when they and their views are gone, so the next result of that size does not page-fault its memory
in afresh. Results stay ordinary writeable C-contiguous arrays."""
import numpy as np
import pytest

import nnx
from nnx import _C, ops, reference as ref
from nnx._args import empty, owns_memory

LARGE = _C.BLOCK_CACHE_MIN_BYTES // 4  # float32 elements of the smallest cached result


@pytest.fixture
def limit():
    """Restores the cache's limit (and drops what a test left kept) afterwards."""
    before = _C.block_cache_limit()
    yield before
    _C.set_block_cache_limit(0)
    _C.set_block_cache_limit(before)


def test_large_results_come_from_the_cache_and_go_back(limit):
    _C.set_block_cache_limit(0)  # start with nothing kept
    _C.set_block_cache_limit(limit)
    x = np.linspace(-1, 1, LARGE, dtype=np.float32)
    y = ops.relu(x)
    assert type(y.base) is _C.CachedBlock and owns_memory(y)
    assert y.flags.c_contiguous and y.flags.writeable and y.flags.aligned and y.ctypes.data % 64 == 0
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert _C.block_cache_kept_bytes() == 0
    del y
    kept = _C.block_cache_kept_bytes()
    assert kept >= x.nbytes
    y2 = ops.sigmoid(x)  # the same size: the kept block again, nothing new kept
    assert _C.block_cache_kept_bytes() == 0  # taken back out
    np.testing.assert_allclose(y2, ref.sigmoid(x), rtol=1e-6)
    y2[:] = 0  # writeable, its own memory
    assert not y2.any()


def test_a_view_keeps_the_block_alive(limit):
    x = np.arange(LARGE, dtype=np.float32)
    y = ops.relu(x)
    v = y[1::2]
    assert not owns_memory(v)
    del y
    held = _C.block_cache_kept_bytes()
    z = ops.relu(x + 1)  # may not reuse v's block
    np.testing.assert_array_equal(v, x[1::2])
    np.testing.assert_array_equal(z, x + 1)
    del v
    assert _C.block_cache_kept_bytes() >= held


def test_small_results_and_the_reference_stay_plain_numpy():
    assert ops.relu(np.ones(1000, np.float32)).base is None
    assert empty((LARGE - 1,), np.float32, "y").base is None  # just under 32 MiB
    assert empty((LARGE // 2,), np.float64, "y").base is not None  # 32 MiB of float64
    assert ref.relu(np.ones(LARGE, np.float32)).base is None  # the oracle never uses the extension's memory


def test_empty_cached_refuses_bad_shapes():
    with pytest.raises(ValueError, match="negative dimension"):
        _C.empty_cached([-1], np.dtype(np.float32))
    with pytest.raises(ValueError, match="overflows"):
        _C.empty_cached([2 ** 40, 2 ** 40], np.dtype(np.float32))
    assert _C.empty_cached([0, 3], np.dtype(np.float64)).shape == (0, 3)


def test_limit_zero_keeps_nothing(limit):
    nnx.set_block_cache_limit(0)
    y = ops.relu(np.ones(LARGE, np.float32))
    del y
    assert nnx.block_cache_info() == {"kept_bytes": 0, "limit_bytes": 0}
    with pytest.raises(ValueError, match="n: expected a byte count"):
        nnx.set_block_cache_limit(-1)
    with pytest.raises(TypeError, match="n_bytes: expected an int"):
        nnx.set_block_cache_limit(1.5)


def test_limit_bounds_what_is_kept(limit):
    _C.set_block_cache_limit(0)
    _C.set_block_cache_limit(3 * (LARGE * 4))  # room for three results of LARGE floats
    ys = [ops.relu(np.full(LARGE + 2 ** 20 * i, 1.0, np.float32)) for i in range(5)]  # five size classes
    del ys
    assert _C.block_cache_kept_bytes() <= 3 * (LARGE * 4)


def test_autograd_accumulates_into_a_cached_gradient(limit):
    """owns_memory counts a cached result as its own memory (autograd may add into it in place): a leaf used
    twice still gets the sum of its two gradients."""
    w = nnx.Tensor(np.ones(LARGE, np.float32), requires_grad=True)
    ((w * 2.0).sum() + (w * 3.0).sum()).backward()
    np.testing.assert_array_equal(w.grad, np.full(LARGE, 5.0, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_results_that_stream_start_on_a_cache_line(dtype):
    # layer_norm's and softmax's rows are streamed past the caches from this size on, which wants every row on a
    # cache line (cpp/common/block_cache.h); the heap's blocks start 16 bytes past one as often as not. The values
    # are the reference's wherever the result lands.
    rows = _C.BLOCK_CACHE_MIN_BYTES // (512 * np.dtype(dtype).itemsize)
    x = np.random.default_rng(0).standard_normal(rows * 512 + 4).astype(dtype)[4:].reshape(rows, 512)  # off a line
    w, b = np.linspace(0.5, 1.5, 512).astype(dtype), np.linspace(-1, 1, 512).astype(dtype)
    y, mean, invstd = ops.layer_norm(x, 512, w, b, return_stats=True)
    dx, dw, db = ops.layer_norm_backward(x[::-1].copy(), x, 512, w, b, mean=mean, invstd=invstd)
    s = ops.softmax(x, -1)
    for a in (y, dx, s):
        assert type(a.base) is _C.CachedBlock and a.ctypes.data % 64 == 0
    tol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(y, ref.layer_norm(x, 512, w, b), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, ref.layer_norm_backward(x[::-1].copy(), x, 512, w, b)[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(s, ref.softmax(x, -1), rtol=tol, atol=tol * 1e-3)
