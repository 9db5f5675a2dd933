"""Runs: the tracking store, child runs, params, per-epoch and per-draw metrics, tables, plots, and
retries on store faults that tell the user what failed. Tag keys come from ``schema``."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch

from cinv.errors import StoreError, one_line
from cinv.evaluation.metrics import Evaluation
from cinv.tracking import schema

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def configure() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///mlflow.db`` in the working directory."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(DEFAULT_TRACKING_URI)
    return mlflow.get_tracking_uri()


@contextmanager
def child_run(name: str, **tags: str):
    """A nested run under the active one; marked FAILED if its body raises."""
    with mlflow.start_run(run_name=name, nested=True, tags={k: str(v) for k, v in tags.items()}) as run:
        yield run


def log_params(params: dict[str, Any]) -> None:
    """Log params the run does not have yet.

    ``mlflow run`` logs the MLproject parameters itself (shell-quoted) before the entry point
    starts, and MLflow forbids changing a param, so those keep MLflow's values (a preset's
    parameter left at '' gets its resolved value as ``<key>.resolved``); the resolved config is
    always complete in the run's ``config.json``.
    """
    run = mlflow.active_run()
    existing = with_retries(mlflow.get_run, "reading params")(run.info.run_id).data.params if run else {}
    new = {k: "" if v is None else v for k, v in params.items() if k not in existing}
    # A preset's parameter that `mlflow run` logged as '' (its MLproject default): the resolved value beside it.
    new |= {f"{k}.resolved": v for k, v in params.items() if existing.get(k, "x").strip("'") == "" and v not in (None, "")}
    if new:
        with_retries(mlflow.log_params, "logging params")(new)


def evaluation_tags(method: str, *, eval_corruption: str, train_corruption: str, teacher: str, dataset: str, seed: int,
                    recipe: str, loss: str = "", label_fraction: float = 1.0, condition: str = "") -> dict[str, str]:
    """The tags of a run that evaluates one trained model: its recipe (``schema.RECIPE``) and seed.

    ``teacher``: the pretrained network the method starts from (the teacher, the baseline's
    backbone); ``condition``: anything else the cell changes (label shift, transfer target);
    ``recipe``: a hash of every other setting (data, budgets, optimiser, probe, evaluation)."""
    values = {"method": method, "eval_corruption": eval_corruption, "train_corruption": train_corruption,
              "teacher": teacher, "dataset": dataset, "recipe": recipe, "loss": loss,
              "label_fraction": f"{float(label_fraction):g}", "condition": condition}
    return {schema.RECIPE[k]: str(v) for k, v in values.items()} | {schema.SEED: str(seed)}


def log_json(obj: Any, artifact_file: str) -> None:
    with_retries(mlflow.log_dict, f"writing {artifact_file}")(obj, artifact_file)


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the store or the disk, not a mistake in the request."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "IO_ERROR")
    return isinstance(exc, OSError) or type(exc).__name__ in ("OperationalError", "DatabaseError")


def with_retries(fn, what: str, attempts: int = 4, wait_s: float = 0.5):
    """``fn`` retried with exponential back-off on store or disk errors, then one clear error."""
    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

    retrying = retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(attempts),
                     wait=wait_exponential(multiplier=wait_s, max=8), reraise=True)(fn)

    def call(*args, **kwargs):
        try:
            return retrying(*args, **kwargs)
        except Exception as exc:
            if not _transient(exc):
                raise
            raise StoreError(f"MLflow store {mlflow.get_tracking_uri()} failed while {what} "
                             f"({attempts} attempts): {one_line(exc)}") from None

    return call


def log_epoch_metrics(epoch: int, metrics: dict[str, float]) -> None:
    """Per-epoch metrics, logged once per step even when a resumed run passes an epoch again."""
    run_id = mlflow.active_run().info.run_id
    client = mlflow.MlflowClient()
    new = {k: v for k, v in metrics.items()
           if all(m.step != epoch for m in with_retries(client.get_metric_history, "reading metrics")(run_id, k))}
    if new:
        with_retries(mlflow.log_metrics, "logging metrics")(new, step=epoch)


def log_evaluation(evaluation: Evaluation, prefix: str = "test") -> dict[str, float]:
    """Each draw as step d of ``<prefix>_<metric>``, plus ``_mean`` and ``_se`` over draws."""
    log = with_retries(mlflow.log_metrics, "logging evaluation metrics")
    for draw, metrics in enumerate(evaluation.draws):
        log({f"{prefix}_{k}": v for k, v in metrics.items()}, step=draw)
    summary = {f"{prefix}_{k}": v for k, v in evaluation.summary().items()}
    log(summary)
    return summary


def _active_run_id(run_id: str | None) -> str:
    return run_id or mlflow.active_run().info.run_id


def log_table(table: pd.DataFrame, stem: str, run_id: str | None = None) -> None:
    """The same table as CSV (for tools), Markdown (for reading) and HTML (for the UI)."""
    log_text = with_retries(mlflow.MlflowClient().log_text, f"writing {stem} tables")
    run_id = _active_run_id(run_id)
    log_text(run_id, table.to_csv(index=False), f"{stem}.csv")
    log_text(run_id, table.to_markdown(index=False) + "\n", f"{stem}.md")
    log_text(run_id, table.to_html(index=False), f"{stem}.html")


def log_figure(figure, artifact_file: str, run_id: str | None = None) -> None:
    import matplotlib.pyplot as plt

    with_retries(mlflow.MlflowClient().log_figure, f"writing {artifact_file}")(_active_run_id(run_id), figure, artifact_file)
    plt.close(figure)


def log_image_grid(clean: torch.Tensor, corrupted: torch.Tensor, artifact_file: str = "samples.png") -> None:
    """Clean images on the top row, their corruption below (values clamped for display only)."""
    from torchvision.utils import make_grid

    grid = make_grid(torch.cat([clean, corrupted]).clamp(0, 1).cpu(), nrow=len(clean), padding=2, pad_value=1.0)
    with_retries(mlflow.log_image, f"writing {artifact_file}")((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), artifact_file)
