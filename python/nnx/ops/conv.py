"""2-D convolution on the C++ kernels (cpp/conv): NCHW, PyTorch's conv2d semantics.

The algorithm is chosen per shape (see `conv2d_algorithm`):
- "depthwise" for one input channel per group (groups > 1); its forward runs on flat planes (a vector of
  outputs across rows, one masked load a tap) at stride 1 or 2 where stride times the output's width reaches
  the input's (padding of half the filter; stride 1 only with AVX2, and stride 2 on input rows of at most 48 on
  Zen 4's AVX-512 table), else across channels or plane by plane;
  with one filter per channel its dx is that forward over the output gradient at stride 1, and at stride 2
  (AVX-512, where the strided forward runs flat) four such phases interleaved; the weight gradient runs across
  channels;
- "gemm1x1" for 1x1 kernels with stride 1 and no padding (one GEMM per image on x itself);
- for stride 1 with at most 8 input channels per group and C/groups*R*S <= 256, "direct" or "implicit",
  whichever a cost model (multiply-adds over the fraction of vector lanes kept busy, plus implicit's
  transposed stores) rates cheaper: "direct" runs SIMD along an output row with the taps in registers
  (LeNet's conv1: 6 filters, 28-wide rows), "implicit" is an implicit GEMM with SIMD along the filters,
  reading x through offsets instead of im2col columns (LeNet's conv2: 16 filters, 10-wide rows); for the
  stride-1 dx both choose by a modelled cost among the direct kernel over dz padded by the kernel's extent,
  the implicit GEMM of that transposed convolution (many channels on maps narrower than a vector), and
  "kvec", which sums over the filters in vector lanes and multiplies only the taps that land on dz (LeNet's
  conv2, whose full correlation is half padding); `conv2d_dx_path` says which;
- "winograd" for 3x3 kernels with stride 1, no dilation and one group where the smaller channel count is
  at least 64, or at least 32 on maps at least 6 wide, or at least 16 on maps at least 8 wide; and for 5x5
  kernels where both channel counts are at least 16, an output row holds at least 5 2x2 tiles and the
  smaller channel count times those tiles is at least 128. 3x3 runs Winograd F(4x4, 3x3) (at most 128
  channels and at least 7 outputs a row: 36 multiply-adds per 4x4 outputs, channel and filter instead of
  144) or F(2x2, 3x3) (16 per 2x2 instead of 36), 5x5 F(2x2, 5x5) (36 instead of 100); transforms in
  cpp/conv/simd/winograd.inc, one GEMM per transform point on the GEMM family's micro-kernel; its dx is the
  same algorithm over dy, its dw the sum over tiles of the transformed dy and x, one GEMM per transform
  point, transformed back;
- "implicit" also for other layers with at least 16 filters per group and C/groups*R*S <= 1024 (4096 on
  the AVX-512 tables: CPUs with full-width 512-bit FMA pipes, whose wide tile runs at twice the rate, and Zen
  4's, as measured there), strided ones included, except 1x1 kernels with a stride (unless the wide tile takes
  them) and filters past 1 MiB in batches of under 256 output pixels in all (there im2col's deep tiles of
  several images win); a strided dx runs the implicit GEMM in
  phases (each residue class of dx's rows and columns a stride-1 correlation of dy with that class's taps)
  where every phase has taps, blocks of 16 channels are 3/4 full and the output has at least 64 pixels (on
  Zen 4's table 16 up to 1024 taps, 100 past them), else col2im; the weight gradient goes through im2col's
  GEMM once its partial sums pass 1 MiB;
- else "im2col" (L2-sized tiles of columns in a reused workspace + the GEMM, tiles of at least 256 columns
  where the filters pass 1 MiB; dx through col2im).
dw and db are always reduced over fixed chunks of images, so results do not depend on the thread count.
Any algorithm can be forced with `algorithm=`, which the tests use to check each against the reference.
"""
from __future__ import annotations

import functools

import numpy as np

from .._backend import _C
from .._args import empty, float_array, pair, same_dtype, to_int
from ._checks import contiguous
from .gemm import activation_code
from .pool import _pool, _relu, max_pool2d_backward

