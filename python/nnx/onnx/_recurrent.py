"""Exporters of the recurrent layers (RNN, LSTM, GRU with PyTorch's parameters), one ONNX node per layer.

The layers hold PyTorch's parameters: weight_ih_l{k}[_reverse] (gates*H, input), weight_hh_l{k} (gates*H,
H), bias_ih_l{k}, bias_hh_l{k}, gates in PyTorch's order (LSTM i,f,g,o; GRU r,z,n). ONNX wants, per layer,
W (dirs, gates*H, input), R (dirs, gates*H, H) and B (dirs, 2*gates*H) = [Wb, Rb], gates in its own order
(LSTM i,o,f,c; GRU z,r,h). These are stored as initializers "<layer>.W_l{k}", "R_l{k}", "B_l{k}" (a cell's: "W", "R",
"B") in ONNX's layout, which every ONNX runtime reads directly; load_weights converts them back.

ONNX's recurrent outputs are Y (T, dirs, B, H) and Y_h (dirs, B, H): Y becomes the layer's (T, B, dirs*H)
(or (B, T, dirs*H) with batch_first) and the per-layer Y_h are stacked into h_n (layers*dirs, B, H).
GRU uses linear_before_reset=1: PyTorch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ._graph import Value, child, register

# For each kind: ONNX op, number of gates, and PyTorch's gate block for each ONNX gate position.
KINDS = {
    "RNN": ("RNN", 1, (0,)),
    "LSTM": ("LSTM", 4, (0, 3, 1, 2)),  # ONNX i,o,f,c <- PyTorch i,f,g,o
    "GRU": ("GRU", 3, (1, 0, 2)),       # ONNX z,r,h   <- PyTorch r,z,n
}


def _kind(m) -> str:
    """'RNN', 'LSTM' or 'GRU' (cells included): the layer's `mode`, else a stand-in's `onnx_kind`."""
    kind = getattr(m, "mode", None) or getattr(m, "onnx_kind", None)
    if kind not in KINDS:
        raise ValueError(f"{type(m).__name__}: not a recurrent layer this exporter knows (mode {kind!r})")
    return kind


def _reorder(w: np.ndarray, order, H: int) -> np.ndarray:
    return np.concatenate([w[b * H:(b + 1) * H] for b in order], axis=0)


def _unorder(w: np.ndarray, order, H: int) -> np.ndarray:
    out = np.empty_like(w)
    for pos, b in enumerate(order):
        out[b * H:(b + 1) * H] = w[pos * H:(pos + 1) * H]
    return out


def _dirs(m) -> list:
    return [""] + (["_reverse"] if m.bidirectional else [])


def _param(m, name):
    p = getattr(m, name)
    return np.asarray(p.data if hasattr(p, "data") else p)


def _check(m, where):
    if getattr(m, "proj_size", 0):
        raise ValueError(f"{where}: an LSTM with proj_size is not exportable (ONNX's LSTM has no projection)")
    if _kind(m) == "RNN" and getattr(m, "nonlinearity", "tanh") not in ("tanh", "relu"):
        raise ValueError(f"{where}: nonlinearity {m.nonlinearity!r} has no ONNX RNN activation")


def _param_names(m, k=None) -> list:
    """Per direction, the names of (weight_ih, weight_hh, bias_ih, bias_hh): of layer k, or of a cell."""
    if k is None:
        return [("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return [tuple(f"{n}_l{k}{sfx}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) for sfx in _dirs(m)]


def _onnx_weights(m, k=None):
    """(W, R, B) of layer k (or of a cell) in ONNX's layout and gate order; B is None without bias."""
    _, gates, order = KINDS[_kind(m)]
    H = m.hidden_size
    W, R, B = [], [], []
    for wih, whh, bih, bhh in _param_names(m, k):
        W.append(_reorder(_param(m, wih), order, H))
        R.append(_reorder(_param(m, whh), order, H))
        if m.bias:
            B.append(np.concatenate([_reorder(_param(m, bih), order, H), _reorder(_param(m, bhh), order, H)]))
    return np.stack(W), np.stack(R), (np.stack(B) if m.bias else None)


def _attrs(m, kind: str, nd: int) -> dict:
    attrs = dict(hidden_size=m.hidden_size, direction="bidirectional" if nd == 2 else "forward")
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    if kind == "RNN":
        attrs["activations"] = ["Relu" if getattr(m, "nonlinearity", "tanh") == "relu" else "Tanh"] * nd
    return attrs


def _node(g, m, kind, prefix, suffix, seq, weights, h0, c0, attrs, lens=None):
    """One ONNX RNN/LSTM/GRU node; optional inputs left out at the end, named "" in the middle."""
    W, R, B = weights
    ins = [seq, g.param(child(prefix, f"W{suffix}"), W), g.param(child(prefix, f"R{suffix}"), R),
           g.param(child(prefix, f"B{suffix}"), B) if B is not None else "", lens or "", h0 or ""]
    if kind == "LSTM":
        ins.append(c0 or "")
    while ins[-1] == "":
        ins.pop()
    return g.node(KINDS[kind][0], ins, n_out=3 if kind == "LSTM" else 2, hint=f"{kind.lower()}{suffix}", **attrs)


