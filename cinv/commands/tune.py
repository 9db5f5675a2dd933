"""``tune``: an Optuna search of any method's hyper-parameters (``tuning``), one MLflow run per
study, one child run per trial."""

from __future__ import annotations

from typing import Annotated, Literal

import pandas as pd
from pydantic import AfterValidator, Field, model_validator

from cinv.commands.common import with_teacher
from cinv.config.base import Runtime, Section, Select
from cinv.config.options import (
    CORRUPTION,
    INVERSION_PAPER,
    INVERSION_RELEASED,
    Corruption,
    DataOptions,
    EvalOptions,
    ProbeOptions,
    Trains,
    WithTeacher,
    no_password,
)
from cinv.methods import METHODS
from cinv.training.context import setup
from cinv.tuning import OBJECTIVES, parse_space, tune


class TuneConfig(Trains, WithTeacher):
    """Search the paper's hyper-parameters with Optuna: one MLflow run per study, one child run per trial."""

    PAPER, PAPER_VS_CODE = INVERSION_PAPER, INVERSION_RELEASED
    study_name: Annotated[str, Runtime()] = Field(
        "", description="Optuna study; re-running with the same name resumes it (default: <method>-<corruption>, e.g. "
        "student-random_mask(fraction=0.9))")
    method: Annotated[str, AfterValidator(METHODS.canonical), Select()] = Field(
        "student", description="what the trials train: any registered method with a search space (student, baseline, rocl, "
        "fcl, trades, ...); its options (<method>_<option>) set everything the search does not")
    space: str = Field("", description="override search ranges, e.g. lr=(1e-4, 1e-2), temperature=(0.1, 0.5); each method's "
                       "own: student lr, weight_decay (log), temperature; baseline lr (log); rocl lr (log), temperature; "
                       "fcl lr, lam (log); trades lr (log), beta")
    search: str = Field("", description="the parameters searched, comma-separated, e.g. lam (default: every one in the "
                        "method's space); the others keep their option values")
    n_trials: Annotated[int, Runtime()] = Field(20, ge=1, le=100_000, description="trials this worker runs (several "
                                                "workers may share a study)")
    storage: Annotated[str | None, AfterValidator(no_password), Runtime()] = Field(
        None, description="Optuna storage: a journal file, or an RDB URL without a password (postgresql+psycopg://...); "
                                "default: optuna.journal beside the MLflow store")
    pruner: Literal["median", "none"] = Field("median", description="prune trials whose intermediate score is below the median")
    pruner_startup_trials: int = Field(5, ge=0, description="trials completed before pruning starts")
    proxy_epochs: int = Field(1, ge=1, le=10_000, description="training budget per trial (the paper judged after one epoch)")
    reports: int = Field(4, ge=1, le=1000, description="validation scores reported per trial (pruning checkpoints)")
    val_draws: int = Field(2, ge=1, le=1000, description="corruption draws of the validation split per score")
    objective: Literal[tuple(OBJECTIVES)] = Field(
        "val", description="a trial's score: val (top-1 on the validation split under the corruption) or val_noise_mean "
        "(the mean top-1 on the validation images clean, with uniform and with non-uniform pixel noise: FCL's BAL, BAL+UN "
        "and BAL+NUN, section 4.1, built on the validation split)")
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Annotated[Corruption, Select()] = CORRUPTION
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()
    retrain: bool = Field(False, description="retrain with the best parameters for the full budget (<method>_epochs), "
                          "evaluate on the test split, register if <method>_registered_model_name is set")

    def method_names(self) -> list[str]:
        return [self.method]

    @property
    def study(self) -> str:
        """The study's name: ``study_name``, or one per method and corruption."""
        return self.study_name or f"{self.method}-{self.corruption}"

    @model_validator(mode="after")
    def _space(self):
        parse_space(self.method, self.space, self.search)
        return self


def run(cfg: TuneConfig) -> pd.DataFrame:
    s = setup(cfg)
    if METHODS.get(cfg.method).needs_teacher:
        s = with_teacher(s, cfg.teacher, cfg.teacher_weights)
    return tune(cfg, s)
