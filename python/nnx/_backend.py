"""Loads the compiled extension and exposes machine-level controls (ISA, threads)."""
from __future__ import annotations

try:
    from . import _C  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "nnx's compiled extension nnx._C is missing: install the package with `pip install .` "
        "(or build in place with scripts/dev_build.sh for development)"
    ) from exc


def cpu_info() -> dict:
    """Which instruction set the kernels use, which the CPU offers, threads and micro-kernel names."""
    return dict(_C.cpu_info())


def set_isa(name: str) -> str:
    """Selects the kernel path: 'portable', 'avx2', 'avx512' or 'neon' (never above what the CPU
    supports). Mainly for tests and benchmarks; users set NNX_ISA before import instead."""
    return _C.set_isa(name)


def get_num_threads() -> int:
    """Threads the kernels use (default: OMP_NUM_THREADS, else the number of cores)."""
    return int(_C.get_num_threads())


def set_num_threads(n: int) -> None:
    """Sets the number of threads the kernels use. Results are bitwise identical for any count."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int thread count, got {type(n).__name__}")
    _C.set_num_threads(n)
