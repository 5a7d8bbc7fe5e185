"""2-D convolution on the C++ kernels (cpp/conv): NCHW, PyTorch's conv2d semantics.

The algorithm is chosen per shape (see `conv2d_algorithm`):
- "depthwise" for one input channel per group (groups > 1);
- "gemm1x1" for 1x1 kernels with stride 1 and no padding (one GEMM per image on x itself);
- for stride 1 with at most 8 input channels per group and C/groups*R*S <= 256, "direct" or "implicit",
  whichever keeps more vector lanes busy: "direct" runs SIMD along an output row with the taps in
  registers (LeNet's conv1: 6 filters, 28-wide rows), "implicit" is an implicit GEMM with SIMD along the
  filters, reading x through offsets instead of im2col columns (LeNet's conv2: 16 filters, 10-wide rows);
  both take dx as a direct convolution with the flipped filters;
- "implicit" also for other stride-1 layers with at least 16 filters per group and C/groups*R*S <= 1024;
- else "im2col" (L2-sized tiles of columns in a reused workspace + the GEMM; dx through col2im).
dw and db are always reduced over fixed chunks of images, so results do not depend on the thread count.
Any algorithm can be forced with `algorithm=`, which the tests use to check each against the reference.
"""
from __future__ import annotations

import numpy as np

from .._backend import _C
from .._args import contiguous, empty, float_array, pair, same_dtype, to_int
from .gemm import activation_code

__all__ = ["conv2d", "conv2d_backward", "conv2d_algorithm"]

ALGORITHMS = ("auto", "gemm1x1", "im2col", "direct", "depthwise", "implicit")


def _params(stride, padding, dilation, groups):
    return (pair(stride, "stride", 1), pair(padding, "padding", 0), pair(dilation, "dilation", 1),
            to_int(groups, "groups", 1))


def _check_shapes(x_shape, w_shape, stride, padding, dilation, groups, b_shape=None):
    """Validates the geometry and returns the output shape (N, K, P, Q)."""
    if len(x_shape) != 4:
        raise ValueError(f"x: expected a 4-D array (N, C, H, W), got shape {tuple(x_shape)}")
    if len(w_shape) != 4:
        raise ValueError(f"w: expected a 4-D array (K, C/groups, R, S), got shape {tuple(w_shape)}")
    n, c, h, wid = x_shape
    k, cg, r, s = w_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if c < 1 or h < 1 or wid < 1:
        raise ValueError(f"x: expected C, H, W >= 1, got shape {tuple(x_shape)}")
    if c % groups:
        raise ValueError(f"groups: expected a divisor of the {c} input channels of x, got {groups}")
    if k < 1 or r < 1 or s < 1 or cg != c // groups or k % groups:
        raise ValueError(f"w: expected shape (K, {c // groups}, R, S) with K a positive multiple of "
                         f"groups={groups} for x with {c} channels, got {tuple(w_shape)}")
    eh, ew = dh * (r - 1) + 1, dw * (s - 1) + 1
    if eh > h + 2 * ph or ew > wid + 2 * pw:
        raise ValueError(f"w: the kernel {r}x{s} with dilation {dilation} spans {eh}x{ew}, larger than the "
                         f"input {h}x{wid} padded by {padding} ({h + 2 * ph}x{wid + 2 * pw})")
    if b_shape is not None and tuple(b_shape) != (k,):
        raise ValueError(f"b: expected shape ({k},) (one bias per output channel), got {tuple(b_shape)}")
    return (n, k, (h + 2 * ph - eh) // sh + 1, (wid + 2 * pw - ew) // sw + 1)


def _check_algorithm(algorithm, w_shape, stride, padding):
    """A known name that applies to the shapes (the kernels check too; this also covers a backward call
    that needs no gradient and so never reaches them)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {', '.join(repr(a) for a in ALGORITHMS)}, got {algorithm!r}")
    if algorithm == "gemm1x1" and (w_shape[2:] != (1, 1) or stride != (1, 1) or padding != (0, 0)):
        raise ValueError("algorithm: 'gemm1x1' needs a 1x1 kernel with stride 1 and padding 0")
    if algorithm == "depthwise" and w_shape[1] != 1:
        raise ValueError("algorithm: 'depthwise' needs one input channel per group (groups == C)")
    return algorithm


def conv2d_algorithm(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1) -> str:
    """The algorithm conv2d(..., algorithm="auto") runs for these shapes."""
    st, pad, dil, groups = _params(stride, padding, dilation, groups)
    x_shape, w_shape = tuple(int(v) for v in x_shape), tuple(int(v) for v in w_shape)
    _check_shapes(x_shape, w_shape, st, pad, dil, groups)
    return _C.conv2d_algorithm(x_shape, w_shape, st, pad, dil, groups)


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
    st, pad, dil, groups = _params(stride, padding, dilation, groups)
    out_shape = _check_shapes(x.shape, w.shape, st, pad, dil, groups, None if b is None else b.shape)
    act = activation_code(activation)
    algorithm = _check_algorithm(algorithm, w.shape, st, pad)
    out = empty(out_shape, x.dtype, "y")
    _C.conv2d(contiguous(x, "x"), contiguous(w, "w"), None if b is None else contiguous(b, "b"), out, st, pad, dil, groups,
              act, float(negative_slope), algorithm)
    return out


def conv2d_backward(dy, x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None,
                    negative_slope=0.01, y=None, needs=(True, True, True), algorithm="auto"):
    """(dx, dw, db) of conv2d. With an activation, `y` must be the forward output (its derivative is taken
    from y). `needs` = (dx, dw, db) flags skips gradients nobody uses (a network's first layer never needs
    dx); skipped ones, and db when b is None, are None."""
    x, w, b = _inputs(x, w, b)
    dy = float_array(dy, "dy")
    same_dtype(x=x, dy=dy)
    st, pad, dil, groups = _params(stride, padding, dilation, groups)
    out_shape = _check_shapes(x.shape, w.shape, st, pad, dil, groups, None if b is None else b.shape)
    if dy.shape != out_shape:
        raise ValueError(f"dy: expected shape {out_shape} (the output of conv2d), got {dy.shape}")
    act = activation_code(activation)
    algorithm = _check_algorithm(algorithm, w.shape, st, pad)
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
        _C.conv2d_backward(contiguous(dy, "dy"), contiguous(x, "x"), contiguous(w, "w"), y, dx, dw, db, st, pad, dil, groups,
                           act, float(negative_slope), algorithm)
    return dx, dw, db
