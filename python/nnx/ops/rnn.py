"""Recurrent layers (Elman RNN, LSTM, GRU) and embeddings on the C++ kernels (cpp/rnn). Same names and
signatures as nnx.reference.rnn, which states the equations.

One layer, one direction, the whole sequence per call, time-major: x (T, N, input_size), states (N, H)
(batch_first=True: x, y, dy, dx are (N, T, ...), read and written in place by the kernels, no transposes);
PyTorch's gate order and parameter shapes. h0 / c0 may be None (zeros; their gradient is then None).
`lengths` (N ints in [1, T]) runs row n for its first lengths[n] steps only. With
return_workspace=True the forward also returns an opaque workspace (the gate activations of every step)
that the matching *_backward takes as workspace=, so training never runs the forward twice; without it
the backward recomputes the forward.
"""
from __future__ import annotations

import numpy as np

from .._backend import _C
from ._checks import check_alloc, contiguous, empty, float_array, same_dtype, zeros

__all__ = ["rnn", "rnn_backward", "lstm", "lstm_backward", "gru", "gru_backward",
           "embedding", "embedding_backward"]

# Cell codes of cpp/rnn/rnn.h (RnnCell).
_CELLS = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}


class _Workspace:
    """What a forward keeps for its backward: the kernel's workspace (consumed by the backward) and y."""

    __slots__ = ("key", "ws", "y", "used")

    def __init__(self, key, ws, y):
        self.key, self.ws, self.y, self.used = key, ws, y, False


def _rnn_cell(nonlinearity) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return "rnn_" + nonlinearity


def _lengths(lengths, T: int, N: int):
    if lengths is None:
        return None
    arr = np.asarray(lengths.data if hasattr(lengths, "data") and not isinstance(lengths, np.ndarray) else lengths)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integer sequence lengths, got dtype {arr.dtype}")
    if arr.shape != (N,):
        raise ValueError(f"lengths: expected shape ({N},) (one length per sequence of the batch), got {arr.shape}")
    if N and (arr.min() < 1 or arr.max() > T):
        bad = arr[(arr < 1) | (arr > T)][0]
        raise ValueError(f"lengths: expected every length in [1, {T}] (T = x.shape[0]), found {int(bad)}")
    if arr.dtype == np.int64 and arr.flags.c_contiguous and arr.flags.aligned:
        return arr  # as it is (a captured step's lengths input stays the buffer its replays refill)
    return np.array(arr, dtype=np.int64)  # an aligned int64 copy: the kernel reads it as int64


def _state(s, name: str, N: int, H: int, dtype):
    if s is None:
        return None
    s = float_array(s, name)
    if s.shape != (N, H):
        raise ValueError(f"{name}: expected shape ({N}, {H}) (batch, hidden_size), got {s.shape}")
    if s.dtype != dtype:
        same_dtype(x=np.empty(0, dtype), **{name: s})
    return contiguous(s, name)


