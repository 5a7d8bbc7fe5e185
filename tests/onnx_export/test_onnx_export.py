"""nnx.onnx.export: every module of nnx.nn, the ready-made models, dynamic batch, errors."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from onnx_support import check_export, dims, onnx, run_onnx  # skips the module without onnx/onnxruntime

import nnx
from nnx import nn


def _images(c=3, h=9, w=8, seed=0):
    def make(b):
        return np.random.default_rng(seed + b).standard_normal((b, c, h, w)).astype(np.float32)
    return make


def _rows(*feat, seed=0, low=None):
    def make(b):
        x = np.random.default_rng(seed + b).standard_normal((b,) + feat).astype(np.float32)
        return np.abs(x) + low if low is not None else x
    return make


def _bn(layer, seed=0):
    """A batch-norm layer with running statistics and affine parameters away from their defaults."""
    rng = np.random.default_rng(seed)
    C = layer.num_features
    if layer.track_running_stats:
        layer.running_mean[...] = rng.standard_normal(C)
        layer.running_var[...] = rng.uniform(0.5, 2.0, C)
    if layer.affine:
        layer.weight.data[...] = rng.uniform(0.5, 1.5, C)
        layer.bias.data[...] = rng.standard_normal(C)
    return layer


# name -> (model factory, input maker). Together they must cover every exportable class of nnx.nn
# (test_every_layer_has_a_case below).
CASES = {
    "linear": (lambda: nn.Linear(5, 3), _rows(5)),
    "linear_nobias_3d": (lambda: nn.Linear(5, 4, bias=False), _rows(6, 5)),
    "linear_3d": (lambda: nn.Linear(5, 4), _rows(2, 6, 5)),
    "conv": (lambda: nn.Conv2d(3, 4, 3), _images()),
    "conv_stride_pad": (lambda: nn.Conv2d(3, 5, (3, 5), stride=2, padding=(1, 2)), _images()),
    "conv_dilation": (lambda: nn.Conv2d(3, 4, 3, dilation=2, padding=1, bias=False), _images()),
    "conv_groups": (lambda: nn.Conv2d(4, 6, 3, groups=2, stride=(1, 2)), _images(c=4)),
    "conv_depthwise": (lambda: nn.Conv2d(4, 4, 3, groups=4, padding=1), _images(c=4)),
    "max_pool": (lambda: nn.MaxPool2d(2), _images()),
    "max_pool_pad": (lambda: nn.MaxPool2d(3, stride=2, padding=1), _images()),
    "max_pool_dilation": (lambda: nn.MaxPool2d((2, 3), stride=1, padding=1, dilation=2), _images()),
    "avg_pool": (lambda: nn.AvgPool2d(2), _images()),
    "avg_pool_pad": (lambda: nn.AvgPool2d(3, stride=2, padding=1), _images()),
    "lp_pool2": (lambda: nn.LPPool2d(2, 2), _images()),
    "lp_pool1": (lambda: nn.LPPool2d(1, (2, 3), stride=1), _images()),
    "lp_pool3": (lambda: nn.Sequential(nn.Sigmoid(), nn.LPPool2d(3, 3, stride=2)), _images()),
    "lp_pool_frac": (lambda: nn.Sequential(nn.Sigmoid(), nn.LPPool2d(1.5, 2)), _images()),
    "lp_pool_inf": (lambda: nn.LPPool2d(float("inf"), 2), _images()),
    "global_avg_pool": (lambda: nn.GlobalAvgPool2d(), _images()),
    "flatten": (lambda: nn.Flatten(), _images()),
    "flatten_2": (lambda: nn.Flatten(2), _images()),
    "flatten_1_2": (lambda: nn.Flatten(1, 2), _images()),
    "flatten_all": (lambda: nn.Flatten(0, -1), _images()),
    "relu": (lambda: nn.ReLU(), _images()),
    "sigmoid": (lambda: nn.Sigmoid(), _images()),
    "tanh": (lambda: nn.Tanh(), _images()),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), _images()),
    "elu": (lambda: nn.ELU(0.7), _images()),
    "softmax": (lambda: nn.Softmax(), _rows(10)),
    "softmax_dim1": (lambda: nn.Softmax(dim=1), _images()),
    "log_softmax": (lambda: nn.LogSoftmax(dim=1), _rows(10)),
    "dropout": (lambda: nn.Dropout(0.3), _rows(10)),
    "identity": (lambda: nn.Identity(), _rows(4)),
    "batch_norm1d": (lambda: _bn(nn.BatchNorm1d(5)), _rows(5)),
    "batch_norm1d_3d": (lambda: _bn(nn.BatchNorm1d(5)), _rows(5, 6)),
    "batch_norm2d": (lambda: _bn(nn.BatchNorm2d(3)), _images()),
    "batch_norm2d_no_affine": (lambda: _bn(nn.BatchNorm2d(3, affine=False)), _images()),
    "batch_norm_batch_stats": (lambda: _bn(nn.BatchNorm2d(3, track_running_stats=False)), _images()),
    "residual": (lambda: nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())), _images()),
    "add": (lambda: nn.Add(), lambda b: (_rows(4)(b), _rows(4, seed=100)(b))),
    "sequential_nested": (lambda: nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.Tanh()),
                                                nn.Sequential(nn.Linear(8, 3))), _rows(4)),
    "sequential_unfused": (lambda: _unfused(nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.1), nn.Linear(8, 2))),
                           _rows(4)),
    "lenet5": (lambda: nnx.models.lenet5(), _images(1, 28, 28)),
    "convnet": (lambda: nnx.models.convnet(), _images(1, 28, 28)),
    "mlp": (lambda: nnx.models.mlp(dropout=0.2), _images(1, 28, 28)),
    "batch_norm_net": (lambda: nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), _bn(nn.BatchNorm2d(8)), nn.ReLU(), nn.MaxPool2d(2),
        nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), _bn(nn.BatchNorm2d(8), 1), nn.ELU())),
        nn.GlobalAvgPool2d(), nn.Flatten(), nn.Linear(8, 16), _bn(nn.BatchNorm1d(16), 2), nn.ReLU(), nn.Dropout(),
        nn.Linear(16, 10), nn.LogSoftmax(dim=1)), _images(1, 12, 12)),
}

if hasattr(nn, "Maxout"):  # layers that arrive from other work on nnx.nn
    CASES["maxout"] = (lambda: nn.Maxout(5, 3, pieces=4), _rows(5))
    CASES["maxout_3d"] = (lambda: nn.Maxout(5, 2, bias=False), _rows(3, 5))
if hasattr(nn, "ChannelMaxout"):
    CASES["channel_maxout"] = (lambda: nn.Sequential(nn.Conv2d(3, 6, 3), nn.ChannelMaxout(3)), _images())
    CASES["channel_maxout_last"] = (lambda: nn.ChannelMaxout(2, dim=-1), _images())
if hasattr(nn, "LayerNorm"):
    def _ln(layer, seed=0):
        rng = np.random.default_rng(seed)
        for p in (layer.weight, layer.bias):
            if p is not None:
                p.data[...] = rng.uniform(0.5, 1.5, p.shape)
        return layer

    CASES["layer_norm"] = (lambda: _ln(nn.LayerNorm(5)), _rows(5))
    CASES["layer_norm_2d"] = (lambda: _ln(nn.LayerNorm((4, 5))), _rows(3, 4, 5))
    CASES["layer_norm_no_affine"] = (lambda: nn.LayerNorm(5, elementwise_affine=False), _rows(2, 5))
    CASES["layer_norm_no_bias"] = (lambda: _ln(nn.LayerNorm(5, bias=False)), _rows(5))


def _unfused(seq):
    seq.fuse = False
    return seq


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnxruntime_matches_nnx(case, tmp_path):
    """onnx.checker passes and onnxruntime's CPU provider gives nnx's outputs within 1e-5 relative, at
    batch 1 and 7 from one file exported at batch 1 (and, for a second file, exported at batch 7)."""
    factory, make = CASES[case]
    nnx.manual_seed(0)
    model = factory()
    check_export(model, make, tmp_path, batches=(1, 7))
    check_export(model, make, tmp_path, batches=(7, 1))


RECURRENT = ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Embedding")


def test_every_layer_has_a_case():
    """Each class exported from nnx.nn is either exportable and exercised above, or listed as not a
    module to export: a new layer cannot be missed silently."""
    classes = {name: obj for name, obj in vars(nn).items()
               if name in nn.__all__ and inspect.isclass(obj) and issubclass(obj, nn.Module)}
    covered = {type(m) for factory, _ in CASES.values() for m in factory().modules()}
    for name, cls in classes.items():
        if nnx.onnx.not_exported_reason(cls):
            assert not nnx.onnx.exportable(cls) or name == "Module", name
            continue
        assert nnx.onnx.exportable(cls), f"nn.{name} has no ONNX exporter and is not in nnx.onnx.NOT_EXPORTED"
        if name in RECURRENT:
            continue  # tests/onnx_export/test_onnx_recurrent.py checks these against onnxruntime
        assert cls in covered, f"nn.{name} is exportable but no case of test_onnxruntime_matches_nnx uses it"
    assert set(nnx.onnx.NOT_EXPORTED) <= set(classes), "NOT_EXPORTED names a class nnx.nn no longer has"


def test_static_batch_and_names(tmp_path):
    model = nnx.models.lenet5().eval()
    x = _images(1, 28, 28)(3)
    path = tmp_path / "m.onnx"
    proto = nnx.onnx.export(model, x, path, dynamic_batch=False, names=("pixels", "logits"))
    assert [i.name for i in proto.graph.input] == ["pixels"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, 1, 28, 28]
    with nnx.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(run_onnx(path, x)[0], want, rtol=1e-4, atol=1e-5)
    dyn = nnx.onnx.export(model, x, path)
    assert dyn.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert dyn.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_axis_grown_by_two_dimensions_is_left_unnamed(tmp_path):
    model = nn.Flatten(0, -1)
    x = np.ones((2, 3, 4, 5), np.float32)
    proto = nnx.onnx.export(model, x, tmp_path / "f.onnx", dynamic_axes={"input": {2: "height"}})
    assert dims(proto.graph.input[0]) == ["batch", 3, "height", 5]
    assert dims(proto.graph.output[0]) == [0]  # neither a size nor one name: unknown
    y = np.arange(3 * 3 * 6 * 5, dtype=np.float32).reshape(3, 3, 6, 5)
    np.testing.assert_array_equal(run_onnx(tmp_path / "f.onnx", y)[0], y.reshape(-1))
    with pytest.raises(ValueError, match="dynamic_axes: 'x' is not an input name"):
        nnx.onnx.export(model, x, tmp_path / "f.onnx", dynamic_axes={"x": {1: "c"}})
    with pytest.raises(ValueError, match=r"dynamic_axes\['input'\]: expected \{axis: dimension name\}"):
        nnx.onnx.export(model, x, tmp_path / "f.onnx", dynamic_axes={"input": {4: "c"}})


@pytest.mark.parametrize("opset", [nnx.onnx.MIN_OPSET, 17, 18, nnx.onnx.MAX_OPSET])
def test_opsets_pin_ir_version(opset, tmp_path):
    """Each opset is written with the oldest IR version that has it (not the onnx wheel's newest)."""
    make = CASES["batch_norm_net"][1]
    proto_path = check_export(CASES["batch_norm_net"][0](), make, tmp_path, opset=opset)
    proto = onnx.load(str(proto_path))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    assert proto.ir_version <= 10


@pytest.mark.parametrize("opset", [nnx.onnx.MIN_OPSET, 18, nnx.onnx.MAX_OPSET])
def test_every_case_at_other_opsets(opset, tmp_path):
    """Every case once more at the oldest opset, at 18 (reductions take their axes as an input from
    there) and at the newest: one file each, batch 2 and 3."""
    for case in sorted(CASES):
        if case in ("convnet",):
            continue  # no operator of its own; the largest file
        factory, make = CASES[case]
        nnx.manual_seed(0)
        check_export(factory(), make, tmp_path, batches=(2, 3), opset=opset)


def test_initializers_are_state_dict_keys(tmp_path):
    model = nnx.models.lenet5()
    proto = nnx.onnx.export(model, _images(1, 28, 28)(1), tmp_path / "m.onnx")
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(inits[k], v)
    # The file depends on the model only: another example (values, batch size) gives the same bytes.
    nnx.onnx.export(model, _images(1, 28, 28)(5), tmp_path / "again.onnx")
    assert (tmp_path / "again.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()


def test_export_restores_training_mode(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), _bn(nn.BatchNorm1d(3)))
    model.train()
    model[1].eval()
    before = [m.training for m in model.modules()]
    stats = model[2].running_mean.copy()
    nnx.onnx.export(model, _rows(3)(4), tmp_path / "m.onnx")
    assert [m.training for m in model.modules()] == before
    np.testing.assert_array_equal(model[2].running_mean, stats)  # exporting ran nothing in training mode


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x) * 2


