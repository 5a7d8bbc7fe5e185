"""nnx.functional: the differentiable form of every op.

Each function is one forward/backward pair: the forward calls `<op>` of the active backend on the
tensors' ndarrays, the backward closure calls `<op>_backward` of the same backend. The backend is nnx.ops
(the C++ kernels) by default; `use_backend(nnx.reference)` runs the whole stack on the NumPy reference
instead, so a model can be checked against the oracle end to end:

    with nnx.functional.use_backend(nnx.reference):
        loss = loss_fn(model(x), y); loss.backward()

Backend functions are looked up when called, so an op whose kernel family is not built yet fails only
when used. Gradients nobody needs are never computed: linear_backward and conv2d_backward receive
needs=(dx?, dw?, db?) from the inputs' requires_grad (the first layer of a network never computes dx).
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np

from . import _capture
from ._args import owns_memory
from . import anomaly as _anomaly
from . import losses as _losses
from . import ops as _ops
from .losses import (elastic_net_penalty, huber_loss, kl_div, l1_loss, l1_penalty, nll_loss,  # noqa: F401
                     smooth_l1_loss, sparsity_penalty)
from .random import get_rng
from .tensor import Tensor, is_grad_enabled

_backend = _ops


@contextlib.contextmanager
def use_backend(backend):
    """Runs the functional ops (and so every nn module) on `backend` (nnx.ops or nnx.reference) inside
    the block. The backward of a tensor uses the backend that computed its forward."""
    global _backend
    prev = _backend
    _backend = backend
    try:
        yield backend
    finally:
        _backend = prev


def get_backend():
    return _backend


def _fn(backend, name: str):
    try:
        return getattr(backend, name)
    except AttributeError:
        raise NotImplementedError(
            f"{name}: backend {getattr(backend, '__name__', backend)!r} has no {name} (its kernel family is "
            f"not available in this build)") from None


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _first(grads):
    return grads[0] if isinstance(grads, (tuple, list)) else grads


def _unary(name: str, x, **kw) -> Tensor:
    """y = backend.name(x, **kw); dx = backend.name_backward(dy, x, **kw)."""
    x = _t(x)
    b = _backend
    y = _fn(b, name)(x.data, **kw)
    xd = x.data
    return Tensor._make(y, (x,), lambda g: (_first(_fn(b, name + "_backward")(g, xd, **kw)),), name)


# ---------------------------------------------------------------------------- layers
def linear(x, w, b=None, activation=None, negative_slope: float = 0.01) -> Tensor:
    """y = act(x @ w.T + b), w shaped (out_features, in_features); x may have extra leading axes."""
    x, w = _t(x), _t(w)
    b = None if b is None else _t(b)
    if x.ndim != 2:
        lead = x.shape[:-1]
        y = linear(x.reshape(-1, x.shape[-1]), w, b, activation, negative_slope)
        return y.reshape(lead + (w.shape[0],))
    be = _backend
    act_kw = {} if activation is None else {"activation": activation, "negative_slope": negative_slope}
    bd = None if b is None else b.data
    slot = _ReluSlot(_fn(be, "linear")(x.data, w.data, bd, **act_kw), be, activation)

    def backward(g):
        needs = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)
        kw = dict(act_kw, activation=slot.activation, y=slot.y) if slot.activation is not None else {}
        return _fn(be, "linear_backward")(g, x.data, w.data, bd, needs=needs, **kw)

    parents = (x, w) if b is None else (x, w, b)
    return _with_slot(Tensor._make(slot.y, parents, backward, "linear" if activation is None
                                   else f"linear+{activation}"), slot)


def matmul(a, b) -> Tensor:
    """a @ b as torch.matmul: matrix products over the last two axes, leading axes a broadcast batch, a 1-D
    operand a row (a) or a column (b). Float tensors of one dtype (Tensor's @ sends others to NumPy)."""
    a, b = _t(a), _t(b)
    be = _backend
    ad, bd = a.data, b.data

    def backward(g):
        return _fn(be, "matmul_backward")(g, ad, bd, needs=(a.requires_grad, b.requires_grad))

    return Tensor._make(_fn(be, "matmul")(ad, bd), (a, b), backward, "matmul")


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, activation=None,
           negative_slope: float = 0.01) -> Tensor:
    """2-D convolution (cross-correlation) as torch.nn.functional.conv2d, NCHW, w (K, C/groups, R, S),
    with an optional fused activation applied in the kernel's epilogue."""
    x, w = _t(x), _t(w)
    b = None if b is None else _t(b)
    be = _backend
    geom = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    act_kw = {}
    if activation is not None:
        act_kw["activation"] = activation
        if activation == "leaky_relu":
            act_kw["negative_slope"] = negative_slope
    bd = None if b is None else b.data
    slot = _ReluSlot(_fn(be, "conv2d")(x.data, w.data, bd, **geom, **act_kw), be, activation)

    def backward(g):
        needs = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)
        kw = dict(act_kw, activation=slot.activation, y=slot.y) if slot.activation is not None else {}
        return _fn(be, "conv2d_backward")(g, x.data, w.data, bd, **geom, needs=needs, **kw)

    parents = (x, w) if b is None else (x, w, b)
    return _with_slot(Tensor._make(slot.y, parents, backward, "conv2d" if activation is None
                                   else f"conv2d+{activation}"), slot)


