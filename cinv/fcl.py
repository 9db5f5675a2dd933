"""Feature contrastive learning (FCL, seed 002) and its baselines, as pieces for ``training.fit``.

Per example, the contextual utility u = |d CE / d x| ranks input features (pixels x channels).
Noise on the k lowest-utility features gives the positive view (the embedding should not move),
noise on the k highest gives a negative view (it should), and the other examples of the batch are
negatives too. The total objective is CE + lambda(epoch) * FCL, with lambda 0 until a warm-up.

Also here: a LeNet-like MNIST encoder (``mnist_cnn`` in ``cinv.encoders.REGISTRY``), the Patch
Gaussian corruption (``patch_gaussian`` in ``cinv.distortions.REGISTRY``) and the XE+Gaussian and
CL+Gaussian objectives. Both registrations happen when this module is imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinv import encoders
from cinv.data.batches import Views
from cinv.distortions import _normal
from cinv.registry import Registry

__all__ = [
    "MIN_UTILITY", "utility", "fcl_views", "FCLLoss", "FCLXentLoss", "FCLMarginLoss", "LOSSES", "fcl_weight",
    "FCLObjective", "fcl_objective", "xe_gaussian_objective", "cl_gaussian_objective", "MnistCNN", "mnist_cnn",
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
    noise = sigma * _normal((2, b, k), generator, images.device).to(flat.dtype)
    has_negative = u.amax(dim=1) >= MIN_UTILITY
    positive = flat.scatter_add(1, low, noise[0])
    negative = flat.scatter_add(1, high, noise[1] * has_negative[:, None].to(flat.dtype))
    return positive.view_as(images), negative.view_as(images), has_negative


class FCLLoss(nn.Module):
    """Base: cosine similarities (1 - cosine distance) of each anchor to its views and the batch.

    ``forward(z, z_pos, z_neg=None, has_negative=None)`` on penultimate embeddings [B, D]; the
    negatives of anchor i are its high-utility view (where ``has_negative``) and z_j, j != i.
    ``reduction`` "mean" (default) or "sum" over the batch: the paper writes FCL = sum_i l_i but
    does not say whether its CE is summed too, which decides what lambda = 1e-3 means.
    """

    name = ""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"FCL loss: reduction must be 'mean' or 'sum'; got {reduction!r}")
        self.reduction = reduction

    def forward(self, z: Tensor, z_pos: Tensor, z_neg: Tensor | None = None,
                has_negative: Tensor | None = None) -> Tensor:
        if z.ndim != 2 or z_pos.shape != z.shape or (z_neg is not None and z_neg.shape != z.shape):
            raise ValueError(f"FCL loss {self.name}: embeddings must all be [B, D] alike; got {tuple(z.shape)}, "
                             f"{tuple(z_pos.shape)}, {None if z_neg is None else tuple(z_neg.shape)}")
        z, z_pos = F.normalize(z.float(), dim=1), F.normalize(z_pos.float(), dim=1)
        pos = (z * z_pos).sum(1)
        batch = z @ z.T
        others = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
        if z_neg is None:
            neg, valid = pos.new_zeros(len(z)), torch.zeros(len(z), dtype=torch.bool, device=z.device)
        else:
            neg = (z * F.normalize(z_neg.float(), dim=1)).sum(1)
            valid = torch.ones(len(z), dtype=torch.bool, device=z.device) if has_negative is None else has_negative
        per_example = self.compute(pos, neg, valid.to(z.device), batch, others)
        return per_example.mean() if self.reduction == "mean" else per_example.sum()

    def compute(self, pos: Tensor, neg: Tensor, valid: Tensor, batch: Tensor, others: Tensor) -> Tensor:
        """Per-example losses from similarities: pos [B], neg [B] (used where valid), batch [B, B]
        (used where ``others``, i.e. off the diagonal)."""
        raise NotImplementedError


LOSSES: Registry[FCLLoss] = Registry("FCL loss")


@LOSSES.register("xe")
class FCLXentLoss(FCLLoss):
    """The paper's eq. 5, the variant used in all its experiments: a softmax over the positive
    and the negatives of e^{(1 - dist)/tau}."""

    name = "xe"

    def __init__(self, temperature: float = 0.1, reduction: str = "mean"):
        super().__init__(reduction)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0
        ):
            raise ValueError(f"FCL loss xe: temperature must be a positive float; got {temperature!r}")
        self.temperature = float(temperature)

    def compute(self, pos, neg, valid, batch, others):
        minus_inf = torch.tensor(float("-inf"), device=pos.device)
        logits = torch.cat([pos[:, None], torch.where(valid, neg, minus_inf)[:, None],
                            torch.where(others, batch, minus_inf)], dim=1) / self.temperature
        return torch.logsumexp(logits, dim=1) - pos / self.temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, reduction={self.reduction!r}"


@LOSSES.register("margin")
class FCLMarginLoss(FCLLoss):
    """The paper's eq. 4: dist(z, z+)^2 + sum over negatives of max(0, gamma - dist)^2.

    The paper gives no gamma; 1 (orthogonal embeddings) is the default here.
    """

    name = "margin"

    def __init__(self, gamma: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma < 0:
            raise ValueError(f"FCL loss margin: gamma must be a non-negative float; got {gamma!r}")
        self.gamma = float(gamma)

    def compute(self, pos, neg, valid, batch, others):
        hinge = lambda sim: (self.gamma - (1 - sim)).clamp_min(0).square()
        return (1 - pos).square() + hinge(neg) * valid + (hinge(batch) * others).sum(1)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


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
    from ``progress()`` when given, else from :meth:`set_epoch`; with ``fit``, pass
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
    """The paper's Algorithm 1 as a ``fit`` objective; see :class:`FCLObjective`."""
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
    clean view. Same epoch handling as :class:`FCLObjective`."""
    return _GaussianContrast(classifier, loss, k=1, sigma=0.0, weight=weight_fn)


class _GaussianContrast(FCLObjective):
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


class MnistCNN(nn.Module):
    """LeNet-like, as the paper's MNIST network: two 5x5 conv + max-pool stages, then a
    fully connected layer whose ReLU output is the penultimate embedding."""

    def __init__(self, embed_dim: int = 128, in_channels: int = 1, input_size: int = 28):
        super().__init__()
        side = ((input_size - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * side * side, embed_dim), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def mnist_cnn(weights: str | None = None, embed_dim: int = 128) -> encoders.Encoder:
    """128-d embeddings of 28x28 grayscale images; random initialisation (``weights`` None or
    "none") or a state-dict file of this encoder."""
    encoder = encoders.Encoder(MnistCNN(embed_dim), embed_dim=embed_dim, mean=MNIST_MEAN, std=MNIST_STD,
                               input_size=28, name="mnist_cnn")
    if weights not in (None, encoders.RANDOM_INIT):
        path = encoders._weights_path(weights)
        if path is None:
            raise ValueError(f"mnist_cnn weights must be a state-dict path or {encoders.RANDOM_INIT!r}; got {weights!r}")
        encoder.load_state_dict(encoders._load_state_dict(path))
    return encoder


encoders.REGISTRY.register("mnist_cnn")(mnist_cnn)
