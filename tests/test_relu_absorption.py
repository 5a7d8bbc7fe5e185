"""functional.relu applied to the temporary result of batch_norm, conv2d, linear or a Tensor sum fuses into that op (its
result overwritten in place, its backward switched to the fused form): the same values and gradients, bit
for bit, as the two ops apart, and never when anything else could see the overwritten array."""
import numpy as np
import pytest

import nnx
from nnx import Tensor, functional as F
from optest import assert_close

DTYPES = (np.float32, np.float64)


def _inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((4, 3, 6, 6)).astype(dtype), "w": rng.standard_normal((5, 3, 3, 3)).astype(dtype),
            "gamma": np.linspace(0.5, 1.5, 5).astype(dtype), "beta": np.linspace(-0.3, 0.3, 5).astype(dtype),
            "fw": rng.standard_normal((7, 5 * 36)).astype(dtype), "fb": rng.standard_normal(7).astype(dtype),
            "r": rng.standard_normal((4, 5, 6, 6)).astype(dtype)}


def _producers():
    """name -> f(params) computing the op whose result relu takes."""
    return {
        "batch_norm": lambda p: F.batch_norm(F.conv2d(p["x"], p["w"], padding=1), np.zeros(5, p["x"].dtype),
                                             np.ones(5, p["x"].dtype), p["gamma"], p["beta"], training=True),
        "conv2d": lambda p: F.conv2d(p["x"], p["w"], padding=1),
        "linear": lambda p: F.linear(F.conv2d(p["x"], p["w"], padding=1).reshape(4, -1), p["fw"], p["fb"]),
        "add": lambda p: F.conv2d(p["x"], p["w"], padding=1) + p["r"],  # a residual block's relu(out + identity)
    }


def _step(name, dtype, absorbed, backend=None):
    """relu(producer(...)) then a loss: (relu's _op, output, gradients of every input)."""
    p = {k: Tensor(v.copy(), requires_grad=True) for k, v in _inputs(dtype).items()}
    make = _producers()[name]
    with F.use_backend(backend or nnx.ops):
        if absorbed:
            h = F.relu(make(p))
        else:
            t = make(p)  # held by a variable: relu may not overwrite it
            h = F.relu(t)
            assert (t.data < 0).any(), "the held result must keep its negative values"
        op = h._op
        loss = (F.linear(h.reshape(4, -1), Tensor(np.ones((2, h.data[0].size), dtype))) ** 2).sum()
        loss.backward()
    return op, h.data.copy(), {k: v.grad.copy() for k, v in p.items() if v.grad is not None}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["batch_norm", "conv2d", "linear", "add"])
def test_absorbed_relu_is_bitwise_the_pair(name, dtype):
    op_a, out_a, grads_a = _step(name, dtype, absorbed=True)
    op_p, out_p, grads_p = _step(name, dtype, absorbed=False)
    assert op_a == f"{name}+relu" and op_p == "relu"
    assert (out_a == 0).any() and (out_a > 0).any()
    np.testing.assert_array_equal(out_a, out_p)
    assert grads_a.keys() == grads_p.keys() and "x" in grads_a
    for k in grads_a:
        np.testing.assert_array_equal(grads_a[k], grads_p[k], err_msg=k)


@pytest.mark.parametrize("name", ["batch_norm", "conv2d", "linear", "add"])
def test_absorbed_relu_matches_the_reference(name):
    op, out, grads = _step(name, np.float64, absorbed=True)
    op_r, out_r, grads_r = _step(name, np.float64, absorbed=True, backend=nnx.reference)
    assert op == op_r == f"{name}+relu"  # the reference backend absorbs it too, with NumPy's in-place maximum
    assert_close(out, out_r, np.float64, 50, "relu output")
    for k in grads:
        assert_close(grads[k], grads_r[k], np.float64, 50, k)


def test_not_absorbed_when_the_array_is_held_elsewhere():
    p = {k: Tensor(v) for k, v in _inputs(np.float32).items()}
    kept = []

    def conv_keeping_data(p):
        out = F.conv2d(p["x"], p["w"], padding=1)
        kept.append(out.data)  # as a forward hook storing activations might
        return out

    h = F.relu(conv_keeping_data(p))
    assert h._op == "" and (kept[0] < 0).any()
    np.testing.assert_array_equal(h.data, np.maximum(kept[0], 0))


