"""The MPI side of nnx.distributed: starting MPI, rank and size, collectives on arrays, models and
optimizers, and the exception hook that aborts every rank when one fails.

mpi4py is imported by init() only (the optional extra `nnx[mpi]`); without it, or in a process that was
not started by mpiexec, the world has one rank and every collective here returns its input unchanged.
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import traceback

import numpy as np

# Environment variables that MPI launchers set in the processes they start (MPICH/Hydra and Intel MPI,
# Open MPI, PMIx launchers such as srun --mpi=pmix, MVAPICH). Only used to tell a plain `python ...`
# from one started by mpiexec; init() itself never needs them.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
_OPS = ("sum", "mean", "max", "min")
ABORT_GRACE_S = 0.5


class _State:
    initialized = False
    MPI = None     # the mpi4py.MPI module, when MPI is in use
    comm = None    # the communicator of the data-parallel group (None: one rank, no MPI)


_state = _State()


def is_available() -> bool:
    """True when mpi4py can be imported (the optional extra `nnx[mpi]` is installed)."""
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


def launcher_world_size() -> int:
    """The number of processes an MPI launcher says it started (1 when none did), read from the
    environment without starting MPI."""
    for name in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def init(comm=None, abort_on_exception: bool = True) -> int:
    """Starts MPI (through mpi4py) and returns the world size. Calling it again does nothing.

    Without mpi4py the world has one rank: rank() is 0, world_size() is 1 and every collective returns
    its input. comm (an mpi4py communicator) replaces MPI.COMM_WORLD as the data-parallel group.
    With abort_on_exception and more than one rank, an exception that reaches the top of any thread of
    this rank prints its traceback and calls MPI.COMM_WORLD.Abort, so the other ranks stop too instead of
    waiting forever in their next collective.
    """
    if _state.initialized:
        return world_size()
    try:
        from mpi4py import MPI
    except ImportError:
        MPI = None
    if MPI is None:
        if comm is not None:
            raise ValueError("comm: a communicator was given but mpi4py is not installed "
                             "(pip install \"nnx[mpi]\")")
        if launcher_world_size() > 1:
            # Every process would train alone on all the data and write the same files.
            raise RuntimeError(f"nnx.distributed.init: started by an MPI launcher as one of "
                               f"{launcher_world_size()} processes, but mpi4py is not installed; install "
                               f"the extra: pip install \"nnx[mpi]\"")
    else:
        _state.MPI = MPI
        _state.comm = MPI.COMM_WORLD if comm is None else comm
    _state.initialized = True
    if abort_on_exception and world_size() > 1:
        _install_abort_hooks()
    return world_size()


def is_initialized() -> bool:
    return _state.initialized


def _comm(comm=None):
    """The given communicator, else the data-parallel group (starting MPI if init() was not called)."""
    if comm is not None:
        return comm
    if not _state.initialized:
        init()
    return _state.comm


def mpi():
    """The mpi4py.MPI module in use (None without MPI)."""
    _comm()
    return _state.MPI


def rank() -> int:
    """This process's rank in the data-parallel group (0 without MPI). Starts MPI if init() was not called."""
    comm = _comm()
    return 0 if comm is None else comm.Get_rank()


def world_size() -> int:
    """The number of ranks in the data-parallel group (1 without MPI). Starts MPI if needed."""
    comm = _comm()
    return 1 if comm is None else comm.Get_size()


