"""Pooling benchmarks: nnx against PyTorch CPU and (small LeNet shapes only) the NumPy reference.

Pooling is memory-bound, so the rate reported is GB/s of the arrays each pass must touch: forward reads x
and writes y, and for max pooling the indices too (y's size: nnx's are int32); max backward reads dy and x
and writes dx (the work counted is the same for every implementation, whatever it reads); avg backward
reads dy and writes dx. Max pooling is timed as training runs it in both frameworks: the forward saving
the indices (nnx.functional.max_pool2d calls max_pool2d(..., return_indices=True); PyTorch's autograd
max_pool2d_with_indices, int64), the backward from them. "nnx-no-indices" is nnx's forward without them,
as inference runs it (its ratio is to nnx's); "nnx-recompute" is nnx's other max backward, which takes x
instead of indices and finds each window's maximum again: more work, with no PyTorch counterpart.

    python -m pytest bench/test_pool.py --benchmark-only --threads 2
"""
import numpy as np
import pytest

from conftest import rand, record
from nnx import ops, reference as ref

# (name, op, kernel_size, stride, padding)
POOLS = [("max2x2s2", "max_pool2d", 2, 2, 0), ("max3x3s2p1", "max_pool2d", 3, 2, 1),
         ("avg2x2s2", "avg_pool2d", 2, 2, 0)]
SHAPES = [(64, 32, 56, 56), (64, 6, 28, 28), (64, 16, 10, 10)]
SMALL = {(64, 6, 28, 28), (64, 16, 10, 10)}  # the NumPy reference is too slow for the big one
CASES = [(p, s) for p in POOLS for s in SHAPES]
IMPLS = ["nnx", "torch", "numpy"]


def _ids(case):
    (name, *_), shape = case
    return f"{name}-{'x'.join(map(str, shape))}"


def _setup(case):
    (name, op, k, s, p), shape = case
    x = rand(shape)
    y = getattr(ref, op)(x[:1], k, s, p)  # output shape of one image
    y_shape = (shape[0],) + y.shape[1:]
    dy = rand(y_shape, seed=1)
    return name, op, (k, s, p), x, dy


@pytest.mark.parametrize("impl", IMPLS + ["nnx-no-indices"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_pool_forward(benchmark, case, impl, torch_or_skip_if_torch):
    name, op, args, x, dy = _setup(case)
    shape = x.shape
    if impl == "numpy" and shape not in SMALL:
        pytest.skip("the NumPy reference is only timed on the small LeNet shapes")
    is_max = op == "max_pool2d"
    if impl == "nnx-no-indices" and not is_max:
        pytest.skip("only max pooling saves indices")
    kw = dict(return_indices=True) if is_max and impl != "nnx-no-indices" else {}
    if impl in ("nnx", "nnx-no-indices"):
        fn = lambda: getattr(ops, op)(x, *args, **kw)  # noqa: E731
    elif impl == "numpy":
        fn = lambda: getattr(ref, op)(x, *args, **kw)  # noqa: E731
    else:
        torch = torch_or_skip_if_torch
        tx = torch.from_numpy(x)
        tfn = torch.nn.functional.max_pool2d_with_indices if is_max else torch.nn.functional.avg_pool2d
        fn = lambda: tfn(tx, *args)  # noqa: E731
    indices_bytes = dy.size * 4 if kw else 0
    record(benchmark, f"pool {name} fwd {'x'.join(map(str, shape))} f32", impl,
           bytes_moved=x.nbytes + dy.nbytes + indices_bytes)
    benchmark(fn)


@pytest.mark.parametrize("impl", IMPLS + ["nnx-recompute"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_pool_backward(benchmark, case, impl, torch_or_skip_if_torch):
    name, op, args, x, dy = _setup(case)
    shape = x.shape
    if impl == "numpy" and shape not in SMALL:
        pytest.skip("the NumPy reference is only timed on the small LeNet shapes")
    k, s, p = args
    if impl == "nnx-recompute":
        if op != "max_pool2d":
            pytest.skip("only max pooling has a backward from indices to compare against")
        fn = lambda: ops.max_pool2d_backward(dy, x, *args)  # noqa: E731
    elif impl == "nnx" and op == "max_pool2d":
        # As training runs it (nnx.functional.max_pool2d saves the indices), and as PyTorch does.
        _, idx = ops.max_pool2d(x, *args, return_indices=True)
        fn = lambda: ops.max_pool2d_backward(dy, x, *args, indices=idx)  # noqa: E731
    elif impl == "nnx":
        fn = lambda: getattr(ops, op + "_backward")(dy, x, *args)  # noqa: E731
    elif impl == "numpy":
        fn = lambda: getattr(ref, op + "_backward")(dy, x, *args)  # noqa: E731
    else:
        torch = torch_or_skip_if_torch
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        aten = torch.ops.aten
        # The backward kernels alone, fed what PyTorch's forward saves (the indices for max pooling).
        if op == "max_pool2d":
            _, idx = torch.nn.functional.max_pool2d_with_indices(tx, k, s, p)
            fn = lambda: aten.max_pool2d_with_indices_backward(tdy, tx, [k, k], [s, s], [p, p], [1, 1],  # noqa: E731
                                                               False, idx)
        else:
            fn = lambda: aten.avg_pool2d_backward(tdy, tx, [k, k], [s, s], [p, p], False, True, None)  # noqa: E731
    reads_x = op == "max_pool2d"
    record(benchmark, f"pool {name} bwd {'x'.join(map(str, shape))} f32", impl,
           bytes_moved=dy.nbytes + 2 * x.nbytes if reads_x else dy.nbytes + x.nbytes)
    benchmark(fn)


@pytest.fixture
def torch_or_skip_if_torch(request):
    """PyTorch for the "torch" impl (skipped when not installed), None otherwise."""
    if request.node.callspec.params["impl"] != "torch":
        return None
    return request.getfixturevalue("torch_or_skip")


def test_bench_results_agree():
    """Guards the benchmark against timing the wrong thing: nnx and PyTorch compute the same values."""
    torch = pytest.importorskip("torch")
    for case in CASES:
        name, op, args, x, dy = _setup(case)
        x, dy = x[:2], dy[:2]
        want = getattr(torch.nn.functional, op)(torch.from_numpy(x), *args).numpy()
        np.testing.assert_allclose(getattr(ops, op)(x, *args), want, rtol=1e-6, atol=1e-6)
        if op == "max_pool2d":  # the training path: the same picks
            y, idx = ops.max_pool2d(x, *args, return_indices=True)
            _, want_idx = torch.nn.functional.max_pool2d_with_indices(torch.from_numpy(x), *args)
            np.testing.assert_array_equal(idx, want_idx.numpy())
            np.testing.assert_array_equal(y, want)
