"""Inputs whose data pointer is not a multiple of the item size (e.g. a view into a byte buffer at an odd
offset) must give the same results as aligned ones, for every kernel family."""
import numpy as np
import pytest

from nnx import _C, ops, optim, reference as ref
from nnx.nn import Parameter
from optest import assert_close


def unaligned_copy(a: np.ndarray) -> np.ndarray:
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


CASES = [
    ("gemm", lambda m, x, w: m.gemm(x.reshape(6, -1), w.reshape(-1, 4)), 50),
    ("relu", lambda m, x, w: m.relu(x), 1),
    ("softmax", lambda m, x, w: m.softmax(x, axis=1), 2),
    ("conv2d", lambda m, x, w: m.conv2d(x, w), 50),
    ("max_pool2d", lambda m, x, w: m.max_pool2d(x, 2), 1),
    ("avg_pool2d", lambda m, x, w: m.avg_pool2d(x, 2), 4),
    ("cross_entropy", lambda m, x, w: m.cross_entropy(x.reshape(6, -1), np.arange(6) % 3), 50),
]


@pytest.mark.parametrize("name,call,k", CASES, ids=[c[0] for c in CASES])
def test_unaligned_inputs_match_reference(isa, dtype, rng, name, call, k):
    x = rng.uniform(-1, 1, (6, 2, 5, 5)).astype(dtype)
    w = rng.uniform(-1, 1, (4, 2, 5, 5)).astype(dtype)
    got = call(ops, unaligned_copy(x), unaligned_copy(w))
    assert_close(got, call(ref, x, w), dtype, k=k, name=name)


def test_unaligned_bias_and_fused_linear_match_reference(isa, dtype, rng):
    x, w, b = (rng.uniform(-1, 1, s).astype(dtype) for s in [(9, 7), (5, 7), (5,)])
    got = ops.linear(unaligned_copy(x), unaligned_copy(w), unaligned_copy(b), activation="tanh")
    assert_close(got, ref.linear(x, w, b, activation="tanh"), dtype, k=7)


def test_binding_refuses_unaligned_pointer():
    # The ops layer copies unaligned arrays; a direct kernel call gets an error naming the argument, not a
    # misaligned load (undefined behaviour, which the sanitizer build would report).
    a = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"^a: data is not aligned to its item size \(4 bytes\)"):
        _C.gemm(unaligned_copy(a), a, np.empty((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"^bias: data is not aligned"):
        _C.gemm(a, a, np.empty((4, 4), np.float32), 1.0, 0.0, unaligned_copy(np.ones(4, np.float32)))


def test_optimizer_unaligned_gradient_and_parameter():
    p0 = np.linspace(-1, 1, 11).astype(np.float32)
    g = np.linspace(2, -2, 11).astype(np.float32)
    p = Parameter(p0.copy())
    opt = optim.SGD([p], lr=0.5)
    p.grad = unaligned_copy(g)
    opt.step()
    np.testing.assert_allclose(p.data, p0 - 0.5 * g, rtol=1e-6)
    # The update is in place, so an unaligned parameter cannot be copied behind the caller's back.
    q = Parameter(unaligned_copy(p0))
    q.grad = g.copy()
    with pytest.raises(ValueError, match="param: .*aligned=False"):
        optim.SGD([q], lr=0.5).step()
