"""Heads on encoders: the linear classifier (the baseline's head, a probe) and RoCL's projector."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["Classifier", "Projector"]


class Classifier(nn.Module):
    """An encoder with a linear head: the baseline (all trained) or a probe (head only)."""

    def __init__(self, encoder: nn.Module, num_classes: int, embed_dim: int, normalize: bool = False):
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encoder(images))

    def reset_head(self, generator: torch.Generator) -> Classifier:
        """nn.Linear's default initialisation, drawn from ``generator`` so probes are repeatable."""
        bound = 1 / math.sqrt(self.head.in_features)
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.head.weight, a=math.sqrt(5), generator=generator)
            nn.init.uniform_(self.head.bias, -bound, bound, generator=generator)
        return self

    def with_encoder(self, encoder: nn.Module) -> Classifier:
        """This head on another encoder (a clean probe moved to a student; a probe made attackable)."""
        moved = Classifier(encoder, self.head.out_features, self.head.in_features, normalize=self.normalize)
        moved.head.load_state_dict(self.head.state_dict())
        return moved.to(self.head.weight.device).eval()

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            features = nn.functional.normalize(features.float(), dim=1)
        return self.head(features.to(self.head.weight.dtype))


class Projector(nn.Module):
    """g(.): the 2-layer MLP head (512-2048-128 on ResNet-18) that a contrastive loss sees and
    linear evaluation drops.

    RoCL's released projector is Linear-ReLU-Linear; ``batch_norm=True`` adds SimCLR's BatchNorm
    after the first layer (Linear-BN-ReLU-Linear).
    """

    def __init__(self, in_dim: int, hidden: int = 2048, out_dim: int = 128, *, batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features.flatten(1))
