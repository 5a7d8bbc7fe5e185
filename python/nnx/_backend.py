"""Loads the compiled extension and exposes machine-level controls (ISA, threads)."""
from __future__ import annotations

import os

# libgomp's threads busy-wait about 300,000 spins at every barrier before sleeping. When the machine
# is busy (other processes, more threads than cores) a descheduled thread then stalls all the others
# and a 2-thread LeNet step ran 8x slower than with 1 thread here. A short spin keeps the wake-up
# fast on an idle machine and gives the core away quickly on a busy one. The user's own setting wins;
# libgomp reads it once, when the extension below loads it.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

try:
    from . import _C  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "nnx's compiled extension nnx._C is missing: install the package with `pip install .` "
        "(or build in place with scripts/dev_build.sh for development)"
    ) from exc

from . import _args  # noqa: E402
from . import _capture  # noqa: E402

# Large op results from the block cache (nnx._args.empty); a capture's results from its plan.
_args._LARGE_BYTES = int(_C.BLOCK_CACHE_MIN_BYTES)
_args._BLOCK_BASE = _C.CachedBlock
_args._CAPTURE_BASE = _C.CaptureBlock
_args._capture_state = _capture._local
_args._large_empty = _C.empty_cached


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


def block_cache_info() -> dict:
    """The block cache behind large results (at least 32 MiB: their memory is kept for the next result of that
    size instead of being mapped afresh): bytes kept for reuse now and the limit."""
    return {"kept_bytes": int(_C.block_cache_kept_bytes()), "limit_bytes": int(_C.block_cache_limit())}


def set_block_cache_limit(n_bytes: int) -> None:
    """Sets how many bytes of dead large results the block cache keeps (default 1 GiB, or NNX_BLOCK_CACHE_BYTES
    at import); 0 frees what it keeps and keeps nothing from then on."""
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int):
        raise TypeError(f"n_bytes: expected an int byte count, got {type(n_bytes).__name__}")
    _C.set_block_cache_limit(n_bytes)
