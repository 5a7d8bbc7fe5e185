"""Synchronised batch normalisation: the batch statistics of every rank's batch together.

With DistributedDataParallel each rank normalises with the statistics of its own batch, so p ranks x
batch b behave like p independent batches of b, not like one batch of p*b. SyncBatchNorm makes them
behave like the big batch (PyTorch's torch.nn.SyncBatchNorm):

- forward (training): the per-channel count and sum are allreduced, giving the mean of all ranks'
  samples; then the sums of squared deviations from it, giving the biased variance. Two small
  allreduces of C + 1 and C numbers per layer; the sums are taken in float64 whatever the input dtype;
- backward: with g = dL/dy and xhat the normalised input,
      dx = (g - sum(g) / n - xhat * sum(g * xhat) / n) * invstd * weight
  where the two sums run over every rank's samples (one allreduce of 2C numbers) and n is the global
  count; the weight and bias gradients are this rank's sums, which DistributedDataParallel then
  averages like every other gradient. The result equals one process on the concatenated batch.

The running statistics follow the global batch, so they are the same on every rank without the
end-of-epoch averaging. In eval mode (running statistics) nothing is communicated and the layer is
BatchNorm's kernel. Every rank must run the layer's forward and backward the same number of times
(they are collectives).
"""
from __future__ import annotations

import numpy as np

