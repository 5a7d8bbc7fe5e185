#!/usr/bin/env python
"""Rosenblatt's perceptron learning rule on a linearly separable set of points.

For each misclassified point (x_i, y_i), y_i in {-1, +1}: w <- w + y_i x_i (with a constant 1 appended
to x for the bias). If a separating hyperplane with margin gamma exists and every |x| <= R, the rule
stops after at most (R / gamma)^2 mistakes (Novikoff, 1962); the script checks that bound.

    python examples/perceptron.py [--n 200] [--dim 2] [--margin 0.1] [--seed 0]
"""
import argparse

import numpy as np

import nnx


def separable_set(n, dim, margin, rng):
    """Points in the unit ball labelled by a random hyperplane through the origin, keeping only those at
    least `margin` away from it."""
    w_true = rng.standard_normal(dim)
    w_true /= np.linalg.norm(w_true)
    points = []
    while len(points) < n:
        x = rng.uniform(-1, 1, dim)
        if np.linalg.norm(x) <= 1 and abs(x @ w_true) >= margin:
            points.append(x)
    X = np.array(points)
    return X, np.where(X @ w_true > 0, 1, -1), w_true


def perceptron(X, y, max_epochs=1000):
    """Returns (weights incl. bias, mistakes made, epochs run)."""
    Xb = np.hstack([X, np.ones((len(X), 1))])
    w = np.zeros(Xb.shape[1])
    mistakes = 0
    for epoch in range(1, max_epochs + 1):
        clean = True
        for xi, yi in zip(Xb, y):
            if yi * (xi @ w) <= 0:
                w += yi * xi
                mistakes += 1
                clean = False
        if clean:
            return w, mistakes, epoch
    return w, mistakes, max_epochs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--margin", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    nnx.manual_seed(args.seed)
    X, y, _ = separable_set(args.n, args.dim, args.margin, nnx.random.get_rng())
    w, mistakes, epochs = perceptron(X, y)
    # Score every point with nnx's linear op (weights (1, dim), bias (1,)).
    scores = nnx.ops.linear(X, w[None, :-1], w[-1:])[:, 0]
    accuracy = float(np.mean(np.sign(scores) == y))
    # With the bias coordinate |x| <= R = sqrt(2); the true hyperplane (unit normal, zero bias) keeps margin gamma.
    bound = 2 / args.margin ** 2
    print(f"{args.n} points in {args.dim}-d, margin {args.margin}: converged after {epochs} epochs, "
          f"{mistakes} mistakes (Novikoff bound {bound:.0f}), training accuracy {accuracy:.3f}")
    return {"accuracy": accuracy, "mistakes": mistakes, "bound": bound, "epochs": epochs}


if __name__ == "__main__":
    main()
