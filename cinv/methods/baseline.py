"""``baseline``: the supervised baseline (seed 000): a pretrained backbone with a new head, fine-tuned end to
end with cross-entropy on corrupted images."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from cinv import encoders
from cinv.config.base import Released, Runtime
from cinv.config.options import SCHEDULE, EncoderRef, OptimOptions, RegisteredName, WeightsRef
from cinv.data.stream import Views
from cinv.encoders.heads import Classifier
from cinv.methods.base import CI_CODE, METHODS, Method, Range, released_schedule
from cinv.tracking.models import BASELINE_MODEL
from cinv.training.loop import Objective

__all__ = ["BaselineOptions", "Baseline", "supervised_objective", "backbone_classifier", "RELEASED_T_MAX"]

# baselines.py line 201: num_steps = 126689 // (batch_size * gpus) with randmany_baseline.yaml's 64 and 4.
RELEASED_T_MAX = 126689 // (64 * 4)

class BaselineOptions(OptimOptions):
    """Adam with a cosine schedule, cross-entropy, end to end."""

    backbone: EncoderRef = Field("efficientnet_lite0", description="pretrained backbone (the paper: torchvision:resnet101)")
    backbone_weights: WeightsRef = Field(None, description="backbone weights: tag (torchvision: IMAGENET1K_V1, the paper's "
                                         "original weights, or IMAGENET1K_V2), file path, or 'none'; default: the backbone's "
                                         "own (torchvision: IMAGENET1K_V1; recorded as resolved)")
    schedule: Literal["cosine", "released"] = SCHEDULE
    registered_model_name: Annotated[RegisteredName, Runtime()] = Field(
        BASELINE_MODEL, description="register the fine-tuned backbone (an encoder) under this name once the run has "
        "succeeded ('': do not)")


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


@METHODS.register("baseline", aliases=("supervised_baseline", "supervised"))
class Baseline(Method):
    """The supervised baseline: a pretrained backbone fine-tuned end to end on corrupted images."""

    display, title = "supervised baseline", "Supervised baseline (end to end)"
    Options = BaselineOptions
    PRESETS = {
        # Seed 000, section 4 and appendix C: ImageNet ResNet-101, Adam lr 1e-3, batch 64, 25 epochs, no weight decay.
        "paper": {"backbone": "torchvision:resnet101", "epochs": 25, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0},
        # The main job's budget: the embedded teacher's EfficientNet-Lite0, 3 epochs.
        "cpu": {"backbone": "efficientnet_lite0", "epochs": 3, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0},
    }
    space = {"lr": Range(1e-5, 5e-1, log=True)}
    produces = frozenset({"classifier", "encoder"})
    # Read at Sriram-Ravula/Contrastive-Inversion baselines.py @99f2bb7 and the config it reads.
    RELEASED = (
        Released("schedule", "appendix D.1: 'a cosine learning rate schedule', 25 epochs",
                 f"{CI_CODE} baselines.py:200-209 @99f2bb7: CosineAnnealingLR(opt, T_max=126689 // (64 * 4) = 494) stepped "
                 "once per epoch by Lightning: after 25 epochs the learning rate is 0.994 of its start",
                 "schedule=cosine, annealed to 0 over every step; baseline_schedule=released runs as released",
                 as_released="released"),
        Released("batch_size", "section 4 and appendix D.1: 'a batch size of 64'",
                 f"{CI_CODE} config/Supervised_CLIP_Baselines/randmany_baseline.yaml:34 @26439e0: batch_size: 64 per "
                 "process with gpus: 4 and distributed_backend: 'ddp' (lines 11, 13): 256 images per optimiser step",
                 "preset paper: 64, the text; baseline_batch_size=256 runs as released", as_released=256),
    )

    def build(self, ctx, opts):
        return backbone_classifier(ctx, opts.backbone, opts.backbone_weights)

    def optim(self, opts):
        return released_schedule(opts, RELEASED_T_MAX)

    def objective(self, model, ctx, opts, stream):
        return supervised_objective(model)
