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
from cinv.data.stream import BatchStream, Views
from cinv.encoders.base import FrozenEncoder, freeze
from cinv.encoders.heads import Classifier
from cinv.evaluation.robustness import classwise_pgd
from cinv.runtime import FP32, Autocast, channels_last, derive_seed, progress
from cinv.tracking.runs import log_epoch_metrics
from cinv.tracking.serving import LoadedEncoder
from cinv.training.loop import Optim, Trainer, fit


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


class CachedFeatures:
    """The cache as a stream for the [Trainer][cinv.training.loop.Trainer]: epoch e is draw e mod
    the number of draws, in an order drawn from one generator epoch after epoch, batches of
    ``batch_size`` (the last one partial: every labelled image counts). ``Views.corrupted`` holds
    the features."""

    def __init__(self, cache: FeatureCache, batch_size: int, seed: int):
        self.cache, self.batch_size = cache, batch_size
        self.order = torch.Generator().manual_seed(derive_seed(seed, "probe"))

    def __len__(self) -> int:
        return -(-len(self.cache.labels[0]) // self.batch_size)

    def epoch(self, index: int, state: dict | None = None) -> list[Views]:
        draw = index % len(self.cache.features)
        features, labels = self.cache.features[draw], self.cache.labels[draw]
        perm = torch.randperm(len(labels), generator=self.order).to(features.device)
        return [Views(features[idx], features[idx], labels[idx]) for idx in perm.split(self.batch_size)]


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
    """The head alone, on cached features, through the one training loop: Adam by default (the
    contrastive-inversion paper: lr 1e-3, batch 128, 10 epochs), or SGD with momentum, weight
    decay and a learning rate divided by 10 after each milestone epoch (RoCL's released linear
    evaluation). Returns each epoch's mean loss; ``on_epoch(epoch, {"probe_loss": ...})``."""
    optim = Optim(epochs=epochs, lr=lr, weight_decay=weight_decay, optimizer=optimizer, momentum=momentum,
                  schedule="multistep", milestones=tuple(milestones))
    logger = (lambda epoch, metrics: on_epoch(epoch, {"probe_loss": metrics["train_loss"]})) if on_epoch else None
    history = Trainer(classifier, lambda views: nn.functional.cross_entropy(classifier.classify(views.corrupted), views.labels),
                      CachedFeatures(cache, batch_size, seed), optim, desc="probe", on_epoch=logger,
                      announce=False).run()
    return history.epoch_loss


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
