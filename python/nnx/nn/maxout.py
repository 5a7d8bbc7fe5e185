"""Maxout units (Goodfellow et al., 2013): each output is the maximum of `pieces` linear functions of
the input, a learned piecewise-linear convex activation."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..ops._checks import to_int
from .layers import Linear
from .module import Module


class Maxout(Module):
    """h_i(x) = max_j (x W_ij + b_ij), j < pieces: a Linear(in_features, out_features * pieces) whose
    outputs are maxed over groups of `pieces` consecutive units. weight is (out_features * pieces,
    in_features); unit i owns rows i * pieces .. i * pieces + pieces - 1."""

    def __init__(self, in_features: int, out_features: int, pieces: int = 2, bias: bool = True, dtype=np.float32):
        super().__init__()
        self.pieces = to_int(pieces, "pieces", 1)
        self.out_features = to_int(out_features, "out_features", 1)
        self.linear = Linear(in_features, self.out_features * self.pieces, bias=bias, dtype=dtype)
        self.in_features = self.linear.in_features

    def forward(self, x):
        return F.maxout(self.linear(x), self.pieces, dim=-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}"


class ChannelMaxout(Module):
    """Maxout over feature maps: (N, C * pieces, H, W) -> (N, C, H, W), each output channel the
    element-wise maximum of `pieces` consecutive input channels (put it after a Conv2d with
    C * pieces output channels)."""

    def __init__(self, pieces: int = 2, dim: int = 1):
        super().__init__()
        self.pieces = to_int(pieces, "pieces", 1)
        self.dim = int(dim)

    def forward(self, x):
        return F.maxout(x, self.pieces, dim=self.dim)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"
