"""Loss modules: call with (prediction, target), return a 0-d Tensor to call .backward() on."""
from __future__ import annotations

from .. import functional as F
from .._args import check_reduction
from .module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits (N, C) against integer class indices (N,)."""

    def forward(self, input, target):
        return F.cross_entropy(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean (or sum) of squared differences."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of sigmoid(z) against targets in [0, 1], computed stably from the logits z."""

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction)


class MultiClassHingeLoss(_Loss):
    """sum over wrong classes j of max(0, s_j - s_y + margin), averaged over the batch for 'mean'."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input, target):
        return F.multiclass_hinge_loss(input, target, margin=self.margin, reduction=self.reduction)
