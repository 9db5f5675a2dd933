"""RoCL (Kim et al. 2020, seed 003): adversarial self-supervised contrastive learning.

SimCLR on two views t(x), t'(x), plus an instance-wise adversarial example of t(x) that joins the
positives, so the representation learns to ignore perturbations without any labels. Its loss is
``cinv.losses.rocl``, its attack [instance_wise_pgd][] (below), its views
``data.augment``; evaluation (LE, r-LE, PGD, smoothing) is the ``rocl`` command's.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from cinv import encoders, losses
from cinv.config.base import Released, Runtime, Select
from cinv.config.options import EncoderRef, OptimOptions, RegisteredName, WeightsRef
from cinv.data.augment import ORDERS, SimCLRAugment, simclr_augment
from cinv.data.stream import Views
from cinv.encoders.heads import Projector
from cinv.losses.rocl import RoCLLoss, nt_xent_pair
from cinv.methods.base import METHODS, ROCL_CODE, Method, Range
from cinv.runtime import derive_seed, eval_mode, uniform
from cinv.training.loop import Objective, Optim

__all__ = ["RoCLOptions", "RoCL", "instance_wise_pgd", "rocl_objective", "rocl_stream"]


class RoCLOptions(OptimOptions):
    """SimCLR's optimiser (SGD or LARS with warm-up and cosine), its projector and temperature, and
    the instance-wise l_inf attack whose example joins the positives."""

    encoder: EncoderRef = Field("cifar_resnet:resnet18", description="encoder trained by RoCL (the paper: ResNet-18 with a "
                                "32-px stem, cifar_resnet:resnet18)")
    encoder_weights: WeightsRef = Field(None, description="encoder weights ('none': from scratch, as the paper); default: "
                                        "the encoder's own (recorded as resolved)")
    optimizer: Literal["sgd", "lars", "adam"] = Field("lars", description="optimizer (LARS from timm: runs on CPU and GPU)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD / LARS momentum")
    warmup_epochs: int = Field(10, ge=0, description="learning-rate warm-up epochs before the cosine decay")
    warmup_multiplier: float | None = Field(
        15.0, ge=1, le=1000, description="the released GradualWarmupScheduler (src/argument.py line 111 --lr_multiplier 15, "
        "src/rocl_train.py lines 115-116 and 126): per epoch, lr up to multiplier x lr over warmup_epochs, then a "
        "cosine over the epochs; none: cinv's schedule, per step from 0 up to lr, then a cosine to 0")
    detach_similarity: bool = Field(
        True, description="the released loss (src/loss.py line 55): the similarity matrix's second operand is detached, "
        "so each embedding gets gradients through its own row only (training loss and instance-wise attack); false: "
        "through its row and its column, the textbook NT-Xent")
    temperature: float = Field(0.5, gt=0, le=100, description="NT-Xent temperature")
    lam: float = Field(1 / 256, ge=0, le=100, description="weight of NT-Xent(x_adv, t'(x))")
    adversarial: Annotated[bool, Select()] = Field(True, description="the instance-wise attack; false: plain SimCLR (the same pipeline and "
                              "budget without the attack, RoCL's own baseline)")
    eps: float = Field(8 / 255, ge=0, le=1, description="instance-wise attack l_inf radius")
    alpha: float = Field(0.007, gt=0, le=1, description="instance-wise attack step")
    instance_steps: int = Field(7, ge=1, le=1000, description="instance-wise attack steps")
    regularizer: Literal["shared", "separate"] = Field(
        "shared", description="the lambda term NT-Xent(x_adv, t'(x)): shared, on the embeddings of the one forward pass "
        "(eq. 6: its negatives the batch's); separate, the released code's second train-mode forward of [x_adv; t'(x)] "
        "with that pair's own negatives at tau 0.5 (src/attack_lib.py lines 164-177)")
    augment_order: Literal[ORDERS] = Field(
        "released", description="the order of SimCLR's four steps: released, RoCL's code (colour jitter, grey, flip, crop: "
        "src/data_loader.py lines 17-23; the paper names the steps, not their order) or simclr (crop, flip, jitter, grey)")
    projector_hidden: int = Field(2048, ge=1, description="projector hidden width")
    projector_dim: int = Field(128, ge=1, description="projector output width")
    registered_model_name: Annotated[RegisteredName, Runtime()] = Field(None, description="register the RoCL encoder under this name")


def instance_wise_pgd(
    encoder_with_projector: nn.Module,
    x_view: Tensor,
    x_other_view: Tensor,
    *,
    eps: float = 8 / 255,
    alpha: float = 0.007,
    steps: int = 7,
    temperature: float = 0.5,
    generator: torch.Generator | None = None,
    detach_similarity: bool = False,
) -> Tensor:
    """RoCL's instance-wise attack: l_inf PGD on t(x) that maximises the NT-Xent loss of
    (z(x_adv), z(t'(x))) against the batch's other instances, so no labels are needed.

    Random start in the eps-ball, ``steps`` signed-gradient steps of size ``alpha``, each projected
    to the eps-ball around ``x_view`` and to [0, 1]. Gradients are taken with respect to the input
    only, so nothing accumulates on the model's parameters. ``detach_similarity``: the released
    attack's loss (src/attack_lib.py lines 145-147: NT-Xent over [x_adv; t'(x)] with the similarity's
    second operand detached); otherwise NT-Xent with t'(x) as the fixed side.
    """
    if x_view.shape != x_other_view.shape or x_view.ndim != 4:
        raise ValueError(f"instance_wise_pgd: both views must be [B, C, H, W] of one shape; got "
                         f"{tuple(x_view.shape)} and {tuple(x_other_view.shape)}")
    if eps < 0 or alpha < 0 or steps < 0:
        raise ValueError(f"instance_wise_pgd: eps, alpha and steps must be >= 0; got {eps}, {alpha}, {steps}")
    if detach_similarity:
        def contrast(z, target):
            return nt_xent_pair(z, target, temperature, detach_columns=True)
    else:
        contrast = losses.get("nt_xent", temperature=temperature)  # its second argument is detached
    x_view = x_view.detach()
    low, high = (x_view - eps).clamp(min=0), (x_view + eps).clamp(max=1)
    start = -eps + (eps - -eps) * uniform(tuple(x_view.shape), generator, x_view.device).to(x_view.dtype)  # U[-eps, eps)
    x = (x_view + start).clamp(0, 1)
    with eval_mode(encoder_with_projector), torch.enable_grad():
        with torch.no_grad():
            target = encoder_with_projector(x_other_view)  # constant across steps in eval mode
        for _ in range(steps):
            x.requires_grad_(True)
            loss = contrast(encoder_with_projector(x), target)
            (grad,) = torch.autograd.grad(loss, [x])
            x = torch.minimum(torch.maximum(x.detach() + alpha * grad.sign(), low), high)
    return x.detach()


def rocl_objective(
    encoder: nn.Module,
    projector: nn.Module,
    loss: RoCLLoss,
    *,
    eps: float = 8 / 255,
    alpha: float = 0.007,
    steps: int = 7,
    adversarial: bool = True,
    augmentation: SimCLRAugment | None = None,
    generator: torch.Generator | None = None,
    regularizer: str = "shared",
) -> Objective:
    """Per batch: two SimCLR views of the clean images, the instance-wise attack on the first (model
    in eval mode), then the RoCL loss on one forward pass of all three in train mode;
    ``adversarial=False``: the two views alone (SimCLR).

    Labels and ``views.corrupted`` are ignored: RoCL is label-free and makes its own views
    (``augmentation``: the dataset's family, default the colour one). Pass
    ``nn.ModuleList([encoder, projector])`` (or any module holding both) to ``fit`` as the model.
    ``regularizer="separate"``: the lambda term from a second forward pass of [x_adv; t'(x)] in
    train mode, NT-Xent at tau 0.5 against that pair's own embeddings (the released code,
    src/attack_lib.py lines 164-177), instead of the shared forward's embeddings.
    """
    if regularizer not in ("shared", "separate"):
        raise ValueError(f"rocl: regularizer must be shared or separate; got {regularizer!r}")
    model = nn.Sequential(encoder, projector)
    augmentation = augmentation or simclr_augment()
    main = RoCLLoss(loss.temperature, 0.0, pooled=loss.pooled, detach=loss.detach) if regularizer == "separate" else loss

    def objective(views: Views) -> Tensor:
        view, other = augmentation.views(views.clean, generator)
        if not adversarial:
            return loss(*model(torch.cat([view, other])).chunk(2))
        adv = instance_wise_pgd(model, view, other, eps=eps, alpha=alpha, steps=steps,
                                temperature=loss.temperature, generator=generator, detach_similarity=loss.detach)
        z_view, z_other, z_adv = model(torch.cat([view, other, adv])).chunk(3)
        if regularizer == "shared":
            return loss(z_view, z_other, z_adv)
        reg = nt_xent_pair(*model(torch.cat([adv, other])).chunk(2), RELEASED_REGULARIZER_TAU, detach_columns=loss.detach)
        return main(z_view, z_other, z_adv) + loss.lam * reg

    return objective


RELEASED_REGULARIZER_TAU = 0.5  # src/attack_lib.py line 176: pairwise_similarity(output, temperature=0.5, ...)


def rocl_stream(ctx, batch_size: int, dataset=None):
    """RoCL makes its own SimCLR views of the clean images: the stream hands them over uncropped
    and unflipped (a folder's evaluation transform, no per-batch flip), so no second random crop
    sits under the views."""
    return ctx.stream("train", batch_size=batch_size, purpose="train", augment=False, dataset=dataset)


@METHODS.register("rocl")
class RoCL(Method):
    """Trained from scratch on clean images (the attack is its own); produces the encoder, a linear
    probe on clean features makes it a classifier (linear evaluation, LE)."""

    display, title = "RoCL (linear evaluation)", "RoCL (linear evaluation)"
    Options = RoCLOptions
    PRESETS = {
        # Seed 003, section 4, and the released code where the paper is silent (CIFAR-10): ResNet-18 from scratch, LARS
        # lr 0.1 (src/argument.py line 110) warmed up 15x over 10 epochs then a cosine (src/rocl_train.py lines 111-116),
        # 1000 epochs, weight decay 1e-6, tau 0.5, lambda 1/256, eps 8/255, step 0.007, 7 steps, projector 2048-128.
        # Batch 512: the README's command runs --batch-size=256 per GPU on --nproc_per_node=2 and gathers the negatives
        # of both (README.md line 25, src/argument.py line 124, src/loss.py line 28); on one process, 512 per step.
        "paper": {"encoder": "cifar_resnet:resnet18", "encoder_weights": "none", "epochs": 1000, "batch_size": 512,
                  "lr": 0.1, "weight_decay": 1e-6, "optimizer": "lars", "warmup_epochs": 10, "projector_hidden": 2048},
        # A CPU budget: EfficientNet-Lite0 from its ImageNet weights (the teacher's network, as every method of the
        # benchmark starts from), Adam with cinv's cosine, 3 epochs, a 512-wide projector, the textbook NT-Xent (the
        # settings cinv's measured RoCL/SimCLR tables ran with).
        "cpu": {"encoder": "efficientnet_lite0", "encoder_weights": None, "epochs": 3, "batch_size": 128, "lr": 1e-3,
                "weight_decay": 1e-6, "optimizer": "adam", "warmup_epochs": 0, "warmup_multiplier": None,
                "projector_hidden": 512, "detach_similarity": False, "augment_order": "simclr"},
    }
    space = {"lr": Range(1e-4, 1.0, log=True), "temperature": Range(0.1, 1.0)}
    produces = frozenset({"encoder"})
    clean_training = True
    # Read at Kim-Minseon/RoCL @6816b7b (src/attack_lib.py @b6d5185).
    RELEASED = (
        Released("regularizer", "eq. 6 and Algorithm 1: + lambda L_con(t(x)^adv, {t'(x)}, {t(x)_neg}), the batch's "
                 "negatives of t(x)",
                 f"{ROCL_CODE} src/attack_lib.py:164-177 @b6d5185: model.train(), a second forward of [x_adv; t'(x)], "
                 "NT-Xent at temperature 0.5 over that pair's own 2N embeddings, weight 1/lamda = 1/256",
                 "regularizer=shared, the one forward's embeddings; rocl_regularizer=separate runs as released",
                 as_released="separate"),
        Released("augment_order", "section 3: 'random cropping, random flip, random color distortion, and random grey "
                 "scale' (no order)",
                 f"{ROCL_CODE} src/data_loader.py:17-23 @6816b7b: Compose([rnd_color_jitter, rnd_gray, "
                 "RandomHorizontalFlip(), RandomResizedCrop(32), ToTensor()])",
                 "the paper is silent, so the released order decides (preset paper); preset cpu keeps SimCLR's crop, flip, "
                 "jitter, grey (its measured tables); only the contrast jitter differs: its mean over the whole image, "
                 "not the crop"),
    )

    def preset(self, name, data):
        values = super().preset(name, data)
        if name == "paper" and (data.image_size or 224) > 64:
            # The paper's ResNet-18 has a 32-px stem for CIFAR; on larger images, torchvision's ImageNet stem.
            values["encoder"] = "torchvision:resnet18"
        return values

    def paper(self, data):
        return super().paper(data) | {"encoder": "cifar_resnet:resnet18"}  # what the paper ran, whatever the data

    def variant(self, opts):
        return "rocl" if opts.adversarial else "simclr"

    def build(self, ctx, opts):
        encoder = encoders.get(opts.encoder, opts.encoder_weights).to(ctx.device)
        projector = Projector(encoder.embed_dim, opts.projector_hidden, opts.projector_dim).to(ctx.device)
        return nn.ModuleList([encoder, projector])

    def stream(self, ctx, opts, dataset=None):
        return rocl_stream(ctx, opts.batch_size, dataset)

    def objective(self, model, ctx, opts, stream):
        encoder, projector = model
        return rocl_objective(encoder, projector, RoCLLoss(opts.temperature, opts.lam, detach=opts.detach_similarity),
                              eps=opts.eps, alpha=opts.alpha,
                              steps=opts.instance_steps, adversarial=opts.adversarial,
                              augmentation=simclr_augment(ctx.splits.channels, ctx.splits.flip, opts.augment_order),
                              generator=torch.Generator(ctx.device).manual_seed(derive_seed(ctx.seed, "rocl")),
                              regularizer=opts.regularizer)

    def optim(self, opts):
        released = opts.warmup_multiplier is not None
        return Optim(epochs=opts.epochs, lr=opts.lr, weight_decay=opts.weight_decay, optimizer=opts.optimizer,
                     momentum=opts.momentum, warmup_epochs=opts.warmup_epochs,
                     schedule="gradual_warmup" if released else "cosine", warmup_multiplier=opts.warmup_multiplier or 1.0)

    def output(self, model):
        return model[0]
