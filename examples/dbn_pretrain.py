#!/usr/bin/env python
"""A deep belief network on Fashion-MNIST: greedy layer-wise pretraining of a 784-500-500 stack of
RBMs (CD-k, nnx.models.RBM), then the stack fine-tuned with backprop as a sigmoid MLP 784-500-500-10,
compared with the same MLP from a random initialisation. Writes the two learning curves in one PNG
and the first RBM's learned features as an image grid.

    python examples/dbn_pretrain.py [--rbm-epochs 5] [--epochs 10] [--full] [--out dbn.png]
"""
import argparse

import numpy as np

import nnx
from nnx import nn, optim
from nnx.models import RBM

from _common import fashion_data


def mlp(sizes, rbms=()):
    """Sigmoid MLP sizes[0]-...-sizes[-1]-10; its first layers are the RBMs' weights when given."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [rbms[i].to_linear() if i < len(rbms) else nn.Linear(a, b), nn.Sigmoid()]
    layers.append(nn.Linear(sizes[-1], 10))
    return nn.Sequential(*layers)


def pretrain(X, sizes, args):
    """Trains one RBM per layer on the previous layer's hidden probabilities; returns the RBMs."""
    rbms, inp = [], X
    for a, b in zip(sizes[:-1], sizes[1:]):
        rbm = RBM(a, b, k=args.k, persistent=args.persistent, lr=args.rbm_lr, momentum=0.5)
        hist = rbm.fit(inp, epochs=args.rbm_epochs, batch_size=args.batch_size, verbose=not args.quiet)
        rbm.history = hist
        rbms.append(rbm)
        inp = rbm.transform(inp)
    return rbms


def features_png(W, path, n=100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = 10
    rows = -(-min(n, len(W)) // cols)
    tile = np.full((rows * 29 + 1, cols * 29 + 1), 0.5)
    for i, w in enumerate(W[:n]):
        r, c = divmod(i, cols)
        m = np.abs(w).max() or 1.0
        tile[1 + r * 29:29 + r * 29, 1 + c * 29:29 + c * 29] = 0.5 + 0.5 * w.reshape(28, 28) / m
    fig = Figure(figsize=(6.4, 6.4 * rows / cols + 0.4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(tile, cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    ax.set_title(f"features of the first RBM (784-{W.shape[0]}), first {min(n, len(W))} hidden units")
    fig.tight_layout()
    fig.savefig(path)


def curves_png(histories, path, title):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for (name, h), color in zip(histories.items(), ("C3", "C0")):
        ax_loss.plot(h.epoch, h.loss, "o-", color=color, label=f"{name} (train)")
        ax_loss.plot(h.epoch, h.val_loss, "s--", color=color, label=f"{name} (test)")
        ax_acc.plot(h.epoch, h.val_accuracy, "s-", color=color, label=f"{name}: {h.val_accuracy[-1]:.4f}")
    ax_loss.set_ylabel("cross-entropy")
    ax_acc.set_ylabel("test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("fine-tuning epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", default="500,500", help="hidden layer sizes of the stack")
    p.add_argument("--rbm-epochs", type=int, default=5)
    p.add_argument("--rbm-lr", type=float, default=0.05)
    p.add_argument("--k", type=int, default=1, help="Gibbs steps of CD-k")
    p.add_argument("--persistent", action="store_true", help="persistent CD")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--full", action="store_true")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="dbn.png", help="learning curves of both MLPs")
    p.add_argument("--features", default="dbn_features.png", help="the first RBM's features")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    (X, y), (Xt, yt) = fashion_data(args.full, args.limit)
    X = X.reshape(len(X), -1).astype(np.float32) / 255
    Xt = Xt.reshape(len(Xt), -1).astype(np.float32) / 255
    sizes = [784] + [int(s) for s in args.hidden.split(",")]

    nnx.manual_seed(args.seed)
    rbms = pretrain(X, sizes, args)
    histories, models = {}, {}
    for name in ("DBN-pretrained", "random init"):
        nnx.manual_seed(args.seed + 1)  # same shuffling for both runs
        model = mlp(sizes, rbms if name == "DBN-pretrained" else ())
        opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        histories[name] = nnx.fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=args.epochs,
                                  batch_size=args.batch_size, val=(Xt, yt), progress=not args.quiet)
        models[name] = model
    result = {name: {"accuracy": h.val_accuracy[-1], "val_accuracy": list(h.val_accuracy), "loss": list(h.loss)}
              for name, h in histories.items()}
    result["rbm"] = [r.history for r in rbms]
    for name, r in result.items():
        if name != "rbm":
            print(f"{name:15s}: final test accuracy {r['accuracy']:.4f} (per epoch "
                  + ", ".join(f"{a:.3f}" for a in r["val_accuracy"]) + ")")
    try:
        curves_png(histories, args.out, f"MLP {'-'.join(map(str, sizes))}-10 (sigmoid) fine-tuned from a DBN "
                                        f"vs from random weights, {len(X)} training images")
        features_png(rbms[0].W, args.features)
        print(f"wrote {args.out} and {args.features}")
        result["pictures"] = (args.out, args.features)
    except ImportError:
        print('no pictures: matplotlib missing (pip install "nnx[plot]")')
        result["pictures"] = None
    return result


if __name__ == "__main__":
    main()
