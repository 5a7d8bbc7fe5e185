"""Layers and functional ops: autograd vs finite differences, the C++ ops vs the NumPy reference through
the whole stack, fused vs unfused Sequential, BatchNorm and Dropout, comparisons with torch.nn."""
import numpy as np
import pytest

import nnx
from nnx import Tensor, nn
from nnx import functional as F

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

FAMILIES = {
    "linear": ["linear", "linear_backward"],
    "act": ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "softmax", "log_softmax", "relu_backward",
            "sigmoid_backward", "tanh_backward", "leaky_relu_backward", "elu_backward", "softmax_backward",
            "log_softmax_backward"],
    "loss": ["cross_entropy", "mse_loss", "binary_cross_entropy_with_logits", "multiclass_hinge_loss",
             "cross_entropy_backward", "mse_loss_backward", "binary_cross_entropy_with_logits_backward",
             "multiclass_hinge_loss_backward"],
    "conv": ["conv2d", "conv2d_backward"],
    "pool": ["max_pool2d", "avg_pool2d", "lp_pool2d", "global_avg_pool2d", "max_pool2d_backward",
             "avg_pool2d_backward", "lp_pool2d_backward", "global_avg_pool2d_backward"],
    "none": [],
}


def need(*families):
    """Skips when a kernel family has not landed in nnx.ops / nnx.reference on this branch yet."""
    for fam in families:
        missing = [n for n in FAMILIES[fam] if not (hasattr(nnx.ops, n) and hasattr(nnx.reference, n))]
        if missing:
            pytest.skip(f"kernel family '{fam}' is not on this branch yet (missing {', '.join(missing[:3])}...)")


R = np.random.default_rng(11)


def rand(*shape):
    return R.standard_normal(shape)


BACKENDS = [pytest.param(nnx.ops, id="ops"), pytest.param(nnx.reference, id="reference")]


# ------------------------------------------------------------------ functional ops vs finite differences
FUNCTIONAL_CASES = [
    ("linear", lambda x, w, b: F.linear(x, w, b), [(3, 4), (2, 4), (2,)]),
    ("linear", lambda x, w: F.linear(x, w), [(3, 4), (2, 4)]),
    ("linear", lambda x, w, b: F.linear(x, w, b, activation="tanh"), [(3, 4), (2, 4), (2,)]),
    ("linear", lambda x, w, b: F.linear(x, w, b, activation="sigmoid"), [(3, 4), (2, 4), (2,)]),
    ("linear", lambda x, w, b: F.linear(x, w, b, activation="relu"), [(3, 4), (2, 4), (2,)]),
    ("linear", lambda x, w, b: F.linear(x, w, b, activation="leaky_relu", negative_slope=0.2),
     [(3, 4), (2, 4), (2,)]),
    ("linear", lambda x, w, b: F.linear(x, w, b), [(2, 3, 4), (2, 4), (2,)]),  # extra leading axis
    ("conv", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), [(2, 2, 5, 5), (3, 2, 3, 3), (3,)]),
    ("conv", lambda x, w: F.conv2d(x, w, groups=2, dilation=2), [(1, 4, 6, 6), (2, 2, 2, 2)]),
    ("conv", lambda x, w, b: F.conv2d(x, w, b, padding=1, activation="tanh"), [(1, 2, 4, 4), (2, 2, 3, 3), (2,)]),
    ("pool", lambda x: F.max_pool2d(x, 2), [(2, 2, 4, 5)]),
    ("pool", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), [(1, 2, 5, 5)]),
    ("pool", lambda x: F.lp_pool2d(x, 2.0, 2), [(1, 2, 4, 4)]),
    ("pool", lambda x: F.global_avg_pool2d(x), [(2, 3, 3, 2)]),
    ("act", F.relu, [(3, 5)]),
    ("act", F.sigmoid, [(3, 5)]),
    ("act", F.tanh, [(3, 5)]),
    ("act", lambda x: F.leaky_relu(x, 0.1), [(3, 5)]),
    ("act", lambda x: F.elu(x, 0.7), [(3, 5)]),
    ("act", lambda x: F.softmax(x, dim=0), [(3, 5)]),
    ("act", lambda x: F.log_softmax(x, dim=-1), [(3, 5)]),
    ("loss", lambda x: F.cross_entropy(x, np.array([0, 2, 1])), [(3, 4)]),
    ("loss", lambda x: F.cross_entropy(x, np.array([0, 2, 1]), reduction="sum"), [(3, 4)]),
    ("loss", lambda x, t: F.mse_loss(x, t), [(3, 4), (3, 4)]),       # the target gets a gradient too
    ("loss", lambda x: F.binary_cross_entropy_with_logits(x, np.array([[0.0, 1.0], [0.3, 1.0]])), [(2, 2)]),
    ("loss", lambda x: F.multiclass_hinge_loss(x, np.array([1, 0, 3]), margin=0.5), [(3, 4)]),
    ("none", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [(5, 3), (3,), (3,)]),
    ("none", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [(2, 3, 2, 2), (3,), (3,)]),
    ("none", lambda x: F.batch_norm(x, np.array([0.1, -0.2]), np.array([1.5, 0.5]), training=False), [(3, 2)]),
    ("none", lambda x: F.flatten(x), [(2, 3, 2)]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family, f, shapes", FUNCTIONAL_CASES,
                         ids=[f"{c[0]}{i}" for i, c in enumerate(FUNCTIONAL_CASES)])
