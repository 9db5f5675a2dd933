"""TRADES (Zhang et al. 2019) as a supervised adversarial baseline: the pretrained backbone with a
new head, fine-tuned on corrupted images with cross-entropy plus beta times the KL divergence
between its predictions on the image and on an l_inf adversary of that image (PGD on the KL,
model in eval mode). A peer of the supervised baseline that also buys robustness to small
worst-case perturbations; added as one module, as any method is."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from cinv.config.options import EncoderRef, OptimOptions, WeightsRef
from cinv.data.stream import Views
from cinv.methods.base import METHODS, Method, Range
from cinv.methods.baseline import backbone_classifier
from cinv.runtime import derive_seed, eval_mode, normal
from cinv.training.loop import Objective

__all__ = ["TradesOptions", "Trades", "trades_objective"]


class TradesOptions(OptimOptions):
    """Cross-entropy plus beta times the KL to an l_inf adversary found by PGD on that KL."""

    backbone: EncoderRef = Field("efficientnet_lite0", description="pretrained backbone")
    backbone_weights: WeightsRef = Field(None, description="backbone weights (as for the baseline; recorded as resolved)")
    beta: float = Field(6.0, ge=0, le=1000, description="weight of the KL (robustness) term")
    eps: float = Field(8 / 255, ge=0, le=1, description="l_inf radius of the adversary")
    alpha: float = Field(2 / 255, gt=0, le=1, description="adversary step size")
    steps: int = Field(10, ge=1, le=1000, description="adversary PGD steps")


def trades_objective(model, *, beta: float, eps: float, alpha: float, steps: int,
                     generator: torch.Generator | None = None) -> Objective:
    """CE(f(x), y) + beta * KL(f(x) || f(x')), x' maximising that KL in the eps-ball around x."""

    def objective(views: Views) -> Tensor:
        x = views.corrupted
        with eval_mode(model, freeze=True), torch.enable_grad():
            target = F.softmax(model(x).float(), dim=1).detach()
            adv = (x + 0.001 * normal(tuple(x.shape), generator, x.device)).detach()
            for _ in range(steps):
                adv.requires_grad_(True)
                kl = F.kl_div(F.log_softmax(model(adv).float(), dim=1), target, reduction="sum")
                (grad,) = torch.autograd.grad(kl, adv)
                adv = torch.min(torch.max(adv.detach() + alpha * grad.sign(), x - eps), x + eps)
        logits = model(torch.cat([x, adv.detach()])).float()
        natural, adversarial = logits.chunk(2)
        robust = F.kl_div(F.log_softmax(adversarial, dim=1), F.softmax(natural, dim=1), reduction="batchmean")
        return F.cross_entropy(natural, views.labels) + beta * robust

    return objective


@METHODS.register("trades")
class Trades(Method):
    """TRADES as a supervised adversarial baseline over the baseline's pretrained backbone."""

    display, title = "TRADES (adversarial baseline)", "TRADES baseline (end to end, adversarial)"
    Options = TradesOptions
    PRESETS = {
        # TRADES's CIFAR setting (Zhang et al. 2019): beta 6, eps 8/255, step 2/255, 10 steps; its backbone and budget
        # are the supervised baseline's (the TRADES paper trains a WRN-34 from scratch: not this comparison).
        "paper": {"epochs": 25, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0, "steps": 10,
                  "backbone": "torchvision:resnet101"},
        # Minutes on a CPU: 3 epochs, 3 attack steps.
        "cpu": {"epochs": 3, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0, "steps": 3, "backbone": "efficientnet_lite0"},
    }
    space = {"lr": Range(1e-5, 1e-1, log=True), "beta": Range(0.5, 12.0)}
    produces = frozenset({"classifier", "encoder"})

    def paper(self, data):
        """Only TRADES's own attack settings (its backbone and budget here are the baseline's, not TRADES's)."""
        return {k: v for k, v in super().paper(data).items() if k in ("steps", "beta", "eps", "alpha")}

    def build(self, ctx, opts):
        return backbone_classifier(ctx, opts.backbone, opts.backbone_weights)

    def objective(self, model, ctx, opts, stream):
        generator = torch.Generator(ctx.device).manual_seed(derive_seed(ctx.seed, "trades"))
        return trades_objective(model, beta=opts.beta, eps=opts.eps, alpha=opts.alpha, steps=opts.steps, generator=generator)
