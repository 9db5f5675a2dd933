"""The supervised baseline (seed 000): a pretrained backbone with a new head, fine-tuned end to
end with cross-entropy on corrupted images."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from cinv import encoders
from cinv.config.options import EncoderRef, OptimOptions
from cinv.data.stream import Views
from cinv.encoders.heads import Classifier
from cinv.methods.base import METHODS, Method, Range
from cinv.training.loop import Objective

__all__ = ["BaselineOptions", "SupervisedBaseline", "supervised_objective", "backbone_classifier"]


class BaselineOptions(OptimOptions):
    """Paper defaults: Adam lr 1e-3, batch 64, 25 epochs, cross-entropy, end to end."""

    backbone: EncoderRef = Field("efficientnet_lite0", description="pretrained backbone (the paper: torchvision:resnet101)")
    backbone_weights: str | None = Field(None, description="backbone weights: tag (torchvision: IMAGENET1K_V1, the paper's "
                                         "original weights, or IMAGENET1K_V2), file path, or 'none'; default: the backbone's "
                                         "own (torchvision: IMAGENET1K_V1)")
    epochs: int = Field(25, ge=1, le=10_000, description="baseline fine-tuning epochs")
    batch_size: int = Field(64, ge=2, le=65_536, description="baseline batch size")
    lr: float = Field(1e-3, gt=0, le=10, description="baseline Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, le=1, description="baseline Adam weight decay")
    registered_model_name: str | None = Field(None, description="register the fine-tuned backbone (an encoder) under this name")


def supervised_objective(classifier: nn.Module) -> Objective:
    """Cross-entropy on corrupted images: the end-to-end supervised baseline."""
    criterion = nn.CrossEntropyLoss()

    def objective(views: Views) -> torch.Tensor:
        return criterion(classifier(views.corrupted).float(), views.labels)

    return objective


def backbone_classifier(ctx, backbone: str, weights: str | None) -> Classifier:
    """A pretrained backbone (``encoders`` name) with a new linear head for the dataset's classes."""
    encoder = encoders.get(backbone, weights).to(ctx.device)
    return Classifier(encoder, ctx.splits.num_classes, encoder.embed_dim).to(ctx.device)


@METHODS.register("baseline")
class SupervisedBaseline(Method):
    name, display, title = "baseline", "supervised baseline", "Supervised baseline (end to end)"
    model_tag = "supervised_baseline"
    Options = BaselineOptions
    space = {"lr": Range(1e-5, 5e-1, log=True)}
    produces = frozenset({"classifier", "encoder"})

    def build(self, ctx, opts):
        return backbone_classifier(ctx, opts.backbone, opts.backbone_weights)

    def objective(self, model, ctx, opts, stream):
        return supervised_objective(model)
