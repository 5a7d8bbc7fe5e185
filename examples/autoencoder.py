#!/usr/bin/env python
"""An autoencoder 784-128-32-128-784 on Fashion-MNIST: it learns to squeeze each image through 32
numbers and rebuild it. Writes a picture of test inputs (top row) and their reconstructions (bottom).

    python examples/autoencoder.py [--epochs 5] [--out autoencoder.png]
"""
import argparse

import numpy as np

import nnx
from nnx import nn, optim

from _common import fashion_data


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--code", type=int, default=32, help="size of the bottleneck")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--full", action="store_true")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", default="autoencoder.png")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    nnx.manual_seed(0)
    (X, _), (Xt, _) = fashion_data(args.full, args.limit)
    flat = X.reshape(len(X), -1).astype(np.float32) / 255
    flat_t = Xt.reshape(len(Xt), -1).astype(np.float32) / 255
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, args.code), nn.ReLU(),
                          nn.Linear(args.code, 128), nn.ReLU(), nn.Linear(128, 784))
    # Pixels in [0, 1]: binary cross-entropy on logits, sigmoid for the picture.
    loss_fn = nn.BCEWithLogitsLoss()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    history = nnx.fit(model, loss_fn, opt, (flat, flat), epochs=args.epochs, batch_size=64,
                      val=(flat_t, flat_t), progress=not args.quiet)
    with nnx.no_grad():
        model.eval()
        recon = 1 / (1 + np.exp(-model(flat_t[:10]).numpy()))
    mse = float(np.mean((recon - flat_t[:10]) ** 2))
    print(f"validation loss {history.val_loss[-1]:.4f}, reconstruction MSE of the pictured images {mse:.4f}")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print('no picture: matplotlib missing (pip install "nnx[plot]")')
        return {"val_loss": history.val_loss[-1], "mse": mse, "picture": None}
    fig = Figure(figsize=(10, 2.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 10)
    for i in range(10):
        for row, img in ((0, flat_t[i]), (1, recon[i])):
            axes[row, i].imshow(img.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axes[row, i].axis("off")
    fig.suptitle("test images (top) and their reconstructions through a code of %d numbers" % args.code)
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return {"val_loss": history.val_loss[-1], "mse": mse, "picture": args.out}


if __name__ == "__main__":
    main()
