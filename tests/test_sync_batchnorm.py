"""nnx.distributed.SyncBatchNorm in one process: its synchronised path (forced with comm=MPI.COMM_SELF)
against BatchNorm's kernels and finite differences, the conversion, and the world-of-one fallback. The
several-rank test (2 ranks against one process on the concatenated batch) is in test_distributed.py."""
import copy

import numpy as np
import pytest

import nnx
from nnx import nn
from nnx.distributed import SyncBatchNorm, convert_sync_batchnorm, sync_batch_norm

mpi4py = pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install \".[mpi]\")")
from mpi4py import MPI  # noqa: E402


def _pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    bn = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(shape[1], dtype=np.float64)
    bn.weight.data[:] = rng.standard_normal(shape[1])
    bn.bias.data[:] = rng.standard_normal(shape[1])
    bn.running_mean[:] = rng.standard_normal(shape[1])
    sync = SyncBatchNorm.from_batchnorm(copy.deepcopy(bn), comm=MPI.COMM_SELF)
    return bn, sync, rng.standard_normal(shape) * 2 + 0.5, rng.standard_normal(shape)


@pytest.mark.parametrize("shape", [(6, 3), (5, 3, 4), (4, 3, 5, 5)])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_synchronised_path_matches_batchnorm_kernels(shape, activation):
    bn, sync, x, g = _pair(shape)
    outs = []
    for layer in (bn, sync):
        xt = nnx.Tensor(x.copy(), requires_grad=True)
        y = layer(xt, activation=activation)
        (y * nnx.Tensor(g)).sum().backward()
        outs.append((y.data, xt.grad, layer.weight.grad, layer.bias.grad, layer.running_mean.copy(),
                     layer.running_var.copy(), int(layer.num_batches_tracked)))
    assert outs[1][-1] == outs[0][-1] == 1
    for a, b in zip(outs[0][:-1], outs[1][:-1]):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    assert not np.allclose(outs[0][4], 0) and not np.allclose(outs[0][5], 1)  # the running stats moved


def test_synchronised_path_gradcheck():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((5, 3, 2, 2)), rng.standard_normal(3), rng.standard_normal(3)
    nnx.gradcheck(lambda x, w, b: sync_batch_norm(x, w, b, MPI.COMM_SELF, eps=1e-3), [x, w, b])
    nnx.gradcheck(lambda x, w, b: sync_batch_norm(x, w, b, MPI.COMM_SELF, eps=1e-3, activation="relu"),
                  [x, w, b])


def test_float32_input_keeps_its_dtype_and_agrees_with_the_kernel():
    bn, sync, x, _ = _pair((8, 4, 3, 3))
    bn32 = copy.deepcopy(bn).float()
    sync32 = SyncBatchNorm.from_batchnorm(copy.deepcopy(bn).float(), comm=MPI.COMM_SELF)
    y_ref, y = bn32(x.astype(np.float32)), sync32(x.astype(np.float32))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, y_ref.data, rtol=1e-4, atol=1e-5)


def test_convert_keeps_parameters_buffers_and_keys():
    nnx.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 6), nn.BatchNorm1d(6))
    params, keys = list(model.parameters()), list(model.state_dict())
    opt = nnx.optim.SGD(model.parameters(), lr=0.1)
    assert convert_sync_batchnorm(model) is model
    assert type(model[1]) is SyncBatchNorm and type(model[5]) is SyncBatchNorm
    assert list(model.parameters()) == params and list(model.state_dict()) == keys
    # World of one, no comm given: BatchNorm exactly (bitwise), and the optimizer still reaches the layers.
    x = np.random.default_rng(1).standard_normal((7, 1, 6, 6)).astype(np.float32)
    nnx.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 6), nn.BatchNorm1d(6))
    weights = nnx.Tensor(np.random.default_rng(2).standard_normal((7, 6)).astype(np.float32))
    for m in (model, plain):
        (m(x) * weights).sum().backward()  # (a plain sum would give BatchNorm's input a zero gradient)
    for p, q in zip(model.parameters(), plain.parameters()):
        assert p.grad.tobytes() == q.grad.tobytes()
    assert model(x).data.tobytes() == plain(x).data.tobytes()
    before = model[1].weight.data.copy()
    opt.step()
    assert not np.array_equal(model[1].weight.data, before)
    bn = nn.BatchNorm1d(3)
    assert type(convert_sync_batchnorm(bn)) is SyncBatchNorm


def test_eval_mode_uses_running_statistics_without_communicating():
    bn, sync, x, _ = _pair((6, 3, 2, 2))
    bn.eval()
    sync.eval()
    sync._comm = object()  # would fail if it were used
    np.testing.assert_array_equal(sync(x).data, bn(x).data)


def test_errors():
    sync = SyncBatchNorm(3, dtype=np.float64, comm=MPI.COMM_SELF)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        sync(np.ones((1, 3)))
    with pytest.raises(ValueError, match="expected 3 channels"):
        sync(np.ones((4, 2)))
    with pytest.raises(ValueError, match="2-D, 3-D or 4-D"):
        sync(np.ones((4,)))
    with pytest.raises(TypeError, match="BatchNorm1d/2d"):
        SyncBatchNorm.from_batchnorm(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="nnx.nn.Module"):
        convert_sync_batchnorm("model")


@pytest.mark.parametrize("affine,track", [(False, True), (True, False), (False, False)])
def test_without_affine_or_running_statistics(affine, track):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3, 2, 2))
    bn = nn.BatchNorm2d(3, affine=affine, track_running_stats=track, dtype=np.float64)
    sync = SyncBatchNorm.from_batchnorm(copy.deepcopy(bn), comm=MPI.COMM_SELF)
    grads = []
    for layer in (bn, sync):
        xt = nnx.Tensor(x.copy(), requires_grad=True)
        y = layer(xt)
        (y * nnx.Tensor(x[::-1].copy())).sum().backward()
        grads.append((y.data, xt.grad) + ((layer.weight.grad,) if affine else ()))
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    # Input without a gradient: only the parameters' gradients, no allreduce of the backward sums needed.
    if affine:
        for layer in (bn, sync):
            layer.weight.grad = layer.bias.grad = None
            (layer(nnx.Tensor(x.copy())) * nnx.Tensor(x[::-1].copy())).sum().backward()
        np.testing.assert_allclose(sync.weight.grad, bn.weight.grad, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(sync.bias.grad, bn.bias.grad, rtol=1e-10, atol=1e-12)
