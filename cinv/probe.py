"""Linear probe on a frozen encoder, fitted on cached features of corrupted images.

The encoder is frozen, so its features of a given corrupted image never change: they are
computed once per corruption draw and the head trains on the cache. ``feature_draws`` says how
many independent draws (crop/flip + corruption) of the training set are cached; probe epoch e
uses draw e mod feature_draws, so ``feature_draws == epochs`` gives every epoch a fresh draw,
exactly as re-running the encoder each epoch would, at the same cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from cinv.data.batches import BatchStream
from cinv.encoders import Classifier
from cinv.runtime import FP32, Autocast, channels_last, derive_seed


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
        for views in tqdm(stream.epoch(draw), total=len(stream), desc=f"{desc} {draw + 1}/{draws}", leave=False):
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
) -> list[float]:
    """Adam on the head only (the paper: lr 1e-3, batch 128, 10 epochs)."""
    head = classifier.head
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(derive_seed(seed, "probe"))
    losses = []
    for epoch in range(epochs):
        draw = epoch % len(cache.features)
        features, labels = cache.features[draw], cache.labels[draw]
        n = len(labels)
        perm = torch.randperm(n, generator=order).to(features.device)
        total, batches = 0.0, 0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            loss = criterion(classifier.classify(features[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        losses.append(total / batches)
        if on_epoch:
            on_epoch(epoch, {"probe_loss": losses[-1]})
    return losses
