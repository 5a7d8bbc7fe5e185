import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nnx
from nnx import ops, reference as ref
from optest import assert_close, check_op, random

# inf - inf inside the shared comparison helper when both sides hold infinities (compared separately there).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

# (x shape, kernel_size, stride, padding, dilation)
MAX_CASES = [
    ((2, 3, 1, 1), 1, None, 0, 1),
    ((1, 1, 2, 2), 2, None, 0, 1),
    ((2, 3, 28, 28), 2, None, 0, 1),         # LeNet, 2x2/2 fast path
    ((2, 16, 10, 10), 2, 2, 0, 1),
    ((2, 5, 11, 13), 2, 2, 0, 1),            # odd H, W: last row/column in no window
    ((2, 3, 6, 9), 2, None, 0, 1),           # even H, odd W: the planes' rows in one run, a column left over
    ((2, 3, 7, 8), 2, None, 0, 1),           # odd H, even W: plane by plane
    ((1, 3, 5, 37), 2, None, 0, 1),          # widths around the SIMD tail
    ((1, 2, 4, 34), 2, None, 0, 1),
    ((2, 3, 13, 17), 3, 2, 1, 1),            # ResNet stem, overlapping windows
    ((1, 4, 56, 56), 3, 2, 1, 1),
    ((2, 3, 7, 31), 3, 1, 1, 1),             # stride 1
    ((1, 2, 9, 11), (3, 2), (1, 2), (1, 1), 1),
    ((1, 2, 17, 19), 3, 3, 0, 1),            # stride == kernel, leftovers
    ((1, 2, 17, 23), 2, 3, 0, 1),            # stride > kernel
    ((1, 2, 19, 29), 5, 2, 2, 1),
    ((1, 2, 11, 13), 3, 1, 1, 2),            # dilation
    ((1, 2, 9, 14), (2, 3), 1, 1, 3),         # dilated windows lying wholly on padding: -inf
    ((1, 2, 12, 15), (2, 3), (1, 2), (1, 0), (2, 1)),
    ((1, 1, 3, 3), 3, 1, 1, 1),              # padding 1: output as large as the input
    ((1, 1, 1, 50), (1, 4), (1, 4), 0, 1),
    ((1, 1, 40, 1), (3, 1), (2, 1), (1, 0), 1),
    ((1, 2, 20, 21), 17, 2, 8, 1),           # 289 taps: the tap-by-tap fallback
    ((1, 1, 3, 1100), (1, 3), 1, (0, 1), 1),  # rows longer than one chunk of outputs
    ((0, 3, 8, 8), 2, None, 0, 1),           # empty batch
    ((2, 0, 8, 8), 3, 2, 1, 1),
]

AVG_CASES = [c[:4] for c in MAX_CASES if c[4] == 1]


@pytest.mark.parametrize("shape,k,s,p,d", MAX_CASES)
def test_max_pool2d_matches_reference(isa, dtype, rng, shape, k, s, p, d):
    x = random(rng, shape, dtype)
    kw = dict(stride=s, padding=p, dilation=d)
    y = check_op(ops.max_pool2d, ref.max_pool2d, (x, k), kw, dtype)
    dy = random(rng, y.shape, dtype)
    check_op(ops.max_pool2d_backward, ref.max_pool2d_backward, (dy, x, k), kw, dtype, k=9)


@pytest.mark.parametrize("shape,k,s,p", AVG_CASES)
def test_avg_pool2d_matches_reference(isa, dtype, rng, shape, k, s, p):
    x = random(rng, shape, dtype)
    kw = dict(stride=s, padding=p)
    y = check_op(ops.avg_pool2d, ref.avg_pool2d, (x, k), kw, dtype, k=25)
    dy = random(rng, y.shape, dtype)
    check_op(ops.avg_pool2d_backward, ref.avg_pool2d_backward, (dy, x, k), kw, dtype, k=25)


@pytest.mark.parametrize("shape,k,s", [((2, 3, 11, 13), 3, 2), ((1, 2, 28, 28), 2, None), ((1, 2, 9, 9), 1, 1),
                                       ((2, 1, 10, 23), (2, 3), (1, 2)), ((0, 2, 4, 4), 2, None)])
