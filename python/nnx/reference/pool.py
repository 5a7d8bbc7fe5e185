"""Pooling in plain NumPy: max, average, power-average (Lp) and global average pooling, NCHW.

Every pooling op here is written the same way: the input is padded, then for each offset (i, j) inside
the kernel window a strided slice of the padded input picks, for every output position at once, the
input element at that offset of its window:

    tap(i, j) = xp[:, :, i*dh : i*dh + sh*(OH-1) + 1 : sh, j*dw : j*dw + sw*(OW-1) + 1 : sw]

The forward pass combines the taps (max, sum); the backward pass adds the gradient back through the same
slices. Output size: OH = (H + 2*ph - dh*(kh-1) - 1) // sh + 1 (PyTorch's, without ceil_mode).

Which input the gradient of a max goes to (PyTorch's rule, kept exactly so that results can be compared):
the window is scanned in row-major order (i outer, j inner), padded positions never count, and the
running choice moves to a later element only when it is strictly greater than the current maximum or is
NaN. So without NaNs the gradient goes to the FIRST maximum of the window (ties: earliest in scan order);
with NaNs the output is NaN and the gradient goes to the LAST NaN; a window of -inf values sends it to the
first real (unpadded) element. Padding is at most half the kernel (PyTorch's limit); a dilated window
can still lie wholly on padding: its output is -inf and it passes no gradient on.
"""
from __future__ import annotations

import numpy as np

from ._act import act_forward, act_grad_from_output

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "lp_pool2d",
           "lp_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward"]


def _pair(v):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _params(x, kernel_size, stride, padding, dilation=1):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    H, W = x.shape[2], x.shape[3]
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return (kh, kw), (sh, sw), (ph, pw), (dh, dw), (OH, OW)


def _taps(k, s, d, out):
    """Yields (tap number, slice of the padded input) for every kernel offset, in row-major order."""
    (kh, kw), (sh, sw), (dh, dw), (OH, OW) = k, s, d, out
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (OH - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (OW - 1) + 1, sw)
            yield i * kw + j, (slice(None), slice(None), rows, cols)


def _pad(x, p, value):
    (ph, pw) = p
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _max_scan(x, kernel_size, stride, padding, dilation):
    """(maximum, tap number of the chosen element) of every window, by PyTorch's scan rule."""
    x = np.asarray(x)
    k, s, p, d, out = _params(x, kernel_size, stride, padding, dilation)
    xp = _pad(x, p, -np.inf)
    real = _pad(np.ones(x.shape, dtype=bool), p, False)  # False on padded positions
    shape = x.shape[:2] + out
    best = np.full(shape, -np.inf, dtype=x.dtype)
    choice = np.full(shape, -1, dtype=np.int64)  # -1: no real element seen yet
    for t, sl in _taps(k, s, d, out):
        v = xp[sl]
        take = real[sl] & ((choice < 0) | (v > best) | np.isnan(v))
        best = np.where(take, v, best)
        choice = np.where(take, t, choice)
    return best, choice, (k, s, p, d, out)


