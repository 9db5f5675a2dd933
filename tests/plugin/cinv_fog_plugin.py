"""A cinv plug-in in one file: a corruption, an inversion loss and a method, registered by name."""

import torch.nn.functional as F
from pydantic import Field

from cinv import encoders
from cinv.config.options import EncoderRef, OptimOptions
from cinv.corruption import REGISTRY as CORRUPTIONS
from cinv.corruption import Distortion
from cinv.encoders.heads import Classifier
from cinv.losses import REGISTRY as LOSSES
from cinv.losses import InversionLoss
from cinv.methods import METHODS, Method, Range
from cinv.runtime import uniform


@CORRUPTIONS.register("my_fog")
class MyFog(Distortion):
    """Blend each image toward grey: strength level / 6, plus up to 0.05 drawn per image."""

    name = "my_fog"

    def __init__(self, level: int = 3):
        super().__init__(level=level)
        if not isinstance(level, int) or not 1 <= level <= 5:
            raise ValueError(f"my_fog: level must be an integer in [1, 5]; got {level!r}")
        self.level = level

    def apply(self, images, generator):
        strength = self.level / 6 + 0.05 * uniform((images.shape[0], 1, 1, 1), generator, images.device)
        return images * (1 - strength) + 0.5 * strength


@LOSSES.register("cosine")
class CosineLoss(InversionLoss):
    """1 - cos(s_i, t_i), averaged: alignment only (the temperature is unused)."""

    name = "cosine"

    def compute(self, s, t):
        return 1 - (s * t).sum(dim=1).mean()


class HeadOnlyOptions(OptimOptions):
    backbone: EncoderRef = Field("efficientnet_lite0", description="frozen pretrained backbone")
    backbone_weights: str | None = Field(None, description="backbone weights")


@METHODS.register("head_only")
class HeadOnly(Method):
    """A linear head trained on corrupted images over a frozen pretrained backbone."""

    name, display = "head_only", "head-only baseline"
    Options = HeadOnlyOptions
    PRESETS = {"cpu": {"epochs": 1, "batch_size": 64, "lr": 1e-2, "weight_decay": 0.0},
               "paper": {"epochs": 10, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.0}}
    space = {"lr": Range(1e-3, 1e-1, log=True)}
    produces = frozenset({"classifier", "encoder"})

    def build(self, ctx, opts):
        backbone = encoders.freeze(encoders.get(opts.backbone, opts.backbone_weights))
        return Classifier(backbone, ctx.splits.num_classes, backbone.embed_dim).to(ctx.device)

    def objective(self, model, ctx, opts, stream):
        return lambda views: F.cross_entropy(model(views.corrupted).float(), views.labels)