@pytest.mark.parametrize("norm_type", [1, 2, 3, 1.5, np.inf])
def test_lp_pool2d_matches_reference(isa, dtype, rng, shape, k, s, norm_type):
    # Positive inputs for fractional p (negative x**1.5 is NaN, checked in test_lp_pool2d_matches_torch).
    x = random(rng, shape, dtype, 0.1, 2.0) if norm_type == 1.5 else random(rng, shape, dtype)
    y = check_op(ops.lp_pool2d, ref.lp_pool2d, (x, norm_type, k, s), {}, dtype, k=9)
    dy = random(rng, y.shape, dtype)
    check_op(ops.lp_pool2d_backward, ref.lp_pool2d_backward, (dy, x, norm_type, k, s), {}, dtype, k=9)


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 5, 1, 1), (3, 2, 56, 56), (2, 3, 5, 13), (0, 4, 3, 3)])
def test_global_avg_pool2d(isa, dtype, rng, shape):
    x = random(rng, shape, dtype)
    y = check_op(ops.global_avg_pool2d, ref.global_avg_pool2d, (x,), {}, dtype, k=shape[2] * shape[3])
    assert y.shape == shape[:2] + (1, 1)
    dy = random(rng, y.shape, dtype)
    check_op(ops.global_avg_pool2d_backward, ref.global_avg_pool2d_backward, (dy, x), {}, dtype)
    # avg_pool2d with the whole plane as window takes the same kernel and agrees with the reference.
    check_op(ops.avg_pool2d, ref.avg_pool2d, (x, shape[2:]), {}, dtype, k=shape[2] * shape[3])
    check_op(ops.avg_pool2d_backward, ref.avg_pool2d_backward, (dy, x, shape[2:]), {}, dtype)


def test_resnet_sized_planes(isa, rng):
    # The (64, 32, 56, 56) benchmark shape at a smaller batch.
    x = random(rng, (2, 32, 56, 56), np.float32)
    for k, s, p in [(2, 2, 0), (3, 2, 1)]:
        y = check_op(ops.max_pool2d, ref.max_pool2d, (x, k, s, p), {}, np.float32)
        dy = random(rng, y.shape, np.float32)
        check_op(ops.max_pool2d_backward, ref.max_pool2d_backward, (dy, x, k, s, p), {}, np.float32)
        check_op(ops.avg_pool2d_backward, ref.avg_pool2d_backward, (dy, x, k, s, p), {}, np.float32, k=9)


# --- ties, infinities, NaN ----------------------------------------------------------------------------

def _tie_inputs(rng, dtype):
    x = np.round(random(rng, (2, 3, 14, 17), dtype) * 2) / 2  # few distinct values: many ties
    x[0, 0] = 1.0                                              # all-equal windows
    x[0, 1] = np.maximum(x[0, 1], 0)                           # ReLU zeros
    x[1, 0, :6, :6] = -np.inf                                  # windows of -inf only
    return x


@pytest.mark.parametrize("k,s,p,d", [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 1), (2, 3, 1, 1), (3, 1, 1, 2)])
def test_max_pool2d_ties_and_infinities(isa, dtype, rng, k, s, p, d):
    x = _tie_inputs(rng, dtype)
    kw = dict(stride=s, padding=p, dilation=d)
    y = check_op(ops.max_pool2d, ref.max_pool2d, (x, k), kw, dtype)
    dy = random(rng, y.shape, dtype)
    # The routing must agree exactly: any other choice moves a whole dy value to another element.
    check_op(ops.max_pool2d_backward, ref.max_pool2d_backward, (dy, x, k), kw, dtype, k=9)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool2d_nan_propagates(isa, dtype, rng, k, s, p):
    x = random(rng, (1, 2, 9, 20), dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 4, 4:7] = np.nan        # several NaNs in one window: the last one gets the gradient
    x[0, 1, 0, 0] = np.inf
    x[0, 1, 5, 8] = -np.inf
    y = check_op(ops.max_pool2d, ref.max_pool2d, (x, k, s, p), {}, dtype)
    assert np.isnan(y[0, 0]).any()
    dy = random(rng, y.shape, dtype)
    check_op(ops.max_pool2d_backward, ref.max_pool2d_backward, (dy, x, k, s, p), {}, dtype, k=9)


# --- the saved-indices path -------------------------------------------------------------------------

@pytest.mark.parametrize("shape,k,s,p,d", MAX_CASES[::2])
def test_max_pool2d_indices(isa, dtype, rng, shape, k, s, p, d):
    x = np.round(random(rng, shape, dtype) * 3) / 3  # ties
    kw = dict(stride=s, padding=p, dilation=d)
    y, idx = ops.max_pool2d(x, k, return_indices=True, **kw)
    y_ref, idx_ref = ref.max_pool2d(x, k, return_indices=True, **kw)
    assert idx.dtype == np.int32 and idx.flags.c_contiguous
    np.testing.assert_array_equal(idx, idx_ref)
    assert_close(y, y_ref, dtype)
    dy = random(rng, y.shape, dtype)
    want = ref.max_pool2d_backward(dy, x, k, **kw)
    assert_close(ops.max_pool2d_backward(dy, x, k, indices=idx, **kw), want, dtype, k=9)
    assert_close(ref.max_pool2d_backward(dy, x, k, indices=idx_ref, **kw), want, dtype, k=9)
    assert_close(ops.max_pool2d_backward(dy, x, k, indices=idx.astype(np.int64), **kw), want, dtype, k=9)


