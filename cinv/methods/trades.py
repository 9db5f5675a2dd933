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

from cinv.config.options import EncoderRef, OptimOptions
from cinv.data.stream import Views
from cinv.methods.base import METHODS, Method, Range
from cinv.methods.supervised import backbone_classifier
from cinv.runtime import derive_seed, eval_mode, normal
from cinv.training.loop import Objective

__all__ = ["TradesOptions", "Trades", "trades_objective"]


class TradesOptions(OptimOptions):
    """TRADES's CIFAR setting is beta 6, eps 8/255, step 2/255, 10 steps; the CPU default uses 3 steps."""

    backbone: EncoderRef = Field("efficientnet_lite0", description="pretrained backbone")
    backbone_weights: str | None = Field(None, description="backbone weights (as for the baseline)")
    epochs: int = Field(3, ge=1, le=10_000, description="fine-tuning epochs")
    batch_size: int = Field(64, ge=2, le=65_536, description="batch size")
    lr: float = Field(1e-3, gt=0, le=10, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, le=1, description="Adam weight decay")
    beta: float = Field(6.0, ge=0, le=1000, description="weight of the KL (robustness) term")
    eps: float = Field(8 / 255, ge=0, le=1, description="l_inf radius of the adversary")
    alpha: float = Field(2 / 255, gt=0, le=1, description="adversary step size")
    steps: int = Field(3, ge=1, le=1000, description="adversary PGD steps")


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
    name, display, title = "trades", "TRADES (adversarial baseline)", "TRADES baseline (end to end, adversarial)"
    Options = TradesOptions
    space = {"lr": Range(1e-5, 1e-1, log=True), "beta": Range(0.5, 12.0)}
    produces = frozenset({"classifier", "encoder"})

    def build(self, ctx, opts):
        return backbone_classifier(ctx, opts.backbone, opts.backbone_weights)

    def objective(self, model, ctx, opts, stream):
        generator = torch.Generator(ctx.device).manual_seed(derive_seed(ctx.seed, "trades"))
        return trades_objective(model, beta=opts.beta, eps=opts.eps, alpha=opts.alpha, steps=opts.steps, generator=generator)