class ReLUWithPython(nn.ReLU):
    def forward(self, x):
        return super().forward(x) + 1


class Net(nn.Module):
    """The usual PyTorch-style model: children called from a forward written in Python."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.skip = nn.Conv2d(3, 4, 1, stride=2)
        self.bn = _bn(nn.BatchNorm2d(8))
        self.head = nn.Linear(8 * 4 * 4, 5)
        self.w = nn.Parameter(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
        self.shared = nn.Linear(3, 3)

    def forward(self, x):
        a = self.features(x)
        b = self.skip(x).sigmoid()
        h = self.bn(nnx.cat([a, b * 0.5 + 1.0], dim=1))
        h = self.head(h.reshape(h.shape[0], -1))
        z = (h - h.exp() / 4).tanh() @ self.w
        return self.shared(self.shared(z)) / 2, -z.abs()


class Reduces(nn.Module):
    def forward(self, x):
        return x.sum(1)


class Escapes(nn.Module):
    def forward(self, x):
        return nnx.Tensor(np.tanh(x.data))  # computed outside the graph: would export as a constant


class Slices(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)[:, :2]


def test_python_forward_is_traced(tmp_path):
    """A forward written in Python is run once and read back from the autograd graph: child modules
    by their exporters, parameters as initializers, Tensor arithmetic, cat and reshape as ONNX nodes."""
    nnx.manual_seed(0)
    model = Net()
    check_export(model, _images(h=8), tmp_path)
    proto = onnx.load(str(tmp_path / "model.onnx"))
    inits = {t.name for t in proto.graph.initializer}
    assert {"w", "shared.weight", "features.0.weight", "bn.running_var", "head.bias"} <= inits
    assert sum(n.op_type == "Gemm" for n in proto.graph.node) == 3  # shared Linear called twice, head once
    check_export(nn.Sequential(nn.Linear(4, 4), Custom(), nn.Tanh()), _rows(4), tmp_path)
    check_export(nn.Sequential(ReLUWithPython()), _rows(4), tmp_path)
    other = Net()
    path = tmp_path / "net.onnx"
    nnx.onnx.export(model, _images(h=8)(2), path)
    nnx.onnx.load_weights(other, path)
    for (k, v), w in zip(model.state_dict().items(), other.state_dict().values()):
        if not k.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(w, v, err_msg=k)


class Residual(nn.Module):
    """relu(out + identity) as residual blocks write it: the sum absorbs the relu (op "add+relu")."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return nnx.functional.relu(self.conv(x) + x)


