"""FCL's contrastive terms (seed 002, eq. 4 and 5) on penultimate embeddings, by name in [LOSSES][]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinv.registry import Registry

__all__ = ["FCLLoss", "FCLXentLoss", "FCLMarginLoss", "LOSSES"]


class FCLLoss(nn.Module):
    """Base: cosine similarities (1 - cosine distance) of each anchor to its views and the batch.

    ``forward(z, z_pos, z_neg=None, has_negative=None)`` on penultimate embeddings [B, D]; the
    negatives of anchor i are its high-utility view (where ``has_negative``) and z_j, j != i.
    ``reduction`` "mean" (default) or "sum" over the batch: the paper writes FCL = sum_i l_i
    beside its cross-entropy, which decides what lambda = 1e-3 means (the FCL method sums).
    """

    name = ""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"FCL loss: reduction must be 'mean' or 'sum'; got {reduction!r}")
        self.reduction = reduction

    def forward(self, z: Tensor, z_pos: Tensor, z_neg: Tensor | None = None,
                has_negative: Tensor | None = None) -> Tensor:
        if z.ndim != 2 or z_pos.shape != z.shape or (z_neg is not None and z_neg.shape != z.shape):
            raise ValueError(f"FCL loss {self.name}: embeddings must all be [B, D] alike; got {tuple(z.shape)}, "
                             f"{tuple(z_pos.shape)}, {None if z_neg is None else tuple(z_neg.shape)}")
        z, z_pos = F.normalize(z.float(), dim=1), F.normalize(z_pos.float(), dim=1)
        pos = (z * z_pos).sum(1)
        batch = z @ z.T
        others = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
        if z_neg is None:
            neg, valid = pos.new_zeros(len(z)), torch.zeros(len(z), dtype=torch.bool, device=z.device)
        else:
            neg = (z * F.normalize(z_neg.float(), dim=1)).sum(1)
            valid = torch.ones(len(z), dtype=torch.bool, device=z.device) if has_negative is None else has_negative
        per_example = self.compute(pos, neg, valid.to(z.device), batch, others)
        return per_example.mean() if self.reduction == "mean" else per_example.sum()

    def compute(self, pos: Tensor, neg: Tensor, valid: Tensor, batch: Tensor, others: Tensor) -> Tensor:
        """Per-example losses from similarities: pos [B], neg [B] (used where valid), batch [B, B]
        (used where ``others``, i.e. off the diagonal)."""
        raise NotImplementedError


LOSSES: Registry[FCLLoss] = Registry("FCL loss")
"""FCL's contrastive terms by name."""


@LOSSES.register("xe")
class FCLXentLoss(FCLLoss):
    """The paper's eq. 5, the variant used in all its experiments: a softmax over the positive
    and the negatives of e^{(1 - dist)/tau}."""

    name = "xe"

    def __init__(self, temperature: float = 0.1, reduction: str = "mean"):
        super().__init__(reduction)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0
        ):
            raise ValueError(f"FCL loss xe: temperature must be a positive float; got {temperature!r}")
        self.temperature = float(temperature)

    def compute(self, pos, neg, valid, batch, others):
        minus_inf = torch.tensor(float("-inf"), device=pos.device)
        logits = torch.cat([pos[:, None], torch.where(valid, neg, minus_inf)[:, None],
                            torch.where(others, batch, minus_inf)], dim=1) / self.temperature
        return torch.logsumexp(logits, dim=1) - pos / self.temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, reduction={self.reduction!r}"


@LOSSES.register("margin")
class FCLMarginLoss(FCLLoss):
    """The paper's eq. 4: dist(z, z+)^2 + sum over negatives of max(0, gamma - dist)^2.

    The paper gives no gamma; 1 (orthogonal embeddings) is the default here.
    """

    name = "margin"

    def __init__(self, gamma: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma < 0:
            raise ValueError(f"FCL loss margin: gamma must be a non-negative float; got {gamma!r}")
        self.gamma = float(gamma)

    def compute(self, pos, neg, valid, batch, others):
        hinge = lambda sim: (self.gamma - (1 - sim)).clamp_min(0).square()
        return (1 - pos).square() + hinge(neg) * valid + (hinge(batch) * others).sum(1)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"
