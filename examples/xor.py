#!/usr/bin/env python
"""XOR with the smallest network that can learn it: 2 inputs, 2 sigmoid hidden units, 1 output.

No single line separates XOR's classes, so a perceptron fails; one hidden layer of two units bends the
input space enough. Full-batch gradient descent with momentum on the binary cross-entropy.

    python examples/xor.py [--steps 2000] [--lr 1.0] [--seed 1]
"""
import argparse

import numpy as np

import nnx
from nnx import nn, optim

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    nnx.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1))
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.BCEWithLogitsLoss()
    for step in range(args.steps):
        opt.zero_grad()
        loss = loss_fn(model(X), Y)
        loss.backward()
        opt.step()
        if step % max(args.steps // 5, 1) == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.5f}")
    with nnx.no_grad():
        prob = 1 / (1 + np.exp(-model(X).numpy()))
    for x, pr in zip(X, prob):
        print(f"{int(x[0])} xor {int(x[1])} -> {pr[0]:.3f}")
    solved = bool(np.all((prob > 0.5) == (Y > 0.5)))
    print("solved" if solved else "not solved (stuck in a local minimum: try another --seed or more --steps)")
    return {"loss": float(loss.item()), "probabilities": prob.ravel(), "solved": solved}


if __name__ == "__main__":
    main()