def test_functional_gradients_match_finite_differences(backend, family, f, shapes):
    need(family)
    with F.use_backend(backend):
        assert nnx.gradcheck(f, [rand(*s) for s in shapes], atol=1e-6, rtol=1e-5)


def test_first_layer_never_computes_dx():
    calls = []

    class Spy:
        linear = staticmethod(nnx.reference.linear)

        @staticmethod
        def linear_backward(*args, needs, **kw):
            calls.append(needs)
            return nnx.reference.linear_backward(*args, needs=needs, **kw)

    w = nn.Parameter(rand(2, 3))
    b = nn.Parameter(rand(2), requires_grad=False)
    with F.use_backend(Spy):
        F.linear(rand(4, 3), w, b).sum().backward()
    assert calls == [(False, True, False)]
    assert b.grad is None and w.grad.shape == (2, 3)


def test_missing_backend_op_fails_when_called():
    class Empty:
        __name__ = "empty"

    with F.use_backend(Empty):
        with pytest.raises(NotImplementedError, match="has no relu"):
            F.relu(np.ones(3))
    assert F.get_backend() is nnx.ops


def test_backward_uses_the_forward_backend():
    x = Tensor(rand(3, 4), requires_grad=True)
    with F.use_backend(nnx.reference):
        y = F.linear(x, rand(2, 4))
    y.sum().backward()  # outside the block: still the reference's backward
    assert x.grad.shape == (3, 4)


# ------------------------------------------------------------------ modules: ops vs reference
def _run(model, x, backend, dy_seed=0):
    x = Tensor(x, requires_grad=True)
    for p in model.parameters():
        p.grad = None
    with F.use_backend(backend):
        y = model(x)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape)
    y.backward(dy.astype(y.dtype))
    return y.numpy(), x.grad, [p.grad for p in model.parameters()]


MODULE_CASES = [
    ("linear", lambda: nn.Linear(5, 3, dtype=np.float64), (4, 5)),
    ("linear", lambda: nn.Linear(5, 3, bias=False, dtype=np.float64), (1, 5)),
    ("linear", lambda: nn.Residual(nn.Linear(6, 6, dtype=np.float64)), (3, 6)),
    ("conv", lambda: nn.Conv2d(3, 4, 3, padding=1, dtype=np.float64), (2, 3, 6, 5)),
    ("conv", lambda: nn.Conv2d(4, 6, (3, 2), stride=2, dilation=(1, 2), groups=2, dtype=np.float64), (2, 4, 7, 7)),
    ("pool", lambda: nn.MaxPool2d(2), (2, 3, 6, 6)),
    ("pool", lambda: nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 7, 5)),
    ("pool", lambda: nn.AvgPool2d(2, stride=1), (2, 2, 5, 5)),
    ("pool", lambda: nn.LPPool2d(3, 2), (1, 2, 4, 6)),
    ("pool", lambda: nn.GlobalAvgPool2d(), (2, 3, 4, 4)),
    ("act", lambda: nn.ReLU(), (4, 7)),
    ("act", lambda: nn.Sigmoid(), (4, 7)),
    ("act", lambda: nn.Tanh(), (4, 7)),
    ("act", lambda: nn.LeakyReLU(0.2), (4, 7)),
    ("act", lambda: nn.ELU(0.5), (4, 7)),
    ("act", lambda: nn.Softmax(dim=1), (4, 7)),
    ("act", lambda: nn.LogSoftmax(dim=-1), (4, 7)),
    ("none", lambda: nn.Flatten(), (2, 3, 2, 2)),
    ("none", lambda: nn.BatchNorm1d(5, dtype=np.float64), (6, 5)),
    ("none", lambda: nn.BatchNorm2d(3, dtype=np.float64), (2, 3, 4, 4)),
]


