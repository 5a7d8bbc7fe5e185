"""Regression tests for what the fuzzer (test_fuzz_ops.py) found, one per finding."""
import numpy as np
import pytest

from nnx import ops, reference as ref


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "leaky_relu", "elu"])
def test_elementwise_ops_keep_a_0d_shape(name):
    # np.ascontiguousarray turns a 0-d array into shape (1,); the result came back 1-d.
    x = np.asarray(-0.5)
    got = getattr(ops, name)(x)
    assert got.shape == ()
    assert got == getattr(ref, name)(x)
    grad = getattr(ops, name + "_backward")(np.asarray(2.0), x)
    assert grad.shape == () and grad == getattr(ref, name + "_backward")(np.asarray(2.0), x)


def test_gemm_checks_c_even_when_beta_is_zero():
    a, b = np.ones((2, 3)), np.ones((3, 4))
    with pytest.raises(ValueError, match="^c: "):
        ops.gemm(a, b, np.ones((3, 5)), beta=0.0)
    with pytest.raises(ValueError, match="^c: "):
        ops.gemm(a, b, np.ones((1, 2, 4)), beta=1.0)


def test_gemm_backward_checks_inner_dimensions_and_c():
    dy, a = np.ones((2, 4)), np.ones((2, 3))
    with pytest.raises(ValueError, match="^b: "):  # op(b) with 5 rows against op(a)'s 3 columns
        ops.gemm_backward(dy, a, np.ones((5, 4)))
    with pytest.raises(TypeError, match="c is float32"):
        ops.gemm_backward(dy, a, np.ones((3, 4)), np.ones(4, np.float32), beta=1.0)
    with pytest.raises(ValueError, match="^c: "):
        ops.gemm_backward(dy, a, np.ones((3, 4)), np.ones(3), beta=1.0)
    with pytest.raises(ValueError, match="^dy: "):
        ops.gemm_backward(np.ones(4), a, np.ones((3, 4)))


def test_conv2d_backward_checks_the_algorithm_when_no_gradient_is_needed():
    x, w = np.ones((1, 2, 5, 5)), np.ones((2, 2, 3, 3))
    dy = np.ones((1, 2, 3, 3))
    for algorithm in ("gemm1x1", "depthwise"):
        with pytest.raises(ValueError, match="^algorithm: "):
            ops.conv2d_backward(dy, x, w, needs=(False, False, False), algorithm=algorithm)
        with pytest.raises(ValueError, match="^algorithm: "):
            ops.conv2d(x, w, algorithm=algorithm)


@pytest.mark.parametrize("name", ["cross_entropy", "multiclass_hinge_loss"])
def test_class_losses_accept_a_strided_single_target(name):
    # A (1,) slice with stride 16 is C-contiguous to NumPy (so not copied) and was refused by the binding.
    target = np.array([1, 0], np.int64)[::2]
    scores = np.array([[0.3, -1.2, 2.0]])
    got = getattr(ops, name)(scores, target)
    np.testing.assert_allclose(got, getattr(ref, name)(scores, target), rtol=1e-12)
    got = getattr(ops, name + "_backward")(1.0, scores, target)
    np.testing.assert_allclose(got, getattr(ref, name + "_backward")(1.0, scores, target), rtol=1e-12)
