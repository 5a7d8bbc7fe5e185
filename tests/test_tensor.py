"""nnx.Tensor: autograd against central finite differences on composed graphs, no_grad, mixing with
scalars and ndarrays."""
import numpy as np
import pytest

import nnx
from nnx import Tensor

R = np.random.default_rng(7)


def rand(*shape):
    return R.standard_normal(shape)


def check(f, *inputs, **kw):
    assert nnx.gradcheck(f, list(inputs), **kw)


# ------------------------------------------------------------------ each op on its own
@pytest.mark.parametrize("f, shapes", [
    (lambda a, b: a + b, [(3, 4), (3, 4)]),
    (lambda a, b: a - b, [(3, 4), (4,)]),           # broadcast of a bias
    (lambda a, b: a * b, [(2, 3, 4), (3, 1)]),      # broadcast over two axes
    (lambda a, b: a @ b, [(3, 5), (5, 2)]),
    (lambda a, b: a @ b, [(2, 3, 5), (5, 4)]),      # batched matmul, broadcast weight
    (lambda a, b: a @ b, [(5,), (5, 3)]),           # vector @ matrix
    (lambda a, b: a @ b, [(3, 5), (5,)]),           # matrix @ vector
    (lambda a, b: a @ b, [(2, 1, 3, 5), (4, 5, 2)]),  # batches broadcast against each other
    (lambda a, b: a @ b.transpose(1, 2), [(3, 4, 5), (3, 2, 5)]),  # attention's q @ k^T
])
def test_binary_ops(f, shapes):
    check(f, *[rand(*s) for s in shapes])


def test_matmul_runs_the_gemm_and_integers_numpy():
    a = Tensor(R.standard_normal((3, 4, 5)).astype(np.float32), requires_grad=True)
    b = Tensor(R.standard_normal((5, 6)).astype(np.float32), requires_grad=True)
    y = a @ b
    np.testing.assert_array_equal(y.data, nnx.ops.matmul(a.data, b.data))
    g = R.standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    da, db = nnx.ops.matmul_backward(g, a.data, b.data)
    np.testing.assert_array_equal(a.grad, da)
    np.testing.assert_array_equal(b.grad, db)
    assert a.matmul(b).shape == (3, 4, 6)
    i = Tensor(np.arange(6).reshape(2, 3)) @ Tensor(np.ones((3, 2), np.int64))
    assert i.dtype == np.int64 and i.data.tolist() == [[3, 3], [12, 12]]


def test_division_by_tensor():
    check(lambda a, b: a / b, rand(3, 4), np.abs(rand(1, 4)) + 0.5)
    check(lambda a: 2.0 / a, np.abs(rand(3)) + 0.5)


@pytest.mark.parametrize("f", [
    lambda a: -a,
    lambda a: a ** 2,
    lambda a: a ** 3.0,
    lambda a: a.sum(),
    lambda a: a.sum(axis=1),
    lambda a: a.sum(axis=(0, 2), keepdims=True),
    lambda a: a.mean(),
    lambda a: a.mean(axis=-1),
    lambda a: a.reshape(4, 6),
    lambda a: a.view(-1),
    lambda a: a.flatten(1),
    lambda a: a.transpose(0, 2),
    lambda a: a.T,
    lambda a: a.permute(1, 2, 0),
    lambda a: a[1],
    lambda a: a[:, 1:3, ::2],
    lambda a: a[[0, 0, 1]],                    # the same row twice: gradients add up (scatter-add)
    lambda a: a[np.array([1, 0]), :, np.array([3, 3])],
    lambda a: a[a.data > 0],
    lambda a: a.exp(),
    lambda a: (a * a + 1.0).log(),
    lambda a: a.abs(),
    lambda a: a.astype(np.float64) * 2,
])
def test_unary_ops(f):
    check(f, rand(2, 3, 4))


def test_pow_of_positive_base():
    check(lambda a: (a * a + 0.1) ** 0.5, rand(3, 2))
    check(lambda a: a.sqrt(), np.abs(rand(4)) + 0.2)