@pytest.mark.parametrize("family, make, shape", MODULE_CASES,
                         ids=[f"{c[0]}{i}" for i, c in enumerate(MODULE_CASES)])
def test_module_ops_vs_reference(family, make, shape):
    need(family)
    nnx.manual_seed(0)
    model = make()
    x = rand(*shape)
    y1, dx1, dp1 = _run(model, x, nnx.ops)
    y2, dx2, dp2 = _run(model, x, nnx.reference)
    np.testing.assert_allclose(y1, y2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-9, atol=1e-12)
    for a, b in zip(dp1, dp2):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _lenet(dtype=np.float32):
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120, dtype=dtype), nn.ReLU(), nn.Linear(120, 84, dtype=dtype), nn.ReLU(),
                         nn.Linear(84, 10, dtype=dtype))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-9), (np.float32, 1e-4)], ids=["f64", "f32"])
def test_lenet_step_ops_vs_reference(dtype, tol):
    need("conv", "pool", "act", "loss")
    nnx.manual_seed(0)
    model = _lenet(dtype)
    x = rand(4, 1, 28, 28).astype(dtype)
    y = np.array([1, 0, 9, 3])
    results = []
    for backend in (nnx.ops, nnx.reference):
        model.zero_grad()
        with F.use_backend(backend):
            loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        results.append((loss.item(), [p.grad.copy() for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=tol)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


@pytest.mark.parametrize("loss_cls, target", [
    (lambda: nn.CrossEntropyLoss(), np.array([2, 0, 1, 2])),
    (lambda: nn.CrossEntropyLoss(reduction="sum"), np.array([2, 0, 1, 2])),
    (lambda: nn.MSELoss(), rand(4, 3)),
    (lambda: nn.BCEWithLogitsLoss(reduction="sum"), (rand(4, 3) > 0).astype(np.float64)),
    (lambda: nn.MultiClassHingeLoss(margin=2.0), np.array([0, 1, 2, 1])),
])
@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_modules(loss_cls, target, backend):
    need("loss")
    x = rand(4, 3)
    with F.use_backend(backend):
        assert nnx.gradcheck(lambda z: loss_cls()(z, target), [x])
        out = loss_cls()(Tensor(x), target)
    assert out.shape == () and out.dtype == np.float64


# ------------------------------------------------------------------ fusion
def _fusable_mlp():
    return nn.Sequential(nn.Linear(6, 8, dtype=np.float64), nn.ReLU(), nn.Linear(8, 8, dtype=np.float64), nn.Tanh(),
                         nn.Linear(8, 5, dtype=np.float64), nn.Sigmoid(), nn.Linear(5, 4, dtype=np.float64),
                         nn.LeakyReLU(0.3), nn.Linear(4, 3, dtype=np.float64))


def _fusable_cnn():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64), nn.ReLU(),
                         nn.Conv2d(3, 3, 3, dtype=np.float64), nn.Tanh(),
                         nn.Conv2d(3, 2, 1, dtype=np.float64), nn.LeakyReLU(0.1),
                         nn.Conv2d(2, 2, 2, dtype=np.float64), nn.Sigmoid())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make, shape, families", [(_fusable_mlp, (5, 6), ("act",)),
                                                   (_fusable_cnn, (2, 2, 6, 6), ("act", "conv"))],
                         ids=["mlp", "cnn"])
