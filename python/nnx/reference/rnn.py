"""Recurrent layers and embeddings in plain NumPy: the oracle for cpp/rnn.

One layer, one direction, the whole sequence per call, time-major: x is (T, N, I) ((N, T, I) with
batch_first=True), states are (N, H).
Gate order and parameter shapes are PyTorch's (w_ih (G*H, I), w_hh (G*H, H), biases (G*H,)):

  rnn:  h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), phi = tanh or relu
  lstm: i, f, g, o = split(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);  h_t = sigmoid(o) tanh(c_t)
  gru:  r, z, n split over a = W_ih x_t + b_ih and b = W_hh h_{t-1} + b_hh:
        r = sigmoid(a_r + b_r), z = sigmoid(a_z + b_z), n = tanh(a_n + r b_n), h_t = (1 - z) n + z h_{t-1}

The forward runs from t = 0 to T - 1 and keeps what the backward needs; the backward walks from T - 1 down
to 0 (backpropagation through time), carrying dh (and the LSTM's dc) from each step to the one before.

lengths (N ints in [1, T], optional): row n takes part in steps t < lengths[n] only; later outputs are 0
and h_n (c_n) is the state after its last step (PyTorch's packed sequences, padded back).
"""
from __future__ import annotations

import numpy as np

__all__ = ["rnn", "rnn_backward", "lstm", "lstm_backward", "gru", "gru_backward",
           "embedding", "embedding_backward"]


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _arr(a, dtype):
    return None if a is None else np.asarray(a, dtype=dtype)


def _prepare(x, h0, w_hh, lengths):
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x: expected a 3-D (T, N, input_size) array, got shape {x.shape}")
    T, N, _ = x.shape
    H = np.asarray(w_hh).shape[1]
    h0 = np.zeros((N, H), x.dtype) if h0 is None else np.asarray(h0, dtype=x.dtype)
    lengths = np.full(N, T, dtype=np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64)
    return x, h0, lengths, T, N, H


def _masked(mask, new, old):
    """Rows whose sequence has ended keep their state."""
    return np.where(mask[:, None], new, old)


# ---------------------------------------------------------------------------- Elman RNN
def _phi(nonlinearity):
    if nonlinearity == "tanh":
        return np.tanh, lambda y: 1.0 - y * y
    if nonlinearity == "relu":
        return (lambda v: np.maximum(v, 0)), (lambda y: (y > 0).astype(y.dtype))
    raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")


def _rnn(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity="tanh", lengths=None, return_workspace=False):
    """(y, h_n) of an Elman RNN; with return_workspace, also what rnn_backward needs."""
    x, h, lengths, T, N, H = _prepare(x, h0, w_hh, lengths)
    phi, _ = _phi(nonlinearity)
    b = np.zeros(H, x.dtype)
    if b_ih is not None:
        b = b + b_ih
    if b_hh is not None:
        b = b + b_hh
    y = np.zeros((T, N, H), x.dtype)
    hs = [h]
    for t in range(T):
        live = t < lengths
        h_new = phi(x[t] @ w_ih.T + h @ w_hh.T + b)
        y[t] = np.where(live[:, None], h_new, 0)
        h = _masked(live, h_new, h)
        hs.append(h)
    out = (y, h)
    return out + ((hs, y),) if return_workspace else out


def _rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity="tanh", lengths=None,
                  workspace=None, needs_dx=True):
    """(dx, dh0, dw_ih, dw_hh, db_ih, db_hh); dh0 is None when h0 is None, the biases' when they are."""
    if workspace is None:
        workspace = _rnn(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity, lengths=lengths,
                         return_workspace=True)[-1]
    hs, y = workspace
    x, _, lengths, T, N, H = _prepare(x, h0, w_hh, lengths)
    _, dphi = _phi(nonlinearity)
    dx = np.zeros_like(x)
    dw_ih, dw_hh, db = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(H, x.dtype)
    dh = np.zeros((N, H), x.dtype) if dh_n is None else np.array(dh_n, dtype=x.dtype)
    for t in reversed(range(T)):
        live = (t < lengths)[:, None]
        dpre = np.where(live, (dy[t] + dh) * dphi(y[t]), 0)     # through h_t = phi(pre_t)
        dx[t] = dpre @ w_ih
        dw_ih += dpre.T @ x[t]
        dw_hh += dpre.T @ hs[t]
        db += dpre.sum(0)
        dh = np.where(live, dpre @ w_hh, dh)                       # on to h_{t-1}
    return (dx if needs_dx else None, None if h0 is None else dh, dw_ih, dw_hh,
            None if b_ih is None else db, None if b_hh is None else db.copy())


