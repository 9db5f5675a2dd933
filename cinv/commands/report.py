"""``report``: tables from every evaluation a store holds, averaged only over seeds of one recipe
(``evaluation.report``)."""

from __future__ import annotations

from typing import Literal

import mlflow
import pandas as pd
from pydantic import Field

from cinv.commands.common import MethodList, method_list
from cinv.config.base import Strict
from cinv.evaluation.against_paper import log_comparison
from cinv.evaluation.report import against_paper, cells, evaluations, method_by_corruption, search
from cinv.methods import label
from cinv.settings import method_fields, registered_methods
from cinv.tracking.runs import log_table


class ReportConfig(Strict):
    """Paper-style tables (method x corruption, mean ± s.e. across seeds of one recipe, or over draws of one model) from
    every evaluation in the store."""

    experiment_names: str = Field("", description="MLflow experiments to read, separated by ','; default: all")
    metric: Literal["top1", "top5", "auc"] = Field("top1", description="metric in the table cells")
    methods: MethodList = Field("", description="only these methods (registered names, separated by ','); default: all")


def run(cfg: ReportConfig) -> pd.DataFrame:
    names = [n.strip() for n in cfg.experiment_names.split(",") if n.strip()]
    rows = evaluations(search(names), cfg.metric)
    own = mlflow.active_run().info.run_id
    rows = rows[rows["run_id"] != own]
    if cfg.methods:
        rows = rows[rows["method"].isin([label(m) for m in method_list(cfg.methods)])]
    table = cells(rows)
    mlflow.log_metrics({"evaluations": len(rows), "cells": len(table)})
    log_table(rows, "evaluations")
    log_table(table, f"report_{cfg.metric}")
    pivot = method_by_corruption(rows)
    log_table(pivot, f"report_{cfg.metric}_table")
    options = {name: [f.key for f in method_fields(name)] for name in registered_methods()}
    log_comparison(against_paper(rows, cfg.metric, options))
    return pivot
