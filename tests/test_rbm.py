"""nnx.models.RBM: conditionals, CD-k statistics against a NumPy replay of the same random draws, the
free energy against brute-force summation, the pseudo-likelihood formula, and learning."""
import itertools

import numpy as np
import pytest

import nnx
from nnx.models import RBM


def sig(x):
    return 1 / (1 + np.exp(-x))


def make(nv=6, nh=4, **kw):
    nnx.manual_seed(0)
    rbm = RBM(nv, nh, dtype=np.float64, **kw)
    r = np.random.default_rng(1)
    rbm.W[...] = r.standard_normal(rbm.W.shape)
    rbm.b_v[...] = r.standard_normal(nv) * 0.5
    rbm.b_h[...] = r.standard_normal(nh) * 0.5
    return rbm


def test_conditionals_against_numpy():
    rbm = make()
    v = np.random.default_rng(2).random((5, 6))
    h = np.random.default_rng(3).random((5, 4))
    np.testing.assert_allclose(rbm.hidden_probs(v), sig(v @ rbm.W.T + rbm.b_h), rtol=1e-12)
    np.testing.assert_allclose(rbm.visible_probs(h), sig(h @ rbm.W + rbm.b_v), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_cd_k_statistics_against_numpy_replay(k):
    rbm = make(k=k)
    v0 = (np.random.default_rng(4).random((7, 6)) < 0.5).astype(np.float64)
    nnx.manual_seed(10)
    dW, dbv, dbh, recon = rbm.gradients(v0)
    r = np.random.default_rng(10)  # the same stream nnx.random holds after manual_seed(10)
    ph0 = sig(v0 @ rbm.W.T + rbm.b_h)
    h = (r.random(ph0.shape) < ph0).astype(float)
    np.testing.assert_allclose(recon, sig(h @ rbm.W + rbm.b_v), rtol=1e-12)
    for step in range(k):
        pv = sig(h @ rbm.W + rbm.b_v)
        v = pv if step == k - 1 else (r.random(pv.shape) < pv).astype(float)
        phk = sig(v @ rbm.W.T + rbm.b_h)
        h = (r.random(phk.shape) < phk).astype(float)
    np.testing.assert_allclose(dW, (ph0.T @ v0 - phk.T @ pv) / 7, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dbv, (v0 - pv).mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dbh, (ph0 - phk).mean(0), rtol=1e-12, atol=1e-15)


def test_update_rule_momentum_and_decay():
    rbm = make(lr=0.1, momentum=0.5, weight_decay=0.01)
    v0 = (np.random.default_rng(5).random((4, 6)) < 0.5).astype(np.float64)
    W0 = rbm.W.copy()
    nnx.manual_seed(3)
    dW, *_ = rbm.gradients(v0)
    nnx.manual_seed(3)
    rbm.partial_fit(v0)
    step1 = 0.1 * (dW - 0.01 * W0)
    np.testing.assert_allclose(rbm.W, W0 + step1, rtol=1e-12)


def test_free_energy_against_brute_force():
    rbm = make(nv=4, nh=3)
    vs = np.array(list(itertools.product([0, 1], repeat=4)), dtype=float)
    hs = np.array(list(itertools.product([0, 1], repeat=3)), dtype=float)
    # F(v) = -log sum_h exp(-E(v, h)), E = -v.b_v - h.b_h - h W v
    energies = -(vs @ rbm.b_v)[:, None] - (hs @ rbm.b_h)[None, :] - (vs @ rbm.W.T @ hs.T)
    want = -np.log(np.exp(-energies).sum(axis=1))
    np.testing.assert_allclose(rbm.free_energy(vs), want, rtol=1e-12)


def test_pseudo_likelihood_formula():
    rbm = make()
    v = (np.random.default_rng(6).random((9, 6)) < 0.5).astype(np.float64)
    nnx.manual_seed(7)
    got = rbm.pseudo_likelihood(v)
    i = np.random.default_rng(7).integers(0, 6, size=9)
    flipped = v.copy()
    flipped[np.arange(9), i] = 1 - flipped[np.arange(9), i]
    fe = lambda x: -(x @ rbm.b_v) - np.logaddexp(0, x @ rbm.W.T + rbm.b_h).sum(1)  # noqa: E731
    assert got == pytest.approx(np.mean(6 * np.log(sig(fe(flipped) - fe(v)))), rel=1e-12)


@pytest.mark.parametrize("persistent", [False, True])
def test_learns_bars(persistent):
    r = np.random.default_rng(0)
    # 4x4 images with one horizontal or vertical bar: 8 patterns
    pats = []
    for j in range(4):
        img = np.zeros((4, 4))
        img[j] = 1
        pats.append(img.ravel())
        pats.append(img.T.ravel())
    X = np.array(pats)[r.integers(0, 8, size=400)].astype(np.float32)
    nnx.manual_seed(0)
    rbm = RBM(16, 12, k=1, persistent=persistent, lr=0.1, momentum=0.5)
    hist = rbm.fit(X, epochs=30, batch_size=20)
    assert hist[-1]["recon_error"] < 0.5 * hist[0]["recon_error"]
    assert hist[-1]["pseudo_likelihood"] > hist[0]["pseudo_likelihood"]
    lin = rbm.to_linear()
    np.testing.assert_array_equal(lin.weight.data, rbm.W)
    np.testing.assert_allclose(lin(X[:3]).numpy(), X[:3] @ rbm.W.T + rbm.b_h, rtol=1e-5, atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="n_hidden"):
        RBM(4, 0)
    with pytest.raises(ValueError, match="lr"):
        RBM(4, 2, lr=-1)
    rbm = RBM(4, 2)
    with pytest.raises(ValueError, match="v"):
        rbm.hidden_probs(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="X"):
        rbm.fit(np.zeros(4))
