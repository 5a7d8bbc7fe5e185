"""Mini-batches over in-memory arrays."""
from __future__ import annotations

import operator

import numpy as np

from .. import random as nnx_random
from .._args import check_alloc


class DataLoader:
    """Iterates over (xb, yb) mini-batches of the arrays X and y (or xb alone when y is None).

    shuffle draws a new permutation from nnx.random at the start of every pass, so a run is
    reproducible under nnx.manual_seed and a resumed run continues the same stream. transform, when
    given, is applied to each xb (e.g. nnx.data.to_float_images). Batches are new arrays (fancy
    indexing copies), so a transform may modify them in place.
    """

    def __init__(self, X, y=None, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False,
                 transform=None):
        X = np.asarray(X)
        if X.ndim < 1:
            raise ValueError(f"X: expected an array with a leading sample axis, got a {X.ndim}-d array")
        if y is not None:
            y = np.asarray(y)
            if y.ndim < 1 or y.shape[0] != X.shape[0]:
                raise ValueError(f"y: expected {X.shape[0]} samples along the first axis to match X of shape "
                                 f"{X.shape}, got shape {y.shape}")
        try:
            batch_size = operator.index(batch_size)
        except TypeError:
            raise TypeError(f"batch_size: expected a positive int, got {batch_size!r}") from None
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
        # Each batch is a copy: refuse one that cannot fit now rather than fail (or be killed) mid-epoch.
        check_alloc((min(batch_size, X.shape[0]),) + X.shape[1:], X.dtype, "batch_size", "a batch of X")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform: expected a callable or None, got {type(transform).__name__}")
        self.X, self.y = X, y
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform

    def __len__(self) -> int:
        n = self.X.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)  # exact for any int

    @property
    def num_samples(self) -> int:
        """Samples visited per pass (fewer than len(X) when drop_last drops a partial batch)."""
        n = self.X.shape[0]
        return (n // self.batch_size) * self.batch_size if self.drop_last else n

    def __iter__(self):
        n = self.X.shape[0]
        order = nnx_random.get_rng().permutation(n) if self.shuffle else None
        for start in range(0, self.num_samples, self.batch_size):
            stop = min(start + self.batch_size, n)
            idx = order[start:stop] if order is not None else slice(start, stop)
            xb = self.X[idx] if order is not None else self.X[idx].copy()
            if self.transform is not None:
                xb = self.transform(xb)
            if self.y is None:
                yield xb
            else:
                yield xb, self.y[idx] if order is not None else self.y[idx].copy()
