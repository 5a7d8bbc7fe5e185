"""nnx.distributed: data-parallel training over MPI (mpi4py), Horovod's recipe with PyTorch's API.

    import nnx, nnx.distributed as dist
    dist.init()                                    # world size 1 without mpi4py or mpiexec
    model = dist.DistributedDataParallel(build())  # broadcasts rank 0's parameters
    opt = nnx.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loader = nnx.data.DataLoader(X, y, batch_size=32, shuffle=True, seed=0,
                                 rank=dist.rank(), world_size=dist.world_size())
    nnx.fit(model, loss_fn, opt, loader, epochs=5, progress=dist.rank() == 0)

Run it with `mpiexec -n 4 python train.py`. `convert_sync_batchnorm(model)` (before wrapping) makes its
BatchNorm layers normalise with the statistics of all ranks' batches together (SyncBatchNorm). The extra `nnx[mpi]` installs mpi4py and the mpich wheel;
`import nnx` never needs them. See docs/DISTRIBUTED.md for the measurements and a scaling model.
"""
from .comm import (abort, agree, allreduce_, average_buffers, barrier, broadcast_object,  # noqa: F401
                   broadcast_optimizer_state, broadcast_parameters, check_in_sync, digest, init,
                   is_available, is_initialized, launcher_world_size, local_size, mpi, rank, world_size)
from .ddp import DistributedDataParallel  # noqa: F401
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm, sync_batch_norm  # noqa: F401

__all__ = ["init", "is_available", "is_initialized", "rank", "world_size", "local_size", "barrier", "abort",
           "allreduce_", "broadcast_parameters", "broadcast_optimizer_state", "broadcast_object",
           "average_buffers", "digest", "check_in_sync", "agree", "launcher_world_size", "mpi",
           "DistributedDataParallel", "SyncBatchNorm", "convert_sync_batchnorm", "sync_batch_norm"]