def test_sum_with_absorbed_relu_is_traced(tmp_path):
    nnx.manual_seed(0)
    model = Residual()
    assert model(nnx.Tensor(_images(h=8)(2), requires_grad=True))._op == "add+relu"  # as the tracer sees it
    check_export(model, _images(h=8), tmp_path)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "model.onnx")).graph.node]
    assert ops[ops.index("Add") + 1] == "Relu"


def test_untranslatable_forward_is_refused(tmp_path):
    with pytest.raises(nnx.onnx.UnsupportedModuleError, match=r"^model: .*Python forward.*operation 'sum'"):
        nnx.onnx.export(Reduces(), _rows(4)(2), tmp_path / "m.onnx")
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), Slices()))
    with pytest.raises(nnx.onnx.UnsupportedModuleError, match=r"^1\.1: .*operation 'getitem'"):
        nnx.onnx.export(model, _rows(4)(2), tmp_path / "m.onnx")
    with pytest.raises(nnx.onnx.UnsupportedModuleError, match=r"do not depend on its inputs"):
        nnx.onnx.export(Escapes(), _rows(4)(2), tmp_path / "m.onnx")
    with pytest.raises(nnx.onnx.UnsupportedModuleError, match=r"ModuleList.*no forward"):
        nnx.onnx.export(nn.ModuleList([nn.ReLU()]), _rows(4)(2), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_subclass_keeping_forward_is_exported(tmp_path):
    class MyNet(nn.Sequential):
        pass

    check_export(MyNet(nn.Linear(4, 3), nn.ReLU()), _rows(4), tmp_path)


def test_register_a_custom_exporter(tmp_path):
    from nnx.onnx._graph import _REGISTRY

    @nnx.onnx.register(Custom)
    def _custom(g, m, prefix, x):
        y = g.call(m.fc, [x], f"{prefix}.fc" if prefix else "fc")
        return g.node("Mul", [y.name, g.scalar(2.0)])

    try:
        check_export(nn.Sequential(Custom(), nn.Tanh()), _rows(4), tmp_path)
    finally:
        del _REGISTRY[Custom]


def test_bad_arguments(tmp_path):
    model = nn.Linear(4, 2)
    x = _rows(4)(2)
    with pytest.raises(ValueError, match="opset: expected an integer from 13 to 21, got 12"):
        nnx.onnx.export(model, x, tmp_path / "m.onnx", opset=12)
    with pytest.raises(TypeError, match="model: expected float32 parameters"):
        nnx.onnx.export(nn.Linear(4, 2, dtype=np.float64), x, tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="model: expected an nnx.nn.Module, got function"):
        nnx.onnx.export(lambda v: v, x, tmp_path / "m.onnx")
    with pytest.raises(TypeError, match=r"example_input: expected floating-point \(or integer id\) arrays"):
        nnx.onnx.export(model, np.zeros((2, 4), bool), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="names: expected 1 non-empty input name"):
        nnx.onnx.export(model, x, tmp_path / "m.onnx", names=(["a", "b"], None))
    with pytest.raises(ValueError, match="names: input and output names must all differ"):
        nnx.onnx.export(model, x, tmp_path / "m.onnx", names=("a", "a"))
    with pytest.raises(ValueError, match="'weight' is both"):
        nnx.onnx.export(model, x, tmp_path / "m.onnx", names=("weight", "y"))
    for bad in ([5], [0, 0], "yes", [True]):
        with pytest.raises(ValueError, match="dynamic_batch: expected True, False or one batch axis"):
            nnx.onnx.export(model, x, tmp_path / "m.onnx", dynamic_batch=bad)
    with pytest.raises(ValueError, match=r"names: expected \(input names, output names\)"):
        nnx.onnx.export(model, x, tmp_path / "m.onnx", names="x")
    with pytest.raises(ValueError, match="a Sequential takes one input"):
        nnx.onnx.export(nn.Sequential(nn.ReLU()), (x, x), tmp_path / "m.onnx")
