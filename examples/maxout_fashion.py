#!/usr/bin/env python
"""Maxout units on Fashion-MNIST: an MLP 784-(240x3)-(240x3)-10 whose hidden units each take the
maximum of 3 linear pieces (Goodfellow et al., 2013), with dropout, beside the same MLP with ReLU units
(240 per layer). Prints both test accuracies.

    python examples/maxout_fashion.py [--epochs 5] [--pieces 3] [--full]
"""
import argparse
import functools

import nnx
from nnx import nn, optim

from _common import fashion_data


def maxout_mlp(width, pieces, dropout):
    return nn.Sequential(nn.Flatten(), nn.Maxout(784, width, pieces), nn.Dropout(dropout),
                         nn.Maxout(width, width, pieces), nn.Dropout(dropout), nn.Linear(width, 10))


def relu_mlp(width, dropout):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, 10))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--width", type=int, default=240)
    p.add_argument("--pieces", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.2)
    # Maxout units are unbounded and piecewise linear: lr 0.05 with momentum 0.9 diverged (NaN in epoch 2).
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--full", action="store_true")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    (X, y), (Xt, yt) = fashion_data(args.full, args.limit)
    transform = functools.partial(nnx.data.to_float_images, mean=X.mean() / 255, std=X.std() / 255)
    results = {}
    for name in ("maxout", "relu"):
        nnx.manual_seed(0)
        model = (maxout_mlp(args.width, args.pieces, args.dropout) if name == "maxout"
                 else relu_mlp(args.width, args.dropout))
        opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
        history = nnx.fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=args.epochs, batch_size=64,
                          val=(Xt, yt), transform=transform, scheduler=sched, progress=not args.quiet)
        results[name] = history.val_accuracy[-1]
        n = sum(q.numel() for q in model.parameters())
        print(f"{name:6s} MLP ({n} parameters): test accuracy {results[name]:.4f}")
    return results


if __name__ == "__main__":
    main()