def local_size() -> int:
    """The number of ranks on this machine (they share its cores)."""
    comm = _comm()
    if comm is None:
        return 1
    node = comm.Split_type(_state.MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_size()
    finally:
        node.Free()


def barrier() -> None:
    comm = _comm()
    if comm is not None and comm.Get_size() > 1:
        comm.Barrier()


def abort(code: int = 1) -> None:
    """Ends every rank of the job now (MPI_Abort); without MPI, ends this process with `code`."""
    sys.stdout.flush()
    sys.stderr.flush()
    if _state.MPI is not None:
        # MPI_Abort makes the launcher kill every rank at once, and what its output forwarding had not
        # yet read from this rank's pipes is lost: 3 runs in 20 lost the end of the traceback here.
        # A moment's pause lets it forward the message that says why the job stopped.
        time.sleep(ABORT_GRACE_S)
        _state.MPI.COMM_WORLD.Abort(int(code))
    os._exit(int(code))


# --------------------------------------------------------------------------------------------- failures
def _install_abort_hooks() -> None:
    previous, previous_thread = sys.excepthook, threading.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
        else:
            traceback.print_exception(exc_type, exc, tb)
        _announce_abort(exc_type)
        abort(1)

    def thread_hook(args):
        previous_thread(args)
        _announce_abort(args.exc_type)
        abort(1)

    sys.excepthook = hook
    threading.excepthook = thread_hook


def _announce_abort(exc_type) -> None:
    print(f"nnx.distributed: rank {rank()} of {world_size()} stopped on {exc_type.__name__}; aborting every "
          f"rank (MPI_Abort) so that none waits forever", file=sys.stderr)


def agree(ok: bool, message: str, what: str, *, comm=None) -> None:
    """Raises ValueError on every rank when `ok` is False on any rank, naming the ranks and their messages,
    so that an error found on one rank stops all of them at the same point (no rank left waiting)."""
    comm = _comm(comm)
    if comm is None or comm.Get_size() == 1:
        if not ok:
            raise ValueError(f"{what}: {message}")
        return
    reports = comm.allgather(None if ok else message)
    bad = [(r, m) for r, m in enumerate(reports) if m is not None]
    if bad:
        raise ValueError(f"{what}: " + "; ".join(f"rank {r}: {m}" for r, m in bad))


# --------------------------------------------------------------------------------------------- arrays
def _buffer_array(array, name: str) -> np.ndarray:
    from ..tensor import Tensor
    if isinstance(array, Tensor):
        array = array.data
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name}: expected an ndarray or Tensor, got {type(array).__name__}")
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a numeric array, got dtype {array.dtype}")
    if not (array.flags.c_contiguous and array.flags.writeable):
        raise ValueError(f"{name}: the result is written in place and needs a writable C-contiguous array, got "
                         f"one with strides {array.strides} (writeable={array.flags.writeable})")
    return array


def allreduce_(array, op: str = "mean", *, comm=None):
    """Combines `array` (an ndarray or Tensor, C-contiguous and writable) across all ranks, in place, and
    returns it: op is "mean" (floating point only), "sum", "max" or "min". With one rank it is unchanged.
    Every rank must call it with the same shape and dtype, in the same order as its other collectives."""
    if op not in _OPS:
        raise ValueError(f"op: expected one of {_OPS}, got {op!r}")
    arr = _buffer_array(array, "array")
    if op == "mean" and arr.dtype.kind != "f":
        raise TypeError(f"op: 'mean' needs a floating-point array, got dtype {arr.dtype} (use 'sum')")
    comm = _comm(comm)
    if comm is None or comm.Get_size() == 1:
        return array
    from mpi4py import MPI  # a communicator exists, so mpi4py is there
    mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    comm.Allreduce(MPI.IN_PLACE, arr, op=mpi_op)
    if op == "mean":
        np.divide(arr, comm.Get_size(), out=arr)
    return array


def broadcast_object(obj, root: int = 0, *, comm=None):
    """`obj` from rank `root` on every rank (pickled over MPI: small Python values only)."""
    comm = _comm(comm)
    if comm is None or comm.Get_size() == 1:
        return obj
    _check_root(root, comm)
    return comm.bcast(obj, root=root)


def _check_root(root, comm) -> None:
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < comm.Get_size():
        raise ValueError(f"root: expected a rank from 0 to {comm.Get_size() - 1}, got {root!r}")


def _bcast_array(arr: np.ndarray, root: int, comm) -> np.ndarray:
    """Broadcasts into `arr` in place when it can, else into a copy that is returned."""
    target = arr if arr.flags.c_contiguous and arr.flags.writeable else np.ascontiguousarray(arr).copy()
    comm.Bcast(target, root=root)
    if target is not arr and arr.flags.writeable:
        np.copyto(arr, target)
        return arr
    return target


# --------------------------------------------------------------------------------------------- models
def _unwrap(model):
    from .ddp import DistributedDataParallel  # here: ddp imports this module
    return model.module if isinstance(model, DistributedDataParallel) else model


def _model_arrays(model):
    """[(name, Parameter or (module, buffer name))] of every parameter and buffer, in state_dict order."""
    module = _unwrap(model)
    if not hasattr(module, "named_parameters") or not hasattr(module, "named_modules"):
        raise TypeError(f"model: expected an nnx.nn.Module or DistributedDataParallel, got {type(model).__name__}")
    entries = [(name, p) for name, p in module.named_parameters()]
    for prefix, m in module.named_modules():
        for name, value in m._own_buffers():
            if value is not None:
                entries.append((f"{prefix}.{name}" if prefix else name, (m, name)))
    return entries


def _entry_array(entry) -> np.ndarray:
    return getattr(*entry) if isinstance(entry, tuple) else entry.data


