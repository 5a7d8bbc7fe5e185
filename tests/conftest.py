import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for optest

import nnx  # noqa: E402

_DETECTED = nnx.cpu_info()["detected_isa"]
ISAS = [_DETECTED] if _DETECTED == "portable" else [_DETECTED, "portable"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs a test once on the best kernels this CPU has and once on the portable ones."""
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
