"""The run context: what every stage of a command needs, decided once (data, corruption, device,
seed, precision, and the frozen teacher when there is one) and handed down."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import torch

from cinv import corruption as corruptions
from cinv.corruption.base import Distortion
from cinv.data.datasets import Splits, load_splits, unaugmented
from cinv.data.stream import BatchStream
from cinv.encoders.base import FrozenEncoder
from cinv.runtime import FP32, Autocast, resolve_device, resolve_precision
from cinv.tracking import schema
from cinv.tracking.runs import log_datasets, log_json
from cinv.training import distributed

__all__ = ["Setup", "setup"]


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


def setup(cfg, corruption: str | None = None) -> Setup:
    """From a command's config (its data, seed, device and precision); ``corruption``: cfg.corruption unless given."""
    data, seed = cfg.data, cfg.seed
    torch.manual_seed(seed)
    splits = load_splits(data.dataset, data.class_list, data.image_size, data.val_fraction, seed,
                         data.limit_per_class, data.skip_bad_images)
    if data.skip_bad_images and distributed.is_main():
        mlflow.log_metric("skipped_images", len(splits.skipped))
        if splits.skipped:
            log_json({"skipped": splits.skipped}, "skipped_images.json")
    device = distributed.device_for(resolve_device(cfg.device))
    precision = resolve_precision(device, cfg.precision)
    if distributed.is_main() and mlflow.active_run():
        mlflow.set_tag(schema.AUTOCAST, precision.describe())
        log_datasets(splits, "train", "val", "test")
    return Setup(splits, corruptions.from_spec(corruption or cfg.corruption), device, seed, data.num_workers, precision)


