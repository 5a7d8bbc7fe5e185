import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for optest

import nnx  # noqa: E402
from optest import has_isa  # noqa: E402


def _supported_isas():
    """Every kernel path this CPU can run (an AVX-512 machine also runs the AVX2 kernels), best first."""
    return [name for name in ("avx512", "avx2", "neon", "portable") if has_isa(name)]


ISAS = _supported_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs a test once on every kernel path this CPU supports (see _supported_isas)."""
    before = nnx.cpu_info()["active_isa"]
    nnx.set_isa(request.param)
    yield request.param
    nnx.set_isa(before)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
