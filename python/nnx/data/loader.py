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

    seed: the permutation of pass e is numpy's default_rng([seed, e]) instead of nnx.random's stream, so
    it depends on (seed, epoch) alone; passes count up from 0 and set_epoch(e) sets the next one.

    rank, world_size (data-parallel training, nnx.distributed): this loader yields rank's shard only.
    Every rank draws the same permutation (shuffling needs a seed shared by the ranks) and takes every
    world_size-th sample of it from position rank, after cutting the permutation to a multiple of
    world_size. So the shards are disjoint, each holds len(X) // world_size samples, every rank gets
    the same number of batches, and the samples left out (fewer than world_size) change every epoch.
    With batch size B, the ranks' batches at step k together are the batch of size world_size * B that a
    single loader with the same seed yields at step k (when world_size * B divides the shard sizes).
    """

    def __init__(self, X, y=None, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False,
                 transform=None, *, seed=None, rank: int = 0, world_size: int = 1):
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
        world_size = _count(world_size, "world_size", 1)
        rank = _count(rank, "rank", 0)
        if rank >= world_size:
            raise ValueError(f"rank: expected 0 to world_size - 1 = {world_size - 1}, got {rank}")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise TypeError(f"seed: expected a non-negative int or None, got {seed!r}")
            seed = int(seed)
        elif shuffle and world_size > 1:
            raise ValueError(f"seed: shuffling a shard (world_size={world_size}) needs a seed shared by every "
                             f"rank, so that their permutations agree and the shards stay disjoint; got None")
        self.X, self.y = X, y
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The pass that the next iteration makes (it chooses the permutation when seed is given)."""
        self.epoch = _count(epoch, "epoch", 0)

    @property
    def shard_size(self) -> int:
        """Samples in this rank's shard (all of X without sharding)."""
        return self.X.shape[0] // self.world_size

    def __len__(self) -> int:
        n = self.shard_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)  # exact for any int

    @property
    def num_samples(self) -> int:
        """Samples visited per pass (fewer than the shard when drop_last drops a partial batch)."""
        n = self.shard_size
        return (n // self.batch_size) * self.batch_size if self.drop_last else n

    def _order(self):
        """The sample indices of this pass (None: X in order, unsharded)."""
        n = self.X.shape[0]
        if self.shuffle:
            rng = nnx_random.get_rng() if self.seed is None else np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(n)
        elif self.world_size > 1:
            order = np.arange(n)
        else:
            return None
        if self.world_size > 1:
            order = order[:self.shard_size * self.world_size][self.rank::self.world_size]
        return order

    def __iter__(self):
        order = self._order()
        self.epoch += 1
        n = self.shard_size
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


def _count(value, name: str, low: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an int >= {low}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an int >= {low}, got {value!r}") from None
    if value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value}")
    return value
