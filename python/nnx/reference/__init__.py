"""nnx.reference: every op of nnx.ops written in plain NumPy, to be read and to check the kernels against.

Same public names and signatures as nnx.ops. Nothing here imports the compiled extension. The formulas
are written as in a textbook, the chain rule spelled out, with no tricks for speed.
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
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{fam}":
                raise
            continue
        _export(mod)


_load_families()
# Not a public op (no twin in __all__ to fuzz): the in-place step of functional.relu when it fuses into the op
# before it.
from .activation import relu_  # noqa: E402,F401
