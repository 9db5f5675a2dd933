"""``main``: the whole experiment on one corruption, the engine's ``main`` recipe: the teacher's
probes (clean reference, and on corrupted images), then each method (default the student and
the supervised baseline) trained and evaluated in child runs, once per training seed."""

from __future__ import annotations

import time
from typing import Annotated

import mlflow
import pandas as pd
from pydantic import Field

from cinv.commands.common import MethodList, log_samples, method_list, with_teacher
from cinv.config.base import Runtime, Section, Select
from cinv.config.options import (
    CORRUPTION,
    INVERSION_PAPER,
    INVERSION_RELEASED,
    RESUME,
    Comparison,
    Corruption,
    DataOptions,
    EvalOptions,
    ProbeOptions,
    WithTeacher,
)
from cinv.evaluation.tables import statistic_note
from cinv.experiments import EXPERIMENTS
from cinv.experiments.engine import hold_against_paper, register_trained
from cinv.experiments.engine import run as run_recipe
from cinv.experiments.main import PARENT_METRICS, main_table
from cinv.tracking import schema
from cinv.tracking.runs import log_figure, log_table
from cinv.training.context import setup


class MainConfig(Comparison, WithTeacher):
    """The whole experiment on one corruption: teacher probes, then each method trained and evaluated."""

    PAPER, PAPER_VS_CODE = INVERSION_PAPER, INVERSION_RELEASED
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Annotated[Corruption, Select()] = CORRUPTION
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()
    methods: Annotated[MethodList, Select()] = Field(
        "student, baseline", description="methods compared with the teacher's representations, separated by ',' (any "
        "registered method, plug-ins included; each takes its options as <method>_<option>)")
    reuse: Annotated[bool, Runtime()] = Field(False, description="reuse a model already logged with the same training "
                                              "configuration (fingerprint tag) instead of training it again")
    resume_run_id: Annotated[str | None, Runtime()] = RESUME

    def compared(self) -> list[str]:
        """The methods evaluated beside the teacher's two rows (the teacher's always run)."""
        return [m for m in method_list(self.methods) if m != "teacher"]

    def method_names(self) -> list[str]:
        return ["teacher", *self.compared()]


def run(cfg: MainConfig) -> pd.DataFrame:
    """The main recipe once per training seed (``seeds``); the table reports across seeds when
    there are several. The first seed's models are registered once every stage has succeeded."""
    started = time.time()
    s = with_teacher(setup(cfg), cfg.teacher, cfg.teacher_weights)
    mlflow.set_tags({schema.STAGE: "main", **schema.corruption_tags(s.corruption.spec, s.corruption.name, s.corruption.params)})
    log_samples(s)
    rows, plot, labs = run_recipe(cfg, s, EXPERIMENTS.get("main"))
    hold_against_paper(cfg, rows, labs)
    per_seed, table = main_table(rows, [key for lab in labs for key in lab.keys])
    log_table(table, "results")  # the one table the UI's Evaluation view opens on
    log_table(per_seed, "results_per_seed", listed=False)
    log_figure(plot(table), "results.png")
    keys = labs[0].keys
    for key, row in zip(keys, table.itertuples(index=False), strict=True):
        name = PARENT_METRICS.get(key, key)
        mlflow.log_metrics({f"{name}_top1_mean": row.top1_mean, f"{name}_top1_se": row.top1_se})
    mlflow.set_tags({schema.SE_KIND: table["se_kind"].iloc[0], schema.STATISTIC: statistic_note(table)})
    first = labs[0]  # the first seed's models are registered, only now that every stage has succeeded
    for name in cfg.compared():
        first.trained(name, s.corruption)  # held, reused or (a resumed run's) replayed from its final checkpoint
        if name in first.logged:
            register_trained(name, first.logged[name], cfg.options[name])
    mlflow.log_metric("wall_time_s", time.time() - started)
    return table

