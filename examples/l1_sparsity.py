#!/usr/bin/env python
"""How L1 regularisation makes weights sparse: a softmax classifier (784 -> 10) on Fashion-MNIST
trained three times, with no penalty, with L2 (weight decay) and with L1 added to the loss
(nnx.functional.l1_penalty; elastic net with --l2 as well). Prints the share of near-zero weights
and writes their histograms side by side as one PNG.

    python examples/l1_sparsity.py [--epochs 5] [--l1 1e-3] [--out l1_sparsity.png]
"""
import argparse

import numpy as np

import nnx
from nnx import nn, optim
from nnx import functional as F

from _common import fashion_data


def train(X, y, kind, args):
    nnx.manual_seed(0)
    model = nn.Linear(784, 10)
    opt = optim.SGD(model.parameters(), lr=args.lr, weight_decay=args.weight_decay if kind == "L2" else 0.0)
    ce = nn.CrossEntropyLoss()
    for _ in range(args.epochs):
        for xb, yb in nnx.data.DataLoader(X, y, batch_size=64, shuffle=True):
            opt.zero_grad()
            loss = ce(model(xb), yb)
            if kind == "L1":  # the penalty is on the weights, not the biases
                loss = loss + F.elastic_net_penalty([model.weight], l1=args.l1, l2=args.l2)
            loss.backward()
            opt.step()
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--l1", type=float, default=3e-3, help="L1 strength (added to the mean loss)")
    p.add_argument("--l2", type=float, default=0.0, help="with --l1: elastic net's L2 strength")
    p.add_argument("--weight-decay", type=float, default=1e-2, help="the L2 run's weight_decay")
    p.add_argument("--threshold", type=float, default=1e-3, help="|w| below this counts as zero")
    p.add_argument("--full", action="store_true")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", default="l1_sparsity.png")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    (X, y), (Xt, yt) = fashion_data(args.full, args.limit)
    X = X.reshape(len(X), -1).astype(np.float32) / 255
    Xt = Xt.reshape(len(Xt), -1).astype(np.float32) / 255
    results = {}
    weights = {}
    for kind in ("none", "L2", "L1"):
        model = train(X, y, kind, args)
        w = model.weight.data.ravel()
        acc = nnx.evaluate(model, Xt, yt)[1]
        results[kind] = {"accuracy": acc, "zero_fraction": float(np.mean(np.abs(w) < args.threshold))}
        weights[kind] = w
        print(f"{kind:4s}: test accuracy {acc:.4f}, {100 * results[kind]['zero_fraction']:.1f}% of weights "
              f"below {args.threshold:g} in magnitude")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print('no picture: matplotlib missing (pip install "nnx[plot]")')
        return {**results, "picture": None}
    fig = Figure(figsize=(12, 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, sharey=True)
    lim = max(np.abs(w).max() for w in weights.values())
    for ax, (kind, w) in zip(axes, weights.items()):
        ax.hist(w, bins=np.linspace(-lim, lim, 81), color="C0" if kind != "L1" else "C3")
        ax.set_yscale("log")
        title = {"none": "no penalty", "L2": f"L2 (weight_decay {args.weight_decay:g})",
                 "L1": f"L1 ({args.l1:g})" + (f" + L2 ({args.l2:g})" if args.l2 else "")}[kind]
        ax.set_title(f"{title}\n{100 * results[kind]['zero_fraction']:.0f}% |w| < {args.threshold:g}, "
                     f"acc {results[kind]['accuracy']:.3f}", fontsize=9)
        ax.set_xlabel("weight")
    axes[0].set_ylabel("count (log scale)")
    fig.suptitle("softmax classifier weights on Fashion-MNIST")
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return {**results, "picture": args.out}


if __name__ == "__main__":
    main()