def conv2d_max_pool2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, kernel_size, pool_stride=None,
                      activation=None) -> Tensor:
    """max_pool2d(conv2d(x, w, b, stride, padding, dilation, groups), kernel_size, pool_stride,
    activation=activation) in one op: the convolution's output is pooled image by image while it is in cache,
    never stored (neither backward needs it: the pooling's takes its indices and, with the ReLU, its own
    output). The backward runs max_pool2d_backward then conv2d_backward. Same bits as the two ops."""
    x, w = _t(x), _t(w)
    b = None if b is None else _t(b)
    be = _backend
    geom = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    bd = None if b is None else b.data
    y, idx = _fn(be, "conv2d_max_pool2d")(x.data, w.data, bd, **geom, kernel_size=kernel_size,
                                          pool_stride=pool_stride, activation=activation)
    act_kw = {} if activation is None else {"activation": activation, "y": y}

    def backward(g):
        needs = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)
        return _fn(be, "conv2d_max_pool2d_backward")(g, x.data, w.data, bd, **geom, kernel_size=kernel_size,
                                                     pool_stride=pool_stride, indices=idx, needs=needs, **act_kw)

    parents = (x, w) if b is None else (x, w, b)
    return Tensor._make(y, parents, backward, "conv2d+max_pool2d" if activation is None
                        else f"conv2d+max_pool2d+{activation}")


def _takes_over_relu(x, refs: int, padding) -> bool:
    # x: the temporary result of an op whose relu was absorbed (F.relu above), as in PyTorch's
    # `F.max_pool2d(F.relu(self.conv1(x)), 2)`. refs: sys.getrefcount(x) as max_pool2d took it. Nothing else
    # may hold x (its gradient then comes from this pooling alone), no window may lie on padding (relu of the
    # maximum is then the maximum of the relus), and the anomaly mode must be off.
    slot = x._relu_slot
    return (slot.activation == "relu" and slot.y is x.data and _SOLE_REFS is not None and refs <= _SOLE_REFS[0]
            and not _anomaly.active and padding in (0, (0, 0)))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, activation=None) -> Tensor:
    """Max pooling. When a backward will follow, the forward also returns which element each window
    took, so the backward only scatters dy instead of searching every window again. activation="relu"
    gives relu of the maxima (the pooling of relu(x) where every window holds a real element), its
    backward masking dy by the pooled output.

    x the temporary result of a fused relu (`max_pool2d(relu(conv2d(...)), 2)`): the pooling takes over the
    ReLU's mask, read on the pooled output in its backward instead of on the whole of x in the op's (x's
    values are already relu'd; the same gradients, bit for bit)."""
    refs = sys.getrefcount(x)  # first, as _refs_of_argument takes it
    if (activation is None and type(x) is Tensor and x._relu_slot is not None and x.requires_grad
            and is_grad_enabled() and _takes_over_relu(x, refs, padding)):
        x._relu_slot.activation = None  # the op's backward no longer masks: this pooling's does
        x._relu_slot = None
        activation = "relu"
    x = _t(x)
    kw = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
    if activation is not None:
        kw["activation"] = activation
    if not (x.requires_grad and is_grad_enabled()):
        return _unary("max_pool2d", x, **kw)  # no graph is recorded: its backward is never called
    b = _backend
    y, idx = _fn(b, "max_pool2d")(x.data, return_indices=True, **kw)
    xd = x.data
    if activation is not None:
        kw["y"] = y
    return Tensor._make(y, (x,), lambda g: (_fn(b, "max_pool2d_backward")(g, xd, indices=idx, **kw),),
                        "max_pool2d" if activation is None else f"max_pool2d+{activation}")


