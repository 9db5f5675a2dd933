"""``experiment``: one of the paper's experiments (``experiments.paper``), once per training seed;
trainings and evaluations as child runs, one table and one figure."""

from __future__ import annotations

from typing import Annotated, Literal

import mlflow
import pandas as pd
from pydantic import Field

from cinv import losses
from cinv.commands.common import MethodList, method_list, with_teacher
from cinv.config.base import Section
from cinv.config.options import (
    RESUME,
    TEACHER,
    TEACHER_WEIGHTS,
    Comparison,
    DataOptions,
    EncoderRef,
    EvalOptions,
    FractionList,
    LossList,
    OptionalCorruption,
    ProbeOptions,
    SpecList,
    TargetList,
    float_list,
    loss_list,
    spec_list,
    target_list,
)
from cinv.config.presets import EXPERIMENT_PAPER
from cinv.experiments import EXPERIMENTS
from cinv.experiments.lab import log_results, per_seed
from cinv.methods.inversion import StudentOptions
from cinv.methods.supervised import BaselineOptions
from cinv.tracking import schema
from cinv.training.context import setup

EXPERIMENT_NAMES = ("fixed_corruption", "label_efficiency", "severity_shift", "label_shift", "transfer", "loss_ablation",
                    "original_representations", "clean_probe_transfer", "pixel_baselines", "imagenet_c")


class ExperimentConfig(Comparison):
    """One of the paper's experiments: trainings and evaluations as child runs, one table and one figure.

    Empty lists take the experiment's own defaults (the paper's protocol); see the README."""

    PRESETS = {"cpu": {}, "paper": EXPERIMENT_PAPER}

    name: Literal[EXPERIMENT_NAMES] = Field(description=f"experiment: {', '.join(EXPERIMENT_NAMES)}")
    corruptions: SpecList = Field("", description="evaluation corruptions separated by ';' (default: the experiment's)")
    train_corruption: OptionalCorruption = Field(None, description="severity_shift / imagenet_c: the corruption (range) the "
                                                 "student trains on (default: the experiment's)")
    label_fractions: FractionList = Field("", description="probe label fractions, e.g. 1,0.1 (default: the experiment's)")
    losses: LossList = Field("", description=f"loss_ablation: losses to compare (default: all of {', '.join(losses.names())})")
    targets: TargetList = Field("", description="transfer: datasets separated by ';': cifar10(root='/data'), cifar100(root=...), "
                                "stl10(root=...), folder(root='/data/covid'), folder(root='/data/imagenet', class_list='imagenet100b'), "
                                "embedded (default)")
    label_shift_table: str | None = Field(None, description="label_shift: TSV of unseen -> seen classes (source_wnid, target_wnid "
                                          "columns) or cifar10 / imagenet100 (default: cifar10 for embedded, else imagenet100)")
    inpainting: Literal["inpaint_biharmonic", "deep_decoder"] = Field(
        "inpaint_biharmonic", description="pixel_baselines: restorer for masked pixels (the paper's Table 8: deep_decoder; "
        "nl_means restores noise)")
    deep_decoder_steps: int = Field(5000, ge=1, le=1_000_000, description="pixel_baselines: Deep Decoder optimisation steps "
                                    "per image (the paper: 5000)")
    clean_classifier: Literal["backbone", "teacher"] = Field(
        "backbone", description="pixel_baselines: the classifier trained on clean images that classifies restored ones: "
        "the pretrained baseline_backbone with a probe fitted on clean images (the paper's Tables 7/8), or the teacher's")
    baseline_fractions: bool = Field(False, description="fixed_corruption / label_efficiency: also fine-tune the baseline "
                                     "on each label fraction (not in the paper, whose baseline always sees all labels)")
    reuse: bool = Field(True, description="reuse a model already logged with the same training configuration "
                        "(fingerprint tag) instead of training it again")
    resume_run_id: str | None = RESUME
    data: Annotated[DataOptions, Section()] = DataOptions()
    teacher: EncoderRef = TEACHER
    teacher_weights: str | None = TEACHER_WEIGHTS
    student: Annotated[StudentOptions, Section("student_")] = StudentOptions(epochs=3, batch_size=128, lr=2e-3)
    baseline: Annotated[BaselineOptions, Section("baseline_")] = BaselineOptions(epochs=3)
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()
    methods: MethodList = Field("", description="methods to compare, separated by ',' (any registered method; default: "
                                "the experiment's own, e.g. student, baseline)")

    @property
    def corruption_list(self) -> list[str]:
        return spec_list(self.corruptions)

    @property
    def fraction_list(self) -> list[float]:
        return float_list(self.label_fractions)

    @property
    def target_list(self) -> list[str]:
        return target_list(self.targets)

    @property
    def loss_list(self) -> list[str]:
        return loss_list(self.losses)

    @property
    def method_list(self) -> list[str]:
        return method_list(self.methods)


def run(cfg: ExperimentConfig) -> pd.DataFrame:
    s = with_teacher(setup(cfg, "none"), cfg.teacher, cfg.teacher_weights)
    mlflow.set_tags({schema.STAGE: "experiment", schema.EXPERIMENT: cfg.name})
    rows, plot = per_seed(cfg, s, lambda lab: EXPERIMENTS.get(cfg.name, lab=lab))
    return log_results(rows, cfg.name, plot)