# ---------------------------------------------------------------------------- LSTM
def _lstm(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, return_workspace=False):
    """(y, h_n, c_n) of an LSTM; with return_workspace, also what lstm_backward needs."""
    x, h, lengths, T, N, H = _prepare(x, h0, w_hh, lengths)
    c = np.zeros((N, H), x.dtype) if c0 is None else np.asarray(c0, dtype=x.dtype)
    b = np.zeros(4 * H, x.dtype)
    if b_ih is not None:
        b = b + b_ih
    if b_hh is not None:
        b = b + b_hh
    y = np.zeros((T, N, H), x.dtype)
    saved = []
    for t in range(T):
        live = t < lengths
        pre = x[t] @ w_ih.T + h @ w_hh.T + b
        i, f = _sigmoid(pre[:, :H]), _sigmoid(pre[:, H:2 * H])
        g, o = np.tanh(pre[:, 2 * H:3 * H]), _sigmoid(pre[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        saved.append((h, c, i, f, g, o, c_new))
        y[t] = np.where(live[:, None], h_new, 0)
        h, c = _masked(live, h_new, h), _masked(live, c_new, c)
    out = (y, h, c)
    return out + (saved,) if return_workspace else out


def _lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, workspace=None,
                   needs_dx=True):
    """(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)."""
    if workspace is None:
        workspace = _lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=lengths, return_workspace=True)[-1]
    x, _, lengths, T, N, H = _prepare(x, h0, w_hh, lengths)
    dx = np.zeros_like(x)
    dw_ih, dw_hh, db = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(4 * H, x.dtype)
    dh = np.zeros((N, H), x.dtype) if dh_n is None else np.array(dh_n, dtype=x.dtype)
    dc = np.zeros((N, H), x.dtype) if dc_n is None else np.array(dc_n, dtype=x.dtype)
    for t in reversed(range(T)):
        live = (t < lengths)[:, None]
        h_prev, c_prev, i, f, g, o, c = workspace[t]
        dht = dy[t] + dh
        tc = np.tanh(c)
        dct = dc + dht * o * (1 - tc * tc)                          # h = o tanh(c)
        d_o = dht * tc
        d_i, d_f, d_g = dct * g, dct * c_prev, dct * i              # c = f c_prev + i g
        dpre = np.concatenate([d_i * i * (1 - i), d_f * f * (1 - f), d_g * (1 - g * g), d_o * o * (1 - o)], 1)
        dpre = np.where(live, dpre, 0)
        dx[t] = dpre @ w_ih
        dw_ih += dpre.T @ x[t]
        dw_hh += dpre.T @ h_prev
        db += dpre.sum(0)
        dh = np.where(live, dpre @ w_hh, dh)
        dc = np.where(live, dct * f, dc)
    return (dx if needs_dx else None, None if h0 is None else dh, None if c0 is None else dc, dw_ih, dw_hh,
            None if b_ih is None else db, None if b_hh is None else db.copy())


# ---------------------------------------------------------------------------- GRU
def _gru(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, return_workspace=False):
    """(y, h_n) of a GRU; with return_workspace, also what gru_backward needs."""
    x, h, lengths, T, N, H = _prepare(x, h0, w_hh, lengths)
    bi = np.zeros(3 * H, x.dtype) if b_ih is None else b_ih
    bh = np.zeros(3 * H, x.dtype) if b_hh is None else b_hh
    y = np.zeros((T, N, H), x.dtype)
    saved = []
    for t in range(T):
        live = t < lengths
        a = x[t] @ w_ih.T + bi
        b = h @ w_hh.T + bh
        r = _sigmoid(a[:, :H] + b[:, :H])
        z = _sigmoid(a[:, H:2 * H] + b[:, H:2 * H])
        n = np.tanh(a[:, 2 * H:] + r * b[:, 2 * H:])
        h_new = (1 - z) * n + z * h
        saved.append((h, r, z, n, b[:, 2 * H:]))
        y[t] = np.where(live[:, None], h_new, 0)
        h = _masked(live, h_new, h)
    out = (y, h)
    return out + (saved,) if return_workspace else out