def test_fused_sequential_equals_unfused(backend, make, shape, families):
    need(*families)
    nnx.manual_seed(1)
    model = make()
    x = rand(*shape)
    fused = _run(model, x, backend)
    model.fuse = False
    unfused = _run(model, x, backend)
    np.testing.assert_allclose(fused[0], unfused[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fused[1], unfused[1], rtol=1e-10, atol=1e-13)
    for a, b in zip(fused[2], unfused[2]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def _conv_relu_pool_cnn(dtype):
    # Conv2d, ReLU, MaxPool2d (run as the convolution, then the pooling with the ReLU on its output), once
    # with overlapping windows; and once with a padded pooling, which keeps the Conv2d+ReLU fusion.
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 3, 3, dtype=dtype), nn.ReLU(), nn.MaxPool2d(3, 1),
                         nn.Conv2d(3, 3, 1, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2, padding=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_relu_pool_is_bitwise_the_unfused_layers(dtype, threads):
    need("conv", "pool")
    nnx.manual_seed(3)
    model = _conv_relu_pool_cnn(dtype)
    x = np.random.default_rng(4).standard_normal((3, 2, 16, 16)).astype(dtype)
    before = nnx.get_num_threads()
    nnx.set_num_threads(threads)
    try:
        h = model[:3](Tensor(x, requires_grad=True))
        assert h._op == "conv2d+max_pool2d+relu"
        fused = _run(model, x, nnx.ops)
        model.fuse = False
        unfused = _run(model, x, nnx.ops)
    finally:
        nnx.set_num_threads(before)
    assert (fused[0] == 0).any() and (fused[0] > 0).any()
    np.testing.assert_array_equal(fused[0], unfused[0])
    np.testing.assert_array_equal(fused[1], unfused[1])
    for a, b in zip(fused[2], unfused[2]):
        np.testing.assert_array_equal(a, b)
    model.fuse = True
    want = _run(model, x, nnx.reference)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)
    for a, b in zip([fused[0], fused[1], *fused[2]], [want[0], want[1], *want[2]]):
        np.testing.assert_allclose(a, b, **tol)


def test_sequential_calls_the_fused_op():
    model = nn.Sequential(nn.Linear(3, 2), nn.Sigmoid(), nn.Linear(2, 2), nn.LeakyReLU(0.2), nn.Linear(2, 1))
    with F.use_backend(nnx.reference):
        h = model[:2](np.ones((1, 3), np.float32))
        assert h._op == "linear+sigmoid"
        h = model[:4](np.ones((1, 3), np.float32))
        assert h._op == "linear+leaky_relu"
        np.testing.assert_allclose(h.numpy(), nnx.reference.linear(
            model[:2](np.ones((1, 3), np.float32)).numpy(), model[2].weight.data, model[2].bias.data,
            activation="leaky_relu", negative_slope=0.2), rtol=1e-6)


# ------------------------------------------------------------------ BatchNorm
@needs_torch
@pytest.mark.parametrize("cls, tcls, shape", [(nn.BatchNorm1d, "BatchNorm1d", (8, 3)),
                                              (nn.BatchNorm1d, "BatchNorm1d", (4, 3, 5)),
                                              (nn.BatchNorm2d, "BatchNorm2d", (4, 3, 5, 2))])
def test_batchnorm_train_and_eval_against_torch(cls, tcls, shape):
    ours = cls(3, momentum=0.2, dtype=np.float64)
    theirs = getattr(torch.nn, tcls)(3, momentum=0.2).double()
    ours.weight.data[:] = [0.5, 1.5, -1.0]
    ours.bias.data[:] = [0.1, 0.0, 0.3]
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
        theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    for step in range(3):
        x = rand(*shape) * 2 + step
        dy = rand(*shape)
        xt = torch.from_numpy(x).requires_grad_()
        yt = theirs(xt)
        yt.backward(torch.from_numpy(dy))
        ours.zero_grad()
        xo = Tensor(x, requires_grad=True)
        yo = ours(xo)
        yo.backward(dy)
        np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-10)
        theirs.weight.grad = theirs.bias.grad = None
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-12, err_msg=k)
    ours.eval()
    theirs.eval()
    x = rand(*shape)
    np.testing.assert_allclose(ours(x).numpy(), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-10)
    before = ours.running_mean.copy()
    ours(x)
    np.testing.assert_array_equal(ours.running_mean, before)  # eval mode leaves the statistics alone