def _check_activation(activation):
    if activation not in (None, "relu"):
        raise ValueError(f"activation: expected None or 'relu', got {activation!r}")


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, activation=None):
    """Maximum over each (dilated) window; padded positions never win; NaN in a window gives NaN.

    With return_indices=True also returns, as int32, the offset ih*W + iw inside its (H, W) plane of the
    element the scan picked for each output (PyTorch's indices), for max_pool2d_backward(indices=...).
    activation="relu": relu of the maxima (the indices those of the maxima)."""
    _check_activation(activation)
    best, choice, (k, s, p, d, out) = _max_scan(x, kernel_size, stride, padding, dilation)
    best = act_forward(best, activation)
    if not return_indices:
        return best
    # tap number t = i*kw + j of output (oh, ow) -> input row/column of that tap
    i, j = np.divmod(choice, k[1])
    oh = np.arange(out[0]).reshape(-1, 1)
    ow = np.arange(out[1]).reshape(1, -1)
    ih = oh * s[0] - p[0] + i * d[0]
    iw = ow * s[1] - p[1] + j * d[1]
    # -1 for a dilated window that holds no real element (it passes no gradient on)
    return best, np.where(choice < 0, -1, ih * np.asarray(x).shape[3] + iw).astype(np.int32)


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, dilation=1, indices=None, activation=None,
                        y=None):
    """dx: each window's dy goes to the one element the scan chose (see the module docstring), or to the
    plane offsets in `indices` when given (as max_pool2d(..., return_indices=True) returns them).
    activation="relu": dy is first multiplied by relu'(y) = [y > 0], y the forward's output."""
    _check_activation(activation)
    if activation is not None:
        if y is None:
            raise ValueError("y: activation='relu' needs the forward's output y")
        dy = np.asarray(dy) * act_grad_from_output(np.asarray(y), activation)
    x = np.asarray(x)
    if indices is not None:
        n, c, h, w = x.shape
        dx = np.zeros((n * c, h * w), dtype=x.dtype)
        plane = np.repeat(np.arange(n * c), np.asarray(indices).shape[2] * np.asarray(indices).shape[3])
        idx, g = np.asarray(indices).reshape(-1), np.asarray(dy).reshape(-1)
        real = idx >= 0
        np.add.at(dx, (plane[real], idx[real]), g[real])
        return dx.reshape(x.shape)
    _, choice, (k, s, p, d, out) = _max_scan(x, kernel_size, stride, padding, dilation)
    dxp = np.zeros(_pad(x, p, 0).shape, dtype=x.dtype)
    for t, sl in _taps(k, s, d, out):
        dxp[sl] += np.where(choice == t, dy, 0)
    return dxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]].copy()


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over each window; padded positions count as zeros (count_include_pad=True), so every window
    is divided by kh*kw."""
    x = np.asarray(x)
    k, s, p, d, out = _params(x, kernel_size, stride, padding)
    xp = _pad(x, p, 0)
    total = np.zeros(x.shape[:2] + out, dtype=x.dtype)
    for _, sl in _taps(k, s, d, out):
        total += xp[sl]
    return total / (k[0] * k[1])


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0):
    x = np.asarray(x)
    k, s, p, d, out = _params(x, kernel_size, stride, padding)
    dxp = np.zeros(_pad(x, p, 0).shape, dtype=x.dtype)
    g = np.asarray(dy) / (k[0] * k[1])
    for _, sl in _taps(k, s, d, out):
        dxp[sl] += g
    return dxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]].copy()


def _lp_sum(x, norm_type, kernel_size, stride):
    x = np.asarray(x)
    k, s, p, d, out = _params(x, kernel_size, stride, 0)
    total = np.zeros(x.shape[:2] + out, dtype=x.dtype)
    with np.errstate(invalid="ignore"):
        for _, sl in _taps(k, s, d, out):
            total += x[sl] ** norm_type
    return total, (k, s, d, out)


def lp_pool2d(x, norm_type, kernel_size, stride=None):
    """(sum over the window of x**p) ** (1/p), PyTorch's LPPool2d (no padding). p=1 is the plain sum,
    p=2 the L2 pooling. As in PyTorch, x**p of a negative x is negative for odd integer p and NaN for a
    fractional p, and a negative sum has a NaN p-th root unless p=1. p=inf is the maximum of |x|."""
    if norm_type == np.inf:
        return max_pool2d(np.abs(x), kernel_size, stride)
    total, _ = _lp_sum(x, norm_type, kernel_size, stride)
    with np.errstate(invalid="ignore"):
        return (total ** (1.0 / norm_type)).astype(total.dtype)


def lp_pool2d_backward(dy, x, norm_type, kernel_size, stride=None):
    """d/dx (sum x**p) ** (1/p) = x**(p-1) * out**(1-p); where the window's sum is 0 the gradient is 0
    (PyTorch sets it so instead of 0 * inf). An element outside every window gets 0 (PyTorch's autograd
    gives NaN there when p is fractional and the element negative: 0 * NaN)."""
    x = np.asarray(x)
    p = norm_type
    if p == np.inf:  # d|x|/dx = sign(x)
        return max_pool2d_backward(dy, np.abs(x), kernel_size, stride) * np.sign(x)
    total, (k, s, d, out) = _lp_sum(x, p, kernel_size, stride)
    dx = np.zeros_like(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = total ** (1.0 / p)
        g = np.where(total != 0, np.asarray(dy) * y ** (1.0 - p), 0)
        for _, sl in _taps(k, s, d, out):
            dx[sl] += x[sl] ** (p - 1) * g
    return dx


def global_avg_pool2d(x):
    """Mean of each (H, W) plane -> (N, C, 1, 1)."""
    return np.asarray(x).mean(axis=(2, 3), keepdims=True)


def global_avg_pool2d_backward(dy, x):
    x = np.asarray(x)
    return np.broadcast_to(np.asarray(dy) / (x.shape[2] * x.shape[3]), x.shape).astype(x.dtype)
