"""``tune``: an Optuna search of any method's hyper-parameters (``tuning``), one MLflow run per
study, one child run per trial."""

from __future__ import annotations

from typing import Annotated, Literal

import pandas as pd
from pydantic import AfterValidator, Field, model_validator

from cinv.commands.common import with_teacher
from cinv.config.base import Section
from cinv.config.options import (
    CORRUPTION,
    TEACHER,
    TEACHER_WEIGHTS,
    Corruption,
    DataOptions,
    EncoderRef,
    EvalOptions,
    ProbeOptions,
    RunOptions,
    no_password,
)
from cinv.methods import METHODS
from cinv.methods.fcl import FCL_CPU, FCLOptions
from cinv.methods.inversion import StudentOptions
from cinv.methods.rocl import ROCL_CPU, RoCLOptions
from cinv.methods.supervised import BaselineOptions
from cinv.methods.trades import TradesOptions
from cinv.training.context import setup
from cinv.tuning import parse_space, tune


class TuneConfig(RunOptions):
    """Search the paper's hyper-parameters with Optuna: one MLflow run per study, one child run per trial."""

    study_name: str = Field("", description="Optuna study; re-running with the same name resumes it (default: "
                            "<method>-<corruption>, e.g. student-random_mask(fraction=0.9))")
    method: Annotated[str, AfterValidator(METHODS.check)] = Field(
        "student", description="what the trials train: any registered method with a search space (student, baseline, rocl, "
        "fcl, trades, ...)")
    space: str = Field("", description="override search ranges, e.g. lr=(1e-4, 1e-2), temperature=(0.1, 0.5); each method's "
                       "own: student lr, weight_decay (log), temperature; baseline lr (log); rocl lr (log), temperature; "
                       "fcl lr, lam (log); trades lr (log), beta")
    n_trials: int = Field(20, ge=1, le=100_000, description="trials this worker runs (several workers may share a study)")
    storage: Annotated[str | None, AfterValidator(no_password)] = Field(
        None, description="Optuna storage: a journal file, or an RDB URL without a password (postgresql+psycopg://...); "
                                "default: optuna.journal beside the MLflow store")
    pruner: Literal["median", "none"] = Field("median", description="prune trials whose intermediate score is below the median")
    pruner_startup_trials: int = Field(5, ge=0, description="trials completed before pruning starts")
    proxy_epochs: int = Field(1, ge=1, le=10_000, description="training budget per trial (the paper judged after one epoch)")
    reports: int = Field(4, ge=1, le=1000, description="validation scores reported per trial (pruning checkpoints)")
    val_draws: int = Field(2, ge=1, le=1000, description="corruption draws of the validation split per score")
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = CORRUPTION
    teacher: EncoderRef = TEACHER
    teacher_weights: str | None = TEACHER_WEIGHTS
    student: Annotated[StudentOptions, Section("student_")] = StudentOptions(epochs=3, batch_size=128, lr=2e-3)
    baseline: Annotated[BaselineOptions, Section("baseline_")] = BaselineOptions(epochs=3)
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()
    retrain: bool = Field(False, description="retrain with the best parameters for the full budget (<method>_epochs), "
                          "evaluate on the test split, register if <method>_registered_model_name is set")
    # The other methods' budgets (new groups after the original parameters, so MLproject keeps its order).
    rocl: Annotated[RoCLOptions, Section("rocl_")] = ROCL_CPU
    fcl: Annotated[FCLOptions, Section("fcl_")] = FCL_CPU
    trades: Annotated[TradesOptions, Section("trades_")] = TradesOptions()

    @property
    def study(self) -> str:
        """The study's name: ``study_name``, or one per method and corruption."""
        return self.study_name or f"{self.method}-{self.corruption}"

    @model_validator(mode="after")
    def _space(self):
        parse_space(self.method, self.space)
        return self


def run(cfg: TuneConfig) -> pd.DataFrame:
    s = setup(cfg)
    if METHODS.get(cfg.method).needs_teacher:
        s = with_teacher(s, cfg.teacher, cfg.teacher_weights)
    return tune(cfg, s)
