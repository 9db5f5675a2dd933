"""Paper-style tables from whatever evaluations an MLflow store holds.

Every run that logged ``test_<metric>_mean`` counts: the experiment command's evaluation runs,
the main job's child runs and the single-stage commands (probe, baseline, evaluate). Each is one
row with its recipe (the tags of [cinv.tracking.schema.RECIPE][]: method, loss,
teacher, dataset, training corruption, label fraction, condition, evaluation corruption and a
hash of every other setting) and its training seed. Rows are averaged only when their recipes
are equal: over distinct seeds, with the standard error across seeds; the same trained model
evaluated twice (same recipe, same seed) counts once. A cell with one seed keeps the standard
error over its evaluation draws, and says so (``se_kind``).
"""

from __future__ import annotations

import mlflow
import pandas as pd

from cinv.evaluation.against_paper import compare
from cinv.evaluation.tables import across_seeds
from cinv.methods import label
from cinv.tracking import schema

FIELDS = list(schema.RECIPE)
MAIN_CHILDREN = {  # the main job's child runs before they carried recipe tags, by run name
    "teacher_clean_probe": "teacher_clean_probe", "teacher_corrupted_probe": "teacher", "student_probe": "student",
    "baseline": "baseline"}


def _tag(key: str) -> str:
    return f"tags.{key}"


def _column(runs: pd.DataFrame, name: str, default=None) -> pd.Series:
    return runs[name] if name in runs else pd.Series([default] * len(runs), index=runs.index, dtype=object)


def _method(run: pd.Series) -> str:
    stage, name = run.get(_tag(schema.STAGE)), run.get("tags.mlflow.runName")
    method = run.get(_tag(schema.METHOD))
    if (pd.notna(run.get(_tag(schema.RECIPE_HASH))) or stage == "evaluation") and pd.notna(method):
        return label(method)
    if name in MAIN_CHILDREN and pd.notna(run.get("tags.mlflow.parentRunId")):
        return label(MAIN_CHILDREN[name])
    if stage == "probe":
        return f"probe on {run.get(_tag(schema.ENCODER))}"
    if stage == "evaluate":
        return f"classifier {run.get(_tag(schema.MODEL))}"
    return str(method if pd.notna(method) else name)


