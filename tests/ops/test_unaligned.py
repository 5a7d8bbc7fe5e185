"""Inputs whose data pointer is not a multiple of the item size (e.g. a view into a byte buffer at an odd
offset) must give the same results as aligned ones, for every kernel family."""
import numpy as np
import pytest

from nnx import ops, reference as ref
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
