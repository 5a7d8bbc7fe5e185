"""MNIST and Fashion-MNIST from their IDX files, and a small Fashion-MNIST sample shipped with nnx.

Where the full data sets are looked for, in order: the `root` argument (and root/<name>), then
$NNX_DATA/<name>, then the Debian/Ubuntu package location /usr/share/datasets/<name>.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .idx import load_idx

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SYSTEM_DIR = Path("/usr/share/datasets")
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"

_HOW_TO_GET = {
    "fashion-mnist": (
        "On Debian/Ubuntu: `sudo apt-get install dataset-fashion-mnist` (installs /usr/share/datasets/fashion-mnist). "
        "Or download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
        "t10k-labels-idx1-ubyte.gz from https://github.com/zalandoresearch/fashion-mnist (data/fashion) into "
        "$NNX_DATA/fashion-mnist or a directory passed as root=. "
        "For a quick start without downloading, use nnx.data.fashion_mnist_sample()."
    ),
    "mnist": (
        "Download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
        "t10k-labels-idx1-ubyte.gz from http://yann.lecun.com/exdb/mnist/ (or PyTorch's mirror "
        "https://ossci-datasets.s3.amazonaws.com/mnist/) into $NNX_DATA/mnist or a directory passed as root=."
    ),
}


def _check_split(split) -> str:
    if split not in _FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    return split


def search_dirs(name: str, root=None) -> list:
    """The directories searched for data set `name`, in order."""
    dirs = []
    if root is not None:
        dirs += [Path(root), Path(root) / name]
    env = os.environ.get("NNX_DATA")
    if env:
        dirs.append(Path(env) / name)
    dirs.append(_SYSTEM_DIR / name)
    return dirs


def _find(directory: Path, stem: str):
    for candidate in (directory / (stem + ".gz"), directory / stem):
        if candidate.is_file():
            return candidate
    return None


def find_files(name: str, split: str, root=None):
    """(images path, labels path) of the first directory holding both, else FileNotFoundError."""
    split = _check_split(split)
    image_stem, label_stem = _FILES[split]
    dirs = search_dirs(name, root)
    for d in dirs:
        images, labels = _find(d, image_stem), _find(d, label_stem)
        if images is not None and labels is not None:
            return images, labels
    searched = ", ".join(str(d) for d in dirs)
    raise FileNotFoundError(
        f"{name} ({split}): {image_stem}[.gz] and {label_stem}[.gz] not found in any of: {searched}. "
        + _HOW_TO_GET[name])


def _load_pair(images_path, labels_path, n_classes=10):
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{images_path}: expected uint8 images of shape (N, rows, cols), "
                         f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{labels_path}: expected integer labels of shape (N,), got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_path}: expected {images.shape[0]} labels to match {images_path}, "
                         f"got {labels.shape[0]}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{labels_path}: expected labels in [0, {n_classes}), "
                         f"got values from {labels.min()} to {labels.max()}")
    return images, labels


def fashion_mnist(split: str = "train", root=None):
    """Fashion-MNIST: (uint8 images (N, 28, 28), int64 labels (N,)), N = 60000 (train) or 10000 (test).

    Class names are in nnx.data.FASHION_MNIST_CLASSES.
    """
    return _load_pair(*find_files("fashion-mnist", split, root))


def mnist(split: str = "train", root=None):
    """MNIST handwritten digits: (uint8 images (N, 28, 28), int64 labels (N,))."""
    return _load_pair(*find_files("mnist", split, root))


def fashion_mnist_sample(split: str = "train"):
    """A class-balanced sample of real Fashion-MNIST shipped inside nnx (6000 train, 1000 test images),
    so demos and tests run without downloads. Made by scripts/make_sample.py."""
    split = _check_split(split)
    image_stem, label_stem = _FILES[split]
    return _load_pair(SAMPLE_DIR / (image_stem + ".gz"), SAMPLE_DIR / (label_stem + ".gz"))
