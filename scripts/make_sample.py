#!/usr/bin/env python
"""Makes the Fashion-MNIST sample shipped in python/nnx/data/sample/ from the full data set.

    python scripts/make_sample.py [--root DIR] [--train-per-class 600] [--test-per-class 100]

Takes the same number of images of every class (chosen with a fixed seed, kept in their original
order) from the official train and test files, and writes them as gzip IDX files with the official
names, so nnx.data.fashion_mnist(root=<sample dir>) reads them too. The output is byte-for-byte
reproducible.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from nnx.data.datasets import _FILES, SAMPLE_DIR, fashion_mnist  # noqa: E402
from nnx.data.idx import save_idx  # noqa: E402


def balanced_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise SystemExit(f"class {c} has only {len(members)} images, {per_class} requested")
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="directory of the full Fashion-MNIST files")
    p.add_argument("--out", default=str(SAMPLE_DIR))
    p.add_argument("--train-per-class", type=int, default=600)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        images, labels = fashion_mnist(split, root=args.root)
        idx = balanced_indices(labels, per_class, args.seed)
        image_stem, label_stem = _FILES[split]
        save_idx(os.path.join(args.out, image_stem + ".gz"), images[idx])
        save_idx(os.path.join(args.out, label_stem + ".gz"), labels[idx].astype(np.uint8))
        print(f"{split}: {len(idx)} images ({per_class} per class) -> {args.out}")


if __name__ == "__main__":
    main()
