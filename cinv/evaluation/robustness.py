"""Adversarial attacks for evaluation: class-wise white-box attacks (robust linear evaluation and
robustness evaluation), transformation smoothing, and the attacked subset.

RoCL's label-free instance-wise attack is part of its training and lives with the method
(``cinv.methods.rocl``). The evaluation attacks
(PGD at l_inf, l_2 and l_1, AutoAttack) go through the Adversarial Robustness Toolbox (ART), a
maintained package that supports all three norms on CPU and CUDA, rather than a home-made PGD:
RoCL's released attack code was CUDA-only and l_inf-only.

Every attack runs the model in eval mode (BatchNorm on running statistics, no dropout), puts back
each module's previous mode afterwards, and leaves parameters, their gradients and the global
RNGs (torch and NumPy) as they were. Images are float [B, C, H, W] in [0, 1].
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import mlflow
import numpy as np
import torch
from torch import Tensor, nn

from cinv.context import Setup
from cinv.data.augment import SimCLRAugment, simclr_augment
from cinv.data.datasets import dataset_targets, stratified_indices
from cinv.runtime import derive_seed, eval_mode

__all__ = ["attack", "autoattack", "robust_accuracy", "classwise_pgd", "NORMS",
           "smoothed_predict", "attack_subset"]

NORMS = {"inf": np.inf, "2": 2, "1": 1}


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())


def _norm(norm: str | int | float) -> float:
    key = {"linf": "inf", "l2": "2", "l1": "1"}.get(str(norm).lower(), str(norm).lower())
    key = {"2.0": "2", "1.0": "1"}.get(key, key)
    if key not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)}")
    return NORMS[key]


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """ART draws random starts from NumPy's global RNG (and some attacks from torch's): seed both
    for the call and put them back after."""
    state = np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            np.random.seed(seed % 2**32)
            torch.random.default_generator.manual_seed(seed)
            if device.type == "cuda":
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
            yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _quiet_art() -> Iterator[None]:
    log = logging.getLogger("art")
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


def _art_classifier(classifier: nn.Module, images: Tensor, num_classes: int | None):
    from art.estimators.classification import PyTorchClassifier

    devices = {p.device for p in classifier.parameters()} | {b.device for b in classifier.buffers()}
    if devices - {images.device}:
        raise ValueError(f"attack: the classifier is on {sorted(map(str, devices))} and the images on "
                         f"{images.device}; move them to one device")
    if num_classes is None:
        with torch.no_grad():
            num_classes = int(classifier(images[:1]).shape[1])
    return PyTorchClassifier(
        model=classifier,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(images.shape[1:]),
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        device_type="gpu" if images.device.type == "cuda" else "cpu",
    )


@contextlib.contextmanager
def _art_setup(classifier: nn.Module, images: Tensor, seed: int, generator: torch.Generator | None):
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"attack: images must be a float tensor [B, C, H, W]; got {tuple(images.shape)} "
                         f"{images.dtype}")
    if generator is not None:
        seed = _seed_from(generator)
    device_scope = torch.cuda.device(images.device) if images.device.type == "cuda" else contextlib.nullcontext()
    with eval_mode(classifier, freeze=True), _seeded(seed, images.device), device_scope, _quiet_art():
        yield


def _run(art_attack, images: Tensor, labels: Tensor) -> Tensor:
    adv = art_attack.generate(x=images.detach().float().cpu().numpy(), y=labels.detach().cpu().numpy())
    return torch.from_numpy(adv).to(images.device, images.dtype)


def attack(
    classifier: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    norm: str = "inf",
    eps: float = 8 / 255,
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
    generator: torch.Generator | None = None,
    num_classes: int | None = None,
    batch_size: int = 256,
) -> Tensor:
    """White-box untargeted PGD on the cross-entropy of ``classifier`` (logits), one restart.

    ``step_size`` defaults to 2.5 * eps / steps (Madry et al.'s rule, enough to cross the ball).
    ``generator``, when given, replaces ``seed`` with a draw from it (fresh starts per batch).
    """
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    if steps < 1 or eps < 0:
        raise ValueError(f"attack: steps must be >= 1 and eps >= 0; got steps={steps}, eps={eps}")
    p = _norm(norm)
    step = 2.5 * eps / steps if step_size is None else float(step_size)
    if eps == 0:
        return images.detach().clone()
    with _art_setup(classifier, images, seed, generator):
        pgd = ProjectedGradientDescentPyTorch(
            _art_classifier(classifier, images, num_classes), norm=p, eps=float(eps), eps_step=step,
            max_iter=int(steps), targeted=False, num_random_init=int(bool(random_start)),
            batch_size=batch_size, verbose=False,
        )
        return _run(pgd, images, labels)


def autoattack(
    classifier: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    norm: str = "inf",
    eps: float = 8 / 255,
    step_size: float | None = None,
    restarts: int = 5,
    iterations: int = 100,
    square_queries: int = 5000,
    seed: int = 0,
    num_classes: int | None = None,
    batch_size: int = 256,
) -> Tensor:
    """ART's AutoAttack ensemble, per image the first success of APGD-CE, APGD-DLR, DeepFool (kept
    only inside the eps-ball) and Square: a stronger, parameter-free check of a PGD number.

    The defaults are ART's (5 restarts, 100 iterations, 5000 Square queries): minutes per 1000
    images on a GPU, dominated by Square on the images that resist the gradient attacks.
    """
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, DeepFool, SquareAttack

    p = _norm(norm)
    if eps == 0:
        return images.detach().clone()
    step = float(step_size) if step_size is not None else eps / 4
    with _art_setup(classifier, images, seed, None):
        est = _art_classifier(classifier, images, num_classes)
        apgd = [AutoProjectedGradientDescent(est, norm=p, eps=float(eps), eps_step=step, max_iter=iterations,
                                             targeted=False, nb_random_init=restarts, batch_size=batch_size,
                                             loss_type=loss, verbose=False)
                for loss in ("cross_entropy", "difference_logits_ratio")]
        others = [DeepFool(est, max_iter=iterations, epsilon=1e-3, nb_grads=10, batch_size=batch_size, verbose=False)]
        if square_queries > 0:
            others.append(SquareAttack(est, norm=p, eps=float(eps), max_iter=square_queries, p_init=0.8,
                                       nb_restarts=restarts, batch_size=batch_size, verbose=False))
        aa = AutoAttack(est, norm=p, eps=float(eps), eps_step=step, attacks=apgd + others, batch_size=batch_size)
        with np.errstate(divide="ignore", invalid="ignore"):  # Square's l_2 proposals divide 0 by 0 harmlessly
            return _run(aa, images, labels)


def classwise_pgd(
    classifier: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    eps: float = 8 / 255,
    alpha: float = 2 / 255,
    steps: int = 10,
    generator: torch.Generator | None = None,
    seed: int = 0,
) -> Tensor:
    """The class-wise l_inf PGD examples that robust linear evaluation (r-LE) trains its probe on."""
    return attack(classifier, images, labels, norm="inf", eps=eps, steps=steps, step_size=alpha,
                  random_start=True, seed=seed, generator=generator)


@torch.no_grad()
def _correct(classifier: nn.Module, images: Tensor, labels: Tensor) -> int:
    with eval_mode(classifier):
        return int((classifier(images).argmax(dim=1) == labels.to(images.device)).sum().item())


def robust_accuracy(
    classifier: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    method: str = "pgd",
    seed: int = 0,
    batch_size: int = 256,
    **options,
) -> float:
    """Accuracy in percent on adversarial examples, attacked ``batch_size`` images at a time so
    memory stays bounded; ``method`` "pgd" ([attack][]) or "autoattack" ([autoattack][]), each with
    its own ``options`` (norm, eps, ...)."""
    attacks = {"pgd": attack, "autoattack": autoattack}
    if method not in attacks:
        raise ValueError(f"robust_accuracy: method must be 'pgd' or 'autoattack'; got {method!r}")
    if len(images) == 0:
        raise ValueError("robust_accuracy: no images")
    correct = 0
    for start in range(0, len(images), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        adv = attacks[method](classifier, x, y, seed=seed + start, batch_size=batch_size, **options)
        correct += _correct(classifier, adv, y)
    return 100.0 * correct / len(images)


def smoothed_predict(
    classifier: nn.Module,
    images: Tensor,
    *,
    samples: int = 16,
    generator: torch.Generator | None = None,
    augmentation: SimCLRAugment | None = None,
) -> Tensor:
    """Transformation-smoothed logits (RoCL eq. 8): the expectation over t ~ T, estimated from
    ``samples`` random SimCLR augmentations of every image (``augmentation``: the dataset's
    family, default the colour one).

    For a cinv ``Classifier`` (an ``encoder`` and a ``classify`` head) the penultimate features
    f(t(x)) are averaged before the head, as the paper does; any other module has its logits
    averaged (the same thing for a plain linear head). Runs in eval mode, restored after; wrap in
    ``torch.no_grad()`` for inference, or not, to attack the smoothed classifier (EoT).
    """
    if samples < 1:
        raise ValueError(f"smoothed_predict: samples must be >= 1; got {samples}")
    augmentation = augmentation or simclr_augment()
    split = hasattr(classifier, "encoder") and hasattr(classifier, "classify")
    forward = classifier.encoder if split else classifier
    with eval_mode(classifier):
        total = None
        for _ in range(samples):
            out = forward(augmentation(images, generator)).float()
            total = out if total is None else total + out
        mean = total / samples
        return classifier.classify(mean) if split else mean


def attack_subset(s: Setup, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images every attack sees: a seeded, class-balanced sample of the test split
    (n // classes per class, the whole split when n is larger), as the model sees them. Logs
    ``attack_images`` and ``attack_images_per_class``."""
    targets = dataset_targets(s.splits.test)
    per_class = max(1, n // s.splits.num_classes)
    picks = stratified_indices(targets, per_class=per_class, seed=derive_seed(seed, "attack subset") % 2**63)
    subset = torch.utils.data.Subset(s.splits.test, picks.tolist())
    images, labels = [], []
    for views in s.stream("test", batch_size=256, purpose="eval", dataset=subset).epoch(0):
        images.append(views.clean)
        labels.append(views.labels)
    images, labels = torch.cat(images), torch.cat(labels)
    counts = torch.bincount(labels.cpu(), minlength=s.splits.num_classes)
    mlflow.log_metrics({"attack_images": len(labels), "attack_images_per_class": int(counts.min())})
    return images, labels
