"""Paper-style tables from whatever evaluations an MLflow store holds.

Every run that logged ``test_<metric>_mean`` counts: the experiment command's evaluation runs,
the main job's child runs and the single-stage commands (probe, baseline, evaluate). Each becomes
one row (method, corruption, label fraction, mean and s.e. over draws); the table puts methods
against corruptions, as Table 1 does.
"""

from __future__ import annotations

import mlflow
import pandas as pd

from cinv import tracking
from cinv.config import ReportConfig

MAIN_CHILDREN = {  # the main job's child runs, by run name
    "teacher_clean_probe": ("teacher probe trained on clean images", "none"),
    "teacher_corrupted_probe": ("teacher, original representations", None),
    "student_probe": ("student (ours)", None),
    "baseline": ("supervised baseline", None),
}


def _column(runs: pd.DataFrame, name: str, default=None) -> pd.Series:
    return runs[name] if name in runs else pd.Series([default] * len(runs), index=runs.index, dtype=object)


def _method(run: pd.Series) -> str:
    from cinv.experiments import METHOD_NAMES

    stage, name = run.get("tags.cinv.stage"), run.get("tags.mlflow.runName")
    if stage == "evaluation":
        return METHOD_NAMES.get(run["tags.cinv.method"], run["tags.cinv.method"])
    if name in MAIN_CHILDREN and pd.notna(run.get("tags.mlflow.parentRunId")):
        return MAIN_CHILDREN[name][0]
    if stage == "probe":
        return f"probe on {run.get('tags.cinv.encoder')}"
    if stage == "evaluate":
        return f"classifier {run.get('tags.cinv.model')}"
    return str(run.get("tags.cinv.method") or name)


def evaluations(runs: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """One row per evaluated run of ``mlflow.search_runs`` output: method, corruption, label
    fraction, experiment, ``mean`` and ``se`` of ``metric`` over the draws."""
    mean, se = f"metrics.test_{metric}_mean", f"metrics.test_{metric}_se"
    if mean not in runs:
        return pd.DataFrame(columns=["method", "corruption", "label_fraction", "experiment", "mean", "se", "draws", "run_id"])
    runs = runs[runs[mean].notna() & (_column(runs, "status") == "FINISHED")]
    corruption = _column(runs, "tags.cinv.eval_corruption").fillna(_column(runs, "params.corruption")).fillna("none")
    fraction = (_column(runs, "params.label_fraction").fillna(_column(runs, "params.probe_label_fraction"))
                .fillna(_column(runs, "params.train.label_fraction")).fillna(1.0).astype(float))
    return pd.DataFrame({
        "method": runs.apply(_method, axis=1),
        "corruption": corruption,
        "label_fraction": fraction,
        "experiment": _column(runs, "tags.cinv.experiment").fillna(""),
        "mean": runs[mean].astype(float),
        "se": _column(runs, se, 0.0).fillna(0.0).astype(float),
        "draws": _column(runs, "metrics.test_draws", float("nan")).astype(float),
        "run_id": runs["run_id"],
    }).reset_index(drop=True)


def method_by_corruption(rows: pd.DataFrame) -> pd.DataFrame:
    """Methods (and label fractions) as rows, corruptions as columns, cells ``mean ± s.e.``.

    Several runs of one cell (repeated experiments, reused models) are averaged, their standard
    errors combined as for a mean of independent estimates.
    """
    if rows.empty:
        return pd.DataFrame()
    cells = rows.groupby(["method", "label_fraction", "corruption"], sort=False).agg(
        mean=("mean", "mean"), se=("se", lambda s: float((s.pow(2).sum()) ** 0.5 / len(s))), runs=("mean", "size"))
    text = cells["mean"].map("{:.2f}".format) + " ± " + cells["se"].map("{:.2f}".format)
    table = text.unstack("corruption").fillna("")
    columns = list(dict.fromkeys(rows["corruption"]))
    return table[[c for c in columns if c in table.columns]].reset_index()


def search(experiment_names: list[str] | None) -> pd.DataFrame:
    return mlflow.search_runs(experiment_names=experiment_names or None, search_all_experiments=not experiment_names,
                              max_results=100_000)


def run_report(cfg: ReportConfig) -> pd.DataFrame:
    names = [n.strip() for n in cfg.experiment_names.split(",") if n.strip()]
    rows = evaluations(search(names), cfg.metric)
    own = mlflow.active_run().info.run_id
    rows = rows[rows["run_id"] != own]
    table = method_by_corruption(rows)
    mlflow.log_metric("evaluations", len(rows))
    tracking.log_table(rows, "evaluations")
    tracking.log_table(table, f"report_{cfg.metric}")
    return table
