"""Building the run context ([cinv.context.Setup][]) from a command's config: the data
loaded, the device and precision decided, both recorded on the active MLflow run."""

from __future__ import annotations

import mlflow
import torch

from cinv import corruption as corruptions
from cinv import distributed
from cinv.context import Setup
from cinv.data.datasets import load_splits
from cinv.runtime import Autocast, resolve_device, use_precision
from cinv.tracking import schema
from cinv.tracking.runs import log_datasets, log_json

__all__ = ["setup", "runtime"]


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
    device, precision = runtime(cfg)
    if distributed.is_main() and mlflow.active_run():
        log_datasets(splits, "train", "val", "test")
    return Setup(splits, corruptions.from_spec(corruption or cfg.corruption), device, seed, data.num_workers, precision)


def runtime(cfg) -> tuple[torch.device, Autocast]:
    """A command's device (this process's, in a distributed run) and precision, decided once and
    applied (``fp32`` turns TF32 off), the precision recorded on the active run; every command
    that trains takes them from here and passes them down."""
    device = distributed.device_for(resolve_device(cfg.device))
    precision = use_precision(device, cfg.precision)
    if distributed.is_main() and mlflow.active_run():
        mlflow.set_tag(schema.AUTOCAST, precision.describe())
    return device, precision