@pytest.mark.parametrize("shape,k,s,p,d", MAX_CASES[::2])
def test_max_pool2d_relu(isa, dtype, rng, shape, k, s, p, d):
    # activation="relu": relu of the maxima and max_pool2d's indices; the backward masks dy by y > 0 first.
    # Without padding it equals pooling relu(x) (what nn.Sequential relies on), bit for bit.
    x = np.round(random(rng, shape, dtype) * 3) / 3  # ties, zeros and negative maxima
    kw = dict(stride=s, padding=p, dilation=d)
    y, idx = ops.max_pool2d(x, k, return_indices=True, activation="relu", **kw)
    y_ref, idx_ref = ref.max_pool2d(x, k, return_indices=True, activation="relu", **kw)
    np.testing.assert_array_equal(idx, ops.max_pool2d(x, k, return_indices=True, **kw)[1])
    np.testing.assert_array_equal(idx, idx_ref)
    assert_close(y, y_ref, dtype)
    assert (y >= 0).all()
    np.testing.assert_array_equal(ops.max_pool2d(x, k, activation="relu", **kw), y)
    dy = random(rng, y.shape, dtype)
    want = ref.max_pool2d_backward(dy, x, k, activation="relu", y=y_ref, **kw)
    np.testing.assert_array_equal(want, ref.max_pool2d_backward(dy * (y_ref > 0), x, k, **kw))
    got = ops.max_pool2d_backward(dy, x, k, indices=idx, activation="relu", y=y, **kw)
    assert_close(got, want, dtype, k=9)
    np.testing.assert_array_equal(ops.max_pool2d_backward(dy, x, k, activation="relu", y=y, **kw), got)
    if p == 0 and x.size:
        xr = np.maximum(x, 0)
        y2, idx2 = ops.max_pool2d(xr, k, return_indices=True, **kw)
        np.testing.assert_array_equal(y, y2)
        dz = ops.max_pool2d_backward(dy, xr, k, indices=idx2, **kw) * (xr > 0)
        np.testing.assert_array_equal(got, dz)


def test_max_pool2d_relu_errors(rng):
    x = random(rng, (1, 2, 4, 4), np.float32)
    y, idx = ops.max_pool2d(x, 2, return_indices=True, activation="relu")
    dy = np.ones_like(y)
    for backend in (ops, ref):
        with pytest.raises(ValueError, match="activation"):
            backend.max_pool2d(x, 2, activation="tanh")
        with pytest.raises(ValueError, match="y: activation='relu' needs"):
            backend.max_pool2d_backward(dy, x, 2, indices=idx, activation="relu")
    with pytest.raises(ValueError, match="y"):
        ops.max_pool2d_backward(dy, x, 2, indices=idx, activation="relu", y=y[:, :1])
    with pytest.raises((TypeError, ValueError)):
        ops.max_pool2d_backward(dy, x, 2, indices=idx, activation="relu", y=y.astype(np.float64))


def test_max_pool2d_window_on_padding_only(isa, dtype, rng):
    # kernel 2 with dilation 3 and padding 1 on a width of 2: the window's taps are at -1 and 2.
    x = random(rng, (1, 2, 3, 2), dtype)
    kw = dict(stride=1, padding=(0, 1), dilation=(1, 3))
    y, idx = ops.max_pool2d(x, (1, 2), return_indices=True, **kw)
    assert y.shape == (1, 2, 3, 1) and np.all(y == -np.inf) and np.all(idx == -1)
    check_op(ops.max_pool2d, ref.max_pool2d, (x, (1, 2)), kw, dtype)
    dy = random(rng, y.shape, dtype)
    assert np.all(ops.max_pool2d_backward(dy, x, (1, 2), **kw) == 0)
    assert np.all(ops.max_pool2d_backward(dy, x, (1, 2), indices=idx, **kw) == 0)
    assert np.all(ref.max_pool2d_backward(dy, x, (1, 2), **kw) == 0)


