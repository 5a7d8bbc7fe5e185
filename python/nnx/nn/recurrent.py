"""Recurrent layers with PyTorch's constructor arguments, parameter names and shapes, initialisation
(every parameter U(-1/sqrt(H), 1/sqrt(H))) and return values, so a PyTorch model's code and state_dict
carry over: RNN, LSTM, GRU (stacked, bidirectional, dropout between layers), their one-step cells, and
Embedding.

Variable-length batches: pass `lengths=` (one int per sequence, each in [1, T]) to forward. Sequence n
then runs for its first lengths[n] steps only: the outputs after its end are 0 and h_n (c_n) hold its
state after its last step, as PyTorch's packed sequences give once padded back. The reverse direction
reads each sequence from its own last step.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..ops._checks import to_int
from ..tensor import Tensor, cat, stack
from . import init
from .layers import _float_dtype
from .module import Module, Parameter

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Embedding"]

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def _tensor(x, name: str, dtype) -> Tensor:
    if isinstance(x, Tensor):
        return x
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a float array, got dtype {a.dtype}")
    return Tensor(a.astype(dtype) if a.dtype != dtype else a)


def _check_lengths(lengths, T: int, N: int):
    if lengths is None:
        return None
    arr = np.asarray(lengths.data if isinstance(lengths, Tensor) else lengths)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integer sequence lengths, got dtype {arr.dtype}")
    if arr.shape != (N,):
        raise ValueError(f"lengths: expected shape ({N},) (one length per sequence of the batch), got {arr.shape}")
    if N and (arr.min() < 1 or arr.max() > T):
        raise ValueError(f"lengths: expected every length in [1, {T}] (the sequence length), got {arr.tolist()}")
    return arr.astype(np.int64, copy=False)  # no copy of int64 lengths (a captured step's input buffer)


class _RNNBase(Module):
    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 nonlinearity: str = "tanh", dtype=np.float32):
        super().__init__()
        self.input_size = to_int(input_size, "input_size", 1)
        self.hidden_size = to_int(hidden_size, "hidden_size", 1)
        self.num_layers = to_int(num_layers, "num_layers", 1)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1], got {dropout!r}")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.dropout, self.nonlinearity = float(dropout), nonlinearity
        dt = _float_dtype(dtype)
        G, H, D = _GATES[self.mode], self.hidden_size, self.num_directions
        for layer in range(self.num_layers):
            for suffix in ("", "_reverse")[:D]:
                in_size = self.input_size if layer == 0 else H * D
                setattr(self, f"weight_ih_l{layer}{suffix}", Parameter(np.empty((G * H, in_size), dt)))
                setattr(self, f"weight_hh_l{layer}{suffix}", Parameter(np.empty((G * H, H), dt)))
                if self.bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(np.empty(G * H, dt)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(np.empty(G * H, dt)))
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, suffix: str):
        g = lambda n: getattr(self, f"{n}_l{layer}{suffix}", None)  # noqa: E731
        return g("weight_ih"), g("weight_hh"), g("bias_ih"), g("bias_hh")

    def _layer(self, x, states, weights, lengths, batch_first=False):
        """One direction of one layer: (y, h_n[, c_n]) over time-major x, or batch-first x in place."""
        if batch_first:
            kw = {"batch_first": True}
            if self.mode == "RNN":
                kw["nonlinearity"] = self.nonlinearity
            return F._recurrent(self.mode.lower(), x, states, *weights, lengths, kw)
        if self.mode == "LSTM":
            return F.lstm(x, states[0], states[1], *weights, lengths=lengths)
        if self.mode == "GRU":
            return F.gru(x, states[0], *weights, lengths=lengths)
        return F.rnn(x, states[0], *weights, nonlinearity=self.nonlinearity, lengths=lengths)

    def _initial_states(self, hx, N: int, batched: bool, dtype):
        """The user's initial states as a list of (layers * directions, N, H) Tensors (None: zeros)."""
        n_states = 2 if self.mode == "LSTM" else 1
        if hx is None:
            return [None] * n_states
        names = ("h0", "c0")
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected a pair (h0, c0) for an LSTM, got {type(hx).__name__}")
            hx = list(hx)
        else:
            hx = [hx]
        want = (self.num_layers * self.num_directions, N, self.hidden_size)
        out = []
        for name, s in zip(names, hx):
            s = _tensor(s, name, dtype)
            if not batched:
                if s.shape != want[:1] + want[2:]:
                    raise ValueError(f"{name}: expected shape {want[:1] + want[2:]} (layers * directions, "
                                     f"hidden_size) for an unbatched input, got {s.shape}")
                s = s.reshape((want[0], 1, want[2]))
            elif s.shape != want:
                raise ValueError(f"{name}: expected shape {want} (layers * directions, batch, hidden_size), "
                                 f"got {s.shape}")
            out.append(s)
        return out

    def forward(self, input, hx=None, lengths=None):
        dtype = self._param_dtype()
        x = _tensor(input, "input", dtype)
        if x.ndim not in (2, 3):
            raise ValueError(f"input: expected a 3-D (T, N, input_size) array ({'N, T' if self.batch_first else 'T, N'} "
                             f"order as batch_first says) or a 2-D unbatched one, got shape {x.shape}")
        batched = x.ndim == 3
        # One direction reads and writes batch-first sequences in place (the kernels take either layout);
        # the reverse direction's flips are time-major, so bidirectional layers transpose.
        native = batched and self.batch_first and not self.bidirectional
        if not batched:
            x = x.reshape((x.shape[0], 1, x.shape[1]))
        elif self.batch_first and not native:
            x = x.transpose(0, 1)
        N, T, I = x.shape if native else (x.shape[1], x.shape[0], x.shape[2])
        if I != self.input_size:
            raise ValueError(f"input: expected input_size {self.input_size} in the last axis, got shape {tuple(input.shape)}")
        if T == 0:
            raise ValueError(f"input: expected a sequence of at least 1 step, got T = 0 (shape {tuple(input.shape)})")
        if N == 0:
            raise ValueError(f"input: expected a batch of at least 1 sequence, got shape {tuple(input.shape)}")
        lengths = _check_lengths(lengths, T, N)
        init_states = self._initial_states(hx, N, batched, dtype)
        finals = [[] for _ in init_states]
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(("", "_reverse")[:self.num_directions]):
                k = layer * self.num_directions + d
                states = [None if s is None else s[k] for s in init_states]
                inp = x if d == 0 else F.flip_sequences(x, lengths)
                y, *hs = self._layer(inp, states, self._weights(layer, suffix), lengths, native)
                outs.append(y if d == 0 else F.flip_sequences(y, lengths))
                for f, h in zip(finals, hs):
                    f.append(h)
            x = outs[0] if len(outs) == 1 else cat(outs, axis=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        states_n = [stack(f, axis=0) for f in finals]
        if not batched:
            x = x.reshape((T, x.shape[2]))
            states_n = [s.reshape((s.shape[0], s.shape[2])) for s in states_n]
        elif self.batch_first and not native:
            x = x.transpose(0, 1)
        return (x, (states_n[0], states_n[1])) if self.mode == "LSTM" else (x, states_n[0])

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN" and self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s


class RNN(_RNNBase):
    """Elman RNN, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (or relu); returns (output, h_n)."""
    mode = "RNN"


class LSTM(_RNNBase):
    """LSTM (gates i, f, g, o); forward(input, (h0, c0)) returns (output, (h_n, c_n))."""
    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, dtype=np.float32):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype=dtype)


