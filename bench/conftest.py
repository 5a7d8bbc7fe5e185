"""Shared benchmark setup: every case is a pytest-benchmark group holding nnx and its peers (the NumPy
reference or NumPy's own routine, and PyTorch CPU when installed), all limited to the same thread count.

    python -m pytest bench/test_gemm.py --threads 1      # or: python bench/report.py --threads 1 2
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import nnx


def pytest_addoption(parser):
    parser.addoption("--threads", type=int, default=None,
                     help="threads for nnx, NumPy's BLAS and PyTorch alike (default: all cores)")


def pytest_configure(config):
    n = config.getoption("--threads") or os.cpu_count() or 1
    config._nnx_threads = n
    nnx.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
        # Limits OpenBLAS for the NumPy peer; nnx's OpenMP pool is set explicitly above.
        config._nnx_pool_limit = threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        pass
    torch = optional_torch()
    if torch is not None:
        torch.set_num_threads(n)


def optional_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


@pytest.fixture(scope="session")
def threads(pytestconfig):
    return pytestconfig._nnx_threads


@pytest.fixture
def torch_or_skip():
    torch = optional_torch()
    if torch is None:
        pytest.skip("PyTorch not installed (pip install '.[bench]')")
    return torch


def record(benchmark, group: str, impl: str, flops: float = 0.0, bytes_moved: float = 0.0, threads=None):
    """Names the group/implementation and stores the work done, so report.py can print GFLOP/s and GB/s."""
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["flops"] = float(flops)
    benchmark.extra_info["bytes"] = float(bytes_moved)
    benchmark.extra_info["threads"] = threads if threads is not None else nnx.get_num_threads()


def rand(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