@pytest.mark.parametrize("shape,k,s,p,d", [((2, 3, 14, 17), 3, 2, 1, 1), ((1, 2, 10, 10), 3, 2, 1, 1),
                                             ((1, 2, 9, 12), (2, 3), (1, 2), (1, 0), (2, 1)),
                                             ((1, 1, 254, 254), 3, 2, 1, 1),   # padded plane 256 x 256: the limit
                                             ((1, 1, 255, 255), 3, 2, 1, 1)])  # one past it: the clipped path
def test_max_pool2d_padded_plane_picks(isa, dtype, rng, shape, k, s, p, d):
    # Windows over the padding whose real elements are all -inf pick their first real element (a padded
    # -inf tap scanned first must not win), in the indices, the forward and the backward's routing.
    x = np.round(random(rng, shape, dtype) * 2) / 2
    x[..., :5, :5] = -np.inf
    x[..., -4:, -3:] = -np.inf
    x[..., 3, -1] = np.nan
    kw = dict(stride=s, padding=p, dilation=d)
    y, idx = ops.max_pool2d(x, k, return_indices=True, **kw)
    y_ref, idx_ref = ref.max_pool2d(x, k, return_indices=True, **kw)
    np.testing.assert_array_equal(idx, idx_ref)
    assert_close(y, y_ref, dtype)
    assert_close(ops.max_pool2d(x, k, **kw), y_ref, dtype)
    dy = random(rng, y.shape, dtype)
    assert_close(ops.max_pool2d_backward(dy, x, k, **kw), ref.max_pool2d_backward(dy, x, k, **kw), dtype, k=9)


@pytest.mark.parametrize("shape", [(3, 2, 28, 28), (2, 3, 11, 13), (1, 2, 4, 34), (2, 4, 10, 10), (2, 2, 9, 16)])
def test_2x2_backward_from_indices(isa, dtype, rng, shape):
    """2x2 stride 2 from saved indices writes each window directly when every index names an element of its
    own window (max_pool2d's own), and scatters otherwise (foreign but valid indices, repeated targets):
    both against an independent NumPy scatter-add, -0.0 gradients included (0 + -0.0 is +0.0). The planes of
    17 to 32 outputs (11 x 13, 10 x 10, 9 x 16) take the AVX-512 table's whole-plane kernel."""
    x = random(rng, shape, dtype)
    y, idx = ops.max_pool2d(x, 2, return_indices=True)
    dy = random(rng, y.shape, dtype)
    dy.flat[::7] = -0.0

    def scatter(index):
        want = np.zeros(x.shape, dtype).reshape(shape[0] * shape[1], -1)
        for plane, (i, g) in enumerate(zip(index.reshape(len(want), -1), dy.reshape(len(want), -1))):
            np.add.at(want[plane], i, g)
        return want.reshape(x.shape)

    got = ops.max_pool2d_backward(dy, x, 2, indices=idx)
    assert got.tobytes() == scatter(idx).tobytes()
    foreign = idx.copy()
    foreign[0, 0, -1, -1] = 0          # names an element of another window: the whole plane scatters
    foreign[-1, -1, 0, 0] = foreign[-1, -1, 0, 1]  # two outputs onto one element
    got = ops.max_pool2d_backward(dy, x, 2, indices=foreign)
    assert got.tobytes() == scatter(foreign).tobytes()


@pytest.mark.parametrize("shape,p", [((3, 2, 28, 28), 1), ((2, 3, 13, 17), 1), ((1, 2, 56, 56), 1),
                                     ((2, 2, 5, 37), 0), ((1, 1, 3, 3), 1), ((2, 2, 4, 34), (1, 0)),
                                     ((1, 2, 9, 3), (0, 1)), ((2, 2, 10, 10), 0), ((1, 1, 33, 65), 1)])
def test_3x3s2_backward_from_indices(isa, dtype, rng, shape, p):
    """3x3 stride 2 (overlapping windows: an element can take up to four gradients) from saved indices, the
    forward's own and ones with -1 and a foreign offset, bit for bit against an independent NumPy
    scatter-add in output order, -0.0 gradients included."""
    x = random(rng, shape, dtype)
    y, idx = ops.max_pool2d(x, 3, 2, p, return_indices=True)
    dy = random(rng, y.shape, dtype)
    dy.flat[::7] = -0.0
    planes = shape[0] * shape[1]

    def scatter(index):
        want = np.zeros(x.shape, dtype).reshape(planes, -1)
        for plane, (i, g) in enumerate(zip(index.reshape(planes, -1), dy.reshape(planes, -1))):
            keep = i >= 0
            np.add.at(want[plane], i[keep], g[keep])
        return want.reshape(x.shape)

    got = ops.max_pool2d_backward(dy, x, 3, 2, p, indices=idx)
    assert got.tobytes() == scatter(idx).tobytes()
    odd = idx.copy()
    odd[0, 0, 0, 0] = -1               # passes no gradient: still its own window's kind of plane
    odd[-1, -1, -1, -1] = 0            # names an element of another window (when it has more than one)
    got = ops.max_pool2d_backward(dy, x, 3, 2, p, indices=odd)
    assert got.tobytes() == scatter(odd).tobytes()


