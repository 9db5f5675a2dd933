"""Batches of paired views: the clean image and its corruption, on the training device.

Corruption happens here, after crop/flip and before normalisation (which lives inside the
encoders), on the whole batch at once, with the same crop/flip for both views. Every epoch or
evaluation draw gets its own generators derived from (seed, purpose, index), so the same seed
gives the same shuffling, flips and corruptions, whatever the number of loader workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from cinv.distortions import Distortion, _uniform
from cinv.runtime import derive_seed, generator


class Views(NamedTuple):
    clean: torch.Tensor
    corrupted: torch.Tensor
    labels: torch.Tensor


class BatchStream:
    """Iterate a dataset split as :class:`Views`, one pass per ``epoch(index)``."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        corruption: Distortion,
        batch_size: int,
        image_size: int,
        device: torch.device,
        train: bool,
        augment_on_batch: bool,
        seed: int,
        num_workers: int = 0,
    ):
        if len(dataset) == 0:
            raise ValueError("cannot iterate an empty dataset")
        self.dataset, self.corruption = dataset, corruption
        self.batch_size, self.image_size, self.device = batch_size, image_size, device
        self.train, self.augment_on_batch, self.seed = train, augment_on_batch, seed
        self.num_workers = num_workers
        # Contrastive losses need at least two items per batch; drop a lone remainder.
        self.drop_last = train and len(dataset) > batch_size

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, index: int) -> Iterator[Views]:
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=self.train,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(derive_seed(self.seed, "order", index)),
        )
        flips = generator(self.device, self.seed, "flip", index)
        draws = generator(self.device, self.seed, "corrupt", index)
        for images, labels in loader:
            clean = self.prepare(images, flips)
            yield Views(clean, self.corruption(clean, draws), labels.to(self.device, non_blocking=True))

    def prepare(self, images: torch.Tensor, flips: torch.Generator) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
        if self.train and self.augment_on_batch:
            flip = _uniform((x.shape[0],), flips, x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x