def avg_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    return _unary("avg_pool2d", x, kernel_size=kernel_size, stride=stride, padding=padding)


def lp_pool2d(x, norm_type, kernel_size, stride=None) -> Tensor:
    return _unary("lp_pool2d", x, norm_type=norm_type, kernel_size=kernel_size, stride=stride)


def global_avg_pool2d(x) -> Tensor:
    return _unary("global_avg_pool2d", x)


# ---------------------------------------------------------------------------- activations
# relu(op(...)), where op has a fused form with a trailing ReLU (batch_norm, conv2d and linear called without
# an activation; a Tensor sum, whose backward then masks its gradient) and op's result is a temporary that
# nothing else holds, as in `relu(self.bn1(self.conv1(x)))` or `relu(out + identity)`:
# the ReLU overwrites that result in place and op's backward becomes its fused form (dy masked by y > 0
# inside op's backward kernel). That saves relu's new array in the forward and relu_backward's pass over dy
# and y in the backward, with the same values, bit for bit. Sequential fuses such pairs before op runs (one
# pass); this takes the functional form, which cannot know of the ReLU until op has returned.
class _ReluSlot:
    """Carried by a fusable op's result (Tensor._relu_slot) and read by that op's backward: the activation
    it differentiates (None, or "relu" once a following relu was absorbed) and its output array y."""

    __slots__ = ("activation", "y", "backend")

    def __init__(self, y, backend, activation=None):
        self.activation, self.y, self.backend = activation, y, backend


def _with_slot(out: Tensor, slot: _ReluSlot) -> Tensor:
    """out, offering to absorb a following relu when its op ran without an activation."""
    if slot.activation is None:
        out._relu_slot = slot
    return out


def _refs_of_argument(x) -> int:
    refs = sys.getrefcount(x)  # as relu takes it
    return refs


def _refs_of_data(x) -> int:
    y = x.data
    return sys.getrefcount(y)


def _calibrate_sole_refs():
    """What _refs_of_argument gives for a Tensor passed as a temporary, and _refs_of_data for an array held
    only by its Tensor and a _ReluSlot; measured rather than assumed, as interpreters differ in what a call
    holds. None when a Tensor held by a variable counts no more than a temporary (an interpreter whose calls
    borrow references): then no relu is absorbed."""
    temp = _refs_of_argument(Tensor(np.empty(1)))
    held = Tensor(np.empty(1))
    var = _refs_of_argument(held)
    held._relu_slot = _ReluSlot(held.data, None)
    return (temp, _refs_of_data(held)) if var > temp else None


def _absorbs_relu(x, refs: int) -> bool:
    # refs: sys.getrefcount(x) as relu took it. Nothing else may hold x (it is returned, changed, as relu's
    # result) nor its array (a forward hook keeping out.data, a view of it), the array must be its own (not a
    # view of another), and the anomaly mode must be off (it checks every op by name).
    slot = x._relu_slot
    if (_SOLE_REFS is None or refs > _SOLE_REFS[0] or slot.activation is not None or _anomaly.active
            or _refs_of_data(x) > _SOLE_REFS[1]):
        return False
    y = x.data
    return (slot.y is y and owns_memory(y) and y.flags.c_contiguous and y.flags.writeable
            and y.dtype in (np.float32, np.float64))


def relu(x) -> Tensor:
    """max(x, 0) element-wise. Applied to the temporary result of batch_norm, conv2d, linear or a Tensor
    sum (a + b), it is fused into that op (see _ReluSlot)."""
    refs = sys.getrefcount(x)  # first, as _refs_of_argument takes it
    if type(x) is Tensor and x._relu_slot is not None and _absorbs_relu(x, refs):
        slot = x._relu_slot
        _fn(slot.backend, "relu_")(slot.y)
        slot.activation = "relu"  # the slot stays on x: a max pooling taking x next may take the mask over
        if x._op:
            x._op += "+relu"
        return x
    return _unary("relu", x)


