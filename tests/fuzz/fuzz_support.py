"""Settings and case counting for the fuzz tests (see test_fuzz_ops.py's docstring for the modes).

The example budget is per test (one test = one op, valid or invalid arguments):
    default                 FUZZ_DEFAULT_EXAMPLES (the normal suite's share of the CI budget), the same
                            examples on every run
    NNX_FUZZ=long           10x the default, fresh examples on every run
    NNX_FUZZ_EXAMPLES=N     exactly N
The profiles are registered under "nnx-fuzz" / "nnx-fuzz-long" and applied to the fuzz tests only
(loading a profile globally would change every other hypothesis test in the session).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import collections
import os

from hypothesis import HealthCheck, settings, strategies as st

FUZZ_DEFAULT_EXAMPLES = 80
LONG_FACTOR = 10


def _examples() -> int:
    explicit = os.environ.get("NNX_FUZZ_EXAMPLES")
    if explicit:
        return max(1, int(explicit))
    if os.environ.get("NNX_FUZZ", "").lower() == "long":
        return FUZZ_DEFAULT_EXAMPLES * LONG_FACTOR
    return FUZZ_DEFAULT_EXAMPLES


_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("nnx-fuzz", max_examples=FUZZ_DEFAULT_EXAMPLES, **_COMMON)
settings.register_profile("nnx-fuzz-long", max_examples=FUZZ_DEFAULT_EXAMPLES * LONG_FACTOR, **_COMMON)
# The default run (the one CI makes) draws the same examples every time, so a failure there is one any
# developer reproduces by running the suite, never a fresh draw that only CI happened to make: a float32
# rnn_backward example whose weight gradient came from cancelling terms once failed CI that way. The long
# run (NNX_FUZZ=long) draws new examples each time, to explore.
FUZZ_SETTINGS = settings(max_examples=_examples(), derandomize=os.environ.get("NNX_FUZZ", "").lower() != "long",
                         **_COMMON)

# (op, "valid" | "invalid") -> number of examples executed, and the invalid ones by exception type.
CASES: collections.Counter = collections.Counter()
RAISED: collections.Counter = collections.Counter()


# ----------------------------------------------------------------------------------------------------
# What a builder returns, and the small helpers every builder uses.

@dataclass
class Case:
    """One call: keyword arguments for ops.<name> and reference.<name>, and what the mutations may change."""
    kw: dict
    k: int = 1                                      # longest sum behind an output (tolerance)
    floats: tuple = ()                              # keys of float arrays
    ints: tuple = ()                                # keys of integer arrays (class targets, indices)
    ranked: tuple = ()                              # keys whose rank is fixed
    determined: dict = field(default_factory=dict)  # key -> axes whose size the other arguments fix
    bad: list = field(default_factory=list)         # (key, invalid value, exception type[, name in message])
    floor: str | None = None                        # key whose magnitude (times k) bounds cancelling terms


def _arr(rng, shape, dtype, low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape).astype(dtype)


def _param(draw, v):
    """An int pair given as an int (when equal), a tuple or a list, as the ops accept."""
    a, b = v
    if a == b and draw(st.booleans()):
        return a
    return draw(st.sampled_from([(a, b), [a, b]]))


def _dims(draw, n, lo=0, hi=4):
    return tuple(draw(st.integers(lo, hi)) for _ in range(n))