@pytest.mark.parametrize("shape,p", [((2, 3, 28, 28), 1), ((2, 2, 13, 17), 1), ((1, 2, 56, 70), 1),
                                     ((2, 2, 13, 17), 0), ((1, 2, 12, 66), 0), ((1, 1, 3, 3), 1),
                                     ((1, 1, 3, 3), 0), ((1, 1, 1, 1), 1), ((1, 1, 2, 5), 1), ((1, 1, 5, 2), 1),
                                     # up to 7 outputs a row (AVX-512: two output rows a vector), odd and
                                     # even output rows, 7 outputs from 14 and 16 columns
                                     ((2, 3, 10, 10), 1), ((2, 2, 14, 14), 1), ((1, 2, 9, 16), 0),
                                     ((1, 2, 12, 11), 0)])
def test_3x3s2_forward_indices(isa, dtype, rng, shape, p):
    """3x3 stride 2 with padding 0 or 1 (nnx's plane kernel on AVX-512): the picks and their values bit for
    bit against the reference, with ties, NaN, -inf windows over the padding and rows of several vectors."""
    x = np.round(random(rng, shape, dtype) * 2) / 2  # ties
    x[..., :3, :3] = -np.inf                          # windows over the padding with only -inf inside
    x.flat[5::11] = np.nan
    x.flat[::13] = -0.0
    y, idx = ops.max_pool2d(x, 3, 2, p, return_indices=True)
    y_ref, idx_ref = ref.max_pool2d(x, 3, 2, p, return_indices=True)
    np.testing.assert_array_equal(idx, idx_ref)
    assert y.tobytes() == x.reshape(x.shape[0], x.shape[1], -1)[
        np.arange(x.shape[0])[:, None, None, None], np.arange(x.shape[1])[None, :, None, None], idx].tobytes()
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(ops.max_pool2d(x, 3, 2, p), y_ref)


def test_max_pool2d_indices_errors():
    x = np.ones((1, 1, 4, 4), np.float32)
    dy = np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"indices: expected shape \(1, 1, 2, 2\)"):
        ops.max_pool2d_backward(dy, x, 2, indices=np.zeros((1, 1, 2, 3), np.int32))
    with pytest.raises(TypeError, match="indices: expected an integer array"):
        ops.max_pool2d_backward(dy, x, 2, indices=np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"indices: expected plane offsets in \[-1, 16\)"):
        ops.max_pool2d_backward(dy, x, 2, indices=np.full((1, 1, 2, 2), 16, np.int32))
    with pytest.raises(ValueError, match=r"indices: expected plane offsets in \[-1, 16\)"):
        ops.max_pool2d_backward(dy, x, 2, indices=np.full((1, 1, 2, 2), -7, np.int64))


# --- layouts, threads, errors -------------------------------------------------------------------------

def test_noncontiguous_and_readonly_inputs(isa, dtype, rng):
    big = random(rng, (3, 8, 30, 40), dtype)
    big.setflags(write=False)
    views = [big[:, ::2, 1::2, ::3],                         # strided, read-only
             big.transpose(0, 1, 3, 2)[:, :, ::-1],          # transposed, negative stride
             np.broadcast_to(big[:1, :1], (2, 3, 30, 40))]   # zero strides
    cases = [("max_pool2d", (3, 2, 1)), ("avg_pool2d", (2,)), ("lp_pool2d", (2, 3, 2))]
    for x in views:
        for name, args in cases:
            y = check_op(getattr(ops, name), getattr(ref, name), (x, *args), {}, dtype, k=9)
            dy = random(rng, y.shape, dtype)[..., ::-1]  # a non-contiguous gradient too
            check_op(getattr(ops, name + "_backward"), getattr(ref, name + "_backward"), (dy, x, *args), {},
                     dtype, k=9)