def _gru_backward(dy, dh_n, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, workspace=None,
                  needs_dx=True):
    """(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)."""
    if workspace is None:
        workspace = _gru(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=lengths, return_workspace=True)[-1]
    x, _, lengths, T, N, H = _prepare(x, h0, w_hh, lengths)
    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db_i, db_h = np.zeros(3 * H, x.dtype), np.zeros(3 * H, x.dtype)
    dh = np.zeros((N, H), x.dtype) if dh_n is None else np.array(dh_n, dtype=x.dtype)
    for t in reversed(range(T)):
        live = (t < lengths)[:, None]
        h_prev, r, z, n, b_n = workspace[t]
        dht = dy[t] + dh
        dn = dht * (1 - z) * (1 - n * n)                             # h = (1 - z) n + z h_prev
        dz = dht * (h_prev - n) * z * (1 - z)
        dr = dn * b_n * r * (1 - r)                                  # n = tanh(a_n + r b_n)
        da = np.where(live, np.concatenate([dr, dz, dn], 1), 0)      # d(W_ih x + b_ih)
        db = np.where(live, np.concatenate([dr, dz, dn * r], 1), 0)  # d(W_hh h + b_hh)
        dx[t] = da @ w_ih
        dw_ih += da.T @ x[t]
        dw_hh += db.T @ h_prev
        db_i += da.sum(0)
        db_h += db.sum(0)
        dh = np.where(live, db @ w_hh + dht * z, dh)
    return (dx if needs_dx else None, None if h0 is None else dh, dw_ih, dw_hh,
            None if b_ih is None else db_i, None if b_hh is None else db_h)



# ---------------------------------------------------------------------------- the public names
# With batch_first=True, x, y, dy and dx are (N, T, ...) instead of (T, N, ...); the loops above stay
# time-major (the workspace they return is time-major too).
def _swap(a, batch_first):
    return np.ascontiguousarray(np.swapaxes(np.asarray(a), 0, 1)) if batch_first and a is not None else a


def rnn(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity="tanh", lengths=None, return_workspace=False,
        batch_first=False):
    """(y, h_n) of an Elman RNN; with return_workspace, also what rnn_backward needs."""
    out = _rnn(_swap(x, batch_first), h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity, lengths=lengths,
               return_workspace=return_workspace)
    return (_swap(out[0], batch_first),) + out[1:]


def rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity="tanh", lengths=None,
                 workspace=None, needs_dx=True, batch_first=False):
    """(dx, dh0, dw_ih, dw_hh, db_ih, db_hh); dh0 is None when h0 is None, the biases' when they are."""
    g = _rnn_backward(_swap(dy, batch_first), dh_n, _swap(x, batch_first), h0, w_ih, w_hh, b_ih, b_hh,
                      nonlinearity=nonlinearity, lengths=lengths, workspace=workspace, needs_dx=needs_dx)
    return (_swap(g[0], batch_first),) + g[1:]


def lstm(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, return_workspace=False, batch_first=False):
    """(y, h_n, c_n) of an LSTM; with return_workspace, also what lstm_backward needs."""
    out = _lstm(_swap(x, batch_first), h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=lengths,
                return_workspace=return_workspace)
    return (_swap(out[0], batch_first),) + out[1:]


def lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, workspace=None,
                  needs_dx=True, batch_first=False):
    """(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)."""
    g = _lstm_backward(_swap(dy, batch_first), dh_n, dc_n, _swap(x, batch_first), h0, c0, w_ih, w_hh, b_ih, b_hh,
                       lengths=lengths, workspace=workspace, needs_dx=needs_dx)
    return (_swap(g[0], batch_first),) + g[1:]


def gru(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, return_workspace=False, batch_first=False):
    """(y, h_n) of a GRU; with return_workspace, also what gru_backward needs."""
    out = _gru(_swap(x, batch_first), h0, w_ih, w_hh, b_ih, b_hh, lengths=lengths, return_workspace=return_workspace)
    return (_swap(out[0], batch_first),) + out[1:]


def gru_backward(dy, dh_n, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, workspace=None,
                 needs_dx=True, batch_first=False):
    """(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)."""
    g = _gru_backward(_swap(dy, batch_first), dh_n, _swap(x, batch_first), h0, w_ih, w_hh, b_ih, b_hh,
                      lengths=lengths, workspace=workspace, needs_dx=needs_dx)
    return (_swap(g[0], batch_first),) + g[1:]


# ---------------------------------------------------------------------------- embedding
def embedding(ids, weight, padding_idx=None):
    """weight[ids]: one row of weight (num_embeddings, D) per id; shape ids.shape + (D,)."""
    return np.asarray(weight)[np.asarray(ids)]


def embedding_backward(dy, ids, weight, padding_idx=None):
    """dweight: the sum of dy over every position holding each id (none for padding_idx)."""
    weight = np.asarray(weight)
    dw = np.zeros_like(weight)
    ids = np.asarray(ids).reshape(-1)
    dy = np.asarray(dy).reshape(ids.size, weight.shape[1])
    for k, i in enumerate(ids):
        if padding_idx is None or i != padding_idx % weight.shape[0]:
            dw[i] += dy[k]
    return dw
