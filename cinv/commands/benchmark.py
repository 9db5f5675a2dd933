"""``benchmark``: every method (by name: the student, the baseline, RoCL, FCL, TRADES, any plug-in,
and the teacher's clean probe) on one dataset, evaluated on one suite, once per training seed."""

from __future__ import annotations

from typing import Annotated, Literal

import mlflow
import pandas as pd
from pydantic import Field

from cinv.commands.common import MethodList, with_teacher
from cinv.commands.experiment import ExperimentConfig
from cinv.config.base import Section
from cinv.config.options import AttackOptions, OptionalCorruption, SpecList
from cinv.config.presets import BENCHMARK_PAPER
from cinv.evaluation.robustness import attack_subset
from cinv.experiments.benchmark import benchmark_cells
from cinv.experiments.lab import log_results, per_seed
from cinv.experiments.paper import grouped_bars
from cinv.methods.fcl import FCL_CPU, FCLOptions
from cinv.methods.rocl import RoCLOptions
from cinv.methods.trades import TradesOptions
from cinv.tracking import schema
from cinv.training.context import setup

BENCHMARK_SUITE = ("none; random_mask(fraction=0.5); random_mask(fraction=0.9); gaussian_noise(std=0.1); gaussian_noise(std=0.3); "
                   "gaussian_blur(kernel_size=21, sigma=5); imagenet_c(corruption='fog', severity=3); "
                   "imagenet_c(corruption='contrast', severity=3); imagenet_c(corruption='shot_noise', severity=3); "
                   "imagenet_c(corruption='jpeg_compression', severity=3)")


class BenchmarkConfig(ExperimentConfig):
    """Every method (contrastive inversion, supervised baseline, RoCL, FCL) on one dataset, evaluated on one
    suite: the paper's corruptions, ImageNet-C style corruptions and PGD l_inf; one table and one plot."""

    PRESETS = {"cpu": {}, "paper": BENCHMARK_PAPER}

    name: Literal["benchmark"] = Field("benchmark", description="fixed: benchmark")
    corruptions: SpecList = Field(BENCHMARK_SUITE, description="the evaluation suite: corruption specs separated by ';'")
    train_corruption: OptionalCorruption = Field("random_mask(fraction=(0.5, 0.95))", description="what the student and "
                                                 "the baseline train on (RoCL and FCL train on clean images)")
    methods: MethodList = Field(
        "student, baseline, rocl, fcl, teacher", description="methods to compare, separated by ',': any registered method "
        "(student, baseline, rocl, fcl, trades, ...); teacher: a probe on the teacher's clean features")
    # Budgets sized for the embedded default on a CPU; the commands rocl and fcl keep the papers' own.
    rocl: Annotated[RoCLOptions, Section("rocl_")] = RoCLOptions(
        encoder="efficientnet_lite0", encoder_weights=None, epochs=3, batch_size=128, lr=1e-3, optimizer="adam",
        warmup_epochs=0, projector_hidden=512)
    fcl: Annotated[FCLOptions, Section("fcl_")] = FCL_CPU
    trades: Annotated[TradesOptions, Section("trades_")] = TradesOptions()
    attack: Annotated[AttackOptions, Section("attack_")] = AttackOptions(budgets="inf:1/255, inf:4/255", images=500,
                                                                       smoothing_samples=0, rle_epochs=0)




def run(cfg: BenchmarkConfig) -> pd.DataFrame:
    s = with_teacher(setup(cfg, "none"), cfg.teacher, cfg.teacher_weights)
    mlflow.set_tags({schema.STAGE: "experiment", schema.EXPERIMENT: "benchmark"})
    # The same seeded, class-balanced test images for every method and seed (paired).
    images, labels = attack_subset(s, cfg.attack.images, cfg.eval.draw_seed)
    rows, _ = per_seed(cfg, s, lambda lab: benchmark_cells(lab, cfg, images, labels))
    return log_results(rows, "benchmark", lambda table: grouped_bars(table, by="corruption", hue=["method"]))
