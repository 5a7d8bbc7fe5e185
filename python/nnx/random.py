"""One seeded source of randomness for everything nnx draws: initialisation, dropout, shuffling.

`nnx.manual_seed(s)` makes a run reproducible; get_rng_state/set_rng_state let a checkpoint resume the
exact random stream.
"""
from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seeds every random choice nnx makes."""
    global _rng
    _rng = np.random.default_rng(int(seed))


def get_rng() -> np.random.Generator:
    return _rng


def get_rng_state() -> dict:
    return _rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    _rng.bit_generator.state = state