def test_batchnorm_eval_gradient_and_errors():
    bn = nn.BatchNorm1d(2, dtype=np.float64)
    bn.running_mean[:] = [1.0, -1.0]
    bn.running_var[:] = [4.0, 0.25]
    bn.eval()
    assert nnx.gradcheck(lambda x: bn(x), [rand(3, 2)])
    with pytest.raises(ValueError, match="2 channels"):
        bn(np.ones((3, 3)))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        bn(np.ones((3, 2, 2, 2)))
    bn.train()
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(np.ones((1, 2)))
    no_stats = nn.BatchNorm2d(2, affine=False, track_running_stats=False, dtype=np.float64)
    assert list(no_stats.state_dict()) == []
    y = no_stats.eval()(rand(3, 2, 2, 2)).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)  # batch statistics even in eval


# ------------------------------------------------------------------ Dropout
def test_dropout_scaling_mask_and_seed():
    x = np.ones((200, 100), np.float32)
    drop = nn.Dropout(0.3)
    nnx.manual_seed(5)
    t = Tensor(x, requires_grad=True)
    y = drop(t)
    zeros = (y.numpy() == 0).mean()
    assert abs(zeros - 0.3) < 0.02
    np.testing.assert_allclose(y.numpy()[y.numpy() != 0], 1 / 0.7, rtol=1e-6)
    y.backward(np.ones_like(x))
    np.testing.assert_array_equal(t.grad, y.numpy())  # gradient = mask * scale
    nnx.manual_seed(5)
    np.testing.assert_array_equal(drop(x).numpy(), y.numpy())
    assert not np.array_equal(drop(x).numpy(), y.numpy())  # the next call draws a new mask
    drop.eval()
    assert drop(t) is t
    assert not nn.Dropout(1.0)(x).numpy().any()
    with pytest.raises(ValueError, match="p"):
        nn.Dropout(1.5)


# ------------------------------------------------------------------ no_grad through modules; torch parity
def test_no_grad_builds_no_graph():
    need("act")
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with nnx.no_grad():
        y = model(np.ones((2, 3), np.float32))
    assert not y.requires_grad and y._parents == ()


@needs_torch
def test_linear_and_conv_match_torch():
    need("conv")
    nnx.manual_seed(2)
    lin, conv = nn.Linear(5, 3, dtype=np.float64), nn.Conv2d(2, 4, 3, stride=2, padding=1, dtype=np.float64)
    for ours, theirs, shape in [(lin, torch.nn.Linear(5, 3).double(), (4, 5)),
                                (conv, torch.nn.Conv2d(2, 4, 3, stride=2, padding=1).double(), (2, 2, 7, 7))]:
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
        x = rand(*shape)
        y, dx, (dw, db) = _run(ours, x, nnx.ops)
        xt = torch.from_numpy(x).requires_grad_()
        yt = theirs(xt)
        yt.backward(torch.from_numpy(np.random.default_rng(0).standard_normal(y.shape)))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(dw, theirs.weight.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(db, theirs.bias.grad.numpy(), rtol=1e-10)


def test_add_residual_and_identity_modules():
    nnx.manual_seed(0)
    lin = nn.Linear(3, 3, dtype=np.float64)
    res = nn.Residual(lin)
    assert list(res.state_dict()) == ["module.weight", "module.bias"]
    x = rand(2, 3)
    np.testing.assert_allclose(res(x).numpy(), x + x @ lin.weight.data.T + lin.bias.data, rtol=1e-12)
    assert nnx.gradcheck(lambda a, b: nn.Add()(a, b), [rand(2, 3), rand(3)])
    assert nnx.gradcheck(lambda a: res(a), [x])
    t = Tensor(x)
    assert nn.Identity()(t) is t


def test_ndarray_float_targets_follow_the_prediction_dtype():
    need("loss")
    pred = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    loss = nn.MSELoss()(pred, np.zeros((2, 3)))  # float64 ndarray target
    assert loss.dtype == np.float32
    loss.backward()
    assert pred.grad.dtype == np.float32
    with pytest.raises(TypeError, match="float32"):
        nn.MSELoss()(pred, Tensor(np.zeros((2, 3))))  # Tensors are never converted
