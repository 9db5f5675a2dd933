"""Helpers the contrastive losses share."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["off_diagonal", "need_pairs"]


def off_diagonal(logits: Tensor) -> Tensor:
    """Same matrix with the diagonal at -inf, i.e. j != i inside a log-sum-exp."""
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    return logits.masked_fill(eye, float("-inf"))


def need_pairs(name: str, n: int) -> None:
    """A contrastive loss needs at least two items in its batch."""
    if n < 2:
        raise ValueError(f"loss {name}: needs a batch of at least 2 to contrast; got {n}")
