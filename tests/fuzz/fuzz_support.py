"""Settings and case counting for the fuzz tests (see test_fuzz_ops.py's docstring for the modes).

The example budget is per test (one test = one op, valid or invalid arguments):
    default                 FUZZ_DEFAULT_EXAMPLES (the normal suite's share of the CI budget)
    NNX_FUZZ=long           10x the default
    NNX_FUZZ_EXAMPLES=N     exactly N
The profiles are registered under "nnx-fuzz" / "nnx-fuzz-long" and applied to the fuzz tests only
(loading a profile globally would change every other hypothesis test in the session).
"""
from __future__ import annotations

import collections
import os

from hypothesis import HealthCheck, settings

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
FUZZ_SETTINGS = settings(max_examples=_examples(), **_COMMON)

# (op, "valid" | "invalid") -> number of examples executed, and the invalid ones by exception type.
CASES: collections.Counter = collections.Counter()
RAISED: collections.Counter = collections.Counter()
