#!/usr/bin/env python
"""What a convolutional network's first layer learns: trains LeNet-5 (6 filters of 5x5) or the
TensorFlow-tutorial convnet (32 filters) on Fashion-MNIST and draws the first-layer filters before and
after training.

    python examples/filters.py [--model lenet5|convnet] [--epochs 1] [--out filters.png]
"""
import argparse
import functools

import numpy as np

import nnx
from nnx import nn, optim

from _common import fashion_data


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["lenet5", "convnet"], default="lenet5")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--full", action="store_true")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", default="filters.png")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    nnx.manual_seed(0)
    (X, y), (Xt, yt) = fashion_data(args.full, args.limit)
    model = nnx.models.build(args.model)
    conv1 = model[0]
    before = conv1.weight.numpy().copy()
    opt = optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    transform = functools.partial(nnx.data.to_float_images, mean=X.mean() / 255, std=X.std() / 255)
    nnx.fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=args.epochs, batch_size=64, transform=transform,
            progress=not args.quiet)
    _, acc = nnx.evaluate(model, Xt, yt, transform=transform)
    after = conv1.weight.numpy()
    change = float(np.linalg.norm(after - before) / np.linalg.norm(before))
    print(f"{args.model}: test accuracy {acc:.4f}; first-layer filters changed by {change:.2f} (relative norm)")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print('no picture: matplotlib missing (pip install "nnx[plot]")')
        return {"accuracy": acc, "change": change, "picture": None}
    k = after.shape[0]
    cols = min(k, 16)
    rows = 2 * int(np.ceil(k / cols))
    fig = Figure(figsize=(max(cols, 4) * 0.9, rows * 1.1 + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(rows, cols))
    for ax in axes.ravel():
        ax.axis("off")
    half = rows // 2
    for block, (name, w) in enumerate((("initial", before), ("trained", after))):
        for i in range(k):
            ax = axes[block * half + i // cols, i % cols]
            f = w[i, 0]
            lim = np.abs(f).max() or 1.0
            ax.imshow(f, cmap="RdBu_r", vmin=-lim, vmax=lim)
            if i == 0:
                ax.set_title(name, fontsize=9, loc="left")
    fig.suptitle(f"{args.model} first-layer 5x5 filters (red positive, blue negative)", fontsize=10)
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return {"accuracy": acc, "change": change, "picture": args.out}


if __name__ == "__main__":
    main()
