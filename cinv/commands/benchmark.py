"""``benchmark``: every method (by name: the student, the baseline, RoCL, FCL, TRADES, any plug-in)
and the teacher's clean probe on one dataset, evaluated on one suite, once per training seed: the
engine's ``benchmark`` recipe."""

from __future__ import annotations

from typing import Annotated, Literal

import mlflow
import pandas as pd
from pydantic import Field

from cinv.commands.common import MethodList, method_list, with_teacher
from cinv.commands.experiment import ExperimentConfig
from cinv.config.base import Section, Select
from cinv.config.options import AttackOptions, OptionalCorruption, SpecList
from cinv.experiments import EXPERIMENTS
from cinv.experiments.engine import hold_against_paper, log_results
from cinv.experiments.engine import run as run_recipe
from cinv.settings import registered_methods
from cinv.tracking import schema
from cinv.training.context import setup

BENCHMARK_SUITE = ("none; random_mask(fraction=0.5); random_mask(fraction=0.9); gaussian_noise(std=0.1); gaussian_noise(std=0.3); "
                   "gaussian_blur(kernel_size=21, sigma=5); imagenet_c(corruption='fog', severity=3); "
                   "imagenet_c(corruption='contrast', severity=3); imagenet_c(corruption='shot_noise', severity=3); "
                   "imagenet_c(corruption='jpeg_compression', severity=3)")


class BenchmarkConfig(ExperimentConfig):
    """Every method (contrastive inversion, supervised baseline, RoCL, FCL, ...) on one dataset, evaluated on one
    suite: the paper's corruptions, ImageNet-C style corruptions and PGD l_inf; one table and one plot."""

    # Each method at its own paper's settings (its preset); the contrastive-inversion paper's teacher, data and
    # the l_inf budgets of RoCL's Table 1 on the whole test set. The CPU budget attacks 500 images at 1/255 and
    # 4/255 (a few CPU epochs do not resist 8/255).
    PRESETS = {"cpu": {"attack_budgets": "inf:1/255, inf:4/255", "attack_images": 500},
               "paper": {"attack_budgets": "inf:8/255, inf:16/255", "attack_images": 10_000}}

    name: Annotated[Literal["benchmark"], Select()] = Field("benchmark", description="fixed: benchmark")
    corruptions: Annotated[SpecList, Select()] = Field(BENCHMARK_SUITE, description="the evaluation suite: corruption "
                                                      "specs separated by ';'")
    train_corruption: Annotated[OptionalCorruption, Select()] = Field(
        "random_mask(fraction=(0.5, 0.95))", description="what the student and the baseline train on (RoCL and FCL train "
        "on clean images)")
    methods: Annotated[MethodList, Select()] = Field(
        "", description="methods to compare, separated by ',' (default: every registered method, plug-ins included: "
        "student, baseline, rocl, fcl, trades, teacher: the teacher's original representations); the teacher's probe "
        "on clean images is always the reference row")
    attack: Annotated[AttackOptions, Section("attack_")] = AttackOptions(smoothing_samples=0, rle_epochs=0)

    def compared(self) -> list[str]:
        """``methods`` when given, else every registered method (plug-ins included)."""
        return method_list(self.methods) or registered_methods()


def run(cfg: BenchmarkConfig) -> pd.DataFrame:
    s = with_teacher(setup(cfg, "none"), cfg.teacher, cfg.teacher_weights)
    mlflow.set_tags({schema.STAGE: "experiment", schema.EXPERIMENT: "benchmark"})
    rows, plot, labs = run_recipe(cfg, s, EXPERIMENTS.get("benchmark"))
    hold_against_paper(cfg, rows, labs)
    return log_results(rows, "benchmark", plot)