def test_not_absorbed_in_anomaly_mode():
    p = {k: Tensor(v, requires_grad=True) for k, v in _inputs(np.float64).items()}
    with nnx.detect_anomaly():
        h = F.relu(_producers()["conv2d"](p))
    assert h._op == "relu"


def test_second_relu_and_no_grad():
    p = {k: Tensor(v, requires_grad=True) for k, v in _inputs(np.float64).items()}
    ref = np.maximum(F.conv2d(p["x"], p["w"], padding=1).data, 0)
    h = F.relu(F.relu(F.conv2d(p["x"], p["w"], padding=1)))
    assert h._op == "relu"  # the first relu was absorbed; the second is its own op
    np.testing.assert_array_equal(h.data, ref)
    with nnx.no_grad():
        h = F.relu(F.conv2d(p["x"], p["w"], padding=1))
    np.testing.assert_array_equal(h.data, ref)


def test_sum_absorbs_relu_with_broadcasting_and_keeps_integer_sums_apart():
    x = Tensor(np.array([[-2.0, 0.5], [1.0, -0.25]]), requires_grad=True)
    h = F.relu(x + 0.5)  # a scalar operand: still a new array of the sum's own
    assert h._op == "add+relu"
    np.testing.assert_array_equal(h.data, [[0.0, 1.0], [1.5, 0.25]])
    h.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 1.0], [1.0, 1.0]])
    held = x + 0.5  # held by a variable: relu makes a new array
    assert F.relu(held)._op == "relu" and held.data[0, 0] == -1.5


def _pool_step(name, dtype, mode, padding=0):
    """max_pool2d(relu(producer(...)), 2) then a loss. mode: "temporary" (the pooling may take the ReLU's
    mask over), "held" (relu's result held by a variable: it may not), "apart" (nothing fused)."""
    p = {k: Tensor(v.copy(), requires_grad=True) for k, v in _inputs(dtype).items() if k != "fw"}
    make = _producers()[name]
    if mode == "temporary":
        out = F.max_pool2d(F.relu(make(p)), 2, padding=padding)
    elif mode == "held":
        h = F.relu(make(p))
        out = F.max_pool2d(h, 2, padding=padding)
    else:
        t = make(p)
        out = F.max_pool2d(F.relu(t), 2, padding=padding)
    loss = (out * Tensor(np.linspace(-1, 1, out.data.size).reshape(out.shape).astype(dtype))).sum()
    loss.backward()
    return out._op, out.data.copy(), {k: v.grad.copy() for k, v in p.items() if v.grad is not None}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["batch_norm", "conv2d", "add"])
def test_max_pool_takes_over_the_relu_mask_bitwise(name, dtype):
    # PyTorch's tutorial form max_pool2d(relu(conv(x)), 2): the pooling masks its gradient by its relu'd
    # output, and the op before it no longer masks (its relu'd array is not read again): the same bits.
    op_t, out_t, grads_t = _pool_step(name, dtype, "temporary")
    op_h, out_h, grads_h = _pool_step(name, dtype, "held")
    op_a, out_a, grads_a = _pool_step(name, dtype, "apart")
    op_p, _, grads_p = _pool_step(name, dtype, "temporary", padding=1)  # windows on padding: not taken over
    assert op_t == "max_pool2d+relu" and op_h == op_a == op_p == "max_pool2d"
    assert (out_t == 0).any() and (out_t > 0).any()
    for out in (out_h, out_a):
        np.testing.assert_array_equal(out_t, out)
    for grads in (grads_h, grads_a):
        assert grads.keys() == grads_t.keys() and "x" in grads_t
        for k in grads_t:
            np.testing.assert_array_equal(grads_t[k], grads[k], err_msg=k)
    with F.use_backend(nnx.reference):
        _, out_r, grads_r = _pool_step(name, np.float64, "temporary")
    assert_close(out_t, out_r, dtype, k=60)
    for k in grads_t:
        assert_close(grads_t[k], grads_r[k], dtype, k=200, name=k)
