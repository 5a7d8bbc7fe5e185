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


# Shapes whose vector axis (the elements after `axis`) is 1 (one lane; with 2 or 4 pieces the AVX2 float kernel's
# groups side by side), shorter than a vector, a whole number of vectors and ragged: every path of the C++
# kernels, on every ISA this CPU runs.
@pytest.mark.parametrize("shape, pieces, axis", [((4, 6), 2, 1), ((3, 6, 3), 3, 1), ((2, 4, 8), 2, 1),
                                                  ((2, 6, 5, 5), 2, 1), ((2, 9, 17), 3, 1), ((1, 40, 33), 5, 1),
                                                  ((3, 4, 2, 7), 4, 1), ((5, 8), 4, 1), ((7, 12), 4, 1),
                                                  ((3, 14), 2, 1), ((9, 2), 2, 1)])
def test_kernels_equal_reference_on_every_isa(isa, dtype, shape, pieces, axis):
    rng = np.random.default_rng(7)
    x = random(rng, shape, dtype)
    x.reshape(-1)[::5] = np.round(x.reshape(-1)[::5])  # ties between pieces
    y = ops.maxout(x, pieces, axis)
    np.testing.assert_array_equal(y, reference.maxout(x, pieces, axis))  # a maximum is exact
    dy = random(rng, y.shape, dtype)
    np.testing.assert_array_equal(ops.maxout_backward(dy, x, pieces, axis),
                                  reference.maxout_backward(dy, x, pieces, axis))


def test_nan_inf_and_signed_zero_follow_the_reference(isa):
    # pieces along axis 1, 11 columns (a vector and a ragged tail on AVX2): NaN first (wins), NaN later
    # (never wins), +-inf, and -0.0 before +0.0 (equal: the first keeps it)
    p0 = np.array([np.nan, 1.0, -np.inf, -0.0, 2.0, 0.0, 3.0, np.inf, -1.0, 5.0, np.nan])
    p1 = np.array([1.0, np.nan, -1.0, 0.0, np.inf, -0.0, 3.0, 1.0, -np.inf, np.nan, 2.0])
    x = np.stack([p0, p1])[None]  # (1, 2, 11)
    y, want = ops.maxout(x, 2, 1), reference.maxout(x, 2, 1)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(want))
    dy = np.arange(1.0, 12.0)[None, None]
    np.testing.assert_array_equal(ops.maxout_backward(dy, x, 2, 1), reference.maxout_backward(dy, x, 2, 1))
    _, idx = ops.maxout(x, 2, 1, return_indices=True)
    np.testing.assert_array_equal(idx, reference.maxout(x, 2, 1, return_indices=True)[1])


@pytest.mark.parametrize("pieces", [2, 4])
def test_one_element_rows_nan_inf_ties_and_signed_zero_follow_the_reference(isa, pieces):
    # Groups of `pieces` adjacent elements (inner == 1: the AVX2 float kernel's groups side by side in a
    # register), 31 groups (whole registers and a ragged tail): every position of a NaN, an inf, a tie and -0.0
    # before +0.0 within a group, among random values.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((31, pieces)).astype(np.float32)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    for g in range(31):
        j, v = g % pieces, specials[g % len(specials)]
        x[g, j] = v
        if g % 3 == 0:
            x[g, (j + 1) % pieces] = x[g, j]  # a tie (or a second NaN)
    dy = rng.standard_normal((31, 1)).astype(np.float32)
    want = reference.maxout_backward(dy, x, pieces, 1)
    got = ops.maxout_backward(dy, x, pieces, 1)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_array_equal(ops.maxout(x, pieces, 1), reference.maxout(x, pieces, 1))


def test_same_bits_for_any_thread_count(dtype):
    x = random(np.random.default_rng(3), (64, 32, 14, 14), dtype)
    dy = random(np.random.default_rng(4), (64, 16, 14, 14), dtype)
    before = nnx.get_num_threads()
    try:
        runs = []
        for t in (1, 2, 3):
            nnx.set_num_threads(t)
            runs.append((ops.maxout(x, 2, 1), ops.maxout_backward(dy, x, 2, 1)))
    finally:
        nnx.set_num_threads(before)
    for y, dx in runs[1:]:
        np.testing.assert_array_equal(y, runs[0][0])
        np.testing.assert_array_equal(dx, runs[0][1])
    np.testing.assert_array_equal(runs[0][0], reference.maxout(x, 2, 1))


def test_kernel_names_follow_the_isa(isa):
    assert nnx._C.maxout_ukernel_name(True).startswith("maxout_" + ("avx2" if isa in ("avx2", "avx512") else "portable"))


def test_compiled_step_replays_the_maxout_kernels_bit_for_bit():
    """Both kernels go through run_kernel, so nnx.compile captures a maxout network's step (strict: no
    eager fallback) and its replays give the eager step's bits."""
    data = [(random(np.random.default_rng(s), (8, 20), np.float32), np.arange(8) % 5) for s in range(5)]
    runs = []
    for compiled in (False, True):
        nnx.manual_seed(0)
        model = nn.Sequential(nn.Maxout(20, 12, pieces=3), nn.Maxout(12, 8, pieces=2), nn.Linear(8, 5))
        opt = nnx.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()

        def step(x, y):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss
        run = nnx.compile(step, strict=True) if compiled else step
        losses = [run(x, y).numpy().tobytes() for x, y in data]
        runs.append((losses, [p.data.tobytes() for p in model.parameters()]))
        if compiled:
            assert run.stats()[0]["state"] == "plan"
    assert runs[0] == runs[1]
