"""L1 and elastic-net penalties: values against NumPy, gradients against finite differences, the
subgradient 0 at w = 0, and that L1 drives weights to zero in training."""
import numpy as np
import pytest

import nnx
from nnx import functional as F
from nnx import nn, optim


def test_values_and_gradients_against_numpy():
    r = np.random.default_rng(0)
    ws = [r.standard_normal((4, 3)), r.standard_normal(5)]
    ws[0][1, 2] = 0.0
    ts = [nnx.Tensor(w.copy(), requires_grad=True) for w in ws]
    pen = F.elastic_net_penalty(ts, l1=0.3, l2=0.7)
    want = sum(0.3 * np.abs(w).sum() + 0.7 * (w * w).sum() for w in ws)
    assert pen.item() == pytest.approx(want, rel=1e-14)
    pen.backward()
    for t, w in zip(ts, ws):
        np.testing.assert_allclose(t.grad, 0.3 * np.sign(w) + 1.4 * w, rtol=1e-14)
    assert ts[0].grad[1, 2] == 0.0  # subgradient 0 at 0
    t = nnx.Tensor(ws[1].copy(), requires_grad=True)
    F.l1_penalty([t], weight=2.0).backward()
    np.testing.assert_array_equal(t.grad, 2.0 * np.sign(ws[1]))


def test_against_finite_differences():
    w = np.random.default_rng(1).standard_normal((3, 4))  # no entry near 0, where |w| has its kink
    w[np.abs(w) < 0.05] = 0.5
    assert nnx.gradcheck(lambda a: F.elastic_net_penalty([a], l1=0.2, l2=0.1), [w])
    assert nnx.gradcheck(lambda a: F.l1_penalty([a], 0.5), [w])


def test_l1_makes_weights_sparse_and_errors():
    r = np.random.default_rng(2)
    X = r.standard_normal((200, 20)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)  # only 2 of 20 features matter
    zeros = {}
    for l1 in (0.0, 0.02):
        nnx.manual_seed(0)
        m = nn.Linear(20, 2)
        opt = optim.SGD(m.parameters(), lr=0.1)
        for _ in range(300):
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(m(X), y)
            if l1:
                loss = loss + F.l1_penalty([m.weight], l1)
            loss.backward()
            opt.step()
        zeros[l1] = np.mean(np.abs(m.weight.data[:, 2:]) < 5e-3)
    assert zeros[0.02] > 0.8 and zeros[0.0] < 0.3
    with pytest.raises(ValueError, match="l1"):
        F.elastic_net_penalty([nnx.Tensor(np.ones(2))], l1=-1)
    with pytest.raises(ValueError, match="parameters"):
        F.l1_penalty([])


def test_sparsity_penalty_against_numpy_and_finite_differences():
    a = np.random.default_rng(3).uniform(0.01, 0.6, size=(8, 5))
    rho, t = a.mean(axis=0), 0.05
    want = np.sum(t * np.log(t / rho) + (1 - t) * np.log((1 - t) / (1 - rho)))
    assert F.sparsity_penalty(nnx.Tensor(a), t).item() == pytest.approx(want, rel=1e-13)
    assert F.sparsity_penalty(nnx.Tensor(a), kind="l1").item() == pytest.approx(np.abs(a).mean(0).sum(), rel=1e-14)
    assert nnx.gradcheck(lambda x: F.sparsity_penalty(x, 0.1), [a])
    assert nnx.gradcheck(lambda x: F.sparsity_penalty(x, kind="l1"), [a])
    # the KL gradient pushes every unit's mean activation towards the target
    x = nnx.Tensor(a, requires_grad=True)
    F.sparsity_penalty(x, t).backward()
    assert np.all(x.grad > 0)  # all means are above 0.05: lowering any activation lowers the penalty
    with pytest.raises(ValueError, match="kind"):
        F.sparsity_penalty(nnx.Tensor(a), kind="l2")
    with pytest.raises(ValueError, match="target"):
        F.sparsity_penalty(nnx.Tensor(a), target=1.0)
