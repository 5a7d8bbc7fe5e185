"""The PyTorch names a ported training script reaches for: Tensor reductions with dim/keepdim,
comparisons, shape helpers, clamp; nnx.flatten/tensor/from_numpy; the composed losses; Module.apply and
requires_grad_. Each against torch (skipped without it) or NumPy, gradients also against finite
differences."""
import numpy as np
import pytest

import nnx
from nnx import nn
from nnx import functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def rnd(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def grad_of(fn, x):
    t = nnx.Tensor(x.copy(), requires_grad=True)
    out = fn(t)
    out.backward(np.ones(out.shape) if out.data.size != 1 else None)
    return out.data, t.grad


def torch_grad_of(fn, x):
    t = torch.tensor(x, requires_grad=True)
    out = fn(t)
    out.backward(torch.ones_like(out))
    return out.detach().numpy(), t.grad.numpy()


# ------------------------------------------------------------------------------------------ Tensor
@needs_torch
@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_dim_against_torch(kind, dim, keepdim):
    x = rnd(4, 5, 3)
    ours = getattr(nnx.Tensor(x), kind)(dim=dim, keepdim=keepdim)
    theirs = getattr(torch.tensor(x), kind)(dim=dim, keepdim=keepdim)
    np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    v, i = ours  # unpacks as a pair, as torch's
    assert i.dtype == np.int64
    _, g = grad_of(lambda t: getattr(t, kind)(dim, keepdim).values * 3.0, x)
    _, tg = torch_grad_of(lambda t: getattr(t, kind)(dim, keepdim).values * 3.0, x)
    np.testing.assert_array_equal(g, tg)


@needs_torch
@pytest.mark.parametrize("shape", [(5,), (1,), (3, 1)])
def test_max_min_argmax_of_small_shapes_against_torch(shape):
    x = rnd(*shape, seed=7)
    for dim in range(-len(shape), len(shape)):
        for keepdim in (False, True):
            for kind in ("max", "min"):
                ours = getattr(nnx.Tensor(x), kind)(dim, keepdim)
                theirs = getattr(torch.tensor(x), kind)(dim, keepdim)
                assert ours.values.shape == tuple(theirs.values.shape)
                np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
                np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
            ours = nnx.Tensor(x).argmax(dim, keepdim).numpy()
            assert ours.shape == tuple(torch.tensor(x).argmax(dim, keepdim).shape)


@needs_torch
def test_full_max_shares_gradient_between_ties_as_torch():
    x = np.array([[1.0, 3.0], [3.0, 2.0]])
    out, g = grad_of(lambda t: t.max(), x)
    tout, tg = torch_grad_of(lambda t: t.max(), x)
    assert out == tout and np.array_equal(g, tg)
    np.testing.assert_array_equal(g, [[0, 0.5], [0.5, 0]])
    _, g = grad_of(lambda t: t.min() * 2, x)
    np.testing.assert_array_equal(g, [[2, 0], [0, 0]])


@needs_torch
@pytest.mark.parametrize("dim", [None, 0, 1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin_against_torch(dim, keepdim):
    x = rnd(6, 7, seed=3)
    for name in ("argmax", "argmin"):
        ours = getattr(nnx.Tensor(x), name)(dim=dim, keepdim=keepdim).numpy()
        theirs = getattr(torch.tensor(x), name)(dim=dim, keepdim=keepdim).numpy()
        assert ours.shape == theirs.shape and ours.dtype == np.int64
        np.testing.assert_array_equal(ours, theirs)


def test_reductions_accept_dim_and_axis():
    x = rnd(3, 4)
    t = nnx.Tensor(x)
    np.testing.assert_allclose(t.sum(dim=1).numpy(), x.sum(axis=1))
    np.testing.assert_allclose(t.sum(axis=0, keepdims=True).numpy(), x.sum(axis=0, keepdims=True))
    np.testing.assert_allclose(t.mean(dim=0, keepdim=True).numpy(), x.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(t.mean(dim=(0, 1)).numpy(), x.mean())
    assert t.argmax(axis=1).shape == (3,)
    with pytest.raises(TypeError, match="dim"):
        t.sum(1, dim=0)
    with pytest.raises(ValueError, match="dim"):
        t.max(dim=2)
    _, g = grad_of(lambda t: t.mean(dim=1), x)
    np.testing.assert_allclose(g, np.full_like(x, 0.25))


def test_comparisons_are_elementwise_bool_tensors():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])
    ta, tb = nnx.Tensor(a), nnx.Tensor(b)
    for ours, ref in ((ta < tb, a < b), (ta <= tb, a <= b), (ta > tb, a > b), (ta >= tb, a >= b),
                      (ta == tb, a == b), (ta != tb, a != b), (ta.eq(tb), a == b), (ta.eq(2.0), a == 2.0),
                      (ta > 1.5, a > 1.5), (ta.ne(b), a != b)):
        assert isinstance(ours, nnx.Tensor) and ours.dtype == bool
        np.testing.assert_array_equal(ours.numpy(), ref)
    # accuracy, the way PyTorch scripts write it
    logits, y = nnx.Tensor(rnd(10, 4)), np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    correct = (logits.argmax(dim=1) == nnx.tensor(y)).sum().item()
    assert correct == int((rnd(10, 4).argmax(1) == y).sum())
    # tensors stay usable as dict keys (optimizer state) and a multi-element truth value is an error
    d = {ta: 1, tb: 2}
    assert d[ta] == 1 and d[tb] == 2
    with pytest.raises(ValueError, match="ambiguous"):
        bool(ta == tb)
    assert bool(nnx.Tensor(np.array([1.0])) == 1.0)


@needs_torch
def test_clamp_value_and_gradient_as_torch():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    for kw in (dict(min=-1.0, max=1.0), dict(min=0.0), dict(max=0.5)):
        out, g = grad_of(lambda t: t.clamp(**kw) * 2, x)
        tout, tg = torch_grad_of(lambda t: t.clamp(**kw) * 2, x)
        np.testing.assert_array_equal(out, tout)
        np.testing.assert_array_equal(g, tg)  # gradient passes at the bounds too
    with pytest.raises(ValueError, match="min and max"):
        nnx.Tensor(x).clamp()


def test_shape_helpers():
    x = rnd(2, 1, 3)
    t = nnx.Tensor(x, requires_grad=True)
    assert t.unsqueeze(0).shape == (1, 2, 1, 3) and t.unsqueeze(-1).shape == (2, 1, 3, 1)
    assert t.squeeze().shape == (2, 3) and t.squeeze(1).shape == (2, 3) and t.squeeze(0).shape == (2, 1, 3)
    assert t.view_as(np.zeros((3, 2))).shape == (3, 2)
    assert t.size() == (2, 1, 3) and t.size(-1) == 3
    t.squeeze(1).unsqueeze(0).sum().backward()
    assert t.grad.shape == x.shape
    with pytest.raises(ValueError, match="dim"):
        t.unsqueeze(5)
    a = np.arange(24.0).reshape(2, 3, 4)
    assert nnx.flatten(a).shape == (24,) and nnx.flatten(a, 1).shape == (2, 12)
    assert nnx.flatten(a, 0, 1).shape == (6, 4)


def test_tensor_copies_and_from_numpy_shares():
    a = np.arange(3.0)
    t, s = nnx.tensor(a), nnx.from_numpy(a)
    a[0] = 7
    assert t.numpy()[0] == 0 and s.numpy()[0] == 7 and s.dtype == np.float64
    assert nnx.tensor([1.0, 2.0]).dtype == np.float32 and nnx.tensor([1, 2]).dtype.kind == "i"
    with pytest.raises(TypeError, match="array"):
        nnx.from_numpy([1.0])


# ------------------------------------------------------------------------------------------ losses
LOSSES = [
    ("l1_loss", {}, {}),
    ("smooth_l1_loss", {"beta": 1.0}, {"beta": 1.0}),
    ("smooth_l1_loss", {"beta": 0.3}, {"beta": 0.3}),
    ("smooth_l1_loss", {"beta": 0.0}, {"beta": 0.0}),
    ("huber_loss", {"delta": 1.0}, {"delta": 1.0}),
    ("huber_loss", {"delta": 0.4}, {"delta": 0.4}),
]


@needs_torch
@pytest.mark.parametrize("name, kw, tkw", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_against_torch(name, kw, tkw, reduction):
    x, y = rnd(5, 4), rnd(5, 4, seed=1)
    x[0, 0] = y[0, 0]  # d = 0 exactly: the subgradient there is 0, as torch's
    ours = getattr(F, name)
    theirs = getattr(TF, name)
    t = nnx.Tensor(x, requires_grad=True)
    out = ours(t, y, reduction=reduction, **kw)
    out.backward(np.ones(out.shape) if out.ndim else None)
    tt = torch.tensor(x, requires_grad=True)
    tout = theirs(tt, torch.tensor(y), reduction=reduction, **tkw)
    tout.backward(torch.ones_like(tout))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-12, atol=1e-14)


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_against_torch(reduction):
    logp = np.log(np.random.default_rng(0).dirichlet(np.ones(5), size=8))
    y = np.array([0, 4, 2, 2, 1, 3, 0, 4])
    w = np.linspace(0.5, 2, 5)
    for kw in (dict(), dict(weight=w), dict(ignore_index=2), dict(weight=w, ignore_index=4)):
        t = nnx.Tensor(logp, requires_grad=True)
        out = F.nll_loss(t, y, reduction=reduction, **kw)
        out.backward(np.ones(out.shape) if out.ndim else None)
        tt = torch.tensor(logp, requires_grad=True)
        tkw = dict(kw, weight=torch.tensor(w)) if "weight" in kw else kw
        tout = TF.nll_loss(tt, torch.tensor(y), reduction=reduction, **tkw)
        tout.backward(torch.ones_like(tout))
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-12, atol=1e-15)


@needs_torch
def test_nll_loss_spatial_and_module_and_log_softmax_equals_cross_entropy():
    z = rnd(2, 3, 4, 5)
    y = np.random.default_rng(1).integers(0, 3, size=(2, 4, 5))
    ours = F.nll_loss(F.log_softmax(nnx.Tensor(z), dim=1), y).item()
    theirs = TF.nll_loss(TF.log_softmax(torch.tensor(z), 1), torch.tensor(y)).item()
    assert ours == pytest.approx(theirs, rel=1e-12)
    z2 = rnd(6, 4)
    y2 = np.array([0, 1, 2, 3, 1, 0])
    a = nn.NLLLoss()(nn.LogSoftmax(dim=1)(nnx.Tensor(z2)), y2).item()
    assert a == pytest.approx(F.cross_entropy(nnx.Tensor(z2), y2).item(), rel=1e-12)
    with pytest.raises(ValueError, match="target"):
        F.nll_loss(nnx.Tensor(z2), np.array([0, 1, 2, 3, 4, 0]))
    with pytest.raises(TypeError, match="target"):
        F.nll_loss(nnx.Tensor(z2), z2[:, 0])


@needs_torch
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")  # torch's advice to use batchmean
@pytest.mark.parametrize("reduction", ["mean", "sum", "batchmean", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_against_torch(reduction, log_target):
    r = np.random.default_rng(2)
    logq = np.log(r.dirichlet(np.ones(6), size=4))
    p = r.dirichlet(np.ones(6), size=4)
    p[0, 1] = 0.0  # a zero target contributes 0 (xlogy)
    target = np.log(p + 1e-30) if log_target else p
    t = nnx.Tensor(logq, requires_grad=True)
    out = F.kl_div(t, target, reduction=reduction, log_target=log_target)
    out.backward(np.ones(out.shape) if out.ndim else None)
    tt = torch.tensor(logq, requires_grad=True)
    tout = TF.kl_div(tt, torch.tensor(target), reduction=reduction, log_target=log_target)
    tout.backward(torch.ones_like(tout))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert type(nn.KLDivLoss(reduction=reduction, log_target=log_target)(t, target)) is nnx.Tensor


@needs_torch
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_label_smoothing_against_torch(eps, reduction, dtype):
    z, y = rnd(7, 5, dtype=dtype), np.array([0, 1, 2, 3, 4, 0, 1])
    t = nnx.Tensor(z, requires_grad=True)
    out = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=eps)(t, y)
    out.backward()
    tt = torch.tensor(z, requires_grad=True)
    tout = TF.cross_entropy(tt, torch.tensor(y), reduction=reduction, label_smoothing=eps)
    tout.backward()
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=tol)
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)


