"""nnx: neural-network training on CPUs.

C++ kernels (OpenMP threads + SIMD) under a thin, PyTorch-shaped Python API, every kernel checked
against the pure-NumPy implementation in nnx.reference.
"""
from __future__ import annotations

__version__ = "0.1.0"

from ._backend import (block_cache_info, cpu_info, get_num_threads, set_block_cache_limit, set_isa,  # noqa: F401
                       set_num_threads)
from . import ops, reference  # noqa: F401
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly  # noqa: F401
from .gradcheck import GradcheckError, gradcheck  # noqa: F401
from .random import manual_seed  # noqa: F401
from .tensor import (Tensor, cat, enable_grad, flatten, from_numpy, is_grad_enabled, no_grad, stack,  # noqa: F401
                     tensor)
from . import functional, nn, optim  # noqa: F401,E402
from .functional import matmul  # noqa: F401,E402  (torch.matmul; Tensor @ runs it)
from . import data, models  # noqa: F401,E402
from .io import CheckpointError, load, save  # noqa: F401,E402
from .train import History, evaluate, fit  # noqa: F401,E402
from . import distributed  # noqa: F401,E402  (imports mpi4py only when init() is called)
# nnx.onnx, kept out of __all__ so `from nnx import *` cannot shadow the onnx package. The onnx package
# itself is imported only when export or load_weights runs.
from . import onnx  # noqa: F401,E402
from . import callbacks  # noqa: F401,E402
from .callbacks import CSVLogger, EarlyStopping, ModelCheckpoint  # noqa: F401,E402
from .compile import CompileError, CompileWarning, compile  # noqa: F401,E402,A001

__all__ = ["cpu_info", "get_num_threads", "set_num_threads", "set_isa", "block_cache_info", "set_block_cache_limit",
           "ops", "reference", "gradcheck", "GradcheckError", "manual_seed", "__version__", "Tensor", "tensor",
           "cat", "stack", "no_grad", "enable_grad", "is_grad_enabled", "functional", "nn", "optim", "data", "save",
           "load", "models", "fit", "evaluate", "History", "CheckpointError", "detect_anomaly",
           "set_detect_anomaly", "is_anomaly_enabled", "AnomalyError", "distributed", "callbacks", "EarlyStopping",
           "ModelCheckpoint", "CSVLogger", "flatten", "from_numpy", "compile", "CompileError", "CompileWarning",
           "matmul"]