def _check(cell: str, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first=False):
    """Normalised arguments of one layer: C-contiguous arrays of one dtype, sizes checked."""
    x = float_array(x, "x")
    w_ih = float_array(w_ih, "w_ih")
    w_hh = float_array(w_hh, "w_hh")
    b_ih = None if b_ih is None else float_array(b_ih, "b_ih")
    b_hh = None if b_hh is None else float_array(b_hh, "b_hh")
    dtype = same_dtype(x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    if x.ndim != 3:
        order = "(N, T" if batch_first else "(T, N"
        raise ValueError(f"x: expected a 3-D {order}, input_size) array, got shape {x.shape}")
    N, T, I = x.shape if batch_first else (x.shape[1], x.shape[0], x.shape[2])
    if T == 0:
        raise ValueError(f"x: expected a sequence of at least 1 step, got T = 0 (shape {x.shape})")
    if not isinstance(batch_first, bool):
        raise TypeError(f"batch_first: expected a bool, got {type(batch_first).__name__}")
    if N == 0:
        raise ValueError(f"x: expected a batch of at least 1 sequence, got N = 0 (shape {x.shape})")
    if I == 0:
        raise ValueError(f"x: expected input_size >= 1, got shape {x.shape}")
    G = int(_C.rnn_gate_count(_CELLS[cell]))
    if w_hh.ndim != 2 or w_hh.shape[1] == 0 or w_hh.shape[0] != G * w_hh.shape[1]:
        raise ValueError(f"w_hh: expected shape ({G} * hidden_size, hidden_size), got {w_hh.shape}")
    H = w_hh.shape[1]
    if w_ih.shape != (G * H, I):
        raise ValueError(f"w_ih: expected shape ({G * H}, {I}) ({G} * hidden_size, input_size of x {x.shape}), "
                         f"got {w_ih.shape}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None and b.shape != (G * H,):
            raise ValueError(f"{name}: expected shape ({G * H},) ({G} * hidden_size), got {b.shape}")
    h0 = _state(h0, "h0", N, H, dtype)
    c0 = _state(c0, "c0", N, H, dtype)
    lens = _lengths(lengths, T, N)
    return (contiguous(x, "x"), h0, c0, contiguous(w_ih, "w_ih"), contiguous(w_hh, "w_hh"),
            None if b_ih is None else contiguous(b_ih, "b_ih"), None if b_hh is None else contiguous(b_hh, "b_hh"),
            lens, (T, N, I, H))


def _forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, return_workspace, batch_first=False):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, lens, (T, N, I, H) = _check(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths,
                                                                   batch_first)
    dt = x.dtype
    lstm = cell == "lstm"
    h0k = zeros((N, H), dt, "h0") if h0 is None else h0
    c0k = (zeros((N, H), dt, "h0") if c0 is None else c0) if lstm else None
    y = empty((N, T, H) if batch_first else (T, N, H), dt, "y")
    h_n = empty((N, H), dt, "h_n")
    c_n = empty((N, H), dt, "c_n") if lstm else None
    size = int(_C.rnn_workspace_size(_CELLS[cell], T, N, H))
    check_alloc(size, dt, "workspace", "the gate activations of every step")
    ws = np.empty(size, dt)
    _C.rnn_forward(_CELLS[cell], x, h0k, c0k, w_ih, w_hh, b_ih, b_hh, lens, y, h_n, c_n, ws, batch_first)
    out = (y, h_n, c_n) if lstm else (y, h_n)
    return out + (_Workspace(cell, ws, y),) if return_workspace else out


def _backward(cell, dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, workspace, needs_dx=True,
              batch_first=False):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, lens, (T, N, I, H) = _check(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths,
                                                                   batch_first)
    ys = (N, T, H) if batch_first else (T, N, H)
    dt = x.dtype
    lstm = cell == "lstm"
    dy = float_array(dy, "dy")
    same_dtype(x=x, dy=dy)
    if dy.shape != ys:
        raise ValueError(f"dy: expected shape {ys} (the shape of y), got {dy.shape}")
    dh_n = _state(dh_n, "dh_n", N, H, dt)
    dc_n = _state(dc_n, "dc_n", N, H, dt) if lstm else None
    if workspace is not None and not isinstance(workspace, _Workspace):
        raise TypeError(f"workspace: expected the workspace returned by nnx.ops.{cell.split('_')[0]}"
                        f"(..., return_workspace=True), got {type(workspace).__name__}")
    if workspace is None or workspace.used or workspace.key != cell:
        workspace = _forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lens, True, batch_first)[-1]
    if workspace.ws.size < int(_C.rnn_workspace_size(_CELLS[cell], T, N, H)) or workspace.y.shape != ys:
        raise ValueError("workspace: it was made by a forward of other sizes than these arguments")
    workspace.used = True  # the backward overwrites the activations with gate gradients
    h0k = zeros((N, H), dt, "h0") if h0 is None else h0
    c0k = (zeros((N, H), dt, "h0") if c0 is None else c0) if lstm else None
    dx = empty(x.shape, dt, "dx") if needs_dx else None
    dh0 = empty((N, H), dt, "dh0") if h0 is not None else None
    dc0 = empty((N, H), dt, "dc0") if lstm and c0 is not None else None
    dw_ih = empty(w_ih.shape, dt, "dw_ih")
    dw_hh = empty(w_hh.shape, dt, "dw_hh")
    db_ih = empty(b_ih.shape, dt, "db_ih") if b_ih is not None else None
    db_hh = empty(b_hh.shape, dt, "db_hh") if b_hh is not None else None
    _C.rnn_backward(_CELLS[cell], x, h0k, c0k, w_ih, w_hh, lens, workspace.y, contiguous(dy, "dy"), dh_n, dc_n,
                    workspace.ws, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, batch_first)
    if lstm:
        return dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def rnn(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity="tanh", lengths=None, return_workspace=False,
        batch_first=False):
    """(y, h_n) of an Elman RNN, h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), phi tanh or relu."""
    return _forward(_rnn_cell(nonlinearity), x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, return_workspace,
                    batch_first)


def rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity="tanh", lengths=None,
                 workspace=None, needs_dx=True, batch_first=False):
    """(dx, dh0, dw_ih, dw_hh, db_ih, db_hh) through time; dh_n may be None (no gradient on h_n). With
    needs_dx=False dx is None and its product is skipped (an input that needs no gradient)."""
    return _backward(_rnn_cell(nonlinearity), dy, dh_n, None, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths,
                     workspace, needs_dx, batch_first)


def lstm(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, return_workspace=False, batch_first=False):
    """(y, h_n, c_n) of an LSTM (gates i, f, g, o)."""
    return _forward("lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, return_workspace, batch_first)


def lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, workspace=None,
                  needs_dx=True, batch_first=False):
    """(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh) through time; dh_n / dc_n may be None; dx is None with
    needs_dx=False."""
    return _backward("lstm", dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, workspace, needs_dx,
                     batch_first)


def gru(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, return_workspace=False, batch_first=False):
    """(y, h_n) of a GRU (gates r, z, n; n = tanh(W_in x + b_in + r (W_hn h + b_hn)), PyTorch's form)."""
    return _forward("gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, return_workspace, batch_first)


def gru_backward(dy, dh_n, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, workspace=None,
                 needs_dx=True, batch_first=False):
    """(dx, dh0, dw_ih, dw_hh, db_ih, db_hh) through time; dh_n may be None; dx is None with needs_dx=False."""
    return _backward("gru", dy, dh_n, None, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, workspace, needs_dx,
                     batch_first)


# ---------------------------------------------------------------------------- embedding
def _check_embedding(ids, weight, padding_idx):
    weight = float_array(weight, "weight")
    if weight.ndim != 2:
        raise ValueError(f"weight: expected a 2-D (num_embeddings, embedding_dim) array, got shape {weight.shape}")
    ids = np.asarray(ids.data if hasattr(ids, "data") and not isinstance(ids, np.ndarray) else ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids: expected integer token ids, got dtype {ids.dtype}")
    V = weight.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        bad = ids[(ids < 0) | (ids >= V)].reshape(-1)[0]
        raise ValueError(f"ids: expected ids in [0, {V}) (num_embeddings = {V}), found {int(bad)}")
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)) \
                or not -V <= padding_idx < V:
            raise ValueError(f"padding_idx: expected None or an int in [{-V}, {V}), got {padding_idx!r}")
        padding_idx = int(padding_idx) % V
    return contiguous(np.asarray(ids, dtype=np.int64), "ids"), weight, padding_idx


def embedding(ids, weight, padding_idx=None):
    """weight[ids]: shape ids.shape + (embedding_dim,), a new C-contiguous array."""
    ids, weight, _ = _check_embedding(ids, weight, padding_idx)
    y = empty(ids.shape + weight.shape[1:], weight.dtype, "y")
    _C.embedding(ids, contiguous(weight, "weight"), y)
    return y


def embedding_backward(dy, ids, weight, padding_idx=None):
    """dweight: dy summed over the positions of each id (per column in input order, so the result does not
    depend on threads); the padding_idx row gets no gradient."""
    ids, weight, padding_idx = _check_embedding(ids, weight, padding_idx)
    dy = float_array(dy, "dy")
    same_dtype(weight=weight, dy=dy)
    if dy.shape != ids.shape + weight.shape[1:]:
        raise ValueError(f"dy: expected shape {ids.shape + weight.shape[1:]} (ids.shape + (embedding_dim,)), "
                         f"got {dy.shape}")
    dw = empty(weight.shape, weight.dtype, "dweight")
    _C.embedding_backward(contiguous(dy, "dy"), ids, -1 if padding_idx is None else padding_idx, dw)
    return dw
