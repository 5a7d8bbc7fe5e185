"""nnx.ops: ndarray in, ndarray out, on the C++ kernels. Same names and signatures as nnx.reference.

One module per kernel family; this package re-exports their public names (see DESIGN.md's contract).
"""
from .gemm import gemm, gemm_backward, linear, linear_backward, matmul, matmul_backward  # noqa: F401

__all__ = ["gemm", "gemm_backward", "linear", "linear_backward", "matmul", "matmul_backward"]


def _export(module) -> None:
    for name in module.__all__:
        globals()[name] = getattr(module, name)
        __all__.append(name)


def _load_families() -> None:
    import importlib

    for fam in ("activation", "loss", "conv", "pool", "maxout", "norm", "dropout", "rnn"):
        try:
            mod = importlib.import_module(f"{__name__}.{fam}")
        except ModuleNotFoundError as exc:  # a family not built yet
            if exc.name != f"{__name__}.{fam}":
                raise
            continue
        _export(mod)


_load_families()
# Not a public op (no twin in __all__ to fuzz): the in-place step of functional.relu when it fuses into the op
# before it.
from .activation import relu_  # noqa: E402,F401
