#!/usr/bin/env python
"""Linear classifiers on Fashion-MNIST: scores s = W x + b, trained once with the softmax
(cross-entropy) loss and once with the multiclass SVM (hinge) loss
sum over wrong classes j of max(0, s_j - s_y + 1), as in CS231n. Pixels are standardised per feature
(or, with --pca K, PCA-whitened to K components) with statistics of the training set only.

    python examples/linear_classifier.py [--epochs 5] [--pca 100] [--full] [--limit N]
"""
import argparse

import numpy as np

import nnx
from nnx import nn, optim

from _common import fashion_data


def train_linear(loss_name, X, y, Xt, yt, epochs, lr, weight_decay, progress):
    nnx.manual_seed(0)
    model = nn.Linear(X.shape[1], 10)
    loss_fn = nn.CrossEntropyLoss() if loss_name == "softmax" else nn.MultiClassHingeLoss(margin=1.0)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    nnx.fit(model, loss_fn, opt, (X, y), epochs=epochs, batch_size=128, progress=progress)
    _, acc = nnx.evaluate(model, Xt, yt, loss_fn=loss_fn)
    return acc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--pca", type=int, default=0, help="PCA-whiten to this many components instead")
    p.add_argument("--full", action="store_true", help="full Fashion-MNIST instead of the shipped sample")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    (X, y), (Xt, yt) = fashion_data(args.full, args.limit)
    X, Xt = X.reshape(len(X), -1).astype(np.float32) / 255, Xt.reshape(len(Xt), -1).astype(np.float32) / 255
    if args.pca:
        X, Xt = nnx.data.pca_whiten(X, Xt, n_components=args.pca, epsilon=1e-2)
    else:
        X, Xt = nnx.data.standardize(X, Xt)
    results = {}
    for loss_name in ("softmax", "svm"):
        results[loss_name] = train_linear(loss_name, X, y, Xt, yt, args.epochs, args.lr, args.weight_decay,
                                          not args.quiet)
        print(f"{loss_name:>7} linear classifier: test accuracy {results[loss_name]:.4f}")
    return results


if __name__ == "__main__":
    main()
