"""dropout: nnx.ops against nnx.reference bit for bit (every ISA, both dtypes), the keep rate and
scaling, reproducibility from the seed, thread-count independence, the layer's seeds, argument errors."""
import math

import numpy as np
import pytest

import nnx
from nnx import nn, ops, reference as ref
from nnx.reference.dropout import keep_mask
from optest import past_boundary, random

SHAPES = [(1,), (7,), (8,), (9,), (15,), (16,), (17,), (3, 5), (64, 37), (2, 3, 5, 7), (70001,), (0,), (4, 0)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_matches_reference_bitwise(isa, dtype, rng, shape, p):
    x = random(rng, shape, dtype)
    dy = random(rng, shape, dtype)
    y = ops.dropout(x, p, True, 12345)
    np.testing.assert_array_equal(y, ref.dropout(x, p, True, 12345))
    assert y.dtype == dtype and y.flags.c_contiguous
    dx = ops.dropout_backward(dy, x, p, True, 12345)
    np.testing.assert_array_equal(dx, ref.dropout_backward(dy, x, p, True, 12345))
    # The backward applies the forward's mask: zero exactly where y is zero (x has no zeros here).
    np.testing.assert_array_equal(dx == 0, y == 0)


def test_keep_rate_and_scale(isa, dtype, rng):
    x = np.ones(200_000, dtype)
    for p in (0.05, 0.3, 0.5, 0.8):
        y = ops.dropout(x, p, True, 7)
        kept = y != 0
        # Binomial: the kept fraction lies within 5 standard deviations of 1 - p.
        sd = math.sqrt(p * (1 - p) / x.size)
        assert abs(kept.mean() - (1 - p)) < 5 * sd, (p, kept.mean())
        np.testing.assert_array_equal(y[kept], dtype(1 / (1 - p)))
        # Mean preserved in expectation (inverted dropout).
        assert abs(y.mean() - 1) < 5 * sd / (1 - p)


def test_masks_of_neighbouring_seeds_and_positions_are_independent():
    a, b = keep_mask((100_000,), 0.5, 1), keep_mask((100_000,), 0.5, 2)
    # Two independent fair masks agree on about half the elements.
    assert abs((a == b).mean() - 0.5) < 5 * math.sqrt(0.25 / a.size)
    # No correlation between an element and its neighbour.
    assert abs((a[1:] == a[:-1]).mean() - 0.5) < 5 * math.sqrt(0.25 / a.size)


def test_eval_p0_p1_and_layouts(isa, dtype, rng):
    x = random(rng, (20, 30), dtype)
    for out in (ops.dropout(x, 0.5, False, 3), ops.dropout(x, 0.0, True, 3)):
        np.testing.assert_array_equal(out, x)
        assert out is not x
    np.testing.assert_array_equal(ops.dropout(x, 1.0, True, 3), np.zeros_like(x))
    nan = np.array([np.nan, 1.0], dtype)
    assert np.isnan(ops.dropout(nan, 1.0, True, 3)[0])  # x * 0, as PyTorch
    view = x.T[::2]
    np.testing.assert_array_equal(ops.dropout(view, 0.3, True, 9), ref.dropout(np.ascontiguousarray(view), 0.3,
                                                                                True, 9))
    np.testing.assert_array_equal(ops.dropout_backward(view, view, 0.3, False, 9), view)


def test_reproducible_and_seed_sensitive(rng):
    x = random(rng, (1000,), np.float32)
    np.testing.assert_array_equal(ops.dropout(x, 0.5, True, 2**64 - 1), ops.dropout(x, 0.5, True, 2**64 - 1))
    assert not np.array_equal(ops.dropout(x, 0.5, True, 0), ops.dropout(x, 0.5, True, 1))


def test_bitwise_across_thread_counts(rng):
    x = random(rng, (3, 100_003), np.float32)
    before = nnx.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            nnx.set_num_threads(n)
            outs.append((ops.dropout(x, 0.4, True, 99), ops.dropout_backward(x, x, 0.4, True, 99)))
    finally:
        nnx.set_num_threads(before)
    for o in outs[1:]:
        np.testing.assert_array_equal(o[0], outs[0][0])
        np.testing.assert_array_equal(o[1], outs[0][1])


def test_gradcheck(isa, rng):
    x = random(rng, (4, 6), np.float64)
    assert nnx.gradcheck(lambda v: ops.dropout(v, 0.3, True, 5), [x],
                         lambda dy, v: ops.dropout_backward(dy, v, 0.3, True, 5))


def test_layer_draws_seeds_from_nnx_random(rng):
    x = random(rng, (50, 40), np.float32)
    layer = nn.Dropout(0.5)
    nnx.manual_seed(4)
    a1, a2 = layer(x).numpy(), layer(x).numpy()
    nnx.manual_seed(4)
    b1, b2 = layer(x).numpy(), layer(x).numpy()
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # a fresh mask per call
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x)


def test_layer_backward_uses_the_forward_mask(rng):
    x = nnx.Tensor(random(rng, (30, 20), np.float64), requires_grad=True)
    nnx.manual_seed(0)
    y = nn.Dropout(0.25)(x)
    y.backward(np.ones(x.shape))
    np.testing.assert_array_equal(x.grad, (y.numpy() != 0) / 0.75)


