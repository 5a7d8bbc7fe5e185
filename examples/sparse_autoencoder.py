#!/usr/bin/env python
"""The sparse autoencoder of the autoencoder lecture: one hidden layer of sigmoid units (784-196-784)
trained to rebuild Fashion-MNIST images, once with weight regularisation only and once with a hidden
layer sparsity constraint as well (KL(rho || mean activation) per unit, rho = 0.05). Renders the
layer-1 weights of both as filter grids, side by side in one PNG, as the slides do.

    python examples/sparse_autoencoder.py [--epochs 10] [--rho 0.05] [--beta 3] [--out sparse_ae.png]
"""
import argparse

import numpy as np

import nnx
from nnx import nn, optim
from nnx import functional as F

from _common import fashion_data


def train(X, sparse, args):
    nnx.manual_seed(0)
    enc, dec = nn.Linear(784, args.hidden), nn.Linear(args.hidden, 784)
    opt = optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=args.lr)
    # Reconstruction error summed over the 784 pixels, averaged over the batch (as the lecture's
    # J = (1/m) sum_i loss(x_i) + weight decay + beta * KL): a per-pixel mean would leave the sparsity
    # term 784 times too strong and every unit would simply switch off.
    bce = nn.BCEWithLogitsLoss(reduction="sum")
    last = {}
    for epoch in range(args.epochs):
        sums = np.zeros(3)
        batches = 0
        for xb in nnx.data.DataLoader(X, batch_size=args.batch_size, shuffle=True):
            opt.zero_grad()
            h = F.sigmoid(enc(xb))
            recon = bce(dec(h), xb) * (1.0 / len(xb))
            decay = F.elastic_net_penalty([enc.weight, dec.weight], l1=0.0, l2=args.weight_decay)
            loss = recon + decay
            kl = F.sparsity_penalty(h, args.rho)
            if sparse:
                loss = loss + kl * args.beta
            loss.backward()
            opt.step()
            sums += (recon.item(), kl.item(), float(h.data.mean()))
            batches += 1
        last = dict(zip(("reconstruction", "kl", "mean_activation"), sums / max(batches, 1)))
        if not args.quiet:
            print(f"{'sparse' if sparse else 'weight decay only'} epoch {epoch + 1}: reconstruction "
                  f"{last['reconstruction']:.4f}, KL {last['kl']:.3f}, mean hidden activation "
                  f"{last['mean_activation']:.3f}", flush=True)
    return enc.weight.data.copy(), last


def grid(W, cols):
    """Rows of W as 28x28 tiles, each scaled to its own [-max|w|, max|w|], in a grid with 1-pixel gaps."""
    n = len(W)
    rows = -(-n // cols)
    out = np.full((rows * 29 + 1, cols * 29 + 1), 0.5)
    for i, w in enumerate(W):
        r, c = divmod(i, cols)
        m = np.abs(w).max() or 1.0
        out[1 + r * 29:1 + r * 29 + 28, 1 + c * 29:1 + c * 29 + 28] = 0.5 + 0.5 * w.reshape(28, 28) / m
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=196)
    p.add_argument("--rho", type=float, default=0.05, help="target mean activation of each hidden unit")
    p.add_argument("--beta", type=float, default=3.0, help="weight of the sparsity penalty")
    p.add_argument("--weight-decay", type=float, default=1.5e-3,
                   help="L2 strength (lambda / 2) on both weight matrices")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--full", action="store_true")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", default="sparse_autoencoder.png")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    (X, _), _ = fashion_data(args.full, args.limit)
    X = X.reshape(len(X), -1).astype(np.float32) / 255
    W_plain, plain = train(X, False, args)
    W_sparse, sparse = train(X, True, args)
    for name, r in (("weight decay only", plain), ("+ sparsity", sparse)):
        print(f"{name:18s}: reconstruction loss {r['reconstruction']:.4f}, mean hidden activation "
              f"{r['mean_activation']:.3f}")
    result = {"plain": plain, "sparse": sparse, "picture": None}
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print('no picture: matplotlib missing (pip install "nnx[plot]")')
        return result
    cols = int(np.ceil(np.sqrt(args.hidden)))
    fig = Figure(figsize=(12, 6.4))
    FigureCanvasAgg(fig)
    for ax, W, title in zip(fig.subplots(1, 2), (W_plain, W_sparse),
                            ("with just weight regularization",
                             f"plus hidden layer sparsity constraint (rho {args.rho:g}, beta {args.beta:g})")):
        ax.imshow(grid(W, cols), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle(f"layer-1 weights of a 784-{args.hidden}-784 sigmoid autoencoder on Fashion-MNIST")
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    result["picture"] = args.out
    return result


if __name__ == "__main__":
    main()
