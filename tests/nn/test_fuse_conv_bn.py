"""nn.utils.fuse_conv_bn_eval / fuse_conv_bn: a BatchNorm2d in evaluation mode folded into the Conv2d before it,
checked against the two modules run one after the other (and the float64 fold against the reference backend)."""
import numpy as np
import pytest

import nnx
from nnx import functional as F, models, nn


def _randomize(bn, rng):
    # Running statistics and an affine map away from their initial 0 / 1, so that every term of the fold counts.
    c = bn.num_features
    bn.running_mean[:] = rng.standard_normal(c)
    bn.running_var[:] = rng.uniform(0.2, 3.0, c)
    if bn.weight is not None:
        bn.weight.data[:] = rng.uniform(0.5, 1.5, c)
        bn.bias.data[:] = rng.standard_normal(c)
    return bn


def _eval(model, x):
    with nnx.no_grad():
        return model(nnx.tensor(x)).numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias, affine, geom", [(True, True, dict(stride=1, padding=1)),
                                                (False, True, dict(stride=2, padding=0, dilation=2)),
                                                (True, False, dict(padding=1, groups=2)),
                                                (False, False, dict(padding=2, groups=4))])
def test_fused_conv_is_conv_then_batch_norm(dtype, bias, affine, geom):
    rng = np.random.default_rng(0)
    nnx.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3, bias=bias, dtype=dtype, **geom).eval()
    bn = _randomize(nn.BatchNorm2d(8, eps=1e-3, affine=affine, dtype=dtype), rng).eval()
    fused = nn.utils.fuse_conv_bn_eval(conv, bn)
    x = rng.standard_normal((3, 4, 11, 11)).astype(dtype)
    want = _eval(nn.Sequential(conv, bn), x)
    got = _eval(fused, x)
    assert got.dtype == dtype and fused.weight.dtype == dtype and fused.bias is not None
    assert (fused.stride, fused.padding, fused.dilation, fused.groups) == (conv.stride, conv.padding, conv.dilation,
                                                                           conv.groups)
    # The fold in float64, rounded once: float32 results agree to its rounding, float64 ones to 1e-12.
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    # The original modules are untouched.
    np.testing.assert_array_equal(_eval(nn.Sequential(conv, bn), x), want)
    with F.use_backend(nnx.reference):  # the folded filters through the reference convolution too
        np.testing.assert_allclose(_eval(fused, x), want, rtol=tol, atol=tol * np.abs(want).max())


def test_fold_formula_for_one_channel():
    # Independent arithmetic for a 1x1 convolution of one channel: bn(w x + b) = gamma (w x + b - mean) / sqrt(var
    # + eps) + beta, i.e. filter w gamma / sqrt(var + eps), bias (b - mean) gamma / sqrt(var + eps) + beta.
    conv = nn.Conv2d(1, 1, 1, dtype=np.float64).eval()
    conv.weight.data[:] = 2.0
    conv.bias.data[:] = 0.5
    bn = nn.BatchNorm2d(1, eps=0.0, dtype=np.float64).eval()
    bn.running_mean[:] = 1.5
    bn.running_var[:] = 4.0
    bn.weight.data[:] = 3.0
    bn.bias.data[:] = -1.0
    fused = nn.utils.fuse_conv_bn_eval(conv, bn)
    assert fused.weight.data.ravel().tolist() == [3.0]  # 2 * 3 / 2
    assert fused.bias.data.tolist() == [-2.5]  # (0.5 - 1.5) * 3 / 2 - 1


def test_fuse_conv_bn_folds_every_pair_of_nested_sequentials():
    rng = np.random.default_rng(1)
    nnx.manual_seed(1)
    model = models.convnet_bn()  # Conv2d, BatchNorm2d, ReLU, MaxPool2d twice, then the classifier
    inner = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 1),
                          nn.BatchNorm2d(6))
    outer = nn.Sequential(inner, nn.Conv2d(6, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))  # a BN after a ReLU: kept
    for m in (model, outer):
        for bn in m.modules():
            if type(bn) is nn.BatchNorm2d:
                _randomize(bn, rng)
        m.eval()
    for m, shape, bns_left in ((model, (5, 1, 28, 28), 0), (outer, (2, 3, 9, 9), 1)):
        x = rng.standard_normal(shape).astype(np.float32)
        want = _eval(m, x)
        fused = nn.utils.fuse_conv_bn(m)
        assert fused is not m
        assert sum(type(b) is nn.BatchNorm2d for b in fused.modules()) == bns_left
        assert sum(type(b) is nn.BatchNorm2d for b in m.modules()) > bns_left  # the original keeps its layers
        np.testing.assert_allclose(_eval(fused, x), want, rtol=2e-5, atol=2e-5 * np.abs(want).max())
        np.testing.assert_array_equal(_eval(m, x), want)
    same = nn.utils.fuse_conv_bn(outer, inplace=True)
    assert same is outer and sum(type(b) is nn.BatchNorm2d for b in outer.modules()) == 1


