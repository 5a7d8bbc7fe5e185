"""Optimizer updates in plain NumPy: the twins of nnx.optim's fused C++ loops, written as the equations.

Each function takes one parameter, its gradient and its state arrays, and returns the new parameter and
new state as fresh arrays (nothing is changed in place), in the parameters' dtype. The equations are
PyTorch's (torch.optim.SGD, Adam/AdamW, RMSprop, Adagrad, Adadelta); `step` counts from 1. nnx's C++ loops compute the
same expressions (tests/test_optim.py compares them over several steps). One departure from PyTorch, shared
with the C++ loops: a decaying state (momentum, the moments and averages) whose magnitude falls under the
dtype's smallest normal number is stored as 0 (`_flush`), so that a dead unit's state does not sit in the
subnormals, where every step's arithmetic on it is many times slower.
"""
from __future__ import annotations

import numpy as np

__all__ = ["sgd_step", "adam_step", "rmsprop_step", "adagrad_step", "adadelta_step"]


def _flush(x):
    """x with its subnormal elements (0 < |x| < the smallest normal number) set to 0; NaN passes."""
    return np.where(np.abs(x) < np.finfo(x.dtype).tiny, x.dtype.type(0), x)


def sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
             nesterov=False):
    """Returns (param, momentum_buffer). momentum_buffer None means the first step (b <- g).

        g <- g + weight_decay * p
        b <- g (first step)  or  momentum * b + (1 - dampening) * g
        g <- g + momentum * b (nesterov)  or  b
        p <- p - lr * g
    """
    t = param.dtype.type
    g = grad + t(weight_decay) * param
    buf = None
    if momentum != 0:
        buf = _flush(g if momentum_buffer is None else t(momentum) * momentum_buffer + t(1 - dampening) * g)
        g = g + t(momentum) * buf if nesterov else buf
    return param - t(lr) * g, buf


def adam_step(param, grad, exp_avg, exp_avg_sq, step, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
              weight_decay=0.0, amsgrad=False, max_exp_avg_sq=None, decoupled=False):
    """Returns (param, exp_avg, exp_avg_sq, max_exp_avg_sq); decoupled=True is AdamW.

        p <- p * (1 - lr * weight_decay) (AdamW)   or   g <- g + weight_decay * p (Adam)
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        v' <- max(v_max, v) (amsgrad)  or  v
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v') / sqrt(1 - beta2^t) + eps)
    """
    t = param.dtype.type
    beta1, beta2 = betas
    g = grad
    if decoupled:
        param = param * t(1 - lr * weight_decay)
    else:
        g = g + t(weight_decay) * param
    m = _flush(exp_avg + t(1 - beta1) * (g - exp_avg))
    v = _flush(t(beta2) * exp_avg_sq + t(1 - beta2) * g * g)
    vmax = None
    if amsgrad:
        vmax = v.copy() if max_exp_avg_sq is None else np.maximum(max_exp_avg_sq, v)
    denom = np.sqrt(vmax if amsgrad else v) / t(np.sqrt(1 - beta2 ** step)) + t(eps)
    return param - t(lr / (1 - beta1 ** step)) * m / denom, m, v, vmax


def rmsprop_step(param, grad, square_avg, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, momentum_buffer=None, grad_avg=None):
    """Returns (param, square_avg, momentum_buffer, grad_avg); the optional states start at zero.

        g <- g + weight_decay * p
        s <- alpha * s + (1 - alpha) * g^2
        a <- alpha * a + (1 - alpha) * g, d = sqrt(s - a^2) + eps (centered)   or   d = sqrt(s) + eps
        b <- momentum * b + g / d, p <- p - lr * b (momentum > 0)   or   p <- p - lr * g / d
    """
    t = param.dtype.type
    g = grad + t(weight_decay) * param
    s = _flush(t(alpha) * square_avg + t(1 - alpha) * g * g)
    a = None
    if centered:
        a = _flush(t(alpha) * (np.zeros_like(param) if grad_avg is None else grad_avg) + t(1 - alpha) * g)
        d = np.sqrt(s - a * a) + t(eps)
    else:
        d = np.sqrt(s) + t(eps)
    b = None
    if momentum > 0:
        b = _flush(t(momentum) * (np.zeros_like(param) if momentum_buffer is None else momentum_buffer) + g / d)
        return param - t(lr) * b, s, b, a
    return param - t(lr) * g / d, s, b, a


def adagrad_step(param, grad, state_sum, step, *, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10):
    """Returns (param, state_sum).

        g <- g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s <- s + g^2
        p <- p - clr * g / (sqrt(s) + eps)
    """
    t = param.dtype.type
    g = grad + t(weight_decay) * param
    s = state_sum + g * g
    clr = lr / (1 + (step - 1) * lr_decay)
    return param - t(clr) * g / (np.sqrt(s) + t(eps)), s


def adadelta_step(param, grad, square_avg, acc_delta, *, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    """Returns (param, square_avg, acc_delta).

        g <- g + weight_decay * p
        s <- rho * s + (1 - rho) * g^2
        d = sqrt(u + eps) / sqrt(s + eps) * g
        u <- rho * u + (1 - rho) * d^2
        p <- p - lr * d
    """
    t = param.dtype.type
    g = grad + t(weight_decay) * param
    s = _flush(t(rho) * square_avg + t(1 - rho) * g * g)
    d = np.sqrt(acc_delta + t(eps)) / np.sqrt(s + t(eps)) * g
    u = _flush(t(rho) * acc_delta + t(1 - rho) * d * d)
    return param - t(lr) * d, s, u