def _describe_differences(signatures, root: int) -> list:
    want = signatures[root]
    problems = []
    for r, sig in enumerate(signatures):
        if sig == want:
            continue
        n_have, n_want = sum(int(np.prod(s)) for _, s, _ in sig), sum(int(np.prod(s)) for _, s, _ in want)
        line = (f"rank {r} has {len(sig)} arrays ({n_have} numbers), rank {root} has {len(want)} "
                f"({n_want} numbers)")
        for a, b in zip(sig, want):
            if a != b:
                line += f"; first difference: {a[0]!r} {tuple(a[1])} {a[2]} on rank {r} vs {b[0]!r} " \
                        f"{tuple(b[1])} {b[2]} on rank {root}"
                break
        else:
            extra = sig[len(want):] or want[len(sig):]
            line += f"; {extra[0][0]!r} is on one of them only"
        problems.append(line)
    return problems


def broadcast_parameters(model, root: int = 0, *, comm=None) -> None:
    """Copies rank `root`'s parameters and buffers (BatchNorm running statistics) into every rank's model,
    in place. First checks that all ranks hold the same architecture (names, shapes and dtypes of every
    array) and raises ValueError on every rank, describing the first difference, when they do not."""
    entries = _model_arrays(model)
    comm = _comm(comm)
    if comm is None or comm.Get_size() == 1:
        return
    _check_root(root, comm)
    signature = [(name, tuple(_entry_array(e).shape), _entry_array(e).dtype.str) for name, e in entries]
    problems = _describe_differences(comm.allgather(signature), root)
    if problems:
        raise ValueError("broadcast_parameters: the ranks' models differ (every rank must build the same "
                         "architecture): " + "; ".join(problems))
    for _, entry in entries:
        arr = _entry_array(entry)
        out = _bcast_array(arr, root, comm)
        if out is not arr:
            if isinstance(entry, tuple):
                setattr(*entry, out)
            else:
                entry.data = out


def broadcast_optimizer_state(optimizer, root: int = 0, *, comm=None) -> None:
    """Gives every rank rank `root`'s optimizer state and hyperparameters (momentum buffers, Adam moments,
    step counts, learning rates), e.g. after rank 0 alone restored a checkpoint. Raises ValueError on
    every rank when some rank's optimizer cannot take it (different parameter groups or shapes)."""
    if not hasattr(optimizer, "state_dict") or not hasattr(optimizer, "load_state_dict"):
        raise TypeError(f"optimizer: expected an nnx.optim optimizer, got {type(optimizer).__name__}")
    comm = _comm(comm)
    if comm is None or comm.Get_size() == 1:
        return
    _check_root(root, comm)
    state = comm.bcast(optimizer.state_dict() if comm.Get_rank() == root else None, root=root)
    message = None
    if comm.Get_rank() != root:
        try:
            optimizer.load_state_dict(state)
        except (ValueError, KeyError, TypeError) as exc:
            message = str(exc)
    agree(message is None, message, "broadcast_optimizer_state", comm=comm)


def average_buffers(model, *, comm=None) -> None:
    """Replaces every floating-point buffer of the model (BatchNorm running mean and variance) by its mean
    over the ranks. DistributedDataParallel calls it at the end of each epoch; between two calls each
    rank's running statistics follow its own shard."""
    comm = _comm(comm)
    if comm is None or comm.Get_size() == 1:
        return
    for _, entry in _model_arrays(model):
        if isinstance(entry, tuple):
            if getattr(*entry).dtype.kind == "f":
                arr = np.array(getattr(*entry), order="C", copy=True)
                setattr(*entry, allreduce_(arr, "mean", comm=comm))


def digest(model, buffers: bool = True) -> str:
    """A SHA-256 over the bytes of every parameter and buffer (names included; parameters only with
    buffers=False): equal digests mean bitwise equal models."""
    h = hashlib.sha256()
    for name, entry in _model_arrays(model):
        if isinstance(entry, tuple) and not buffers:
            continue
        arr = np.ascontiguousarray(_entry_array(entry))
        h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def check_in_sync(model, buffers: bool = True, *, comm=None) -> str:
    """Compares every rank's digest(model, buffers) and raises RuntimeError on every rank when they differ
    (the ranks have drifted apart); returns the common digest. buffers=False leaves out the BatchNorm
    running statistics, which follow each rank's shard until the end of the epoch."""
    mine = digest(model, buffers)
    comm = _comm(comm)
    if comm is None or comm.Get_size() == 1:
        return mine
    everyone = comm.allgather(mine)
    if len(set(everyone)) != 1:
        groups = {}
        for r, d in enumerate(everyone):
            groups.setdefault(d, []).append(r)
        raise RuntimeError("check_in_sync: the ranks' parameters differ: " +
                           "; ".join(f"ranks {rs} have {d[:12]}" for d, rs in groups.items()))
    return mine