__all__ = ["conv2d", "conv2d_backward", "conv2d_algorithm", "conv2d_dx_path", "conv2d_max_pool2d",
           "conv2d_max_pool2d_backward"]

# The algorithm names: defined once in C++ (cpp/conv/conv.h, ConvAlgo), exported by the bindings.
ALGORITHMS = _C.CONV_ALGORITHMS


def _params(stride, padding, dilation, groups):
    return (pair(stride, "stride", 1), pair(padding, "padding", 0), pair(dilation, "dilation", 1),
            to_int(groups, "groups", 1))


@functools.lru_cache(maxsize=256)
def _plan_cached(x_shape, w_shape, params, algorithm):
    return _C.conv2d_plan(x_shape, w_shape, *params, algorithm)


def _plan(x, w, b, stride, padding, dilation, groups, algorithm):
    """The extension's validated plan (geometry and algorithm; it raises ValueError naming the argument).
    Memoised: a training loop convolves the same shapes every step, forward and backward, and the geometry
    is checked once per distinct call rather than in each of them."""
    for name, a in (("x", x), ("w", w)):
        if a.ndim != 4:
            kind = "(N, C, H, W)" if name == "x" else "(K, C/groups, R, S)"
            raise ValueError(f"{name}: expected a 4-D array {kind}, got shape {a.shape}")
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm: expected a str, got {type(algorithm).__name__}")
    plan = _plan_cached(x.shape, w.shape, _params(stride, padding, dilation, groups), algorithm)
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"b: expected shape ({w.shape[0]},) (one bias per output channel), got {b.shape}")
    return plan


def _shape_plan(x_shape, w_shape, stride, padding, dilation, groups, algorithm):
    x_shape, w_shape = tuple(int(v) for v in x_shape), tuple(int(v) for v in w_shape)
    for name, s in (("x", x_shape), ("w", w_shape)):
        if len(s) != 4:
            raise ValueError(f"{name}: expected a 4-D shape, got {s}")
    return _plan_cached(x_shape, w_shape, _params(stride, padding, dilation, groups), algorithm)


def conv2d_algorithm(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1) -> str:
    """The algorithm conv2d(..., algorithm="auto") runs for these shapes."""
    return _shape_plan(x_shape, w_shape, stride, padding, dilation, groups, "auto").algorithm


def conv2d_dx_path(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, algorithm="auto") -> str:
    """How conv2d_backward computes dx for these shapes: "col2im", "direct", "implicit", "kvec",
    "depthwise" or "winograd" (cpp/conv/conv.h, ConvDxPath)."""
    return _shape_plan(x_shape, w_shape, stride, padding, dilation, groups, algorithm).dx_path


def _inputs(x, w, b):
    x, w = float_array(x, "x"), float_array(w, "w")
    b = None if b is None else float_array(b, "b")
    same_dtype(x=x, w=w, b=b)
    return x, w, b


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None, negative_slope=0.01,
           algorithm="auto"):
    """y = act(conv2d(x, w) + b) as torch.nn.functional.conv2d (cross-correlation), x (N, C, H, W),
    w (K, C/groups, R, S), b (K,) or None; stride/padding/dilation an int or a pair. The bias and the
    optional activation ('relu', 'leaky_relu', 'sigmoid', 'tanh') are applied in the same pass as the
    convolution's output tile."""
    x, w, b = _inputs(x, w, b)
    plan = _plan(x, w, b, stride, padding, dilation, groups, algorithm)
    act = activation_code(activation)
    out = empty(plan.out_shape, x.dtype, "y")
    _C.conv2d(contiguous(x, "x"), contiguous(w, "w"), None if b is None else contiguous(b, "b"), out, plan, act,
              float(negative_slope))
    return out