from .. import _capture
from .. import functional as F
from ..nn.layers import _BatchNorm
from ..tensor import Tensor
from . import comm as _c


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C), (N, C, L) or (N, C, H, W) whose batch statistics (training) cover the
    batches of all ranks of `comm` (default: the data-parallel group of nnx.distributed).

    Without MPI, or in a world of one rank when no `comm` was given, it is BatchNorm exactly. Given a
    communicator explicitly (even MPI.COMM_SELF), it always takes the synchronised path. Parameters,
    buffers and state_dict keys are BatchNorm's; convert_sync_batchnorm(model) swaps the layers of an
    existing model. The arithmetic runs in NumPy (float64), not in the C++ kernels: it is an option for
    small per-rank batches, where BatchNorm's per-rank statistics get noisy, not a speed-up.
    """

    _ndims = (2, 3, 4)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=np.float32, comm=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self._comm = comm

    @classmethod
    def from_batchnorm(cls, bn: _BatchNorm, comm=None) -> "SyncBatchNorm":
        """A SyncBatchNorm that holds `bn`'s very Parameters and buffers (an optimizer built on the model
        before the conversion keeps updating them)."""
        if not isinstance(bn, _BatchNorm):
            raise TypeError(f"bn: expected a BatchNorm1d/2d layer, got {type(bn).__name__}")
        sync = cls.__new__(cls)
        sync.__dict__.update(bn.__dict__)
        sync._comm = comm
        return sync

    def _sync_comm(self):
        if self._comm is not None:
            return self._comm
        comm = _c._comm()
        return comm if comm is not None and comm.Get_size() > 1 else None

    def forward(self, x, activation=None):
        """activation="relu" applies a following ReLU in the same pass (Sequential does this itself)."""
        use_batch = self.training or not self.track_running_stats
        comm = self._sync_comm() if use_batch else None
        if comm is None:
            return super().forward(x, activation)
        x = F._t(x)
        if x.ndim not in self._ndims:
            raise ValueError(f"x: SyncBatchNorm expects a 2-D, 3-D or 4-D input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"x: expected {self.num_features} channels (axis 1), got shape {x.shape}")
        if activation not in (None, "relu"):
            raise ValueError(f"activation: expected None or 'relu', got {activation!r}")
        rec = _capture.current()
        if rec is not None:
            rec.refuse("SyncBatchNorm communicates with the other ranks in forward and backward")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked = np.array(self.num_batches_tracked + 1, dtype=np.int64)
            if momentum is None:  # cumulative moving average, as BatchNorm
                momentum = 1.0 / float(self.num_batches_tracked)
            running = (self.running_mean, self.running_var)
        else:
            running = None
        return sync_batch_norm(x, self.weight, self.bias, comm, running=running, momentum=momentum or 0.0,
                               eps=self.eps, activation=activation)


def sync_batch_norm(x: Tensor, weight, bias, comm, *, running=None, momentum: float = 0.1, eps: float = 1e-5,
                    activation=None) -> Tensor:
    """Training-mode batch normalisation of x (N, C, *spatial) with the statistics of all ranks of `comm`
    (see the module docstring); `running` = (running_mean, running_var) are updated in place."""
    from mpi4py import MPI  # a communicator exists, so mpi4py is there

    xd = x.data
    c = xd.shape[1]
    axes = (0,) + tuple(range(2, xd.ndim))
    shape = (1, c) + (1,) * (xd.ndim - 2)
    count_sum = np.empty(c + 1)
    count_sum[:c] = xd.sum(axis=axes, dtype=np.float64)
    count_sum[c] = xd.size // c
    comm.Allreduce(MPI.IN_PLACE, count_sum, op=MPI.SUM)
    n = count_sum[c]
    if n <= 1:
        raise ValueError(f"x: batch normalisation in training needs more than 1 value per channel over all "
                         f"ranks, got {int(n)} (input shape on this rank {xd.shape})")
    mean = count_sum[:c] / n
    xc = xd.astype(np.float64) - mean.reshape(shape)
    sq = _channel_dot(xc, xc)  # sum of squared deviations per channel
    comm.Allreduce(MPI.IN_PLACE, sq, op=MPI.SUM)
    var = sq / n
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = xc
    xhat *= invstd.reshape(shape)
    w = None if weight is None else weight.data.astype(np.float64)
    y = xhat * w.reshape(shape) if w is not None else xhat.copy()
    if bias is not None:
        y += bias.data.astype(np.float64).reshape(shape)
    if activation == "relu":
        np.maximum(y, 0, out=y)
    y = y.astype(xd.dtype, copy=False)
    if running is not None:
        rm, rv = running
        rm[...] = (1 - momentum) * rm + momentum * mean
        rv[...] = (1 - momentum) * rv + momentum * var * (n / (n - 1))
    scale = invstd if w is None else invstd * w

    def backward(g):
        g = np.asarray(g, dtype=np.float64)
        if activation == "relu":
            g = g * (y > 0)
        sum_g = g.sum(axis=axes)
        sum_gx = _channel_dot(g, xhat)
        dx = None
        if x.requires_grad:
            sums = np.concatenate([sum_g, sum_gx])
            comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
            dx = g - (sums[:c] / n).reshape(shape)
            dx -= xhat * (sums[c:] / n).reshape(shape)
            dx *= scale.reshape(shape)
            dx = dx.astype(xd.dtype, copy=False)
        out = (dx,)
        if weight is not None:
            out += ((sum_gx.astype(weight.dtype) if weight.requires_grad else None),)
        if bias is not None:
            out += ((sum_g.astype(bias.dtype) if bias.requires_grad else None),)
        return out

    name = "sync_batch_norm" if activation is None else f"sync_batch_norm+{activation}"
    return Tensor._make(y, F._vector_parents(x, weight, bias), backward, name)


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per channel (axis 1), the sum over all other axes of a * b."""
    n, c = a.shape[:2]
    return np.einsum("ncl,ncl->c", a.reshape(n, c, -1), b.reshape(n, c, -1))


def convert_sync_batchnorm(module, comm=None):
    """Replaces every BatchNorm1d/BatchNorm2d inside `module` by a SyncBatchNorm holding the same Parameters
    and buffers, in place, and returns the module (or the new layer when `module` is itself a BatchNorm).
    Call it on every rank before wrapping the model in DistributedDataParallel."""
    from ..nn import Module

    if isinstance(module, _BatchNorm):
        return module if isinstance(module, SyncBatchNorm) else SyncBatchNorm.from_batchnorm(module, comm)
    if not isinstance(module, Module):
        raise TypeError(f"module: expected an nnx.nn.Module, got {type(module).__name__}")

    def swap(value):
        if isinstance(value, _BatchNorm) and not isinstance(value, SyncBatchNorm):
            return SyncBatchNorm.from_batchnorm(value, comm)
        return value

    for m in list(module.modules()):
        for name, value in list(vars(m).items()):
            if isinstance(value, list) and any(isinstance(v, _BatchNorm) for v in value):
                setattr(m, name, [swap(v) for v in value])
            elif isinstance(value, tuple) and any(isinstance(v, _BatchNorm) for v in value):
                setattr(m, name, tuple(swap(v) for v in value))
            elif isinstance(value, _BatchNorm):
                setattr(m, name, swap(value))
    return module