def _slice(g, x: str, start: int, stop: int) -> str:
    """x[start:stop] along axis 0 (one layer's share of h0/c0)."""
    return g.node("Slice", [x, g.ints([start], "starts"), g.ints([stop], "ends"), g.ints([0], "axes")])


def _export(g, m, prefix, x: Value, hx=None, lengths=None):
    _check(m, prefix or "model")
    kind = _kind(m)
    if x.ndim != 3:
        raise ValueError(f"{prefix or 'model'}: export needs a batched 3-D input to {kind}, got shape {x.shape}")
    L, nd = m.num_layers, len(_dirs(m))
    attrs = _attrs(m, kind, nd)
    h0 = c0 = None
    if hx is not None:
        h0, c0 = (hx[0].name, hx[1].name) if kind == "LSTM" else (hx.name, None)
    # lengths= is ONNX's sequence_lens, with the same meaning: zero outputs after each sequence's end,
    # h_n from its last step, the reverse direction starting there.
    lens = None if lengths is None else g.node("Cast", [lengths.name], hint="lengths", to=g.onnx.TensorProto.INT32)
    seq = g.node("Transpose", [x.name], perm=[1, 0, 2]) if m.batch_first else x.name  # ONNX is time-major
    hs, cs = [], []
    for k in range(L):
        outs = _node(g, m, kind, prefix, f"_l{k}", seq, _onnx_weights(m, k),
                     _slice(g, h0, k * nd, (k + 1) * nd) if h0 else None,
                     _slice(g, c0, k * nd, (k + 1) * nd) if c0 else None, attrs, lens)
        y = g.node("Transpose", [outs[0]], perm=[0, 2, 1, 3])     # (T, B, dirs, H)
        seq = g.node("Reshape", [y, g.ints([0, 0, -1])])           # (T, B, dirs*H)
        hs.append(outs[1])
        if kind == "LSTM":
            cs.append(outs[2])
    out = g.node("Transpose", [seq], perm=[1, 0, 2]) if m.batch_first else seq
    h_n = hs[0] if L == 1 else g.node("Concat", hs, axis=0, hint="h_n")
    if kind != "LSTM":
        return out, h_n
    c_n = cs[0] if L == 1 else g.node("Concat", cs, axis=0, hint="c_n")
    return out, (h_n, c_n)


def _export_cell(g, m, prefix, x: Value, hx=None):
    """A cell is one step of a one-layer, one-direction recurrence: (N, I) -> (1, N, I), then back."""
    _check(m, prefix or "model")
    kind = _kind(m)
    if x.ndim != 2:
        raise ValueError(f"{prefix or 'model'}: export needs a batched 2-D input to {kind}Cell, got shape {x.shape}")
    axis0 = g.ints([0], "axes")
    states = [] if hx is None else ([hx[0], hx[1]] if kind == "LSTM" else [hx])
    h0, c0 = ([g.node("Unsqueeze", [s.name, axis0]) for s in states] + [None, None])[:2]
    outs = _node(g, m, kind, prefix, "", g.node("Unsqueeze", [x.name, axis0]), _onnx_weights(m),
                 h0, c0, _attrs(m, kind, 1))
    h = g.node("Squeeze", [outs[1], axis0], hint="h")
    return (h, g.node("Squeeze", [outs[2], axis0], hint="c")) if kind == "LSTM" else h


def weights_from_onnx(m, prefix, inits) -> dict:
    """The layer's state_dict entries from initializers in the exporter's layout (the inverse of
    _onnx_weights); entries whose initializers are absent are not returned."""
    _, gates, order = KINDS[_kind(m)]
    H, out = m.hidden_size, {}
    layers = [None] if not hasattr(m, "num_layers") else range(m.num_layers)
    for k in layers:
        suffix = "" if k is None else f"_l{k}"
        names = [child(prefix, f"{p}{suffix}") for p in "WRB"]
        if not all(n in inits for n in names[:2]) or (m.bias and names[2] not in inits):
            continue
        W, R = inits[names[0]], inits[names[1]]
        for d, (wih, whh, bih, bhh) in enumerate(_param_names(m, k)):
            out[child(prefix, wih)] = _unorder(W[d], order, H)
            out[child(prefix, whh)] = _unorder(R[d], order, H)
            if m.bias:
                b = inits[names[2]][d]
                out[child(prefix, bih)] = _unorder(b[:gates * H], order, H)
                out[child(prefix, bhh)] = _unorder(b[gates * H:], order, H)
    return out


def register_recurrent(cls, cell: bool = False) -> None:
    """Registers the recurrent exporter for `cls`: a layer (or, with cell=True, a one-step cell) with
    PyTorch's RNN/LSTM/GRU attributes and parameter names."""
    register(cls, weights=weights_from_onnx)(_export_cell if cell else _export)


for _name in KINDS:
    for _cell in (False, True):
        _cls = getattr(nn, _name + ("Cell" if _cell else ""), None)
        if isinstance(_cls, type):
            register_recurrent(_cls, _cell)
