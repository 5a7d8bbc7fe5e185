"""PyTorch's time for the recipe of `python -m nnx train --model lstm --lr 0.05 --epochs 10`: Fashion-MNIST
read row by row (28 steps of 28 pixels) by LSTM(28 -> 128), Linear(128 -> 10) on the last step; pixels
standardised with the training set's mean and standard deviation; batch 64, shuffled; SGD lr 0.05,
momentum 0.9, cosine annealing over the epochs; cross-entropy. Prints test accuracy and seconds per epoch.

    python bench/row_lstm_fashion_torch.py [--epochs 10] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    import nnx

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    X, y = nnx.data.fashion_mnist("train")
    Xt, yt = nnx.data.fashion_mnist("test")
    mean, std = float(X.mean()) / 255, float(X.std()) / 255
    prep = lambda a: torch.from_numpy(((a.astype(np.float32) / 255 - mean) / std).astype(np.float32))  # noqa: E731
    Xf, Xtf = prep(X), prep(Xt)
    yf, ytf = torch.from_numpy(y.astype(np.int64)), torch.from_numpy(yt.astype(np.int64))

    class Row(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(28, 128, batch_first=True)
            self.fc = torch.nn.Linear(128, 10)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    model = Row()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    total = 0.0
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        for idx in np.array_split(rng.permutation(len(Xf)), range(64, len(Xf), 64)):
            opt.zero_grad()
            loss = loss_fn(model(Xf[idx]), yf[idx])
            loss.backward()
            opt.step()
        sched.step()
        secs = time.perf_counter() - t0
        total += secs
        model.eval()
        with torch.no_grad():
            acc = float((model(Xtf).argmax(1) == ytf).float().mean())
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f}, {secs:.1f} s (total {total:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
