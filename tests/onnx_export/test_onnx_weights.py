"""Weights in: PyTorch state dicts through load_state_dict (no pickle, no ONNX), and ONNX initializers
through nnx.onnx.load_weights (files from nnx's exporter and from PyTorch's)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import nnx
from nnx import nn


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


# --------------------------------------------------------------------------------------------- PyTorch
def _torch_pairs(torch):
    tnn = torch.nn

    class TorchResidual(tnn.Module):  # nnx's Residual: x + module(x), the inner module under "module"
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return x + self.module(x)

    pairs = {
        "linear": (lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3), (4, 5)),
        "linear_nobias": (lambda: nn.Linear(5, 3, bias=False), lambda: tnn.Linear(5, 3, bias=False), (4, 5)),
        "conv": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
                 lambda: tnn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 9, 9)),
        "conv_dilation": (lambda: nn.Conv2d(3, 5, (3, 2), dilation=2, bias=False),
                          lambda: tnn.Conv2d(3, 5, (3, 2), dilation=2, bias=False), (2, 3, 9, 9)),
        "batch_norm1d": (lambda: nn.BatchNorm1d(5), lambda: tnn.BatchNorm1d(5), (6, 5)),
        "batch_norm2d": (lambda: nn.BatchNorm2d(3), lambda: tnn.BatchNorm2d(3), (4, 3, 5, 5)),
        "batch_norm2d_no_affine": (lambda: nn.BatchNorm2d(3, affine=False),
                                   lambda: tnn.BatchNorm2d(3, affine=False), (4, 3, 5, 5)),
        "lenet5": (nnx.models.lenet5, lambda: tnn.Sequential(
            tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5), tnn.ReLU(),
            tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
            tnn.Linear(84, 10)), (3, 1, 28, 28)),
        "batch_norm_net": (lambda: nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
            nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Tanh())),
            nn.Flatten(), nn.Linear(8 * 16, 10), nn.BatchNorm1d(10), nn.LogSoftmax(dim=1)),
            lambda: tnn.Sequential(
            tnn.Conv2d(3, 8, 3, padding=1, bias=False), tnn.BatchNorm2d(8), tnn.ReLU(), tnn.AvgPool2d(2),
            TorchResidual(tnn.Sequential(tnn.Conv2d(8, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.Tanh())),
            tnn.Flatten(), tnn.Linear(8 * 16, 10), tnn.BatchNorm1d(10), tnn.LogSoftmax(dim=1)), (4, 3, 8, 8)),
    }
    if hasattr(nn, "LayerNorm"):
        pairs["layer_norm"] = (lambda: nn.LayerNorm((4, 5)), lambda: _perturbed(torch, tnn.LayerNorm((4, 5))),
                               (3, 4, 5))
    return pairs


def _perturbed(torch, module):
    """Parameters away from their ones/zeros initialisation, so loading them is seen in the outputs."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.rand(p.shape))
    return module


def _trained_torch(torch, make, shape):
    """A PyTorch model whose BatchNorm buffers moved away from their defaults (a few training batches)."""
    torch.manual_seed(0)
    tm = make()
    tm.train()
    with torch.no_grad():
        for s in range(3):
            tm(torch.from_numpy(_x(*shape, seed=10 + s)) * 2 + 0.5)
    return tm.eval()


@pytest.mark.parametrize("case", ["linear", "linear_nobias", "conv", "conv_dilation", "batch_norm1d",
                                  "batch_norm2d", "batch_norm2d_no_affine", "lenet5", "batch_norm_net",
                                  "layer_norm"])