def test_cat_and_stack():
    check(lambda a, b, c: nnx.cat([a, b, c], axis=1), rand(2, 3), rand(2, 1), rand(2, 4))
    check(lambda a, b: nnx.cat([a, b, a]), rand(2, 3), rand(1, 3))  # a appears twice
    check(lambda a, b: nnx.stack([a, b], axis=1), rand(2, 3), rand(2, 3))


# ------------------------------------------------------------------ composed graphs
def test_tensor_used_twice():
    check(lambda a: a * a + a, rand(3, 3))


def test_branching_and_residual():
    def f(x, w1, w2, b):
        h = x @ w1 + b           # bias broadcast over the batch
        left = (h * 0.5) @ w2
        right = h @ w2           # h feeds two branches
        return (left + right + h[:, :2]) ** 2 + x[:, :2]   # x reused: residual path
    check(f, rand(4, 3), rand(3, 5), rand(5, 2), rand(5))


def test_matmul_chain_with_reductions():
    def f(a, b, c):
        return ((a @ b) @ c).mean(axis=0) - (a @ (b @ c)).sum(axis=0) * 0.1
    check(f, rand(4, 3), rand(3, 6), rand(6, 2))


def test_indexing_concat_graph():
    def f(x, y):
        z = nnx.cat([x[:, :2], y.T, x[:, 1:2] * y[0:1].T], axis=1)
        return z.sum(axis=1) * z[0, 0]
    check(f, rand(3, 4), rand(2, 3))


def test_scalars_and_ndarrays_mix():
    x = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    k = np.full((2, 2), 3.0, np.float32)
    y = 2 * x + 1 - k * x / 2 + k @ x + 1.5 / (x + 1)
    assert y.dtype == np.float32
    y.sum().backward()
    # d/dx of 2x - 1.5x + 1.5/(x+1) at x = 1 is 0.5 - 0.375 = 0.125, plus column sums of k for k @ x.
    np.testing.assert_allclose(x.grad, np.full((2, 2), 0.125 + 6.0), rtol=1e-6)
    assert (np.ones(2) - Tensor(np.ones(2))).data.tolist() == [0.0, 0.0]


def test_leaf_gradients_accumulate_across_backward_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [3 + 2, 3 + 4])


def test_backward_needs_grad_for_non_scalar_and_frees_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="single-element"):
        y.backward()
    y.backward(np.ones(3), retain_graph=True)
    y.backward(np.ones(3))
    np.testing.assert_allclose(x.grad, [4, 4, 4])
    with pytest.raises(RuntimeError, match="freed"):
        y.backward(np.ones(3))


