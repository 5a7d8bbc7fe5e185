"""Reference 2-D convolution (cross-correlation, as PyTorch's conv2d), plain NumPy.

With the input zero-padded to xp, the output is a sum over the kernel offsets (r, s):

    y[n, k, p, q] = b[k] + sum_{c, r, s} w[k, c, r, s] * xp[n, g*Cg + c, p*sh + r*dh, q*sw + s*dw]

where g = k // (K/groups) is the group of output channel k and Cg = C/groups. For one offset (r, s) the
xp values form a shifted, strided slice of xp of shape (N, Cg, P, Q), so the whole convolution is a loop
over groups and offsets of one tensor contraction each. The backward pass follows the same slices:
dx scatters dz back through them, dw correlates dz with them, db sums dz.
"""
from __future__ import annotations

import numpy as np

from .._args import float_array, pair, same_dtype
from ._act import act_forward, act_grad_from_output
from .pool import max_pool2d, max_pool2d_backward

__all__ = ["conv2d", "conv2d_backward", "conv2d_max_pool2d", "conv2d_max_pool2d_backward"]


def _geometry(x, w, stride, padding, dilation, groups):
    sh, sw = pair(stride, "stride", 1)
    ph, pw = pair(padding, "padding", 0)
    dh, dw = pair(dilation, "dilation", 1)
    n, c, h, wid = x.shape
    k, cg, r, s = w.shape
    if c != cg * groups or k % groups:
        raise ValueError(f"w: expected shape (K, {c // groups}, R, S) with K divisible by groups={groups} "
                         f"for x with {c} channels, got {w.shape}")
    p = (h + 2 * ph - dh * (r - 1) - 1) // sh + 1
    q = (wid + 2 * pw - dw * (s - 1) - 1) // sw + 1
    if p < 1 or q < 1:
        raise ValueError(f"x: input {h}x{wid} padded by {ph},{pw} is smaller than the dilated kernel")
    return (sh, sw), (ph, pw), (dh, dw), p, q


def _window(xp, r, s, stride, dilation, p, q):
    """The (N, C, P, Q) slice of the padded input that kernel offset (r, s) multiplies."""
    (sh, sw), (dh, dw) = stride, dilation
    return xp[:, :, r * dh: r * dh + sh * (p - 1) + 1: sh, s * dw: s * dw + sw * (q - 1) + 1: sw]


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None,
           negative_slope=0.01):
    """y = act(conv(x, w) + b); x (N, C, H, W), w (K, C/groups, R, S), b (K,) or None."""
    x, w = float_array(x, "x"), float_array(w, "w")
    same_dtype(x=x, w=w, b=None if b is None else float_array(b, "b"))
    st, pad, dil, p, q = _geometry(x, w, stride, padding, dilation, groups)
    n, c = x.shape[:2]
    k, cg, r, s = w.shape
    kg = k // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    z = np.zeros((n, k, p, q), dtype=np.float64)
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for i in range(r):
            for j in range(s):
                z[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", _window(xg, i, j, st, dil, p, q),
                                                       wg[:, :, i, j])
    if b is not None:
        z += np.asarray(b).reshape(1, k, 1, 1)
    return np.ascontiguousarray(act_forward(z, activation, negative_slope), dtype=x.dtype)


def conv2d_backward(dy, x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None,
                    negative_slope=0.01, y=None, needs=(True, True, True)):
    """(dx, dw, db) of conv2d by the chain rule: dz = dy * act'(z) (through y), then for every offset
    (r, s): dx's window += dz . w[:, :, r, s], dw[:, :, r, s] = <dz, window>, and db = sum of dz over
    N, P, Q. `needs` skips gradients nobody uses; db is None when b is None."""
    x, w, dy = float_array(x, "x"), float_array(w, "w"), float_array(dy, "dy")
    st, pad, dil, p, q = _geometry(x, w, stride, padding, dilation, groups)
    if activation not in (None, "none"):
        if y is None:
            raise ValueError("y: conv2d_backward with an activation needs the forward output y")
        dz = dy * act_grad_from_output(np.asarray(y), activation, negative_slope)
    else:
        dz = dy
    dz = dz.astype(np.float64)
    n, c, h, wid = x.shape
    k, cg, r, s = w.shape
    kg = k // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1]))).astype(np.float64)
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape, dtype=np.float64)
    for g in range(groups):
        dzg = dz[:, g * kg:(g + 1) * kg]
        wg = w[g * kg:(g + 1) * kg]
        for i in range(r):
            for j in range(s):
                win = _window(dxp[:, g * cg:(g + 1) * cg], i, j, st, dil, p, q)  # a view: += writes dxp
                win += np.einsum("nkhw,kc->nchw", dzg, wg[:, :, i, j])
                dw[g * kg:(g + 1) * kg, :, i, j] = np.einsum(
                    "nkhw,nchw->kc", dzg, _window(xp[:, g * cg:(g + 1) * cg], i, j, st, dil, p, q))
    dx = dxp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wid]
    db = dz.sum(axis=(0, 2, 3)) if b is not None else None

    def out(a, need):
        return np.ascontiguousarray(a, dtype=x.dtype) if (need and a is not None) else None

    return out(dx, needs[0]), out(dw, needs[1]), out(db, len(needs) > 2 and needs[2])


def conv2d_max_pool2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, kernel_size, pool_stride=None,
                      activation=None):
    """(y, indices) = max_pool2d(conv2d(x, w, b, ...), kernel_size, pool_stride, return_indices=True,
    activation=activation): a convolution followed by max pooling without padding or dilation."""
    return max_pool2d(conv2d(x, w, b, stride, padding, dilation, groups), kernel_size, pool_stride,
                      return_indices=True, activation=activation)


def conv2d_max_pool2d_backward(dy, x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, kernel_size,
                               pool_stride=None, indices, activation=None, y=None, needs=(True, True, True)):
    """(dx, dw, db) of conv2d_max_pool2d: max_pool2d_backward (from the indices), then conv2d_backward."""
    x, w = float_array(x, "x"), float_array(w, "w")
    _, _, _, p, q = _geometry(x, w, stride, padding, dilation, groups)
    z = np.broadcast_to(np.zeros((), x.dtype), (x.shape[0], w.shape[0], p, q))
    dz = max_pool2d_backward(dy, z, kernel_size, pool_stride, indices=indices, activation=activation, y=y)
    return conv2d_backward(dz, x, w, b, stride, padding, dilation, groups, needs=needs)