def conv2d_backward(dy, x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None,
                    negative_slope=0.01, y=None, needs=(True, True, True), algorithm="auto"):
    """(dx, dw, db) of conv2d. With an activation, `y` must be the forward output (its derivative is taken
    from y). `needs` = (dx, dw, db) flags skips gradients nobody uses (a network's first layer never needs
    dx); skipped ones, and db when b is None, are None."""
    x, w, b = _inputs(x, w, b)
    dy = float_array(dy, "dy")
    same_dtype(x=x, dy=dy)
    plan = _plan(x, w, b, stride, padding, dilation, groups, algorithm)
    out_shape = plan.out_shape
    if dy.shape != out_shape:
        raise ValueError(f"dy: expected shape {out_shape} (the output of conv2d), got {dy.shape}")
    act = activation_code(activation)
    if act:
        if y is None:
            raise ValueError("y: conv2d_backward with an activation needs the forward output y")
        y = float_array(y, "y")
        same_dtype(x=x, y=y)
        if y.shape != out_shape:
            raise ValueError(f"y: expected shape {out_shape} (the output of conv2d), got {y.shape}")
        y = contiguous(y, "y")
    else:
        y = None
    needs = tuple(bool(v) for v in needs) + (True,) * (3 - len(needs))
    dx = empty(x.shape, x.dtype, "dx") if needs[0] else None
    dw = empty(w.shape, x.dtype, "dw") if needs[1] else None
    db = empty(w.shape[0], x.dtype, "db") if (needs[2] and b is not None) else None
    if dx is not None or dw is not None or db is not None:
        _C.conv2d_backward(contiguous(dy, "dy"), contiguous(x, "x"), contiguous(w, "w"), y, dx, dw, db, plan, act,
                           float(negative_slope))
    return dx, dw, db


def _pooling_of(plan, kernel_size, pool_stride):
    """The max pooling (no padding or dilation) of the plan's output, its parameters checked."""
    if pool_stride is not None:
        pair(pool_stride, "pool_stride", 1)  # the pooling's own check would name it "stride"
    return _pool(plan.out_shape, kernel_size, pool_stride, 0, 1)


def conv2d_max_pool2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, kernel_size, pool_stride=None,
                      activation=None, algorithm="auto"):
    """(y, indices) = max_pool2d(conv2d(x, w, b, stride, padding, dilation, groups), kernel_size, pool_stride,
    return_indices=True, activation=activation): a convolution followed by max pooling (no padding or
    dilation; activation None or "relu", applied to the maxima), the convolution's output pooled image by
    image while it is in cache instead of stored. The backward is max_pool2d_backward (indices, and y with
    the ReLU) then conv2d_backward: conv2d_max_pool2d_backward."""
    x, w, b = _inputs(x, w, b)
    plan = _plan(x, w, b, stride, padding, dilation, groups, algorithm)
    pool = _pooling_of(plan, kernel_size, pool_stride)
    relu = _relu(activation)
    out = empty(pool.out_shape, x.dtype, "y")
    indices = empty(pool.out_shape, np.int32, "indices")
    if out.size:
        _C.conv2d_max_pool2d(contiguous(x, "x"), contiguous(w, "w"), None if b is None else contiguous(b, "b"), out,
                             indices, plan, *pool.k, *pool.s, relu)
    return out, indices


def conv2d_max_pool2d_backward(dy, x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, kernel_size,
                               pool_stride=None, indices, activation=None, y=None, needs=(True, True, True),
                               algorithm="auto"):
    """(dx, dw, db) of conv2d_max_pool2d from its indices (and, with activation="relu", its output y):
    max_pool2d_backward into the convolution's output gradient, then conv2d_backward."""
    x, w, b = _inputs(x, w, b)
    plan = _plan(x, w, b, stride, padding, dilation, groups, algorithm)
    _pooling_of(plan, kernel_size, pool_stride)
    # The pooling's backward reads only its input's shape and dtype (the indices say where dy goes): a
    # zero-strided stand-in for the convolution's output, which was never stored.
    z = np.broadcast_to(np.zeros((), x.dtype), plan.out_shape)
    dz = max_pool2d_backward(dy, z, kernel_size, pool_stride, indices=indices, activation=activation, y=y)
    return conv2d_backward(dz, x, w, b, stride, padding, dilation, groups, needs=needs, algorithm=algorithm)