def test_errors():
    x = np.ones((1, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"padding: expected at most half the kernel size \(2 for kernel_size=\(5, 5\)\), got 3"):
        ops.max_pool2d(x, 5, padding=3)
    # PyTorch's limit: half the kernel, not of the dilated window
    with pytest.raises(ValueError, match=r"padding: expected at most half the kernel size \(1 for kernel_size=\(3, 3\)\), got 2"):
        ops.max_pool2d(x, 3, padding=2, dilation=2)
    with pytest.raises(ValueError, match="kernel_size: expected an int >= 1, got 0"):
        ops.avg_pool2d(x, 0)
    with pytest.raises(ValueError, match="stride: expected an int >= 1, got 0"):
        ops.max_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match="padding: expected an int >= 0, got -1"):
        ops.avg_pool2d(x, 2, padding=-1)
    with pytest.raises(ValueError, match="kernel_size: the window .* is larger than the padded input"):
        ops.max_pool2d(x, 9)
    with pytest.raises(ValueError, match=r"kernel_size: expected an int or a pair of ints, got \(2, 2, 2\)"):
        ops.max_pool2d(x, (2, 2, 2))
    with pytest.raises(TypeError, match="stride: expected an int, got float"):
        ops.max_pool2d(x, 2, stride=1.5)
    with pytest.raises(ValueError, match="x: expected a 4-D array"):
        ops.max_pool2d(np.ones((8, 8), np.float32), 2)
    with pytest.raises(TypeError, match="x: expected a float32 or float64 array, got dtype int32"):
        ops.avg_pool2d(np.ones((1, 1, 4, 4), np.int32), 2)
    with pytest.raises(TypeError, match="dy is float64 but x is float32"):
        ops.max_pool2d_backward(np.ones((1, 1, 4, 4)), x, 2)
    with pytest.raises(ValueError, match=r"dy: expected shape \(1, 1, 4, 4\)"):
        ops.avg_pool2d_backward(np.ones((1, 1, 3, 4), np.float32), x, 2)
    with pytest.raises(ValueError, match="x: expected H and W >= 1"):
        ops.max_pool2d(np.ones((1, 1, 0, 4), np.float32), 1)
    with pytest.raises(ValueError, match="norm_type: expected a number > 0"):
        ops.lp_pool2d(x, 0, 2)
    with pytest.raises(TypeError, match="norm_type: expected a number"):
        ops.lp_pool2d(x, "2", 2)
    # The bindings check on their own, so a direct call cannot reach a kernel with bad sizes.
    from nnx._backend import _C
    with pytest.raises(ValueError, match="padding"):
        _C.pool2d_forward(0, x, np.empty((1, 1, 2, 2), np.float32), 2, 2, 2, 2, 2, 2, 1, 1, 1.0)
    with pytest.raises(ValueError, match="output/gradient shape"):
        _C.pool2d_forward(0, x, np.empty((1, 1, 3, 3), np.float32), 2, 2, 2, 2, 0, 0, 1, 1, 1.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.pool2d_forward(0, np.ones((1, 1, 8, 16), np.float32)[..., ::2], np.empty((1, 1, 4, 4), np.float32),
                          2, 2, 2, 2, 0, 0, 1, 1, 1.0)


# --- reference against finite differences and PyTorch -------------------------------------------------

def test_reference_gradcheck(rng):
    x = rng.permutation(2 * 2 * 7 * 8).reshape(2, 2, 7, 8) / 10.0 - 1.5  # distinct values: no max ties
    for args in [(2,), (3, 2, 1), (3, 1, 1, 2)]:
        nnx.gradcheck(lambda x: ref.max_pool2d(x, *args), (x,),
                      lambda dy, x: ref.max_pool2d_backward(dy, x, *args))
    for args in [(2,), (3, 2, 1), ((2, 3), (1, 2), (1, 1))]:
        nnx.gradcheck(lambda x: ref.avg_pool2d(x, *args), (x,),
                      lambda dy, x: ref.avg_pool2d_backward(dy, x, *args))
    xp = np.abs(x) + 0.1
    for p in [1, 2, 3, 1.5]:
        nnx.gradcheck(lambda x: ref.lp_pool2d(x, p, 3, 2), (xp,),
                      lambda dy, x: ref.lp_pool2d_backward(dy, x, p, 3, 2))
    nnx.gradcheck(ref.global_avg_pool2d, (x,), ref.global_avg_pool2d_backward)


def test_ops_backward_gradcheck_float64(rng):
    # The C++ backward itself (float64) against finite differences of the C++ forward.
    x = rng.permutation(2 * 7 * 9).reshape(1, 2, 7, 9) / 10.0 - 1.5
    for op, args in [("max_pool2d", (3, 2, 1)), ("avg_pool2d", (3, 2, 1)), ("max_pool2d", (2,))]:
        f, b = getattr(ops, op), getattr(ops, op + "_backward")
        nnx.gradcheck(lambda x: f(x, *args), (x,), lambda dy, x: b(dy, x, *args))
    # With the ReLU (x's values are at least 0.05 from 0 and from each other: no kink within the step).
    nnx.gradcheck(lambda x: ops.max_pool2d(x, 2, activation="relu"), (x + 0.05,),
                  lambda dy, x: ops.max_pool2d_backward(dy, x, 2, activation="relu",
                                                        y=ops.max_pool2d(x, 2, activation="relu")))
    nnx.gradcheck(lambda x: ops.lp_pool2d(x, 2, 3, 2), (np.abs(x) + 0.1,),
                  lambda dy, x: ops.lp_pool2d_backward(dy, x, 2, 3, 2))


def _torch_pair(torch, fn, x, dy, *args):
    tx = torch.tensor(x, requires_grad=True)
    ty = fn(tx, *args)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy()


def test_reference_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = _tie_inputs(rng, np.float64)
    x[1, 1, 3, 3:6] = np.nan
    for args in [(2,), (3, 2, 1), (3, 1, 1, 2), ((2, 3), (2, 1), (1, 1), 1)]:
        want = ref.max_pool2d(x, *args)
        dy = rng.standard_normal(want.shape)
        ty, tdx = _torch_pair(torch, F.max_pool2d, x, dy, *args)
        np.testing.assert_array_equal(want, ty)
        np.testing.assert_allclose(ref.max_pool2d_backward(dy, x, *args), tdx, rtol=1e-12, atol=0)
        np.testing.assert_allclose(ops.max_pool2d_backward(dy, x, *args), tdx, rtol=1e-12, atol=0)
        _, t_idx = F.max_pool2d_with_indices(torch.tensor(x), *args)
        np.testing.assert_array_equal(ref.max_pool2d(x, *args, return_indices=True)[1], t_idx.numpy())
        np.testing.assert_array_equal(ops.max_pool2d(x, *args, return_indices=True)[1], t_idx.numpy())
    x = rng.standard_normal((2, 3, 11, 13))
    for args in [(2,), (3, 2, 1), ((5, 3), (1, 2), (2, 1))]:
        want = ref.avg_pool2d(x, *args)
        dy = rng.standard_normal(want.shape)
        ty, tdx = _torch_pair(torch, F.avg_pool2d, x, dy, *args)
        np.testing.assert_allclose(want, ty, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(ref.avg_pool2d_backward(dy, x, *args), tdx, rtol=1e-12, atol=1e-15)
    xz = np.abs(x)
    xz[0, 0, :3, :3] = 0  # a window summing to 0: gradient 0
    # Cropped so that 2x2 windows cover every element: for fractional p PyTorch's autograd gives NaN
    # (0 * NaN) to a negative element outside every window, where nnx (and the math) give 0.
    xc = x[:, :, :10, :12].copy()
    xc[0, 0, 0, :2], xc[0, 0, 1, :2] = [1.0, -1.0], [0.0, 0.0]  # odd p: sum cancels to 0
    for p in [1, 2, 3, 1.5, np.inf]:
        for xx in [x, xz, xc]:
            want = ref.lp_pool2d(xx, p, 3, 2) if xx is not xc else ref.lp_pool2d(xx, p, 2)
            args = (p, 3, 2) if xx is not xc else (p, 2)
            dy = rng.standard_normal(want.shape)
            ty, tdx = _torch_pair(torch, F.lp_pool2d, xx, dy, *args)
            np.testing.assert_allclose(want, ty, rtol=1e-10, atol=1e-12, equal_nan=True)
            np.testing.assert_allclose(ref.lp_pool2d_backward(dy, xx, *args), tdx, rtol=1e-10, atol=1e-12,
                                       equal_nan=True)
            np.testing.assert_allclose(ops.lp_pool2d_backward(dy, xx, *args), tdx, rtol=1e-10, atol=1e-12,
                                       equal_nan=True)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 2), c=st.integers(1, 3), h=st.integers(1, 20), w=st.integers(1, 40),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 2),
       f64=st.booleans(), portable=st.booleans(), seed=st.integers(0, 2**31))
