#!/usr/bin/env python
"""A multilayer perceptron (784-256-128-10, ReLU) on Fashion-MNIST with nnx.fit, learning curves
included.

    python examples/mlp_fashion.py [--epochs 5] [--full] [--plot mlp_curves.png]
"""
import argparse
import functools

import nnx
from nnx import nn, optim

from _common import fashion_data


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--full", action="store_true", help="full Fashion-MNIST instead of the shipped sample")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--plot", default=None, help="write learning curves to this PNG")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    nnx.manual_seed(0)
    (X, y), (Xt, yt) = fashion_data(args.full, args.limit)
    # Scale to [0, 1], then standardise with the training set's pixel mean and standard deviation.
    transform = functools.partial(nnx.data.to_float_images, mean=X.mean() / 255, std=X.std() / 255)
    model = nnx.models.mlp(hidden=(256, 128))
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    history = nnx.fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=args.epochs, batch_size=args.batch_size,
                      val=(Xt, yt), transform=transform, progress=not args.quiet)
    _, acc = nnx.evaluate(model, Xt, yt, transform=transform)
    print(f"MLP test accuracy {acc:.4f} ({history.images_per_s[-1]:.0f} img/s in the last epoch)")
    if args.plot:
        history.plot(args.plot, title="MLP on Fashion-MNIST")
        print(f"wrote {args.plot}")
    return {"accuracy": acc, "history": history}


if __name__ == "__main__":
    main()