_SOLE_REFS = _calibrate_sole_refs()


def sigmoid(x) -> Tensor:
    return _unary("sigmoid", x)


def tanh(x) -> Tensor:
    return _unary("tanh", x)


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    return _unary("leaky_relu", x, negative_slope=negative_slope)


def elu(x, alpha: float = 1.0) -> Tensor:
    return _unary("elu", x, alpha=alpha)


def _softmax(name: str, x, dim: int) -> Tensor:
    """y = backend.name(x); the backward takes the gradient from y, which the graph keeps anyway, rather
    than recomputing the softmax from x."""
    x = _t(x)
    b = _backend
    y = _fn(b, name)(x.data, axis=dim)
    return Tensor._make(y, (x,), lambda g: (_fn(b, name + "_backward")(g, None, axis=dim, y=y),), name)


def softmax(x, dim: int = -1) -> Tensor:
    return _softmax("softmax", x, dim)


def log_softmax(x, dim: int = -1) -> Tensor:
    return _softmax("log_softmax", x, dim)


# ---------------------------------------------------------------------------- losses
def _target_array(target) -> np.ndarray:
    return target.data if isinstance(target, Tensor) else np.asarray(target)


def _loss(name: str, x, target, grad_target=None, **kw) -> Tensor:
    """A loss L(x, target): a 0-d tensor; the backend's backward gives dL/dx. `grad_target(dx)` gives
    dL/dtarget from dL/dx where the loss allows it (mse), else a target that requires grad is an error."""
    x = _t(x)
    be = _backend
    t = target if isinstance(target, Tensor) else None
    td = _target_array(target)
    if t is None and td.dtype.kind == "f" and td.dtype != x.dtype:
        td = td.astype(x.dtype)  # a float64 NumPy target for a float32 model, as Module inputs are converted
    if t is not None and t.requires_grad and grad_target is None:
        raise NotImplementedError(f"{name}: gradients with respect to the target are not supported; "
                                  f"pass target.detach()")
    out = np.asarray(_fn(be, name)(x.data, td, **kw), dtype=x.dtype)
    xd = x.data

    def backward(g):
        dx = _first(_fn(be, name + "_backward")(g, xd, td, **kw))
        return dx, (grad_target(dx) if t is not None and t.requires_grad else None)

    parents = (x,) if t is None else (x, t)
    return Tensor._make(out, parents, backward, name)


