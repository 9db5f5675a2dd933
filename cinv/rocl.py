"""RoCL (Kim et al. 2020, seed 003): adversarial self-supervised contrastive learning.

SimCLR on two views t(x), t'(x), plus an instance-wise adversarial example of t(x) that joins the
positives, so the representation learns to ignore perturbations without any labels. The pieces
here plug into :func:`cinv.training.fit` through :func:`rocl_objective`; evaluation attacks are in
:mod:`cinv.attacks`, augmentations in :mod:`cinv.augment`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinv import losses
from cinv.attacks import eval_mode, instance_wise_pgd
from cinv.augment import augment, simclr_views
from cinv.data.batches import Views
from cinv.training import Objective

__all__ = ["Projector", "RoCLLoss", "rocl_objective", "smoothed_predict"]


class Projector(nn.Module):
    """g(.): the 2-layer MLP head (512-2048-128 on ResNet-18) that the contrastive loss sees and
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


class RoCLLoss(nn.Module):
    """L_RoCL + lam * NT-Xent(x_adv, t'(x)) on projections of t(x), t'(x) and x_adv, each [N, D].

    L_RoCL is NT-Xent over the 3N embeddings where every embedding's positives are the other two
    of its instance, as in the released code (which also gives lam = 1/256): each anchor pays
    -log softmax for each of its two positives separately, over all 3N - 1 others.
    ``pooled=True`` instead puts both positives in one numerator, the paper's eq. 3 form.
    All three inputs are trained (there is no teacher side): gradients reach every one.
    """

    def __init__(self, temperature: float = 0.5, lam: float = 1 / 256, *, pooled: bool = False):
        super().__init__()
        self.pair = losses.get("nt_xent", temperature=temperature)  # checks the temperature
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"RoCLLoss: lam must be a float >= 0; got {lam!r}")
        self.temperature, self.lam, self.pooled = self.pair.temperature, float(lam), pooled

    def forward(self, z_view: Tensor, z_other: Tensor, z_adv: Tensor) -> Tensor:
        if z_view.ndim != 2 or not (z_view.shape == z_other.shape == z_adv.shape):
            raise ValueError(f"RoCLLoss: the three embeddings must be [N, D] of one shape; got "
                             f"{tuple(z_view.shape)}, {tuple(z_other.shape)}, {tuple(z_adv.shape)}")
        n = z_view.shape[0]
        if n < 2:
            raise ValueError(f"RoCLLoss: needs a batch of at least 2 to contrast; got {n}")
        z = F.normalize(torch.cat([z_view, z_other, z_adv]).float(), dim=1)
        log_prob = F.log_softmax(losses._off_diagonal(z @ z.T / self.temperature), dim=1)
        idx = torch.arange(3 * n, device=z.device)
        positives = torch.stack([(idx + n) % (3 * n), (idx + 2 * n) % (3 * n)], dim=1)  # the instance's other two
        pos = log_prob.gather(1, positives)
        main = -(torch.logsumexp(pos, dim=1).mean() if self.pooled else pos.sum(dim=1).mean())
        # NT-Xent(x_adv, t'(x)) with both sides trained: nt_xent's compute() on unit vectors, without
        # the teacher-side detach of its forward().
        reg = self.pair.compute(z[2 * n:], z[n:2 * n])
        return main + self.lam * reg

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, lam={self.lam}, pooled={self.pooled}"


def rocl_objective(
    encoder: nn.Module,
    projector: nn.Module,
    loss: RoCLLoss,
    *,
    eps: float = 8 / 255,
    alpha: float = 0.007,
    steps: int = 7,
    generator: torch.Generator | None = None,
) -> Objective:
    """Per batch: two SimCLR views of the clean images, the instance-wise attack on the first (model
    in eval mode), then the RoCL loss on one forward pass of all three in train mode.

    Labels and ``views.corrupted`` are ignored: RoCL is label-free and makes its own views. Pass
    ``nn.ModuleList([encoder, projector])`` (or any module holding both) to ``fit`` as the model.
    """
    model = nn.Sequential(encoder, projector)

    def objective(views: Views) -> Tensor:
        view, other = simclr_views(views.clean, generator)
        adv = instance_wise_pgd(model, view, other, eps=eps, alpha=alpha, steps=steps,
                                temperature=loss.temperature, generator=generator)
        z_view, z_other, z_adv = model(torch.cat([view, other, adv])).chunk(3)
        return loss(z_view, z_other, z_adv)

    return objective


def smoothed_predict(
    classifier: nn.Module,
    images: Tensor,
    *,
    samples: int = 16,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Transformation-smoothed logits (RoCL eq. 8): the expectation over t ~ T, estimated from
    ``samples`` random SimCLR augmentations of every image.

    For a cinv ``Classifier`` (an ``encoder`` and a ``classify`` head) the penultimate features
    f(t(x)) are averaged before the head, as the paper does; any other module has its logits
    averaged (the same thing for a plain linear head). Runs in eval mode, restored after; wrap in
    ``torch.no_grad()`` for inference, or not, to attack the smoothed classifier (EoT).
    """
    if samples < 1:
        raise ValueError(f"smoothed_predict: samples must be >= 1; got {samples}")
    split = hasattr(classifier, "encoder") and hasattr(classifier, "classify")
    forward = classifier.encoder if split else classifier
    with eval_mode(classifier):
        total = None
        for _ in range(samples):
            out = forward(augment(images, generator)).float()
            total = out if total is None else total + out
        mean = total / samples
        return classifier.classify(mean) if split else mean