def test_pytorch_state_dict_loads_and_matches(case):
    """model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()}): same keys,
    same shapes, and the same outputs as PyTorch in eval mode (float32, 1e-5 relative)."""
    torch = pytest.importorskip("torch", reason="needs PyTorch (the bench extra)")
    if case not in _torch_pairs(torch):
        pytest.skip(f"nnx.nn has no layer for {case!r} yet")
    make_nnx, make_torch, shape = _torch_pairs(torch)[case]
    tm = _trained_torch(torch, make_torch, shape)
    model = make_nnx()
    sd = {k: v.numpy() for k, v in tm.state_dict().items()}
    assert list(model.state_dict()) == list(sd)
    model.load_state_dict(sd)
    model.eval()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, sd[k], err_msg=k)
    x = _x(*shape, seed=1)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    with nnx.no_grad():
        got = model(x).numpy()
    assert _rel(got, want) <= 1e-5


# --------------------------------------------------------------------------------------------- ONNX files
def test_load_weights_round_trip(tmp_path):
    from onnx_support import onnx  # noqa: F401  (skips without onnx/onnxruntime)

    def net():
        return nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 6 * 6, 5), nn.BatchNorm1d(5, affine=False))

    nnx.manual_seed(1)
    a = net()
    a.train()
    for s in range(2):  # move the running statistics
        a(_x(8, 1, 8, 8, seed=s))
    path = tmp_path / "a.onnx"
    nnx.onnx.export(a, _x(1, 1, 8, 8), path)
    nnx.manual_seed(2)
    b = net()
    assert not np.array_equal(b[0].weight.data, a[0].weight.data)
    assert nnx.onnx.load_weights(b, path) is b
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        if not k.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(vb, va, err_msg=k)
    assert int(b[1].num_batches_tracked) == 0  # not in the ONNX file: left as it was
    a.eval(), b.eval()
    x = _x(3, 1, 8, 8, seed=5)
    with nnx.no_grad():
        np.testing.assert_array_equal(b(x).numpy(), a(x).numpy())
    c = net().double()  # a float64 model takes the float32 values widened
    nnx.onnx.load_weights(c, path)
    np.testing.assert_array_equal(c[4].weight.data, a[4].weight.data.astype(np.float64))


def test_load_weights_errors(tmp_path):
    from onnx_support import onnx  # noqa: F401

    path = tmp_path / "lenet.onnx"
    nnx.onnx.export(nnx.models.lenet5(), _x(1, 1, 28, 28), path)
    with pytest.raises(nn.StateDictError, match=r"no initializer for '1\.weight'.*the file has '0\.weight'"):
        nnx.onnx.load_weights(nnx.models.mlp(), path)
    with pytest.raises(nn.StateDictError, match=r"size mismatch for '11\.weight'"):
        nnx.onnx.load_weights(nnx.models.lenet5(num_classes=5), path)
    with pytest.raises(TypeError, match="model: expected an nnx.nn.Module"):
        nnx.onnx.load_weights("lenet", path)
    with pytest.raises(FileNotFoundError):
        nnx.onnx.load_weights(nnx.models.lenet5(), tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07this is not protobuf\xff\xff")
    with pytest.raises(ValueError, match="is not a readable ONNX model"):
        nnx.onnx.load_weights(nnx.models.lenet5(), junk)


def test_load_weights_from_pytorch_onnx_export(tmp_path):
    """An ONNX file written by PyTorch's exporter (with its BatchNorm kept, do_constant_folding=False)
    gives an nnx model PyTorch's weights and outputs."""
    from onnx_support import onnx  # noqa: F401
    torch = pytest.importorskip("torch", reason="needs PyTorch (the bench extra)")
    make_nnx, make_torch, shape = _torch_pairs(torch)["batch_norm_net"]
    tm = _trained_torch(torch, make_torch, shape)
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(tm, (torch.from_numpy(_x(*shape)),), str(path), dynamo=False,
                              do_constant_folding=False)
        except Exception as exc:  # the legacy exporter may be gone from a later PyTorch
            pytest.skip(f"PyTorch's TorchScript ONNX exporter is unavailable: {exc}")
    model = nnx.onnx.load_weights(make_nnx(), path).eval()
    x = _x(*shape, seed=3)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    with nnx.no_grad():
        got = model(x).numpy()
    assert _rel(got, want) <= 1e-5