def test_deep_graph_needs_no_recursion():
    x = Tensor(np.ones(1), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    assert x.grad[0] == 1.0


def test_no_grad_context_and_decorator():
    x = Tensor(np.ones(2), requires_grad=True)
    with nnx.no_grad():
        y = x * 2
        with nnx.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad
    assert nnx.is_grad_enabled()

    @nnx.no_grad()
    def infer(t):
        return t * 3

    assert not infer(x).requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_restores_on_exception():
    with pytest.raises(ValueError):
        with nnx.no_grad():
            raise ValueError
    assert nnx.is_grad_enabled()


def test_tensor_basics():
    t = Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.dtype == np.float32 and t.shape == (2, 2) and t.ndim == 2 and len(t) == 2
    assert isinstance(t.numpy(), np.ndarray)
    assert Tensor(5.0).item() == 5.0
    assert np.asarray(t).shape == (2, 2)
    assert "Tensor(" in repr(t)
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(ValueError, match="single-element"):
        t.item()
    d = Tensor(np.ones(2), requires_grad=True).detach()
    assert not d.requires_grad


def test_gradient_keeps_parameter_dtype_and_is_contiguous():
    w = Tensor(np.ones((3, 2), np.float32), requires_grad=True)
    (w.T * Tensor(np.ones((2, 3), np.float64))).sum().backward()
    assert w.grad.dtype == np.float32 and w.grad.flags.c_contiguous


def test_shared_gradient_arrays_are_not_aliased():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad[0] = 100
    assert b.grad[0] == 1


# ------------------------------------------------------------------ large sums: the sum kernels
BIG = (64, 16, 4, 8)  # 32768 elements: above nnx._args.ELEMENTWISE_KERNEL_MIN, so summed by the kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_sum_has_numpys_bits_and_gradient(dtype):
    a, b = rand(*BIG).astype(dtype), rand(*BIG).astype(dtype)
    b[0, 0, 0, :4] = [np.inf, -0.0, np.nan, 1e-45]
    for threads in (1, 2):
        nnx.set_num_threads(threads)
        ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
        out = ta + tb
        assert out.data.dtype == dtype and np.array_equal(out.data.view(np.uint8), (a + b).view(np.uint8))
        g = rand(*BIG).astype(dtype)
        out.backward(g)
        assert np.array_equal(ta.grad, g) and np.array_equal(tb.grad, g)
    # Operands the kernel does not take (a transposed view, a broadcast) go through NumPy's rules.
    t = Tensor(a) + Tensor(b.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2))
    assert np.array_equal(t.data, a + b, equal_nan=True)
    assert np.array_equal((Tensor(a) + Tensor(b[0])).data, a + b[0], equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_times_number_has_numpys_bits_and_gradient(dtype):
    # A large tensor times a number runs on the scale kernel (IEEE products: NumPy's bits), and a sum's or mean's
    # gradient stays one broadcast value through it, down to the activation kernel that reads it in place.
    a = rand(*BIG).astype(dtype)
    a[0, 0, 0, :4] = [np.inf, -0.0, np.nan, 1e-45]
    clean = rand(*BIG).astype(dtype)
    before = nnx.get_num_threads()
    try:
        for threads in (1, 2):
            nnx.set_num_threads(threads)
            ta = Tensor(a, requires_grad=True)
            for out, s in ((ta * 0.3, 0.3), (1.7 * ta, 1.7)):
                want = a * np.asarray(s, dtype)
                assert out.data.dtype == dtype and np.array_equal(out.data.view(np.uint8), want.view(np.uint8))
            g = rand(*BIG).astype(dtype)
            (ta * 0.3).backward(g)
            assert np.array_equal(ta.grad, g * np.asarray(0.3, dtype))
            tb = Tensor(clean, requires_grad=True)
            (tb * 0.3).sum().backward()
            assert np.array_equal(tb.grad, np.full(BIG, 0.3, dtype))
            tc = Tensor(clean, requires_grad=True)
            (tc.relu() * -2.5).mean().backward()
            step = np.asarray(1.0 / clean.size, dtype) * np.asarray(-2.5, dtype)
            assert np.array_equal(tc.grad, np.where(clean > 0, step, dtype(0)))
    finally:
        nnx.set_num_threads(before)


@pytest.mark.parametrize("shape", [(3, 4), BIG])
def test_accumulated_gradient_never_changes_an_array_the_caller_kept(shape):
    # A second backward before zero_grad adds into leaf.grad; in place only where nothing else holds that array.
    x = Tensor(rand(*shape), requires_grad=True)
    (x * 2.0).sum().backward()
    kept = x.grad
    (x * 3.0).sum().backward()
    assert np.array_equal(kept, np.full(shape, 2.0)) and x.grad is not kept
    assert np.array_equal(x.grad, np.full(shape, 5.0))
    before = id(x.grad)
    (x * 0.5).sum().backward()  # no one else holds x.grad now: summed into it (the kernel's add, or NumPy's if small)
    assert np.array_equal(x.grad, np.full(shape, 5.5))
    assert id(x.grad) == before


def test_gradient_sums_in_place_only_into_arrays_nobody_else_holds():
    # y's two consumers hand it gradients; the engine may sum them into one of them only when no one else
    # holds it. Here one of them is the caller's own gradient array (add's backward hands g on unchanged),
    # which must come back untouched, and the doubled branch a fresh array, which may take the sum.
    x = Tensor(rand(*BIG), requires_grad=True)
    y = x.relu()
    g = rand(*BIG)
    keep = g.copy()
    ((y * 2.0) + y).backward(g)
    assert np.array_equal(g, keep)
    np.testing.assert_allclose(x.grad, 3.0 * keep * (x.data > 0), rtol=1e-15)
    # One array handed to both parents of an add of a tensor with itself: both contributions count.
    x2 = Tensor(rand(*BIG), requires_grad=True)
    h = x2.relu()
    (h + h).backward(g)
    assert np.array_equal(g, keep)
    np.testing.assert_allclose(x2.grad, 2.0 * keep * (x2.data > 0), rtol=1e-15)


# ------------------------------------------------------------------ random broadcasting shapes
from hypothesis import given, settings, strategies as st  # noqa: E402


@st.composite
def broadcast_pair(draw):
    """A shape and a second shape that broadcasts against it (dims dropped from the front or set to 1)."""
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    drop = draw(st.integers(0, len(shape)))
    other = [1 if draw(st.booleans()) else n for n in shape[drop:]]
    return tuple(shape), tuple(other)


@settings(max_examples=30, deadline=None)
@given(broadcast_pair(), st.booleans())
def test_broadcasting_gradients_random_shapes(shapes, swap):
    a_shape, b_shape = shapes[::-1] if swap else shapes
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    c = np.abs(rng.standard_normal(b_shape)) + 0.5
    check(lambda x, y, z: (x * y - x / z + y) * 2 + z.sum(), a, b, c)


def test_grad_mode_is_per_thread_and_reentrant():
    import threading
    seen = []
    with nnx.no_grad():
        t = threading.Thread(target=lambda: seen.append(nnx.is_grad_enabled()))
        t.start()
        t.join()
        assert not nnx.is_grad_enabled()
    assert seen == [True]

    @nnx.no_grad()
    def countdown(n):
        return countdown(n - 1) if n else nnx.is_grad_enabled()

    assert countdown(3) is False and nnx.is_grad_enabled()


def test_a_leaf_keeps_the_gradient_array_its_backward_made_even_when_ids_are_reused():
    # The engine copies a gradient handed to two parents. It tells them apart by id, which a freed gradient
    # array's successor may reuse: a fresh array must still be kept, not copied (nnx.compile needs the leaf's
    # .grad to be the array a kernel wrote).
    import nnx
    x = nnx.Tensor(np.ones(4, np.float32), requires_grad=True)
    made = []

    def fresh(g):
        out = np.array(g, copy=True)
        made[:] = [out]  # only the newest: the earlier ones are freed once used, and their ids may be reused
        return (out,)
    t = x
    for _ in range(6):
        t = nnx.Tensor._make(t.data + 1, (t,), fresh, "fresh")
    t.backward(np.ones(4, np.float32))
    assert x.grad is made[0]


def test_sum_and_mean_gradients_are_one_read_only_value():
    # The gradient of a sum or mean of all elements is dy (dy / n) viewed over x's shape, every stride 0, read-only,
    # as np.broadcast_to makes it (nnx._args.one_value_as), for the kernels that read one dy for every element.
    x = Tensor(rand(5, 7), requires_grad=True)
    for y, scale in ((x.sum(), 1.0), (x.mean(), np.float64(1.0) / 35), (x.sum(keepdims=True), 1.0)):
        (g,) = y._backward(np.full(y.shape, 3.0))
        assert g.shape == (5, 7) and not any(g.strides) and not g.flags.writeable
        np.testing.assert_array_equal(g, np.broadcast_to(np.float64(3.0) * scale, (5, 7)))
    with pytest.raises(ValueError):  # more axes than the shape: broadcast_to's error, as before
        nnx._args.one_value_as(np.ones((1, 1, 1)), (4,))
    np.testing.assert_array_equal(nnx._args.one_value_as(np.float32(2.5), (3,)), np.full(3, 2.5, np.float32))