def cross_entropy(logits, target, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits (N, C) against integer class indices (N,). With label_smoothing
    eps the target distribution is (1 - eps) onehot + eps / C, as torch's."""
    if label_smoothing:
        return _losses.cross_entropy_smoothed(logits, target, label_smoothing, reduction)
    return _loss("cross_entropy", logits, target, reduction=reduction)


def mse_loss(pred, target, reduction: str = "mean") -> Tensor:
    # L depends on pred - target only, so dL/dtarget = -dL/dpred.
    return _loss("mse_loss", pred, target, grad_target=lambda dx: -dx, reduction=reduction)


def binary_cross_entropy_with_logits(z, target, reduction: str = "mean") -> Tensor:
    return _loss("binary_cross_entropy_with_logits", z, target, reduction=reduction)


def multiclass_hinge_loss(scores, target, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    return _loss("multiclass_hinge_loss", scores, target, margin=margin, reduction=reduction)


# ---------------------------------------------------------------------------- regularisation, normalisation
def dropout(x, p: float = 0.5, training: bool = True, seed=None) -> Tensor:
    """Inverted dropout: in training each element is zeroed with probability p and the survivors are
    scaled by 1/(1-p), so evaluation (identity) needs no rescaling. The mask is a hash of (seed, element
    index) (nnx.ops.dropout); the seed is drawn from nnx.random unless given. The forward saves the mask as
    bits (1/32 of a float32 array), which the backward reads instead of hashing every element again."""
    x = _t(x)
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p: expected a dropout probability in [0, 1], got {p!r}")
    if not training or p == 0.0:
        return x
    if seed is None:
        seed = _draw_seed()
        rec = _capture.current()
        if rec is not None:  # nnx.compile: the kernels read the seed from an array a replay refills first
            seed = rec.replay_value("dropout.seed", np.uint64, seed, _draw_seed)
    b = _backend
    kw = dict(p=float(p), training=True, seed=seed)
    y, mask = _fn(b, "dropout")(x.data, return_mask=True, **kw)
    xd = x.data
    return Tensor._make(y, (x,), lambda g: (_fn(b, "dropout_backward")(g, xd, mask=mask, **kw),), "dropout")


def _draw_seed() -> int:
    """A dropout mask's seed: the next draw of nnx's generator."""
    return int(get_rng().integers(0, 1 << 63))


def _vector_parents(*tensors):
    return tuple(t for t in tensors if t is not None)


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5, activation=None) -> Tensor:
    """Batch normalisation over the batch (and spatial) axes of x: (N, C) or (N, C, *spatial).

    training: statistics of this batch, xhat = (x - mean) / sqrt(var + eps) with the biased variance, and
    the running statistics (ndarrays, updated in place) move by `momentum` towards the batch mean and the
    unbiased variance, as PyTorch does. Otherwise the running statistics normalise (the batch's when
    there are none). y = xhat * weight + bias, then relu when activation="relu" (one fused pass; the
    backward masks dy with y > 0). The forward keeps its mean and 1/std for the backward.
    """
    x = _t(x)
    weight = None if weight is None else _t(weight)
    bias = None if bias is None else _t(bias)
    if x.ndim < 2:
        raise ValueError(f"x: expected an array (N, C, *spatial) with at least 2 dimensions, got shape {x.shape}")
    use_batch = bool(training) or running_mean is None or running_var is None
    rm, rv = (running_mean, running_var) if training or not use_batch else (None, None)
    be = _backend
    wd = None if weight is None else weight.data
    bd = None if bias is None else bias.data
    kw = dict(training=use_batch, momentum=momentum, eps=eps, activation=activation)
    y, mean, invstd = _fn(be, "batch_norm")(x.data, wd, bd, rm, rv, return_stats=True, **kw)
    slot = _ReluSlot(y, be, activation)
    del y
    xd = x.data

    def backward(g):
        needs = (x.requires_grad, weight is not None and weight.requires_grad,
                 bias is not None and bias.requires_grad)
        dx, dw, db = _fn(be, "batch_norm_backward")(
            g, xd, wd, bd, None, None, mean=mean, invstd=invstd, y=slot.y if slot.activation else None,
            needs=needs, **dict(kw, activation=slot.activation))
        return (dx,) + ((dw,) if weight is not None else ()) + ((db,) if bias is not None else ())

    name = "batch_norm" if activation is None else f"batch_norm+{activation}"
    return _with_slot(Tensor._make(slot.y, _vector_parents(x, weight, bias), backward, name), slot)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing `normalized_shape` axes of x (each leading index by its own
    mean and biased variance), then * weight + bias (shaped like normalized_shape)."""
    x = _t(x)
    weight = None if weight is None else _t(weight)
    bias = None if bias is None else _t(bias)
    be = _backend
    wd = None if weight is None else weight.data
    bd = None if bias is None else bias.data
    y, mean, invstd = _fn(be, "layer_norm")(x.data, normalized_shape, wd, bd, eps, return_stats=True)
    xd = x.data

    def backward(g):
        needs = (x.requires_grad, weight is not None and weight.requires_grad,
                 bias is not None and bias.requires_grad)
        dx, dw, db = _fn(be, "layer_norm_backward")(g, xd, normalized_shape, wd, bd, eps, mean=mean,
                                                    invstd=invstd, needs=needs)
        return (dx,) + ((dw,) if weight is not None else ()) + ((db,) if bias is not None else ())

    return Tensor._make(y, _vector_parents(x, weight, bias), backward, "layer_norm")


def flatten(x, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    return _t(x).flatten(start_dim, end_dim)


def maxout(x, pieces: int, dim: int = 1) -> Tensor:
    """Maxout: the maximum over groups of `pieces` consecutive features along `dim` (channels of a
    conv feature map, or the outputs of a Linear with out_features * pieces units). The backward finds
    which piece won again from x, as max pooling does."""
    x = _t(x)
    b = _backend
    kw = dict(pieces=pieces, axis=dim)
    y = _fn(b, "maxout")(x.data, **kw)
    if not (x.requires_grad and is_grad_enabled()):
        return Tensor(y)
    xd = x.data
    return Tensor._make(y, (x,), lambda g: (_fn(b, "maxout_backward")(g, xd, **kw),), "maxout")


# ---------------------------------------------------------------------------- recurrent, embedding
def _recurrent(name: str, x, states, w_ih, w_hh, b_ih, b_hh, lengths, kw) -> tuple:
    """One recurrent layer over a time-major sequence: Tensors (y, h_n) or (y, h_n, c_n).

    The op returns several arrays but the graph records one node, y's: h_n (c_n) are children of y whose
    backward only stashes their gradient (and hands y a free broadcast zero), and y's backward, which
    the topological order runs after theirs, passes all of them to the op's backward through time with
    the forward's workspace (the gate activations of every step)."""
    x, w_ih, w_hh = _t(x), _t(w_ih), _t(w_hh)
    states = [None if s is None else _t(s) for s in states]
    b_ih = None if b_ih is None else _t(b_ih)
    b_hh = None if b_hh is None else _t(b_hh)
    inputs = [x, *states, w_ih, w_hh, b_ih, b_hh]
    args = tuple(None if t is None else t.data for t in inputs)
    be = _backend
    need = is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    outs = _fn(be, name)(*args, lengths=lengths, return_workspace=need, **kw)
    if not need:
        return tuple(Tensor(o) for o in outs)
    *outs, ws = outs
    state_grads = {}

    def backward(gy):
        gs = [state_grads.pop(i, None) for i in range(1, len(outs))]
        grads = _fn(be, name + "_backward")(gy, *gs, *args, lengths=lengths, workspace=ws,
                                            needs_dx=x.requires_grad, **kw)
        return tuple(g for g, t in zip(grads, inputs) if t is not None)

    y = Tensor._make(outs[0], tuple(t for t in inputs if t is not None), backward, name)
    zero = np.broadcast_to(_ops._checks.constant_zeros((), outs[0].dtype), outs[0].shape)  # a declared constant

    def stash(i):
        def bw(g):
            state_grads[i] = g
            return (zero,)
        return bw

    return (y,) + tuple(Tensor._make(o, (y,), stash(i), f"{name}.state") for i, o in enumerate(outs[1:], 1))


def rnn(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity: str = "tanh", lengths=None) -> tuple:
    """(y, h_n) of one Elman RNN layer over x (T, N, input_size); see nnx.ops.rnn."""
    return _recurrent("rnn", x, [h0], w_ih, w_hh, b_ih, b_hh, lengths, {"nonlinearity": nonlinearity})


def lstm(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None) -> tuple:
    """(y, h_n, c_n) of one LSTM layer over x (T, N, input_size); see nnx.ops.lstm."""
    return _recurrent("lstm", x, [h0, c0], w_ih, w_hh, b_ih, b_hh, lengths, {})


def gru(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None) -> tuple:
    """(y, h_n) of one GRU layer over x (T, N, input_size); see nnx.ops.gru."""
    return _recurrent("gru", x, [h0], w_ih, w_hh, b_ih, b_hh, lengths, {})


def flip_sequences(x, lengths=None) -> Tensor:
    """x (T, N, ...) with each sequence's steps reversed: all T of them, or the first lengths[n] of row n
    (the padding stays where it is), so a reverse-direction layer reads each sequence from its end."""
    x = _t(x)
    if lengths is None:
        flipped = _ops._checks.contiguous(x.data[::-1], "x")  # a recorded copy while nnx.compile captures
        return Tensor._make(flipped, (x,), lambda g: (g[::-1],), "flip_sequences")
    T, N = x.shape[:2]
    lens = np.asarray(lengths).reshape(1, N)
    t = np.arange(T).reshape(T, 1)
    src = np.where(t < lens, lens - 1 - t, t)  # a permutation that is its own inverse
    cols = np.arange(N).reshape(1, N)
    return Tensor._make(x.data[src, cols], (x,), lambda g: (g[src, cols],), "flip_sequences")


def embedding(ids, weight, padding_idx=None) -> Tensor:
    """weight[ids] for integer ids of any shape; the padding_idx row gets no gradient."""
    weight = _t(weight)
    be = _backend
    idd = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    wd = weight.data
    y = _fn(be, "embedding")(idd, wd, padding_idx)
    return Tensor._make(y, (weight,), lambda g: (_fn(be, "embedding_backward")(g, idd, wd, padding_idx),),
                        "embedding")
