"""Data augmentation for image batches (the AlexNet lecture's translations, reflections and patch
extraction; Cutout and mixup from the regularisation lecture).

Every transform takes a whole batch, (N, H, W) or (N, C, H, W) of any dtype, and returns a new array of
the same dtype; each image gets its own random draw, made for the whole batch at once from nnx.random
(so a run is reproducible under nnx.manual_seed). They are DataLoader transforms:

    aug = Compose([RandomCrop(28, padding=2), RandomHorizontalFlip(), to_float_images])
    DataLoader(X, y, batch_size=64, shuffle=True, transform=aug)

mixup mixes images and labels, so it is applied in the training step (see mixup and mixup_loss).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import random as nnx_random

__all__ = ["Compose", "RandomCrop", "RandomHorizontalFlip", "RandomTranslate", "Cutout", "mixup", "mixup_loss",
           "AUGMENTATIONS", "build_augmentation"]


def _images(x, name="x"):
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: expected a batch of images shaped (N, H, W) or (N, C, H, W), got shape {x.shape}")
    return x


def _int(v, name, minimum=0):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v!r}")
    return int(v)


def _prob(p, name="p"):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {p!r}")
    return float(p)


def _gather_windows(padded, top, left, h, w):
    """padded[n, ..., top[n]:top[n]+h, left[n]:left[n]+w] for every n, in one fancy-indexing gather."""
    n = padded.shape[0]
    rows = top[:, None] + np.arange(h)  # (N, h)
    cols = left[:, None] + np.arange(w)  # (N, w)
    if padded.ndim == 3:
        return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    c = padded.shape[1]
    return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows[:, None, :, None],
                  cols[:, None, None, :]]


class Compose:
    """Applies the transforms in order (any callables taking and returning a batch)."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"transforms: expected callables, got {type(t).__name__}")

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class RandomCrop:
    """A random size x size window of each image, after padding every side by `padding` pixels of
    `fill` (size = H with padding p: a random translation by up to p pixels, AlexNet's patch extraction)."""

    def __init__(self, size, padding: int = 0, fill=0):
        sz = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
        if len(sz) != 2:
            raise ValueError(f"size: expected an int or an (h, w) pair, got {size!r}")
        self.size = tuple(_int(s, "size", 1) for s in sz)
        self.padding = _int(padding, "padding")
        self.fill = fill

    def __call__(self, x):
        return self._crop(_images(x), *self.size)

    def _crop(self, x, h, w):
        p = self.padding
        H, W = x.shape[-2] + 2 * p, x.shape[-1] + 2 * p
        if h > H or w > W:
            raise ValueError(f"size: a {h}x{w} crop does not fit images of {x.shape[-2]}x{x.shape[-1]} padded by {p}")
        if p:
            pad = [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)]
            x = np.pad(x, pad, constant_values=np.asarray(self.fill, dtype=x.dtype))
        rng = nnx_random.get_rng()
        top = rng.integers(0, H - h + 1, size=x.shape[0])
        left = rng.integers(0, W - w + 1, size=x.shape[0])
        return _gather_windows(x, top, left, h, w)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomTranslate(RandomCrop):
    """Shifts each image by a random whole number of pixels in [-max_shift, max_shift] along each axis,
    filling the uncovered border with `fill`; the size stays the same."""

    def __init__(self, max_shift: int = 2, fill=0):
        super().__init__(1, padding=max_shift, fill=fill)
        self.max_shift = self.padding

    def __call__(self, x):
        x = _images(x)
        return self._crop(x, x.shape[-2], x.shape[-1])

    def __repr__(self):
        return f"RandomTranslate(max_shift={self.max_shift})"


class RandomHorizontalFlip:
    """Mirrors each image left-right with probability p."""

    def __init__(self, p: float = 0.5):
        self.p = _prob(p)

    def __call__(self, x):
        x = _images(x)
        flip = nnx_random.get_rng().random(x.shape[0]) < self.p
        out = np.array(x, copy=True)
        out[flip] = x[flip][..., ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Cutout:
    """Sets a size x size square of each image to `fill` (DeVries & Taylor, 2017): the square's centre is
    uniform over the image and the square is clipped at the border; applied to each image with
    probability p."""

    def __init__(self, size: int = 8, p: float = 1.0, fill=0):
        self.size = _int(size, "size", 1)
        self.p = _prob(p)
        self.fill = fill

    def __call__(self, x):
        x = _images(x)
        n, H, W = x.shape[0], x.shape[-2], x.shape[-1]
        rng = nnx_random.get_rng()
        cy = rng.integers(0, H, size=n)
        cx = rng.integers(0, W, size=n)
        on = rng.random(n) < self.p
        y0, x0 = cy - self.size // 2, cx - self.size // 2
        rows = np.arange(H)[None, :]
        cols = np.arange(W)[None, :]
        in_y = (rows >= y0[:, None]) & (rows < (y0 + self.size)[:, None])  # (N, H)
        in_x = (cols >= x0[:, None]) & (cols < (x0 + self.size)[:, None])  # (N, W)
        mask = in_y[:, :, None] & in_x[:, None, :] & on[:, None, None]
        if x.ndim == 4:
            mask = mask[:, None]
        return np.where(mask, np.asarray(self.fill, dtype=x.dtype), x)

    def __repr__(self):
        return f"Cutout(size={self.size}, p={self.p})"


def mixup(x, y, alpha: float = 1.0):
    """mixup (Zhang et al., 2018) of one batch: lam ~ Beta(alpha, alpha), a random pairing perm of the
    batch, x_mixed = lam x + (1 - lam) x[perm]. Returns (x_mixed, y, y[perm], lam); train with
    mixup_loss(loss_fn, output, y, y[perm], lam) = lam loss(output, y) + (1 - lam) loss(output, y[perm])."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype.kind != "f":
        raise TypeError(f"x: mixup blends images, so it needs floating-point images, got dtype {x.dtype} "
                        f"(apply to_float_images first)")
    if len(y) != len(x):
        raise ValueError(f"y: expected {len(x)} labels to match x, got {len(y)}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
        raise ValueError(f"alpha: expected a number > 0, got {alpha!r}")
    rng = nnx_random.get_rng()
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(len(x))
    mixed = (x * x.dtype.type(lam) + x[perm] * x.dtype.type(1.0 - lam)).astype(x.dtype, copy=False)
    return mixed, y, y[perm], lam


def mixup_loss(loss_fn, output, y_a, y_b, lam: float):
    """lam * loss_fn(output, y_a) + (1 - lam) * loss_fn(output, y_b): the loss of a mixup batch."""
    return loss_fn(output, y_a) * float(lam) + loss_fn(output, y_b) * (1.0 - float(lam))


# Names for `python -m nnx train --augment crop,flip,...`, with the settings used for 28x28 images.
AUGMENTATIONS = {
    "crop": lambda: RandomCrop(28, padding=2),
    "flip": lambda: RandomHorizontalFlip(),
    "translate": lambda: RandomTranslate(2),
    "cutout": lambda: Cutout(8),
}


def build_augmentation(spec: str):
    """A Compose of the comma-separated names in `spec` (keys of AUGMENTATIONS), in the given order."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown or not names:
        raise ValueError(f"augment: expected a comma-separated list of {sorted(AUGMENTATIONS)}, got {spec!r}")
    return Compose([AUGMENTATIONS[n]() for n in names])
