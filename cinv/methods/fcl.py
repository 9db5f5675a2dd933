"""Feature contrastive learning (FCL, seed 002) and its baselines, as one method over the shared loop.

Per example, the contextual utility u = |d CE / d x| ranks input features (pixels x channels).
Noise on the k lowest-utility features gives the positive view (the embedding should not move),
noise on the k highest gives a negative view (it should), and the other examples of the batch are
negatives too. The total objective is CE + lambda(epoch) * FCL, with lambda 0 until a warm-up;
the FCL term is summed over the batch, as the paper's Algorithm 1 writes it. ``method`` picks FCL
or a baseline, each declared once in [VARIANTS][] (XE, XE+Gaussian, CL+Gaussian, Patch
Gaussian, Patch Gaussian + FCL): what the stream hands it and its objective. Its terms are
``cinv.losses.fcl``, its MNIST network ``mnist_cnn`` in the encoder zoo.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from cinv import encoders
from cinv.config.base import Paper, Runtime, Select
from cinv.config.options import EncoderRef, OptimOptions, RegisteredName, WeightsRef
from cinv.corruption import from_spec
from cinv.data.stream import Views
from cinv.encoders.heads import Classifier
from cinv.losses.fcl import LOSSES, FCLLoss
from cinv.methods.base import METHODS, Method, Range
from cinv.methods.baseline import supervised_objective
from cinv.runtime import derive_seed, normal
from cinv.training.loop import Optim

__all__ = [
    "FCLOptions", "FCL", "VARIANTS", "Variant", "MNIST_PAPER", "CIFAR_PAPER", "MIN_UTILITY", "utility", "fcl_views", "fcl_weight", "FCLObjective", "fcl_objective",
    "xe_gaussian_objective", "cl_gaussian_objective", "fcl_corruption", "fcl_loss", "corner_utility", "plot_corner_utility",
]


# "we drop high utility perturbations if the max utility value is smaller than 10^-12"
MIN_UTILITY = 1e-12


def utility(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """|d CE_i / d x_i| for every input element, shape of ``images``: one backward pass.

    Summed (not averaged) CE, so each example's gradient is its own loss's, whatever the batch
    size. Eval mode, so BatchNorm statistics are not updated and dropout does not add noise;
    only the input gets a gradient (parameters' ``.grad`` are left as they were).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = images.detach().requires_grad_(True)
            loss = F.cross_entropy(model(x).float(), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
    finally:
        model.train(was_training)
    return grad.abs().float()


def corner_utility(model: nn.Module, images: Tensor, labels: Tensor, corner_pixels: Tensor, *,
                   batch_size: int = 256) -> tuple[dict[str, float], dict[str, Tensor]]:
    """The paper's Figure 4 as numbers: on synthetic MNIST's balanced images with a corner digit,
    the share of each image's utility |d CE / d x| that lies on the corner digit's own pixels
    (``corner_pixels``, bool like ``images``: where the pasted digit has ink and the centre digit
    none), averaged separately over centre digits 0-4 (labels 10-14: the corner decides the
    class) and 5-9 (the corner is a distraction). A model that learnt the context puts more of
    its utility there for 0-4 than for 5-9. Returns those two shares and the mean utility maps [H, W]."""
    if corner_pixels.shape != images.shape:
        raise ValueError(f"corner_pixels must have the images' shape {tuple(images.shape)}; got {tuple(corner_pixels.shape)}")
    device = next(model.parameters()).device
    groups = {"0_4": lambda y: y >= 10, "5_9": lambda y: (y >= 5) & (y < 10)}
    shares: dict[str, list[Tensor]] = {g: [] for g in groups}
    maps: dict[str, Tensor] = {}
    for x, y, own in zip(images.split(batch_size), labels.split(batch_size), corner_pixels.split(batch_size), strict=True):
        x = (x.float() / 255 if x.dtype == torch.uint8 else x.float()).to(device)
        u = utility(model, x, y.to(device)).cpu()  # [b, C, H, W]
        total = u.flatten(1).sum(1).clamp_min(1e-30)
        share = (u * own).flatten(1).sum(1) / total
        has_corner = own.flatten(1).any(1)
        u = u.sum(1)
        for name, pick in groups.items():
            chosen = pick(y) & has_corner
            shares[name].append(share[chosen])
            maps[name] = maps.get(name, torch.zeros_like(u[0])) + u[chosen].sum(0)
    counts = {name: sum(len(v) for v in values) for name, values in shares.items()}
    means = {f"corner_utility_share_{name}": torch.cat(values).mean().item() if counts[name] else math.nan
             for name, values in shares.items()}
    return means, {name: maps[name] / max(counts[name], 1) for name in groups if name in maps}


def plot_corner_utility(maps: dict[str, Tensor], shares: dict[str, float]):
    """Mean utility maps of the two groups side by side, titled with their corner shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.4))
    for ax, (name, image) in zip(list(getattr(axes, "flat", [axes])), maps.items(), strict=True):
        ax.imshow(image.numpy(), cmap="viridis")
        ax.set_title(f"centre {name.replace('_', '-')}: corner share {shares[f'corner_utility_share_{name}']:.2f}",
                     fontsize=9)
        ax.axis("off")
    figure.suptitle("mean utility |dCE/dx| (the paper's Figure 4); share: on the corner digit's own pixels", fontsize=9)
    figure.tight_layout()
    return figure


def fcl_views(images: Tensor, utility: Tensor, k: int, sigma: float,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(positive, negative, has_negative): N(0, sigma^2) added to exactly the k lowest-utility
    features of each example (positive) or the k highest (negative). ``has_negative`` [B] is
    False where the example's utility is all below 1e-12: its ranking is noise (the paper drops
    those high-utility perturbations) and its negative is returned unperturbed. Not clamped to
    [0, 1], like the paper's sigma = 0.5 on [0, 1] images."""
    if utility.shape != images.shape:
        raise ValueError(f"utility must have the images' shape {tuple(images.shape)}; got {tuple(utility.shape)}")
    b = images.shape[0]
    flat, u = images.reshape(b, -1), utility.reshape(b, -1).float()
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= flat.shape[1]:
        raise ValueError(f"FCL: k must be an integer in [1, {flat.shape[1]}] (features per example); got {k!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"FCL: sigma must be a non-negative float; got {sigma!r}")
    low = u.topk(k, dim=1, largest=False).indices
    high = u.topk(k, dim=1, largest=True).indices
    noise = sigma * normal((2, b, k), generator, images.device).to(flat.dtype)
    has_negative = u.amax(dim=1) >= MIN_UTILITY
    positive = flat.scatter_add(1, low, noise[0])
    negative = flat.scatter_add(1, high, noise[1] * has_negative[:, None].to(flat.dtype))
    return positive.view_as(images), negative.view_as(images), has_negative


def fcl_weight(epoch: float, warmup_start: float = 2, warmup_epochs: float = 2, lam: float = 1e-3) -> float:
    """lambda at a (fractional) epoch: 0 before ``warmup_start``, a linear ramp over
    ``warmup_epochs``, then ``lam`` ("FCL is turned on after 2 epochs with a linear warmup of 2
    epochs", lambda = 0.001 on MNIST)."""
    if epoch < warmup_start:
        return 0.0
    if warmup_epochs <= 0 or epoch >= warmup_start + warmup_epochs:
        return float(lam)
    return float(lam) * (epoch - warmup_start) / warmup_epochs


class FCLObjective:
    """``objective(views) -> CE + lambda(epoch) * FCL`` for ``training.fit``.

    The training input is ``views.corrupted`` (the clean image with corruption "none"; a data
    augmentation such as Patch Gaussian otherwise, as in the paper's PG+FCL). The epoch comes
    from ``progress()`` when given, else from [set_epoch][]; with ``fit``, pass
    ``on_step=lambda step, total: objective.set_epoch(step / len(stream))``. While lambda is 0
    no utility or views are computed. ``last`` holds the latest terms, for logging.
    """

    def __init__(self, model: nn.Module, loss: FCLLoss, *, k: int, sigma: float,
                 weight: Callable[[float], float] = fcl_weight, generator: torch.Generator | None = None,
                 progress: Callable[[], float] | None = None, embed: Callable[[Tensor], Tensor] | None = None,
                 head: Callable[[Tensor], Tensor] | None = None):
        self.model, self.loss, self.k, self.sigma = model, loss, k, sigma
        self.weight, self.generator, self.progress = weight, generator, progress
        self.embed = embed if embed is not None else getattr(model, "encoder", None)
        self.head = head if head is not None else getattr(model, "classify", None)
        if self.embed is None or self.head is None:
            raise ValueError("FCL needs penultimate embeddings: give a cinv.encoders.Classifier (encoder + classify) "
                             "or embed= and head= callables with head(embed(x)) == model(x)")
        self.epoch = 0.0
        self.last: dict[str, float] = {}

    def set_epoch(self, epoch: float) -> None:
        """The training's progress in epochs (fractional), which the utility's schedule reads."""
        self.epoch = float(epoch)

    def __call__(self, views: Views) -> Tensor:
        x, labels = views.corrupted, views.labels
        epoch = float(self.progress()) if self.progress is not None else self.epoch
        lam = self.weight(epoch)
        z = self.embed(x)
        ce = F.cross_entropy(self.head(z).float(), labels)
        self.last = {"ce": ce.item(), "fcl_weight": lam}
        if lam == 0:
            return ce
        u = utility(self.model, x, labels)
        positive, negative, has_negative = fcl_views(x, u, self.k, self.sigma, self.generator)
        z_pos, z_neg = self.embed(torch.cat([positive, negative])).chunk(2)
        fcl = self.loss(z, z_pos, z_neg, has_negative)
        self.last.update(fcl=fcl.item(), negatives=has_negative.float().mean().item())
        return ce + lam * fcl


def fcl_objective(model: nn.Module, loss: FCLLoss, k: int, sigma: float,
                  weight_fn: Callable[[float], float] = fcl_weight, generator: torch.Generator | None = None,
                  progress: Callable[[], float] | None = None, **embed_head) -> FCLObjective:
    """The paper's Algorithm 1 as a ``fit`` objective; see [FCLObjective][]."""
    return FCLObjective(model, loss, k=k, sigma=sigma, weight=weight_fn, generator=generator, progress=progress,
                        **embed_head)


def xe_gaussian_objective(classifier: nn.Module, weight: float = 1e-4) -> Callable[[Views], Tensor]:
    """XE+Gaussian: CE on the clean view + ``weight`` * CE on the Gaussian-noised view (stream
    corruption ``gaussian_noise(std=sigma)``), "keeping the original label"."""

    def objective(views: Views) -> Tensor:
        logits = classifier(torch.cat([views.clean, views.corrupted])).float()
        clean, noisy = logits.chunk(2)
        return F.cross_entropy(clean, views.labels) + weight * F.cross_entropy(noisy, views.labels)

    return objective


def cl_gaussian_objective(classifier: nn.Module, loss: FCLLoss,
                          weight_fn: Callable[[float], float] = fcl_weight) -> FCLObjective:
    """CL+Gaussian: FCL's loss with the Gaussian-noised view (stream corruption
    ``gaussian_noise``) as the positive and only the other batch samples as negatives; CE on the
    clean view. Same epoch handling as [FCLObjective][]."""
    return GaussianContrast(classifier, loss, k=1, sigma=0.0, weight=weight_fn)


class GaussianContrast(FCLObjective):
    def __call__(self, views: Views) -> Tensor:
        lam = self.weight(float(self.progress()) if self.progress is not None else self.epoch)
        z = self.embed(views.clean)
        ce = F.cross_entropy(self.head(z).float(), views.labels)
        self.last = {"ce": ce.item(), "fcl_weight": lam}
        if lam == 0:
            return ce
        contrast = self.loss(z, self.embed(views.corrupted))
        self.last["fcl"] = contrast.item()
        return ce + lam * contrast


@dataclass(frozen=True)
class Variant:
    """One of FCL's trainings (the paper's method or a baseline of its section 4.2): what the
    stream hands the objective as ``views.corrupted`` (``corruption(opts)``: a spec), and the
    objective (``objective(model, opts, weight, progress, generator)``)."""

    doc: str
    corruption: Callable[[FCLOptions], str]
    objective: Callable[..., Callable[[Views], Tensor]]


def _clean(opts: FCLOptions) -> str:
    return "none"


def _gaussian(opts: FCLOptions) -> str:
    return f"gaussian_noise(std={opts.sigma})"


def _patch(opts: FCLOptions) -> str:  # the patch's own sigma; FCL's (opts.sigma) perturbs its views
    return f"patch_gaussian(patch_size={opts.patch_size}, sigma={opts.patch_sigma})"


def _contrastive(model, opts, weight, progress, generator):
    return fcl_objective(model, fcl_loss(opts), opts.k, opts.sigma, weight, generator=generator, progress=progress)


def _cross_entropy(model, opts, weight, progress, generator):
    return supervised_objective(model)


def _cl_gaussian(model, opts, weight, progress, generator):
    objective = cl_gaussian_objective(model, fcl_loss(opts), weight)
    objective.progress = progress
    return objective


VARIANTS: dict[str, Variant] = {
    "fcl": Variant("FCL (Algorithm 1) on clean images", _clean, _contrastive),
    "xe": Variant("cross-entropy alone", _clean, _cross_entropy),
    "xe_gaussian": Variant("cross-entropy plus 1e-4 x that of Gaussian-noised images", _gaussian,
                           lambda model, *_: xe_gaussian_objective(model)),
    "cl_gaussian": Variant("a contrastive term with a Gaussian-noised view as the positive", _gaussian, _cl_gaussian),
    "patch_gaussian": Variant("cross-entropy on Patch Gaussian augmented images", _patch, _cross_entropy),
    "patch_gaussian_fcl": Variant("FCL on Patch Gaussian augmented images", _patch, _contrastive),
}
"""FCL and its baselines (the paper's rows), each a training view and a loss over one method: ``method=<name>``."""


def fcl_corruption(opts: FCLOptions) -> str:
    """What the stream hands the objective as ``views.corrupted``."""
    return VARIANTS[opts.method].corruption(opts)


def fcl_loss(opts: FCLOptions) -> FCLLoss:
    """The FCL term as configured: ``xe`` or ``margin``, summed over the batch by default (the
    paper's FCL = sum_i l_i beside the batch-mean cross-entropy, so lam = 1e-3 is the paper's)."""
    params = {"temperature": opts.temperature} if opts.loss == "xe" else {"gamma": opts.gamma}
    return LOSSES.get(opts.loss, reduction=opts.reduction, **params)


# Section 4.1: "initial learning rate of 0.01 and exponential decay at a rate of 0.89 per epoch".
FCL_DECAY = 0.89


class FCLOptions(OptimOptions):
    """Adam with the learning rate decayed once per epoch; the FCL term switched on after a warm-up."""

    method: Annotated[Literal[tuple(VARIANTS)], Select()] = Field(
        "fcl", description="the training (FCL.VARIANTS): " + "; ".join(f"{k}: {v.doc}" for k, v in VARIANTS.items()))
    encoder: EncoderRef = Field("mnist_cnn", description="network trained from scratch (mnist_cnn) or a registry encoder")
    encoder_weights: WeightsRef = Field(None, description="encoder weights ('none': random initialisation); default: the "
                                        "encoder's own (recorded as resolved)")
    decay: float = Field(FCL_DECAY, gt=0, le=1, description="learning rate factor per epoch (section 4.1: 0.89)")
    loss: Literal["xe", "margin"] = Field("xe", description="FCL loss: xe (contrastive) or margin")
    k: int = Field(256, ge=1, description="features perturbed in each view")
    sigma: float = Field(0.5, gt=0, le=10, description="std of FCL's noise on the chosen features (and of XE/CL+Gaussian)")
    lam: float = Field(1e-3, ge=0, le=100, description="weight of the FCL term after warm-up")
    reduction: Literal["sum", "mean"] = Field(
        "sum", description="FCL term over the batch: sum, as the paper's Algorithm 1 (FCL = sum_i l_i, added to the mean "
        "cross-entropy), so lam means the paper's lambda; mean divides it by the batch size")
    temperature: float = Field(0.1, gt=0, le=100, description="xe loss temperature tau")
    gamma: float = Field(1.0, gt=0, le=10, description="margin loss gamma")
    warmup_start: float = Field(2, ge=0, description="epoch at which the FCL term starts")
    warmup_epochs: float = Field(2, ge=0, description="epochs of linear ramp of lambda")
    patch_size: int = Field(25, ge=1, description="Patch Gaussian square side (pixels)")
    patch_sigma: float = Field(0.1, gt=0, le=10, description="Patch Gaussian noise std (Lopes et al.'s CIFAR-10 setting, "
                               "kept apart from FCL's sigma in patch_gaussian_fcl, as the paper does)")
    registered_model_name: Annotated[RegisteredName, Runtime()] = Field(
        None, description="register the trained classifier under this name")

# Seed 002, section 4.1 (synthetic MNIST): a LeNet-like CNN from scratch, Adam lr 0.01 decayed 0.89 per epoch, 20
# epochs, k 256, lambda 1e-3, tau 0.1, sigma 0.5, FCL on after 2 epochs with a 2-epoch linear warm-up. The paper does
# not state its batch size or weight decay: cinv's 128 and 0.
MNIST_PAPER = {"encoder": "mnist_cnn", "encoder_weights": "none", "epochs": 20, "batch_size": 128, "lr": 0.01,
               "weight_decay": 0.0, "k": 256, "lam": 1e-3, "temperature": 0.1, "sigma": 0.5,
               "warmup_start": 2, "warmup_epochs": 2}
# Seed 002, appendix B (noisy CIFAR-10, FCL xe): ResNet-56 from scratch, SGD with Nesterov momentum ramped up to 1.0
# over 15 epochs and divided by 10 at epochs 200, 300 and 400, 450 epochs of batch 1024; FCL after 300 epochs with
# a 14,000-step ramp; k 256, sigma 0.5, tau 2, lambda 1e-4. cinv runs what its FCL can: a ResNet-18 (32-px stem on
# small images) from scratch, its Adam schedule, the paper's epochs, batch and FCL settings.
CIFAR_PAPER = {"encoder_weights": "none", "epochs": 450, "batch_size": 1024, "lr": 0.01, "weight_decay": 0.0,
               "k": 256, "lam": 1e-4, "temperature": 2.0, "sigma": 0.5, "warmup_start": 300,
               "warmup_epochs": 2}


@METHODS.register("fcl")
class FCL(Method):
    """FCL or one of its baselines (``method``), trained from scratch on clean images; produces a classifier."""

    display, title = "FCL", "FCL"
    Options = FCLOptions
    PRESETS = {
        "paper": MNIST_PAPER,
        # Minutes on a CPU: synthetic MNIST for 5 epochs, FCL on after 1 with a 1-epoch warm-up.
        "cpu": MNIST_PAPER | {"epochs": 5, "warmup_start": 1, "warmup_epochs": 1},
    }
    # On colour images, minutes on a CPU: EfficientNet-Lite0 from its ImageNet weights (as every method of the
    # benchmark starts from), 3 epochs at lr 1e-3, FCL on after 1, k 1024.
    RGB_CPU = {"encoder": "efficientnet_lite0", "encoder_weights": None, "epochs": 3, "batch_size": 128, "lr": 1e-3,
               "weight_decay": 0.0, "k": 1024, "lam": 1e-3, "temperature": 0.1, "sigma": 0.5,
               "warmup_start": 1, "warmup_epochs": 1}
    space = {"lr": Range(1e-4, 1e-1, log=True), "lam": Range(1e-4, 1e-2, log=True)}
    produces = frozenset({"classifier", "encoder"})
    registers = "classifier"  # the whole network: FCL's model is its classifier
    clean_training = True

    def preset(self, name, data):
        if data.channels == 1:
            return super().preset(name, data)
        if name == "cpu":
            return dict(self.RGB_CPU)
        return CIFAR_PAPER | {"encoder": "cifar_resnet:resnet18" if (data.image_size or 224) <= 64 else "torchvision:resnet18"}

    UNSTATED = ("batch_size", "weight_decay", "gamma")  # the paper does not give them

    def paper(self, data):
        defaults = {k: v for k, v in super().paper(data).items() if k not in self.UNSTATED}
        if data.channels == 1:
            return defaults | {"encoder": Paper("mnist_cnn", "section 4.1: a LeNet-like CNN (cinv's mnist_cnn)")}
        return defaults | {
            "encoder": Paper("ResNet-56", "appendix B; not in cinv's encoder zoo"),
            "lr": Paper(1.0, "appendix B: SGD with Nesterov momentum, 15-epoch ramp to 1.0; cinv's FCL trains with Adam"),
            "decay": Paper("x0.1 at epochs 200, 300, 400", "appendix B: a step schedule"),
            "warmup_epochs": Paper("14,000 steps", "appendix B: the ramp of lambda"),
        }

    def build(self, ctx, opts):
        encoder = encoders.get(opts.encoder, opts.encoder_weights)
        return Classifier(encoder, ctx.splits.num_classes, encoder.embed_dim).to(ctx.device)

    def stream(self, ctx, opts, dataset=None):
        return ctx.stream("train", batch_size=opts.batch_size, purpose="train", corruption=from_spec(fcl_corruption(opts)),
                          dataset=dataset)

    def objective(self, model, ctx, opts, stream):
        steps = [0]  # optimiser steps taken before this batch: the Trainer says (``at_step``), resumed runs included

        def progress() -> float:  # the fractional epoch of the batch being trained
            return steps[0] / len(stream)

        def weight(epoch: float) -> float:
            return fcl_weight(epoch, opts.warmup_start, opts.warmup_epochs, opts.lam)

        generator = torch.Generator(ctx.device).manual_seed(derive_seed(ctx.seed, "fcl views"))
        inner = VARIANTS[opts.method].objective(model, opts, weight, progress, generator)

        def objective(views: Views) -> Tensor:
            return inner(views)

        def at_step(step: int) -> None:
            steps[0] = step

        objective.at_step = at_step
        return objective

    def optim(self, opts):
        return Optim(epochs=opts.epochs, lr=opts.lr, weight_decay=opts.weight_decay, schedule="exponential", decay=opts.decay)

    def variant(self, opts):
        return opts.method

    def source(self, opts, teacher):
        return opts.encoder