def test_fuse_conv_bn_errors():
    conv, bn = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match="evaluation mode"):
        nn.utils.fuse_conv_bn_eval(conv, bn)
    conv.eval()
    bn.eval()
    with pytest.raises(TypeError, match="Conv2d and a BatchNorm2d"):
        nn.utils.fuse_conv_bn_eval(conv, nn.BatchNorm1d(3).eval())
    with pytest.raises(ValueError, match="normalises 4 channels"):
        nn.utils.fuse_conv_bn_eval(conv, nn.BatchNorm2d(4).eval())
    with pytest.raises(ValueError, match="no running statistics"):
        nn.utils.fuse_conv_bn_eval(conv, nn.BatchNorm2d(3, track_running_stats=False).eval())
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        nn.utils.fuse_conv_bn(nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)))
    with pytest.raises(TypeError, match="nnx.nn.Module"):
        nn.utils.fuse_conv_bn([conv, bn])


def test_fused_sequential_indices_and_state_dict():
    # The BatchNorm2d leaves the Sequential: the layers after it move up one index, state_dict keys with them.
    nnx.manual_seed(2)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Conv2d(2, 2, 1)).eval()
    fused = nn.utils.fuse_conv_bn(m)
    assert [type(layer) for layer in fused] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    keys = set(fused.state_dict())
    assert keys == {"0.weight", "0.bias", "2.weight", "2.bias"}
    np.testing.assert_array_equal(fused.state_dict()["2.weight"], m.state_dict()["3.weight"])


class _Block(nn.Module):
    """A ResNet basic block as written in its papers' code: the pairs are called from forward, not a Sequential."""

    def __init__(self, c, shortcut=False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.short = nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)) if shortcut else None

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.short is None else self.short(x)))


class _Reads(nn.Module):
    """Pairs the example run must not fold: conv1's output is also added to the result, conv2 is called twice."""

    def __init__(self, c, leak=False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)
        self.leak = leak

    def forward(self, x):
        y = self.conv1(x)
        if self.leak:  # conv1's output read as an array, which the recorded graph does not see
            return self.bn1(y) + nnx.tensor(y.numpy())
        z = self.bn1(y) + y
        return self.bn2(self.conv2(self.conv2(z)))


def _prepared(model, rng):
    for bn in model.modules():
        if type(bn) is nn.BatchNorm2d:
            _randomize(bn, rng)
    return model.eval()


def _bns(model):
    return sum(type(b) is nn.BatchNorm2d for b in model.modules())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fuse_conv_bn_with_an_example_folds_the_pairs_a_forward_calls(dtype):
    rng = np.random.default_rng(2)
    nnx.manual_seed(2)
    model = _prepared(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                    _Block(8), _Block(8, shortcut=True), nn.GlobalAvgPool2d(), nn.Flatten(),
                                    nn.Linear(8, 5)).to(dtype), rng)
    x = rng.standard_normal((2, 3, 10, 10)).astype(dtype)
    want = _eval(model, x)
    by_position = nn.utils.fuse_conv_bn(model)
    assert _bns(by_position) == 4  # the stem and the shortcut's pair, in Sequentials; the blocks' four not
    fused = nn.utils.fuse_conv_bn(model, example_input=x)
    assert _bns(fused) == 0 and _bns(model) == 6
    assert sum(type(m) is nn.Identity for m in fused.modules()) == 4  # the blocks' BatchNorms
    assert type(fused[2].bn1) is nn.Identity and fused[2].conv1.bias is not None  # the stem's BatchNorm went
    got = _eval(fused, x)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    x2 = rng.standard_normal((3, 3, 12, 12)).astype(dtype)  # other shapes: the folded filters, not a recording
    np.testing.assert_allclose(_eval(fused, x2), _eval(model, x2), rtol=tol, atol=tol * np.abs(want).max())
    assert set(fused.state_dict()) == {k for k in by_position.state_dict() if ".bn1." not in k and ".bn2." not in k} | {
        "2.conv1.bias", "2.conv2.bias", "3.conv1.bias", "3.conv2.bias"}


def test_fuse_conv_bn_with_an_example_leaves_pairs_whose_conv_output_is_read_elsewhere():
    rng = np.random.default_rng(3)
    nnx.manual_seed(3)
    model = _prepared(_Reads(4), rng)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    fused = nn.utils.fuse_conv_bn(model, example_input=x)
    assert _bns(fused) == 2  # conv1's output is also added; conv2 runs twice
    np.testing.assert_array_equal(_eval(fused, x), _eval(model, x))
    leaky = _prepared(_Reads(4, leak=True), rng)
    want, conv1, bn1 = _eval(leaky, x), leaky.conv1, leaky.bn1
    with pytest.raises(RuntimeError, match="does not reproduce the original"):
        nn.utils.fuse_conv_bn(leaky, example_input=x, inplace=True)
    assert leaky.conv1 is conv1 and leaky.bn1 is bn1  # left as it was
    np.testing.assert_array_equal(_eval(leaky, x), want)
