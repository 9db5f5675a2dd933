"""The run context: what every stage of a command needs, decided once (data, corruption, device,
seed, precision, and the frozen teacher when there is one) and handed down.

A neutral module low in the layers (below tracking, training and the methods), so that every
layer can take a context without importing the layers that build it
(``cinv.training.context.setup`` builds one from a command's config)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cinv import distributed
from cinv.corruption.base import Distortion
from cinv.data.datasets import Splits, unaugmented
from cinv.data.stream import BatchStream
from cinv.encoders.base import FrozenEncoder
from cinv.runtime import FP32, Autocast

__all__ = ["Setup"]


@dataclass
class Setup:
    """What every stage needs: the data, the corruption, the device, the seed and the precision."""

    splits: Splits
    corruption: Distortion
    device: torch.device
    seed: int
    num_workers: int
    precision: Autocast = FP32
    teacher: FrozenEncoder | None = None  # the frozen teacher R, for the methods that invert it

    def stream(self, split: str, *, batch_size: int, purpose: str, corruption: Distortion | None = None,
               seed: int | None = None, dataset=None, augment: bool = True) -> BatchStream:
        """``purpose``: ``train`` (shuffled, augmented, a last partial batch dropped, split over the
        processes of a distributed run), ``probe`` (shuffled and augmented, every image kept) or
        ``eval``; each has its own random streams. ``augment=False``: no random crops or flips (a
        method that makes its own views)."""
        train = purpose in ("train", "probe")
        w = distributed.world() if purpose == "train" else distributed.World()
        data = dataset if dataset is not None else getattr(self.splits, split)
        return BatchStream(
            data if augment else unaugmented(data),
            corruption=corruption or self.corruption,
            batch_size=batch_size,
            image_size=self.splits.image_size,
            device=self.device,
            train=train,
            augment_on_batch=self.splits.augment_on_batch,
            seed=self.seed if seed is None else seed,
            num_workers=0 if self.splits.augment_on_batch else self.num_workers,
            flip=self.splits.flip,
            rank=w.rank,
            world_size=w.size,
            purpose=purpose,
            drop_last=None if purpose == "train" else False,
            augment=augment,
        )

    def examples(self, n: int = 2) -> torch.Tensor:
        """The first ``n`` clean test images as a model sees them (a logged model's input example)."""
        return next(iter(self.stream("test", batch_size=n, purpose="eval").epoch(0))).clean
