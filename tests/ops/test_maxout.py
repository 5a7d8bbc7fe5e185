"""maxout / maxout_backward: nnx.ops against nnx.reference, the reference against finite differences,
nn.Maxout and nn.ChannelMaxout through autograd."""
import numpy as np
import pytest

import nnx
from nnx import nn, ops, reference

from optest import check_op, random


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, pieces, axis", [((5, 12), 3, 1), ((5, 12), 4, -1), ((2, 6, 4, 5), 2, 1),
                                                  ((2, 3, 8), 4, 2), ((7,), 7, 0), ((3, 4), 1, 1)])
def test_ops_match_reference(dtype, shape, pieces, axis):
    rng = np.random.default_rng(0)
    x = random(rng, shape, dtype)
    y = check_op(ops.maxout, reference.maxout, (x, pieces, axis), dtype=dtype)
    y2, idx = ops.maxout(x, pieces, axis, return_indices=True)
    ry, ridx = reference.maxout(x, pieces, axis, return_indices=True)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(idx, ridx)
    dy = random(rng, y.shape, dtype)
    check_op(ops.maxout_backward, reference.maxout_backward, (dy, x, pieces, axis), dtype=dtype)
    np.testing.assert_array_equal(ops.maxout_backward(dy, x, pieces, axis, indices=idx),
                                  reference.maxout_backward(dy, x, pieces, axis))


def test_values_by_hand_and_ties():
    x = np.array([[1.0, 5.0, 2.0, -1.0, -3.0, -2.0]])
    np.testing.assert_array_equal(ops.maxout(x, 3), [[5.0, -1.0]])
    np.testing.assert_array_equal(ops.maxout(x, 2), [[5.0, 2.0, -2.0]])
    tie = np.array([[2.0, 2.0]])
    for lib in (ops, reference):  # the first piece wins a tie, and only it gets the gradient
        np.testing.assert_array_equal(lib.maxout_backward(np.array([[1.0]]), tie, 2), [[1.0, 0.0]])


def test_reference_against_finite_differences():
    x = np.random.default_rng(1).standard_normal((3, 8, 2))  # distinct values: max is differentiable
    assert nnx.gradcheck(lambda t: nnx.functional.maxout(t, 4, dim=1), [x])
    with nnx.functional.use_backend(reference):
        assert nnx.gradcheck(lambda t: nnx.functional.maxout(t, 2, dim=-1), [x])


def test_errors():
    x = np.zeros((2, 6))
    with pytest.raises(ValueError, match="pieces"):
        ops.maxout(x, 4)
    with pytest.raises(ValueError, match="pieces"):
        ops.maxout(x, 0)
    with pytest.raises(TypeError, match="pieces"):
        ops.maxout(x, 2.5)
    with pytest.raises(ValueError, match="axis"):
        ops.maxout(x, 2, axis=2)
    with pytest.raises(ValueError, match="dy"):
        ops.maxout_backward(np.zeros((2, 2)), x, 2)
    with pytest.raises(ValueError, match="indices"):
        ops.maxout_backward(np.zeros((2, 3)), x, 2, indices=np.full((2, 3), 5))
    with pytest.raises(TypeError):
        ops.maxout_backward(np.zeros((2, 3), np.float32), x, 2)


def test_modules():
    nnx.manual_seed(0)
    m = nn.Maxout(5, 3, pieces=4, dtype=np.float64)
    assert m.linear.weight.shape == (12, 5)
    x = np.random.default_rng(2).standard_normal((6, 5))
    y = m(x)
    lin = x @ m.linear.weight.data.T + m.linear.bias.data
    np.testing.assert_allclose(y.numpy(), lin.reshape(6, 3, 4).max(axis=2), rtol=1e-12)
    y.sum().backward()
    assert m.linear.weight.grad.shape == (12, 5)
    # each (sample, unit) sends gradient to exactly one of its 4 pieces: the bias gradient counts wins
    assert m.linear.bias.grad.reshape(3, 4).sum() == 6 * 3
    c = nn.ChannelMaxout(2)
    fm = np.random.default_rng(3).standard_normal((2, 6, 4, 4))
    np.testing.assert_array_equal(c(fm).numpy(), np.maximum(fm[:, 0::2], fm[:, 1::2]))
    assert "pieces=4" in repr(m)
