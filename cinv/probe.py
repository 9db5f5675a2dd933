"""Linear probe on a frozen encoder, fitted on cached features of corrupted images; and RoCL's
robust linear probe, fitted on adversarial examples of itself.

The encoder is frozen, so its features of a given corrupted image never change: they are
computed once per corruption draw and the head trains on the cache. ``feature_draws`` says how
many independent draws (crop/flip + corruption) of the training set are cached; probe epoch e
uses draw e mod feature_draws, so ``feature_draws == epochs`` gives every epoch a fresh draw,
exactly as re-running the encoder each epoch would, at the same cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import torch
from torch import nn

from cinv.config.options import ProbeOptions
from cinv.context import Setup
from cinv.corruption.base import Distortion
from cinv.data.datasets import label_subset
from cinv.data.stream import BatchStream
from cinv.encoders.base import FrozenEncoder, freeze
from cinv.encoders.heads import Classifier
from cinv.evaluation.robustness import classwise_pgd
from cinv.runtime import FP32, Autocast, channels_last, derive_seed, progress
from cinv.tracking.runs import log_epoch_metrics
from cinv.tracking.serving import LoadedEncoder
from cinv.training.loop import Optim, fit, make_optimizer, step_factor


@dataclass
class FeatureCache:
    # One entry per draw; each draw has its own shuffling, so labels are kept per draw too.
    features: list[torch.Tensor]  # [N, D] float32 on the device
    labels: list[torch.Tensor]  # [N]


@torch.inference_mode()
def extract_features(encoder: nn.Module, stream: BatchStream, draws: int, desc: str = "features",
                     precision: Autocast = FP32) -> FeatureCache:
    channels_last(encoder).eval()
    cache = FeatureCache([], [])
    for draw in range(draws):
        feats, labs = [], []
        for views in progress(stream.epoch(draw), total=len(stream), desc=f"{desc} {draw + 1}/{draws}", leave=False):
            with precision.context("frozen"):
                feats.append(encoder(views.corrupted).float())
            labs.append(views.labels)
        cache.features.append(torch.cat(feats))
        cache.labels.append(torch.cat(labs))
    return cache


def fit_head(
    classifier: Classifier,
    cache: FeatureCache,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    on_epoch=None,
    optimizer: str = "adam",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    milestones: tuple[int, ...] = (),
) -> list[float]:
    """The head alone, on cached features: Adam by default (the contrastive-inversion paper: lr
    1e-3, batch 128, 10 epochs), or SGD with momentum, weight decay and a learning rate divided by
    10 after each milestone epoch (RoCL's released linear evaluation)."""
    head = classifier.head
    opt = make_optimizer(optimizer, head.parameters(), lr, weight_decay, momentum)
    criterion = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(derive_seed(seed, "probe"))
    losses = []
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = lr * step_factor(epoch, milestones)
        draw = epoch % len(cache.features)
        features, labels = cache.features[draw], cache.labels[draw]
        n = len(labels)
        perm = torch.randperm(n, generator=order).to(features.device)
        total, batches = 0.0, 0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            loss = criterion(classifier.classify(features[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, batches = total + loss.item(), batches + 1
        losses.append(total / batches)
        if on_epoch:
            on_epoch(epoch, {"probe_loss": losses[-1]})
    return losses


FEATURE_BATCH = 256  # images per encoder pass when caching probe features (no gradients)


def train_probe(s: Setup, encoder, opts: ProbeOptions, corruption: Distortion | None = None, log: bool = True) -> Classifier:
    """Linear head on a frozen encoder, trained on (a labelled fraction of) corrupted train images:
    every labelled image (no partial batch dropped), the paper's batch size for the fraction."""
    frozen = encoder if isinstance(encoder, (FrozenEncoder, LoadedEncoder)) else freeze(encoder)
    labelled = label_subset(s.splits.train, opts.label_fraction, s.seed)
    stream = s.stream("train", batch_size=FEATURE_BATCH, purpose="probe", corruption=corruption, dataset=labelled,
                      augment=opts.augment)
    cache = extract_features(frozen, stream, opts.feature_draws, desc="probe features", precision=s.precision)
    model = Classifier(frozen, s.splits.num_classes, frozen.embed_dim, normalize=opts.normalize)
    model = model.reset_head(torch.Generator().manual_seed(derive_seed(s.seed, "probe head"))).to(s.device)
    batch_size = opts.batch_size_for(opts.label_fraction)
    fit_head(model, cache, epochs=opts.epochs, lr=opts.lr, batch_size=batch_size, seed=s.seed,
             on_epoch=log_epoch_metrics if log else None, optimizer=opts.optimizer, momentum=opts.momentum,
             weight_decay=opts.weight_decay, milestones=opts.milestone_list)
    if log:
        mlflow.log_metrics({"probe_train_images": len(cache.labels[0]), "probe_effective_batch_size": batch_size})
    return model.eval()


def robust_linear_probe(s: Setup, encoder, epochs: int, opts: ProbeOptions, *, eps: float = 8 / 255, steps: int = 10,
                        alpha: float | None = None) -> Classifier:
    """r-LE: the linear head trained on class-wise l_inf PGD examples of itself (``alpha`` per
    step, default eps / 4), with the probe's optimiser, batch, schedule and augmentation."""
    model = Classifier(freeze(encoder, input_gradients=True), s.splits.num_classes, encoder.embed_dim).to(s.device)
    model.reset_head(torch.Generator().manual_seed(derive_seed(s.seed, "rle head")))
    generator = torch.Generator(s.device).manual_seed(derive_seed(s.seed, "rle"))
    step = eps / 4 if alpha is None else alpha

    def objective(views):
        adversarial = classwise_pgd(model, views.clean, views.labels, eps=eps, alpha=step, steps=steps, generator=generator)
        return nn.functional.cross_entropy(model(adversarial).float(), views.labels)

    optim = Optim(epochs=epochs, lr=opts.lr, weight_decay=opts.weight_decay, optimizer=opts.optimizer, momentum=opts.momentum,
                  **({"schedule": "multistep", "milestones": opts.milestone_list} if opts.milestones else {}))
    fit(model, objective, s.stream("train", batch_size=opts.batch_size, purpose="probe", augment=opts.augment), optim,
        desc="r-LE", precision=s.precision)
    return model.eval()
