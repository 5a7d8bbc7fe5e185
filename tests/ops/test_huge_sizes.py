"""Sizes that overflow int64 or exceed any machine's memory are refused before anything is allocated.

The giant inputs are zero-stride broadcast views (no memory behind them), so these tests cost nothing;
each asserts the exception type and that the message names the argument and gives the size in bytes.
"""
import numpy as np
import pytest

import nnx
from nnx import ops
from nnx import _args as _checks

PIB = 1 << 50  # more memory than any machine these tests run on


def huge(shape, dtype=np.float32):
    """A read-only view of `shape` backed by a single element."""
    return np.broadcast_to(np.ones((1,) * len(shape), dtype), shape)


def test_check_alloc_raises_memory_error_past_the_available_memory_and_value_error_past_int64():
    with pytest.raises(MemoryError, match=rf"^w: .*needs {PIB} bytes"):
        _checks.check_alloc((PIB // 8,), np.float64, "w")
    with pytest.raises(ValueError, match=r"^w: .*overflows a 64-bit size"):
        _checks.check_alloc((1 << 40, 1 << 40), np.float32, "w")
    _checks.check_alloc((1 << 20,), np.float64, "w")  # small: no exception


def test_conv2d_output_whose_size_overflows_int64():
    x = huge((1 << 20, 1, 1 << 20, 1))
    w = huge((1 << 30, 1, 1, 1))
    with pytest.raises(ValueError, match=r"^y: .*\(1048576, 1073741824, 1048576, 1\).*overflows"):
        ops.conv2d(x, w)


def test_conv2d_copy_of_a_broadcast_input_larger_than_memory():
    x = huge((1 << 25, 1, 1 << 12, 1 << 12))  # 2^49 elements: the contiguous copy would be 2 PiB
    w = np.ones((1, 1, 1 << 12, 1 << 12), np.float32)  # one output per image: y is only 128 MiB
    with pytest.raises(MemoryError, match=rf"^x: a contiguous copy .* needs {1 << 51} bytes"):
        ops.conv2d(x, w)


def test_conv2d_backward_gradient_larger_than_memory():
    x = huge((1 << 25, 1, 1 << 12, 1 << 12))
    w = np.ones((1, 1, 1 << 12, 1 << 12), np.float32)
    dy = np.ones((1 << 25, 1, 1, 1), np.float32)
    with pytest.raises(MemoryError, match=r"^dx: .* bytes"):
        ops.conv2d_backward(dy, x, w)


@pytest.mark.parametrize("param", ["stride", "padding", "dilation"])
def test_conv2d_window_parameters_past_2_to_30(param):
    # stride 2^62 with padding 2^62 passed nnx.ops (a 3x3 output) and wrapped around int64 in the C++ geometry.
    x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 1, 1), np.float32)
    for value in ((1 << 30) + 1, 1 << 62):
        with pytest.raises(ValueError, match=rf"^{param}: expected an int <= {1 << 30}"):
            ops.conv2d(x, w, **{param: value})


def test_conv_binding_refuses_parameters_that_would_overflow():
    # The C++ geometry is the last line for a direct call of the extension.
    big = (1 << 62, 1 << 62)
    with pytest.raises(ValueError, match="^stride: "):
        nnx._C.conv2d_plan((1, 1, 4, 4), (1, 1, 1, 1), big, big, (1, 1), 1)
    with pytest.raises(ValueError, match="^w: "):
        nnx._C.conv2d_algorithm((1, 1, 4, 4), (1 << 33, 1, 1, 1), (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="^x: "):
        nnx._C.conv2d_algorithm((1 << 31, 1 << 31, 1 << 31, 1), (1, 1, 1, 1), (1, 1), (0, 0), (1, 1), 1)


@pytest.mark.parametrize("param", ["kernel_size", "stride", "padding", "dilation"])
def test_pool_parameters_past_2_to_30_name_the_argument(param):
    # stride 2**63 used to fail pybind's int64 conversion with an unnamed "incompatible arguments" TypeError.
    kw = {"kernel_size": 2, param: 1 << 63}
    with pytest.raises(ValueError, match=rf"^{param}: expected an int <= {1 << 30}"):
        ops.max_pool2d(np.ones((1, 1, 4, 4), np.float32), **kw)


def test_linear_with_huge_out_features():
    with pytest.raises(MemoryError, match=r"^y: .* bytes"):
        ops.linear(np.ones((4, 3), np.float32), huge((1 << 48, 3)))
    with pytest.raises(ValueError, match=r"^y: .*overflows"):
        ops.linear(huge((1 << 32, 3)), huge((1 << 32, 3)))


def test_gemm_result_larger_than_memory():
    with pytest.raises(MemoryError, match=r"^y: .* bytes"):
        ops.gemm(huge((1 << 24, 1)), huge((1, 1 << 24)))


@pytest.mark.parametrize("op", [ops.relu, ops.sigmoid, ops.softmax, ops.log_softmax])
def test_activation_of_a_broadcast_input_larger_than_memory(op):
    with pytest.raises(MemoryError, match=r"^(x|y): .* bytes"):
        op(huge((1 << 40, 1 << 8)))


def test_pooling_larger_than_memory():
    x = huge((1 << 30, 1 << 10, 4, 4))
    with pytest.raises(MemoryError, match=r"^(x|y): .* bytes"):
        ops.max_pool2d(x, 2)
    with pytest.raises(MemoryError, match=r"^(x|y): .* bytes"):
        ops.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(MemoryError, match=r"^(x|y): .* bytes"):
        ops.global_avg_pool2d(x)


def test_losses_of_broadcast_inputs_larger_than_memory():
    logits = huge((1 << 44, 8))
    target = np.broadcast_to(np.zeros(1, np.int32), (1 << 44,))
    with pytest.raises(MemoryError, match=r"^target: an int64 copy .* bytes"):
        ops.cross_entropy(logits, target)
    with pytest.raises(MemoryError, match=r"^pred: .* bytes"):
        ops.mse_loss(huge((1 << 48,)), huge((1 << 48,)))


def test_data_loader_refuses_a_batch_larger_than_memory():
    X = huge((4, 1 << 48))
    with pytest.raises(MemoryError, match=r"^batch_size: a batch of X .* bytes"):
        nnx.data.DataLoader(X, batch_size=2)
    loader = nnx.data.DataLoader(np.zeros((5, 2)), batch_size=1 << 1100)  # any int: one batch, no float overflow
    assert len(loader) == 1 and [b.shape for b in loader] == [(5, 2)]
