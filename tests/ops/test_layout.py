"""The layout kernels (cpp/layout) behind nnx.compile's recorded copies: nnx._C.copy_into / add_into /
zero_fill give NumPy's bits for any strides and dtypes, on any thread count, and refuse bad arguments."""
import numpy as np
import pytest

import nnx
from nnx._backend import _C
from nnx.ops import _checks


def views(rng, dtype):
    a = (rng.standard_normal((6, 5, 7)) * 100).astype(dtype)
    yield a.transpose(2, 0, 1)
    yield a[::-1, 1:4, ::2]
    yield a[:, 2]
    yield a[3, 1, 4:5]
    yield a[2, 3, 4, ...]  # 0-d
    yield np.broadcast_to(a[0, 0, :1], (4, 3))
    yield a[:0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.int16, np.uint8, np.bool_])
def test_copy_into_matches_numpy_for_any_strides(rng, dtype):
    for v in views(rng, dtype):
        out = np.full(v.shape, 1, dtype)
        _C.copy_into(v, out)
        assert out.tobytes() == np.ascontiguousarray(v).tobytes()
        dst = np.zeros((v.size * 2,), dtype)[::2].reshape(v.shape) if v.ndim else np.zeros((), dtype)
        _C.copy_into(v, dst)  # a strided destination
        assert np.array_equal(dst, v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint64])
def test_transposed_views_copy_in_blocks_with_numpys_bits(rng, isa, dtype):
    # Views whose two innermost axes are swapped take the blocked transpose (layout.cpp's copy_transposed):
    # whole 8 x 8 blocks, edges of every width, batches with gaps between their matrices, strided outputs.
    for shape, axes in [((8, 8), (1, 0)), ((130, 67), (1, 0)), ((3, 65, 129), (0, 2, 1)), ((2, 3, 33, 17), (0, 1, 3, 2)),
                        ((4, 9, 70), (0, 2, 1)), ((7, 9), (1, 0))]:
        a = (rng.standard_normal((2,) + shape) * 1000).astype(dtype)
        for v in (a[0].transpose(axes), a[::2].transpose((0,) + tuple(i + 1 for i in axes))):
            want = np.ascontiguousarray(v).tobytes()
            out = np.full(v.shape, 3, dtype)
            _C.copy_into(v, out)
            assert out.tobytes() == want
            assert _checks.contiguous(v).tobytes() == want
            wide = np.zeros(v.shape[:-1] + (v.shape[-1] + 5,), dtype)
            _C.copy_into(v, wide[..., 2:-3])
            assert wide[..., 2:-3].tobytes() == want and not wide[..., :2].any() and not wide[..., -3:].any()
    if dtype is np.float32:  # NaN payloads are copied, not quieted
        bits = np.arange(0x7F800001, 0x7F800001 + 64 * 40, dtype=np.uint32).reshape(64, 40)
        out = np.empty((40, 64), np.float32)
        _C.copy_into(bits.view(np.float32).T, out)
        assert np.array_equal(out.view(np.uint32), bits.T)


def test_add_into_and_zero_fill_give_numpys_bits(rng, dtype):
    src = rng.standard_normal((5, 8)).astype(dtype)
    full = np.empty((5, 3, 8), dtype)
    _C.zero_fill(full)
    assert not full.any()
    _C.add_into(src, full[:, -1])
    want = np.zeros_like(full)
    np.add.at(want, (slice(None), -1), src)
    assert full.tobytes() == want.tobytes()
    _C.add_into(src.T, full[:, 0].T)
    want[:, 0] += src
    assert full.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_and_copy_merge_axes_that_step_as_one(rng, dtype):
    # layout.cpp's merged_axes: axes that both arrays step over as one are visited as one (a conv weight's
    # (K, C, 3, 3) gradient is one row, not K*C rows of 3), axes of length 1 dropped; layouts where only some
    # axes merge (a slice of the middle axis, a reversed outer axis, a broadcast source) keep the rest.
    base = (rng.standard_normal((4, 6, 3, 3)) * 100).astype(dtype)
    cases = [(base, np.zeros_like(base)),                                    # all one axis
             (base[:, 1:5], np.zeros((4, 4, 3, 3), dtype)),                  # inner two merge, outer apart
             (base[::-1], np.zeros_like(base)),                              # reversed outer axis
             (base[:, :, :1], np.zeros((4, 6, 1, 3), dtype)),                # a length-1 axis in the middle
             (base[None, :, None], np.zeros((1, 4, 1, 6, 3, 3), dtype)),     # length-1 axes around
             (np.broadcast_to(base[:1, :1], base.shape), np.zeros_like(base)),  # stride-0 source axes
             (base, np.zeros((4, 6, 3, 6), dtype)[..., ::2])]                # strided destination
    for src, dst in cases:
        want = dst + src
        _C.add_into(src, dst)
        assert dst.tobytes() == want.tobytes()
        again = np.full(src.shape, 7, dtype)
        _C.copy_into(src, again)
        assert again.tobytes() == np.ascontiguousarray(src).tobytes()


def test_results_do_not_depend_on_threads(rng):
    src = rng.standard_normal((300, 700)).astype(np.float32).T  # larger than one thread's grain
    outs, before = [], nnx.get_num_threads()
    for t in (1, 2, 3):
        nnx.set_num_threads(t)
        try:
            c = np.empty(src.shape, src.dtype)
            _C.copy_into(src, c)
            z = np.empty((2, 700, 300), src.dtype)
            _C.zero_fill(z)
            _C.add_into(src, z[1])
            outs.append(c.tobytes() + z.tobytes())
        finally:
            nnx.set_num_threads(before)
    assert outs[0] == outs[1] == outs[2]
    assert outs[0][: src.nbytes] == np.ascontiguousarray(src).tobytes()


def test_bad_arguments_raise():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="dst: expected the shape of src"):
        _C.copy_into(a, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="dst: expected the dtype of src"):
        _C.copy_into(a, np.zeros((3, 4), np.int32))
    ro = np.zeros((3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _C.copy_into(a, ro)
    with pytest.raises(ValueError, match="read-only"):
        _C.zero_fill(ro)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.zero_fill(np.zeros((4, 4))[:, ::2])
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.add_into(np.zeros(3, np.int64), np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="item size"):
        _C.copy_into(np.zeros(3, np.complex128), np.zeros(3, np.complex128))


def test_ops_helpers_copy_like_numpy_outside_a_capture(rng):
    v = rng.standard_normal((4, 6)).astype(np.float32).T
    assert np.array_equal(_checks.contiguous(v), np.ascontiguousarray(v))
    z = _checks.zeros((2, 3), np.float64)
    assert z.dtype == np.float64 and not z.any()


def test_embedding_backward_does_not_depend_on_threads(rng):
    w = rng.standard_normal((7, 40)).astype(np.float32)
    ids = rng.integers(0, 7, size=(50, 40))  # many repeats, n * D over one thread's grain
    dy = rng.standard_normal((50, 40, 40)).astype(np.float32)
    outs, before = [], nnx.get_num_threads()
    for t in (1, 2, 3):
        nnx.set_num_threads(t)
        try:
            outs.append(nnx.ops.embedding_backward(dy, ids, w, padding_idx=3).tobytes())
        finally:
            nnx.set_num_threads(before)
    assert outs[0] == outs[1] == outs[2]
    want = nnx.reference.embedding_backward(dy.astype(np.float64), ids, w.astype(np.float64), padding_idx=3)
    got = np.frombuffer(outs[0], np.float32).reshape(w.shape)
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4) and not got[3].any()
