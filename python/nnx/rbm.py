"""Restricted Boltzmann machines with Bernoulli visible and hidden units, trained by contrastive
divergence (Hinton, 2002) or persistent contrastive divergence (Tieleman, 2008); stacked greedily they
make a deep belief network whose weights initialise an MLP.

Energy E(v, h) = -v.b_v - h.b_h - h W v, W shaped (n_hidden, n_visible) like nn.Linear(n_visible,
n_hidden).weight, so p(h_j = 1 | v) = sigmoid(v W^T + b_h)_j and p(v_i = 1 | h) = sigmoid(h W + b_v)_i.
Both conditionals run on nnx.ops.linear (the C++ GEMM with the sigmoid fused into its epilogue) and the
gradient statistics <h v^T> on nnx.ops.gemm; sampling draws from nnx.random.
"""
from __future__ import annotations

import numpy as np

from . import ops
from . import random as nnx_random


def _softplus(x):
    return np.logaddexp(0, x)


class RBM:
    r"""RBM(n_visible, n_hidden, k=1, persistent=False, lr=0.05, momentum=0.5, weight_decay=2e-4)

    One update on a mini-batch v0 (N rows), with p_h(v) = sigmoid(v W^T + b_h), p_v(h) = sigmoid(h W + b_v):

        h0 ~ p_h(v0);  chain start c = h0 (CD-k) or the persistent chains' hidden state (PCD)
        k Gibbs steps: v ~ p_v(c), c ~ p_h(v)        (the last v is kept as probabilities, vk)
        dW  = (p_h(v0)^T v0 - p_h(vk)^T vk) / N - weight_decay W
        db_v = mean(v0 - vk),  db_h = mean(p_h(v0) - p_h(vk))
        velocity <- momentum velocity + lr d;   parameter <- parameter + velocity
    """

    def __init__(self, n_visible: int, n_hidden: int, k: int = 1, persistent: bool = False, lr: float = 0.05,
                 momentum: float = 0.5, weight_decay: float = 2e-4, dtype=np.float32):
        for name, v in (("n_visible", n_visible), ("n_hidden", n_hidden), ("k", k)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not float(v) >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {v!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype}")
        self.n_visible, self.n_hidden, self.k = int(n_visible), int(n_hidden), int(k)
        self.persistent = bool(persistent)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        rng = nnx_random.get_rng()
        self.W = (0.01 * rng.standard_normal((self.n_hidden, self.n_visible))).astype(self.dtype)
        self.b_v = np.zeros(self.n_visible, self.dtype)
        self.b_h = np.zeros(self.n_hidden, self.dtype)
        self._vel = [np.zeros_like(self.W), np.zeros_like(self.b_v), np.zeros_like(self.b_h)]
        self._chain = None  # the persistent chains' hidden samples (PCD)

    # ------------------------------------------------------------------------------ conditionals
    def _input(self, v, n, name="v"):
        v = np.asarray(v)
        if v.ndim != 2 or v.shape[1] != n:
            raise ValueError(f"{name}: expected a 2-D array with {n} columns, got shape {v.shape}")
        return v.astype(self.dtype, copy=False)

    def hidden_probs(self, v):
        """p(h = 1 | v) = sigmoid(v W^T + b_h), (N, n_hidden)."""
        return ops.linear(self._input(v, self.n_visible), self.W, self.b_h, activation="sigmoid")

    def visible_probs(self, h):
        """p(v = 1 | h) = sigmoid(h W + b_v), (N, n_visible)."""
        return ops.linear(self._input(h, self.n_hidden, "h"), self.W.T, self.b_v, activation="sigmoid")

    def _sample(self, p):
        return (nnx_random.get_rng().random(p.shape, dtype=self.dtype) < p).astype(self.dtype)

    def sample_hidden(self, v):
        return self._sample(self.hidden_probs(v))

    def sample_visible(self, h):
        return self._sample(self.visible_probs(h))

    def gibbs(self, v, steps: int = 1):
        """`steps` rounds v -> h -> v of block Gibbs sampling; returns the last visible probabilities."""
        pv = self._input(v, self.n_visible)
        for _ in range(int(steps)):
            pv = self.visible_probs(self.sample_hidden(self._sample(pv)))
        return pv

    def transform(self, v):
        """The hidden probabilities: the features passed to the next RBM of a stack."""
        return self.hidden_probs(v)

    def free_energy(self, v):
        """F(v) = -v.b_v - sum_j softplus((v W^T + b_h)_j), per row; p(v) is proportional to exp(-F(v))."""
        v = self._input(v, self.n_visible)
        return -(v @ self.b_v) - _softplus(ops.linear(v, self.W, self.b_h)).sum(axis=1)

    # ------------------------------------------------------------------------------ learning
    def gradients(self, v0):
        """(dW, db_v, db_h) of contrastive divergence on the batch v0 (weight decay not included), and
        the reconstruction p_v(h0), h0 ~ p_h(v0) (one Gibbs step from the data, whatever the chain)."""
        v0 = self._input(v0, self.n_visible)
        n = v0.shape[0]
        ph0 = self.hidden_probs(v0)
        h0 = self._sample(ph0)
        recon = None
        if self.persistent:
            if self._chain is None or self._chain.shape[0] != n:
                self._chain = h0
            h = self._chain
        else:
            h = h0
        for step in range(self.k):
            vk = self.visible_probs(h)
            if recon is None and h is h0:
                recon = vk
            phk = self.hidden_probs(vk if step == self.k - 1 else self._sample(vk))
            h = self._sample(phk)
        if self.persistent:
            self._chain = h
        if recon is None:  # PCD: the chain did not start at the data
            recon = self.visible_probs(h0)
        # <h v^T>_data - <h v^T>_model as two GEMMs accumulated into one: ph0^T v0 - phk^T vk
        pos = ops.gemm(ph0, v0, trans_a=True, alpha=1.0 / n)
        dW = ops.gemm(phk, vk, pos, trans_a=True, alpha=-1.0 / n, beta=1.0)
        return dW, (v0 - vk).mean(axis=0), (ph0 - phk).mean(axis=0), recon

    def partial_fit(self, v0) -> float:
        """One CD-k update on the batch v0; returns its mean squared reconstruction error."""
        dW, dbv, dbh, recon = self.gradients(v0)
        dW -= self.dtype.type(self.weight_decay) * self.W
        for p, vel, d in zip((self.W, self.b_v, self.b_h), self._vel, (dW, dbv, dbh)):
            vel *= self.dtype.type(self.momentum)
            vel += self.dtype.type(self.lr) * d.astype(self.dtype, copy=False)
            p += vel
        return float(np.mean((np.asarray(v0, dtype=self.dtype) - recon) ** 2))

    def pseudo_likelihood(self, v) -> float:
        """Mean log pseudo-likelihood estimate: for each row one random unit i is flipped and
        n_visible * log sigmoid(F(v_flipped) - F(v)) is averaged (binarised rows, as sklearn's
        BernoulliRBM.score_samples)."""
        v = (self._input(v, self.n_visible) > 0.5).astype(self.dtype)
        i = nnx_random.get_rng().integers(0, self.n_visible, size=v.shape[0])
        flipped = v.copy()
        rows = np.arange(v.shape[0])
        flipped[rows, i] = 1 - flipped[rows, i]
        diff = (self.free_energy(flipped) - self.free_energy(v)).astype(np.float64)
        return float(np.mean(-self.n_visible * _softplus(-diff)))

    def fit(self, X, epochs: int = 1, batch_size: int = 64, shuffle: bool = True, verbose: bool = False,
            eval_rows: int = 1000):
        """Trains on the rows of X (values in [0, 1]) for `epochs`; returns a list of per-epoch dicts:
        recon_error (mean squared reconstruction error over the epoch's batches) and pseudo_likelihood
        (on the first eval_rows rows)."""
        X = self._input(X, self.n_visible, "X")
        if int(batch_size) < 1 or int(epochs) < 0:
            raise ValueError(f"batch_size, epochs: expected batch_size >= 1 and epochs >= 0, got {batch_size}, "
                             f"{epochs}")
        history = []
        for epoch in range(int(epochs)):
            order = nnx_random.get_rng().permutation(len(X)) if shuffle else np.arange(len(X))
            errs = []
            for s in range(0, len(X), int(batch_size)):
                errs.append(self.partial_fit(X[order[s:s + int(batch_size)]]))
            rec = {"epoch": epoch + 1, "recon_error": float(np.mean(errs)),
                   "pseudo_likelihood": self.pseudo_likelihood(X[:eval_rows])}
            history.append(rec)
            if verbose:
                print(f"RBM {self.n_visible}-{self.n_hidden} epoch {epoch + 1}: reconstruction error "
                      f"{rec['recon_error']:.4f}, pseudo-likelihood {rec['pseudo_likelihood']:.2f}", flush=True)
        return history

    def to_linear(self):
        """An nn.Linear(n_visible, n_hidden) holding W and b_h: this layer of a DBN-initialised MLP."""
        from .nn import Linear

        lin = Linear(self.n_visible, self.n_hidden, dtype=self.dtype)
        lin.weight.data[...] = self.W
        lin.bias.data[...] = self.b_h
        return lin

    def state_dict(self) -> dict:
        return {"W": self.W.copy(), "b_v": self.b_v.copy(), "b_h": self.b_h.copy()}

    def load_state_dict(self, sd) -> None:
        for k in ("W", "b_v", "b_h"):
            v = np.asarray(sd[k])
            if v.shape != getattr(self, k).shape:
                raise ValueError(f"{k}: expected shape {getattr(self, k).shape}, got {v.shape}")
            getattr(self, k)[...] = v

    def __repr__(self) -> str:
        return (f"RBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, k={self.k}, "
                f"persistent={self.persistent})")
