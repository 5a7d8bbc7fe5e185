#!/usr/bin/env python
"""LeNet-5 on Fashion-MNIST, written out as the plain training loop of DESIGN.md (no fit()), then
saved with nnx.save and reloaded with load_state_dict.

    python examples/lenet_fashion.py [--epochs 2] [--full] [--out lenet.npz]
"""
import argparse
import functools

import numpy as np

import nnx
from nnx import nn, optim

from _common import fashion_data


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--full", action="store_true", help="full Fashion-MNIST instead of the shipped sample")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--out", default="lenet.npz")
    args = p.parse_args(argv)

    nnx.manual_seed(0)
    (X, y), (X_test, y_test) = fashion_data(args.full, args.limit)
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    # Pixels to [0, 1], then standardised with the training set's mean and standard deviation: LeNet
    # leaves its initial plateau much sooner than on raw [0, 1] inputs.
    transform = functools.partial(nnx.data.to_float_images, mean=X.mean() / 255, std=X.std() / 255)
    for epoch in range(args.epochs):
        model.train()
        total = 0.0
        loader = nnx.data.DataLoader(X, y, batch_size=64, shuffle=True, transform=transform)
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
        print(f"epoch {epoch + 1}: training loss {total / len(X):.4f}")
    model.eval()
    with nnx.no_grad():
        pred = model(transform(X_test)).numpy().argmax(1)
    acc = float(np.mean(pred == y_test))
    print(f"LeNet-5 test accuracy {acc:.4f}")
    nnx.save(model.state_dict(), args.out)
    model.load_state_dict(nnx.load(args.out))
    with nnx.no_grad():
        again = model(transform(X_test)).numpy().argmax(1)
    assert np.array_equal(pred, again), "reloaded model predicts differently"
    print(f"saved to {args.out} and reloaded")
    return {"accuracy": acc}


if __name__ == "__main__":
    main()