@pytest.mark.parametrize("name", ["l1_loss", "smooth_l1_loss", "huber_loss", "kl_div"])
def test_composed_losses_gradcheck(name):
    x, y = rnd(3, 4), np.abs(rnd(3, 4, seed=5))
    fn = getattr(F, name)
    assert nnx.gradcheck(lambda a: fn(a, y), [x])


def test_loss_argument_errors():
    x = nnx.Tensor(rnd(3, 4))
    with pytest.raises(ValueError, match="target"):
        F.l1_loss(x, rnd(4, 3))
    with pytest.raises(ValueError, match="reduction"):
        F.huber_loss(x, rnd(3, 4), reduction="avg")
    with pytest.raises(ValueError, match="delta"):
        F.huber_loss(x, rnd(3, 4), delta=0)
    with pytest.raises(ValueError, match="reduction"):
        nn.L1Loss(reduction="batchmean")


# ------------------------------------------------------------------------------------------ Module
def test_module_apply_and_requires_grad_():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]  # children first, as torch

    def zero_linear(m):
        if isinstance(m, nn.Linear):
            m.weight.data[...] = 0
    model.apply(zero_linear)
    assert all(not p.data.any() for n, p in model.named_parameters() if n.endswith("weight"))
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    model[0].requires_grad_()
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["0.weight", "0.bias"]
    with pytest.raises(TypeError, match="fn"):
        model.apply(3)


@needs_torch
@pytest.mark.parametrize("sa,sb", [((4, 5), (5, 3)), ((2, 4, 5), (5, 3)), ((2, 4, 5), (2, 5, 3)), ((5,), (2, 5, 3)),
                                   ((3, 1, 4, 5), (2, 5, 3))])
def test_matmul_as_torch(sa, sb):
    a, b = rnd(*sa, seed=1), rnd(*sb, seed=2)
    ta, tb = nnx.Tensor(a, requires_grad=True), nnx.Tensor(b, requires_grad=True)
    y = nnx.matmul(ta, tb)
    y.backward(np.ones(y.shape))
    qa, qb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    qy = torch.matmul(qa, qb)
    qy.backward(torch.ones_like(qy))
    np.testing.assert_allclose(y.data, qy.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ta.grad, qa.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tb.grad, qb.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(nnx.matmul(a, b).data, (ta @ tb).data)