class GRU(_RNNBase):
    """GRU (gates r, z, n, PyTorch's form); returns (output, h_n)."""
    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, dtype=np.float32):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype=dtype)


class _CellBase(Module):
    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype=np.float32):
        super().__init__()
        self.input_size = to_int(input_size, "input_size", 1)
        self.hidden_size = to_int(hidden_size, "hidden_size", 1)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.bias, self.nonlinearity = bool(bias), nonlinearity
        dt = _float_dtype(dtype)
        G, H = _GATES[self.mode], self.hidden_size
        self.weight_ih = Parameter(np.empty((G * H, self.input_size), dt))
        self.weight_hh = Parameter(np.empty((G * H, H), dt))
        self.bias_ih = Parameter(np.empty(G * H, dt)) if bias else None
        self.bias_hh = Parameter(np.empty(G * H, dt)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def forward(self, input, hx=None):
        dtype = self._param_dtype()
        x = _tensor(input, "input", dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected shape (batch, {self.input_size}) or ({self.input_size},), "
                             f"got {x.shape}")
        batched = x.ndim == 2
        N = x.shape[0] if batched else 1
        if N == 0:
            raise ValueError(f"input: expected a batch of at least 1 row, got shape {x.shape}")
        names = ("h0", "c0") if self.mode == "LSTM" else ("hx",)
        if hx is None:
            states = [None] * len(names)
        else:
            if self.mode == "LSTM" and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
                raise TypeError(f"hx: expected a pair (h, c) for an LSTMCell, got {type(hx).__name__}")
            states = list(hx) if self.mode == "LSTM" else [hx]
            want = (N, self.hidden_size) if batched else (self.hidden_size,)
            for i, (name, s) in enumerate(zip(names, states)):
                s = _tensor(s, name, dtype)
                if s.shape != want:
                    raise ValueError(f"{name}: expected shape {want}, got {s.shape}")
                states[i] = s.reshape((N, self.hidden_size))
        x = x.reshape((1, N, self.input_size))
        w = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if self.mode == "LSTM":
            _, h, c = F.lstm(x, states[0], states[1], *w)
        elif self.mode == "GRU":
            _, h = F.gru(x, states[0], *w)
        else:
            _, h = F.rnn(x, states[0], *w, nonlinearity=self.nonlinearity)
        out = [h] if self.mode != "LSTM" else [h, c]
        if not batched:
            out = [o.reshape((self.hidden_size,)) for o in out]
        return tuple(out) if self.mode == "LSTM" else out[0]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """One Elman step: h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu)."""
    mode = "RNN"


class LSTMCell(_CellBase):
    """One LSTM step: forward(x, (h, c)) returns (h', c')."""
    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=np.float32):
        super().__init__(input_size, hidden_size, bias, dtype=dtype)


class GRUCell(_CellBase):
    """One GRU step: forward(x, h) returns h'."""
    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=np.float32):
        super().__init__(input_size, hidden_size, bias, dtype=dtype)


class Embedding(Module):
    """A lookup table: forward(ids) = weight[ids], weight (num_embeddings, embedding_dim) drawn from N(0, 1)
    as PyTorch does; the padding_idx row starts at 0 and gets no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, dtype=np.float32):
        super().__init__()
        self.num_embeddings = to_int(num_embeddings, "num_embeddings", 1)
        self.embedding_dim = to_int(embedding_dim, "embedding_dim", 1)
        if padding_idx is not None:
            padding_idx = to_int(padding_idx, "padding_idx", -self.num_embeddings, self.num_embeddings - 1)
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), _float_dtype(dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, ids):
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