def test_errors():
    x = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"p: expected a dropout probability in \[0, 1\]"):
        ops.dropout(x, 1.5)
    with pytest.raises(ValueError, match="p: expected"):
        ops.dropout(x, float("nan"))
    with pytest.raises(TypeError, match="p: expected a probability"):
        ops.dropout(x, True)
    with pytest.raises(TypeError, match="training: expected True or False"):
        ops.dropout(x, 0.5, 1)
    with pytest.raises(ValueError, match=r"seed: expected an int in \[0, 2\*\*64\)"):
        ops.dropout(x, 0.5, True, -1)
    with pytest.raises(ValueError, match="seed"):
        ops.dropout(x, 0.5, True, 2**64)
    with pytest.raises(TypeError, match="seed: expected an int"):
        ops.dropout(x, 0.5, True, 1.5)
    with pytest.raises(ValueError, match="dy: expected shape"):
        ops.dropout_backward(np.zeros(3, np.float32), x)
    with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
        ops.dropout_backward(np.zeros(4, np.float64), x)
    with pytest.raises(TypeError, match="x: expected a float32 or float64 array"):
        ops.dropout(np.zeros(3, np.int32))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", [0.1, 0.5, 1.0])
def test_saved_mask_bits_match_reference_and_the_hash(isa, dtype, rng, shape, p):
    """return_mask=True: the bits are np.packbits of the reference's keep mask (little bit order, the last
    byte's unused bits 0), y is the plain forward's, and the backward from the bits equals the backward
    that hashes again, bit for bit, on every ISA's kernels."""
    x, dy = random(rng, shape, dtype), random(rng, shape, dtype)
    y, mask = ops.dropout(x, p, True, 777, return_mask=True)
    want_y, want_mask = ref.dropout(x, p, True, 777, return_mask=True)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(mask, np.packbits(keep_mask(shape, p, 777).reshape(-1), bitorder="little"))
    assert mask.dtype == np.uint8 and mask.shape == ((x.size + 7) // 8,)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(y, ops.dropout(x, p, True, 777))
    dx = ops.dropout_backward(dy, x, p, True, 777, mask=mask)
    np.testing.assert_array_equal(dx, ops.dropout_backward(dy, x, p, True, 777))
    np.testing.assert_array_equal(dx, ref.dropout_backward(dy, x, p, True, 777, mask=want_mask))


def test_results_past_the_caches(isa, dtype, rng):
    """Results of STREAM_STORE_MIN_BYTES or more are streamed past the caches a chunk at a time: the forward (with
    and without its mask) and the backward from the mask give the reference's bits, also into outputs 0 .. 15
    elements past a 64-byte boundary, and a ragged tail."""
    C = nnx._backend._C
    n = C.STREAM_STORE_MIN_BYTES // np.dtype(dtype).itemsize + 1003
    x, dy = random(rng, (n,), dtype), random(rng, (n,), dtype)
    want_y, want_mask = ref.dropout(x, 0.3, True, 4242, return_mask=True)
    want_dx = ref.dropout_backward(dy, x, 0.3, True, 4242, mask=want_mask)
    y, mask = ops.dropout(x, 0.3, True, 4242, return_mask=True)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(ops.dropout(x, 0.3, True, 4242), want_y)
    np.testing.assert_array_equal(ops.dropout_backward(dy, x, 0.3, True, 4242, mask=mask), want_dx)
    np.testing.assert_array_equal(ops.dropout_backward(dy, x, 0.3, True, 4242), want_dx)
    for k in ((1, 6, 15) if dtype == np.float32 else (1, 3, 7)):
        out = past_boundary((n,), dtype, k)
        C.dropout(x, out, 0.3, 4242)
        np.testing.assert_array_equal(out, want_y, err_msg=f"y {k} elements past a 64-byte boundary")
        out_mask = np.empty_like(mask)
        C.dropout_save(x, out, out_mask, 0.3, 4242)
        np.testing.assert_array_equal(out, want_y)
        np.testing.assert_array_equal(out_mask, want_mask)
        C.dropout_from_mask(dy, mask, out, 0.3)
        np.testing.assert_array_equal(out, want_dx, err_msg=f"dx {k} elements past a 64-byte boundary")


def test_saved_mask_in_evaluation_and_across_threads(rng):
    x = random(rng, (3, 100_003), np.float32)
    y, mask = ops.dropout(x, 0.5, False, 1, return_mask=True)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(np.unpackbits(mask, count=x.size, bitorder="little"), np.ones(x.size, np.uint8))
    assert mask[-1] == (1 << (x.size % 8)) - 1
    before = nnx.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            nnx.set_num_threads(n)
            y, m = ops.dropout(x, 0.4, True, 99, return_mask=True)
            outs.append((y, m, ops.dropout_backward(x, x, 0.4, True, 99, mask=m)))
    finally:
        nnx.set_num_threads(before)
    for o in outs[1:]:
        for a, b in zip(o, outs[0]):
            np.testing.assert_array_equal(a, b)


def test_saved_mask_errors():
    x = np.ones(20, np.float32)
    _, mask = ops.dropout(x, 0.5, True, 3, return_mask=True)
    with pytest.raises(ValueError, match=r"mask: expected shape \(3,\), one bit per element of x, got \(2,\)"):
        ops.dropout_backward(x, x, 0.5, True, 3, mask=mask[:2])
    with pytest.raises(TypeError, match="mask: expected the uint8 bits"):
        ops.dropout_backward(x, x, 0.5, True, 3, mask=mask.astype(np.int32))
    from nnx import _C
    with pytest.raises(ValueError, match="mask: expected shape"):
        _C.dropout_from_mask(x, mask[:1], np.empty_like(x), 0.5)
    with pytest.raises(ValueError, match="mask: output array is read-only"):
        ro = np.empty(3, np.uint8)
        ro.setflags(write=False)
        _C.dropout_save(x, np.empty_like(x), ro, 0.5, 3)