def evaluations(runs: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """One row per evaluated run of ``mlflow.search_runs`` output: its recipe fields, ``seed``,
    ``draws``, ``mean`` and ``se`` of ``metric`` over the draws, experiment and run id. Runs
    logged before cinv tagged recipes get their run id as recipe (never averaged with another)."""
    mean, se = f"metrics.test_{metric}_mean", f"metrics.test_{metric}_se"
    columns = [*FIELDS, "seed", "experiment", "mean", "se", "draws", "run_id", "key", "parent"]
    if mean not in runs:
        return pd.DataFrame(columns=columns).rename(columns={"eval_corruption": "corruption"})
    runs = runs[runs[mean].notna() & (_column(runs, "status") == "FINISHED")]
    tagged = _column(runs, _tag(schema.RECIPE_HASH)).notna()
    corruption = (_column(runs, _tag(schema.EVAL_CORRUPTION)).fillna(_column(runs, "params.corruption")).fillna("none"))
    fraction = (_column(runs, _tag(schema.LABEL_FRACTION)).fillna(_column(runs, "params.label_fraction"))
                .fillna(_column(runs, "params.probe_label_fraction")).fillna(_column(runs, "params.train.label_fraction"))
                .fillna(1.0).astype(float))
    text = lambda name: _column(runs, _tag(schema.RECIPE[name])).fillna("").astype(str)
    rows = pd.DataFrame({
        "method": runs.apply(_method, axis=1),
        "loss": text("loss"),
        "teacher": text("teacher"),
        "dataset": text("dataset"),
        "train_corruption": text("train_corruption"),
        "label_fraction": fraction,
        "condition": text("condition"),
        "corruption": corruption,
        "recipe": _column(runs, _tag(schema.RECIPE_HASH)).where(tagged, runs["run_id"]),
        "seed": _column(runs, _tag(schema.SEED)).fillna(_column(runs, "params.seed")).fillna(runs["run_id"]).astype(str),
        "experiment": _column(runs, _tag(schema.EXPERIMENT)).fillna(""),
        "mean": runs[mean].astype(float),
        "se": _column(runs, se, 0.0).fillna(0.0).astype(float),
        "draws": _column(runs, "metrics.test_draws", float("nan")).astype(float),
        "run_id": runs["run_id"],
        "key": _column(runs, _tag(schema.METHOD)).fillna(""),  # the cell key the published values are found by
        "parent": _column(runs, "tags.mlflow.parentRunId").fillna(""),
        "start_time": _column(runs, "start_time"),
    })
    # Oldest first, so that when the same model was evaluated twice the latest evaluation counts.
    return rows.sort_values("start_time", kind="stable").drop(columns="start_time").reset_index(drop=True)


RECIPE_COLUMNS = ["method", "loss", "teacher", "dataset", "train_corruption", "label_fraction", "condition", "corruption",
                  "recipe"]


def cells(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per recipe: the recipe columns, ``seeds``, ``draws`` (per seed), ``mean``, ``se``
    and ``se_kind`` (``seeds``: across independent trainings; ``draws``: one model's evaluation draws)."""
    if rows.empty:
        return pd.DataFrame(columns=[*RECIPE_COLUMNS, "seeds", "draws", "mean", "se", "se_kind"])
    stats = rows.rename(columns={"mean": "value_mean", "se": "value_se"})[[*RECIPE_COLUMNS, "seed", "draws", "value_mean",
                                                                         "value_se"]]
    stats["draws"] = stats["draws"].fillna(1).astype(int)
    table = across_seeds(stats, keys=RECIPE_COLUMNS)
    table = table.rename(columns={"value_mean": "mean", "value_se": "se"})
    return table[[*RECIPE_COLUMNS, "seeds", "draws", "mean", "se", "se_kind"]]


def method_by_corruption(rows: pd.DataFrame) -> pd.DataFrame:
    """Methods (with what distinguishes their recipes) as rows, corruptions as columns, cells
    ``mean ± s.e.``; only runs of one recipe are averaged (across seeds)."""
    if rows.empty:
        return pd.DataFrame()
    if "seed" not in rows:  # rows that are already one per recipe
        rows = rows.assign(seed=rows.get("run_id", pd.Series(range(len(rows)), index=rows.index)).astype(str))
    for column in RECIPE_COLUMNS:
        if column not in rows:
            rows = rows.assign(**{column: ""})
    table = cells(rows)
    varying = [c for c in RECIPE_COLUMNS if c not in ("method", "corruption") and table[c].astype(str).nunique() > 1]
    index = ["method", *varying]
    table["cell"] = table["mean"].map("{:.2f}".format) + " ± " + table["se"].map("{:.2f}".format)
    text = table.set_index([*index, "corruption"])["cell"].unstack("corruption").fillna("")
    columns = list(dict.fromkeys(rows["corruption"]))
    return text[[c for c in columns if c in text.columns]].reset_index()


def against_paper(rows: pd.DataFrame, metric: str = "top1", options: dict | None = None) -> pd.DataFrame:
    """Each experiment's cells in the store held against their papers (``evaluation.against_paper``),
    with the deviations its latest parent run logged (``deviations.json``); ``options``: each
    method's option keys, so a cell lists only its own method's."""
    tables = []
    for experiment, part in rows[rows["experiment"] != ""].groupby("experiment", sort=False):
        stats = part.rename(columns={"mean": f"{metric}_mean", "se": f"{metric}_se"})
        labels = stats["condition"].map(_condition_labels).apply(pd.Series) if stats["condition"].any() else None
        keys = ["key", "corruption", "train_corruption", "label_fraction", "recipe"]
        table = across_seeds(stats[[*keys, "seed", "draws", f"{metric}_mean", f"{metric}_se"]].assign(
            draws=stats["draws"].fillna(1).astype(int)), keys=keys)
        if labels is not None and not labels.empty:
            first = stats.assign(**labels).drop_duplicates(subset=keys)[[*keys, *labels.columns]]
            table = table.merge(first, on=keys, how="left")
        table = table.drop(columns="recipe")
        compared = compare(table, experiment, _deviations(part["parent"].iloc[-1]), options=options, metrics=[metric])
        tables.append(compared.assign(experiment=experiment))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _condition_labels(condition: str) -> dict[str, str]:
    """``target=cifar10(root=/d); label_shift=cifar10`` -> {"target": ..., "label_shift": ...}."""
    return dict(part.split("=", 1) for part in str(condition).split("; ") if "=" in part)


def _deviations(parent: str) -> dict:
    if not parent:
        return {}
    try:
        return mlflow.artifacts.load_dict(f"runs:/{parent}/deviations.json").get("differs_from_paper", {})
    except Exception:  # a run without one (logged before cinv wrote it)
        return {}


def search(experiment_names: list[str] | None) -> pd.DataFrame:
    return mlflow.search_runs(experiment_names=experiment_names or None, search_all_experiments=not experiment_names,
                              max_results=100_000)