def test_random_shapes(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, f64, portable, seed):
    dtype = np.float64 if f64 else np.float32
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
        return
    r = np.random.default_rng(seed)
    x = np.round(random(r, (n, c, h, w), dtype) * 4) / 4  # ties happen
    before = nnx.cpu_info()["active_isa"]
    nnx.set_isa("portable" if portable else nnx.cpu_info()["detected_isa"])
    try:
        kw_max = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
        y = check_op(ops.max_pool2d, ref.max_pool2d, (x, (kh, kw)), kw_max, dtype)
        dy = random(r, y.shape, dtype)
        check_op(ops.max_pool2d_backward, ref.max_pool2d_backward, (dy, x, (kh, kw)), kw_max, dtype, k=16)
        # The training path: the picks (first maximum in scan order among ties) and their values.
        y_i, idx = ops.max_pool2d(x, (kh, kw), return_indices=True, **kw_max)
        y_r, idx_r = ref.max_pool2d(x, (kh, kw), return_indices=True, **kw_max)
        np.testing.assert_array_equal(idx, idx_r)
        np.testing.assert_array_equal(y_i, y_r)
        p2 = (min(ph, kh // 2), min(pw, kw // 2))
        if h + 2 * p2[0] >= kh and w + 2 * p2[1] >= kw:
            kw_avg = dict(stride=(sh, sw), padding=p2)
            y = check_op(ops.avg_pool2d, ref.avg_pool2d, (x, (kh, kw)), kw_avg, dtype, k=16)
            dy = random(r, y.shape, dtype)
            check_op(ops.avg_pool2d_backward, ref.avg_pool2d_backward, (dy, x, (kh, kw)), kw_avg, dtype, k=16)
    finally:
        nnx.set_isa(before)


# --- no access outside the arrays ---------------------------------------------------------------------

def _guarded(shape, dtype, at_end, keep):
    """A C-contiguous array placed against a PROT_NONE page (right after its end, or right before its
    start): a kernel reading or writing one element too far faults instead of passing silently."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    pages = -(-nbytes // page) + 1
    buf = mmap.mmap(-1, pages * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    guard = base + (pages - 1) * page if at_end else base
    assert libc.mprotect(ctypes.c_void_p(guard), page, 0) == 0
    keep.append(buf)
    offset = (pages - 1) * page - nbytes if at_end else page
    return np.frombuffer(buf, dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)


@pytest.mark.skipif(not hasattr(__import__("mmap"), "PROT_READ"), reason="needs mmap protections (POSIX)")
@pytest.mark.parametrize("at_end", [True, False], ids=["guard-after", "guard-before"])
def test_kernels_stay_inside_their_arrays(isa, dtype, rng, at_end):
    from nnx._backend import _C
    keep = []
    cases = [((1, 2, 3, 5), (2, 2), (2, 2), (0, 0), (1, 1)), ((1, 1, 2, 17), (2, 2), (2, 2), (0, 0), (1, 1)),
             ((2, 1, 5, 9), (3, 3), (2, 2), (1, 1), (1, 1)), ((1, 1, 4, 19), (3, 3), (1, 1), (1, 1), (1, 1)),
             ((1, 2, 3, 7), (1, 3), (1, 2), (0, 1), (1, 1)), ((1, 1, 6, 11), (2, 2), (1, 2), (1, 1), (2, 3)),
             ((1, 1, 2, 30), (2, 3), (2, 2), (0, 1), (1, 1))]
    for shape, k, s, p, d in cases:
        x_shape = shape
        oh = (x_shape[2] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
        ow = (x_shape[3] + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
        y_shape = x_shape[:2] + (oh, ow)
        x = _guarded(x_shape, dtype, at_end, keep)
        x[...] = random(rng, x_shape, dtype)
        dy = _guarded(y_shape, dtype, at_end, keep)
        dy[...] = random(rng, y_shape, dtype)
        args = (*k, *s, *p, *d)
        kinds = [0] + ([1] if d == (1, 1) else []) + ([2] if d == (1, 1) and p == (0, 0) else [])
        for kind in kinds:
            y = _guarded(y_shape, dtype, at_end, keep)
            _C.pool2d_forward(kind, x, y, *args, 2.0)
            dx = _guarded(x_shape, dtype, at_end, keep)
            _C.pool2d_backward(kind, dy, x, dx, *args, 2.0)
            name = ["max_pool2d", "avg_pool2d", "lp_pool2d"][kind]
            extra = (2.0,) if kind == 2 else ()
            kw = {} if kind == 2 else dict(padding=p)
            if kind == 0:
                kw["dilation"] = d
            assert_close(y, getattr(ref, name)(x, *extra, k, s, **kw), dtype, k=9)
            assert_close(dx, getattr(ref, name + "_backward")(dy, x, *extra, k, s, **kw), dtype, k=9)
        idx = _guarded(y_shape, np.int32, at_end, keep)
        y = _guarded(y_shape, dtype, at_end, keep)
        _C.max_pool2d_indices_forward(x, y, idx, *args)
        dx = _guarded(x_shape, dtype, at_end, keep)
        _C.max_pool2d_indices_backward(dy, idx, dx, *args)
        assert_close(dx, ref.max_pool2d_backward(dy, x, k, s, p, d), dtype, k=9)
