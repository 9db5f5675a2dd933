"""Runs: the tracking store, child runs, params, per-epoch and per-draw metrics, tables, plots, and
retries on store faults that tell the user what failed. Tag keys come from ``schema``."""

from __future__ import annotations

import hashlib
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import LoggedModelInput
from mlflow.models import get_model_info

from cinv.data.datasets import dataset_targets
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


def log_evaluation(evaluation: Evaluation, prefix: str = "test", dataset=None) -> dict[str, float]:
    """``<prefix>_<metric>_mean`` and ``_se`` over draws and ``<prefix>_draws`` as metrics (of
    ``dataset`` when given), and every draw as a row of the table ``<prefix>_draws.json``: draws
    are not steps of a training curve."""
    summary = {f"{prefix}_{k}": v for k, v in evaluation.summary().items()}
    with_retries(mlflow.log_metrics, "logging evaluation metrics")(summary, dataset=dataset)
    rows = pd.DataFrame([{"draw": d, **metrics} for d, metrics in enumerate(evaluation.draws)])
    with_retries(mlflow.log_table, "logging per-draw metrics")(rows, f"{prefix}_draws.json")
    return summary


def log_model_metrics(model_ids: list[str], metrics: dict[str, float], dataset=None) -> None:
    """Metrics of logged models (MLflow 3): found on the model's page and by ``search_logged_models``."""
    for model_id in model_ids:
        with_retries(mlflow.log_metrics, "logging model metrics")(metrics, model_id=model_id, dataset=dataset)


def source_digest(path: str) -> str:
    """A file's content hash, or a folder's listing hash (relative paths, sizes, modification times)."""
    if path in _DIGESTS:
        return _DIGESTS[path]
    digest = hashlib.sha256()
    target = Path(path)
    if target.is_file():
        with target.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    elif target.is_dir():
        for root, dirs, files in os.walk(target):
            dirs.sort()
            for name in sorted(files):
                stat = (Path(root) / name).stat()
                digest.update(f"{Path(root, name).relative_to(target)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    _DIGESTS[path] = digest.hexdigest()
    return _DIGESTS[path]


_DIGESTS: dict[str, str] = {}


def dataset(splits, split: str):
    """One split as an MLflow dataset: its name (``<dataset>-<split>``), its source, and a digest
    of the source's content and of which images the split takes."""
    targets = dataset_targets(getattr(splits, split))
    key = f"{source_digest(splits.source) if splits.source else ''}|{split}|{len(targets)}|{hash(tuple(targets))}|{splits.image_size}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow warns that a local source may not be reachable from elsewhere
        source = resolve_dataset_source(splits.source or str(Path.cwd()))
    return MetaDataset(source=source, name=f"{Path(splits.name).name}-{split}",
                       digest=hashlib.sha256(key.encode()).hexdigest()[:10])


CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}


def log_model_input(model_uri: str) -> None:
    """Record a logged model a run used (a probe's encoder, an evaluated classifier) as its input."""
    model_id = get_model_info(model_uri).model_id
    if model_id:
        with_retries(mlflow.log_input, "logging the model input")(model=LoggedModelInput(model_id))


def log_datasets(splits, *names: str) -> None:
    """The splits a run reads, as its MLflow inputs (context training / validation / testing)."""
    for name in names:
        with_retries(mlflow.log_input, "logging datasets")(dataset(splits, name), context=CONTEXTS[name])


def _active_run_id(run_id: str | None) -> str:
    return run_id or mlflow.active_run().info.run_id


def log_table(table: pd.DataFrame, stem: str, run_id: str | None = None) -> None:
    """The same table as JSON (``mlflow.log_table``: shown and compared across runs in the UI),
    CSV (for tools), Markdown (for reading) and HTML."""
    client = mlflow.MlflowClient()
    run_id = _active_run_id(run_id)
    with_retries(client.log_table, f"writing {stem} tables")(run_id, table.astype(object).where(table.notna(), None),
                                                              f"{stem}.json")
    log_text = with_retries(client.log_text, f"writing {stem} tables")
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
