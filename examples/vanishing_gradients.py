#!/usr/bin/env python
"""Vanishing gradients through time, made visible: how much gradient reaches each timestep of a tanh RNN
and of an LSTM, on the same memory task.

The task: a sequence of T random numbers; the target, read from the last step's hidden state, is the
FIRST number. To learn it, the gradient of the loss must travel back through all T steps. For an Elman
RNN the gradient reaching step t is a product of T - t Jacobians diag(1 - h^2) W_hh, which shrinks
geometrically (the lecture's "weak memory"); the LSTM's cell state passes it on multiplied only by the
forget gates, which the network can hold near 1.

The norm of dL/dx_t (averaged over a batch) is plotted against t on a log scale, for both models as
initialised (PyTorch's U(+-1/sqrt(H)) init; the LSTM's forget-gate bias at 1), or after --steps Adam steps
on the task. (Trained long enough at T = 30, a tanh RNN can learn this task too: training makes W_hh large
enough to carry the one number; the picture at initialisation shows where each architecture starts.)

    python examples/vanishing_gradients.py [--T 40] [--steps 0] [--png vanishing_gradients.png]
"""
import argparse

import numpy as np

import nnx
from nnx import nn, optim


class Memory(nn.Module):
    def __init__(self, kind: str, hidden: int):
        super().__init__()
        self.rnn = nn.LSTM(1, hidden) if kind == "lstm" else nn.RNN(1, hidden)
        if kind == "lstm":
            # Forget-gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): f starts near 0.73 instead of
            # 0.5, so the cell carries its content (and its gradient) from the start of training.
            self.rnn.bias_ih_l0.data[hidden:2 * hidden] = 1.0
            self.rnn.bias_hh_l0.data[hidden:2 * hidden] = 0.0
        self.fc = nn.Linear(hidden, 1)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[-1])


def batch(rng, T: int, n: int):
    x = rng.uniform(-1, 1, (T, n, 1)).astype(np.float32)
    return x, x[0].copy()


def gradient_per_step(model, x, y) -> np.ndarray:
    """||dL/dx_t|| for each t, the mean over the batch."""
    xt = nnx.Tensor(x, requires_grad=True)
    loss = nn.MSELoss()(model(xt), y)
    loss.backward()
    return np.sqrt((xt.grad.astype(np.float64) ** 2).sum(axis=2)).mean(axis=1)


def train(kind: str, T: int, hidden: int, steps: int, seed: int):
    nnx.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Memory(kind, hidden)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.MSELoss()
    loss = float("nan")
    for _ in range(steps):
        x, y = batch(rng, T, 64)
        opt.zero_grad()
        out = loss_fn(model(x), y)
        out.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss = float(out.item())
    x, y = batch(np.random.default_rng(seed + 1), T, 256)
    model.zero_grad()
    return gradient_per_step(model, x, y), loss


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=int, default=40, help="sequence length")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--steps", type=int, default=0, help="Adam steps on the task before measuring (0: at init)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", default="vanishing_gradients.png")
    args = p.parse_args(argv)

    result = {}
    for kind in ("rnn", "lstm"):
        g, loss = train(kind, args.T, args.hidden, args.steps, args.seed)
        result[kind] = {"grad_norm": g, "loss": loss, "first_over_last": float(g[0] / g[-1])}
        trained = f"after {args.steps} steps (training loss {loss:.4f}; predicting 0 scores 0.333)" if args.steps \
            else "at initialisation"
        print(f"{kind:>4} {trained}: the gradient reaching step 0 is {g[0] / g[-1]:.2e} of the gradient at "
              f"step {args.T - 1}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('no picture: matplotlib is not installed (pip install "nnx[plot]")')
        return result
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, label in (("rnn", "tanh RNN"), ("lstm", "LSTM")):
        ax.semilogy(np.arange(args.T), result[kind]["grad_norm"], marker=".", label=label)
    ax.set_xlabel("timestep t (the target is the input at t = 0; the loss is read at the last step)")
    ax.set_ylabel("mean ||dL / dx_t||")
    when = f"after {args.steps} training steps" if args.steps else "at initialisation"
    ax.set_title(f"Gradient reaching each timestep {when}, T = {args.T}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=100)
    plt.close(fig)
    print(f"wrote {args.png}")
    result["png"] = args.png
    return result


if __name__ == "__main__":
    main()
