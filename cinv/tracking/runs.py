"""Runs: the tracking store, child runs, params, per-epoch and per-draw metrics, tables, plots, and
retries on store faults that tell the user what failed. Tag keys come from ``schema``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import torch
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import LoggedModelInput
from mlflow.models import get_model_info
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

from cinv.data.datasets import dataset_targets
from cinv.errors import StoreError, one_line
from cinv.secrets import redact, redacted
from cinv.tracking import schema
from cinv.tracking.store import with_retries

log = logging.getLogger(__name__)

def target_experiment(name: str | None) -> tuple[str | None, str | None]:
    """Where new runs go, as (name, None) or (None, id): ``experiment_name``, else
    $MLFLOW_EXPERIMENT_ID (which `mlflow run` sets), else $MLFLOW_EXPERIMENT_NAME, else ``cinv``."""
    if not name and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return None, os.environ["MLFLOW_EXPERIMENT_ID"]
    return name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or schema.DEFAULT_EXPERIMENT, None


def use_experiment(name: str | None = None) -> None:
    """Make the experiment new runs go to ([target_experiment][]) the active one, creating it
    where its artifacts will really land.

    MLflow gives a local store's new experiment the plain path ``<cwd>/mlruns/<id>`` and later
    reads it as a URI, so a ``%`` in the working directory is decoded (``a%20b`` writes into
    ``a b``): such an experiment is created with an encoded ``file://`` location instead, and an
    existing one with that fault is refused before anything is written."""
    from urllib.parse import unquote, urlparse

    client = mlflow.MlflowClient()
    name, experiment_id = target_experiment(name)
    if experiment_id is not None:
        experiment = mlflow.set_experiment(experiment_id=experiment_id)
    else:
        found = client.get_experiment_by_name(name)
        if found is not None and found.lifecycle_stage == "deleted":
            raise StoreError(f"experiment {name!r} is in MLflow's trash: restore it (mlflow experiments restore "
                             f"--experiment-id {found.experiment_id}), purge it (mlflow gc --experiment-ids "
                             f"{found.experiment_id}), or give another experiment_name")
        if found is None:
            root = Path.cwd() / "mlruns"
            # A tracking server chooses its own artifact root; a database store (SQLite, PostgreSQL) uses <cwd>/mlruns.
            local = urlparse(mlflow.get_tracking_uri()).scheme not in ("http", "https", "databricks")
            location = f"{root.as_uri()}/{uuid.uuid4().hex}" if local and "%" in str(root) else None
            try:
                client.create_experiment(name, artifact_location=location)
            except mlflow.exceptions.MlflowException:
                pass  # a command starting at the same instant created it: set_experiment finds it
        experiment = mlflow.set_experiment(name)
    location = experiment.artifact_location
    if "%" in location and "://" not in location and unquote(location) != location:
        raise StoreError(f"experiment {experiment.name!r} keeps its artifacts at {location}, which MLflow decodes as a URI: "
                         f"they would be written to {unquote(location)}; use a new experiment_name (created with an "
                         "encoded location) or a working directory without '%'")


@contextmanager
def child_run(name: str, *, parent: str | None = None, **tags: str):
    """A child run of ``parent`` (default: the active run), made the active run for the block.

    The child is parented explicitly, so a training opened while an evaluation's run is active is
    still a child of the command's run (a sibling of the evaluation), not of the evaluation. When
    the parent is being resumed, its unfinished child of the same name is reopened instead (its
    checkpoints continue where they stopped). A body that raises leaves the child FAILED, or
    KILLED when interrupted, with ``cinv.error``."""
    from mlflow.tracking.context.registry import resolve_tags

    tags = {k: str(v) for k, v in tags.items()}
    parent = parent or mlflow.active_run().info.run_id
    client = mlflow.MlflowClient()
    previous = child_named(name, parent=parent, finished=False, tags=tags)
    if previous is not None:
        run = with_retries(mlflow.start_run, "reopening a child run")(run_id=previous.info.run_id, nested=True)
        mlflow.set_tags(tags)
    else:
        experiment = with_retries(client.get_run, "reading a run")(parent).info.experiment_id
        created = with_retries(client.create_run, "starting a child run")(
            experiment, run_name=name, tags=resolve_tags({schema.PARENT: parent, **tags}))
        run = with_retries(mlflow.start_run, "starting a child run")(run_id=created.info.run_id, nested=True)
    try:
        yield run
    except KeyboardInterrupt as exc:
        mlflow.set_tag(schema.ERROR, interrupted(exc))
        mlflow.end_run(status="KILLED")
        raise
    except BaseException as exc:
        mlflow.set_tag(schema.ERROR, one_line(exc)[:5000])
        mlflow.end_run(status="FAILED")
        raise
    if previous is not None and schema.ERROR in previous.data.tags:
        client.delete_tag(run.info.run_id, schema.ERROR)
    mlflow.end_run()


def interrupted(exc: BaseException) -> str:
    """What stopped a run: Ctrl-C (SIGINT) or SIGTERM."""
    return str(exc) if str(exc) else "interrupted (SIGINT)"


def resuming(run_id: str | None = None) -> bool:
    """Whether a (parent) run, default the active one, is a resumed one: its finished children can be reused."""
    run_id = run_id or (mlflow.active_run().info.run_id if mlflow.active_run() else None)
    return run_id is not None and schema.RESUMED in with_retries(mlflow.get_run, "reading tags")(run_id).data.tags


def children(parent: str | None = None) -> list:
    """The child runs of a run (default: the active one), newest first."""
    parent_run = with_retries(mlflow.get_run, "reading a run")(parent or mlflow.active_run().info.run_id).info
    return with_retries(mlflow.search_runs, "reading child runs")(
        [parent_run.experiment_id], filter_string=f"tags.`{schema.PARENT}` = '{parent_run.run_id}'",
        order_by=["attributes.start_time DESC"], output_format="list")


def child_named(name: str, *, finished: bool, tags: dict[str, str] | None = None, parent: str | None = None):
    """In a resumed run (default: the active one): its newest child called ``name`` (and carrying
    ``tags``) that is FINISHED (``finished``) or not; else None."""
    parent = parent or mlflow.active_run().info.run_id
    if not resuming(parent):
        return None
    for run in children(parent):
        if (run.info.run_name == name and (run.info.status == "FINISHED") == finished
                and all(run.data.tags.get(k) == str(v) for k, v in (tags or {}).items())):
            return run
    return None


def read_draws(run_id: str, prefix: str = "test") -> list[dict[str, float]]:
    """The per-draw metrics a run logged ([log_evaluation][]), read back draw by draw, exactly."""
    client = mlflow.MlflowClient()  # load_table searches one experiment: the run's, whichever is active
    table = client.load_table(client.get_run(run_id).info.experiment_id, f"{prefix}_draws.json", run_ids=[run_id])
    return [{k: float(v) for k, v in row.items() if k not in ("draw", "run_id")}
            for row in table.sort_values("draw").to_dict(orient="records")]


def log_params(params: dict[str, Any]) -> None:
    """Log the params the run does not have yet, as the values used.

    ``mlflow run`` logs the parameters it passed itself before the entry point starts (MLproject
    declares only parameters with a fixed default), and MLflow forbids changing a param, so those
    keep MLflow's text. A value that is None or '' (nothing set) is left out rather than logged as
    ''; the resolved config is always complete in the run's ``config.json``.
    """
    run = mlflow.active_run()
    existing = with_retries(mlflow.get_run, "reading params")(run.info.run_id).data.params if run else {}
    new = {k: redact(str(v)) for k, v in params.items() if k not in existing and v not in (None, "")}
    if new:
        with_retries(mlflow.log_params, "logging params")(new)


def training_tags(method: str, *, teacher: str, dataset: str, train_corruption: str, seed: int, recipe: str) -> dict[str, str]:
    """The provenance every run that trains or evaluates a model carries, so that one filter
    (``tags.cinv.teacher = 'x'``) finds them all: method, the pretrained network it starts from
    (the teacher, the baseline's backbone), dataset, training corruption, seed and recipe hash."""
    return {schema.METHOD: method, schema.TEACHER: str(teacher), schema.DATASET: dataset,
            schema.TRAIN_CORRUPTION: train_corruption, schema.SEED: str(seed), schema.RECIPE_HASH: recipe}


def evaluation_tags(method: str, *, eval_corruption: str, train_corruption: str, teacher: str, dataset: str, seed: int,
                    recipe: str, loss: str = "", label_fraction: float = 1.0, condition: str = "") -> dict[str, str]:
    """The tags of a run that evaluates one trained model: its recipe (``schema.RECIPE``) and seed.

    ``condition``: anything the cell changes beyond the recipe (label shift, transfer target);
    ``recipe``: a hash of every other setting (data, budgets, optimiser, probe, evaluation)."""
    optional = {schema.LOSS: loss, schema.CONDITION: condition}  # none rather than an empty chip in the UI
    return training_tags(method, teacher=teacher, dataset=dataset, train_corruption=train_corruption, seed=seed,
                         recipe=recipe) | {schema.EVAL_CORRUPTION: eval_corruption,
                                           schema.LABEL_FRACTION: f"{float(label_fraction):g}",
                                           **{k: v for k, v in optional.items() if v}}


def log_json(obj: Any, artifact_file: str) -> None:
    """A JSON artifact, with any secret in a URL masked."""
    with_retries(mlflow.log_dict, f"writing {artifact_file}")(redacted(obj), artifact_file)


def log_epoch_metrics(epoch: int, metrics: dict[str, float]) -> None:
    """Per-epoch metrics at step ``epoch`` (a probe's), once even when a resumed run passes an epoch again."""
    log_training_metrics(metrics, epoch, per_epoch=True)


def last_step(key: str, run_id: str | None = None) -> int | None:
    """The last step at which the (active) run logged ``key``; None when it never did."""
    run_id = run_id or mlflow.active_run().info.run_id
    history = with_retries(mlflow.MlflowClient().get_metric_history, "reading metrics")(run_id, key)
    return max(m.step for m in history) if history else None


def training_logger():
    """``log_training_metrics`` for one training in the active run: a resumed training replays
    the steps after its last checkpoint, and their per-step points, already in the run's history
    (the same values: the replay is exact), are not logged twice."""
    logged = last_step("train_loss") or 0

    def log(metrics: dict[str, float], step: int, per_epoch: bool) -> None:
        if per_epoch or step > logged:
            log_training_metrics(metrics, step, per_epoch)

    return log


def log_training_metrics(metrics: dict[str, float], step: int, per_epoch: bool) -> None:
    """A training curve's points at optimiser step ``step``: per step asynchronously (MLflow batches
    them; the run's end flushes them), per epoch once even when a resumed run passes the epoch again."""
    if not per_epoch:
        mlflow.log_metrics(metrics, step=step, synchronous=False)
        return
    run_id = mlflow.active_run().info.run_id
    client = mlflow.MlflowClient()
    new = {k: v for k, v in metrics.items()
           if all(m.step != step for m in with_retries(client.get_metric_history, "reading metrics")(run_id, k))}
    if new:
        with_retries(mlflow.log_metrics, "logging metrics")(new, step=step)


def log_evaluation(summary: dict[str, float], draws: list[dict[str, float]], prefix: str = "test", dataset=None) -> dict[str, float]:
    """``<prefix>_<summary key>`` as metrics (of ``dataset`` when given), and every draw as a row
    of the table ``<prefix>_draws.json``: draws are not steps of a training curve."""
    summary = {f"{prefix}_{k}": v for k, v in summary.items()}
    with_retries(mlflow.log_metrics, "logging evaluation metrics")(summary, dataset=dataset)
    rows = pd.DataFrame([{"draw": d, **metrics} for d, metrics in enumerate(draws)])
    with_retries(replace_table, "logging per-draw metrics")(rows, f"{prefix}_draws.json")
    return summary


def replace_table(table: pd.DataFrame, artifact_file: str, run_id: str | None = None, listed: bool = True) -> None:
    """``log_table``, except that the file is overwritten, never read: MLflow's appends to a table
    that is already there, so a resumed stage, or two workers finishing a study at once, would
    double the rows or read a file the other is still uploading. Writes the file in
    ``log_table``'s format, then lists it in the run's table tag, as ``log_table`` does (``listed``:
    the UI's Evaluation view shows the run's listed tables, the first one first)."""
    client = mlflow.MlflowClient()
    run_id = _active_run_id(run_id)
    client.log_text(run_id, table.to_json(orient="split", index=False, date_format="iso"), artifact_file)
    if not listed:
        return
    listed = json.loads(client.get_run(run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
    entry = {"path": artifact_file, "type": "table"}
    if entry not in listed:
        client.set_tag(run_id, MLFLOW_LOGGED_ARTIFACTS, json.dumps([*listed, entry]))


def log_model_metrics(model_ids: list[str], metrics: dict[str, float], dataset=None, run_id: str | None = None) -> None:
    """Metrics of logged models (MLflow 3): shown on each model's page, found by ``search_logged_models``.

    Written at the step and time the run logged them, so the run's history keeps each value once
    (the store skips a row it already has), and left off a model that already holds that row
    (MLflow gives a run's metrics to the models logged at their step, and a model logged after
    the evaluation gets them without their dataset: log a model before evaluating it)."""
    from mlflow.entities import Metric
    from mlflow.utils.time import get_current_time_millis

    client = mlflow.MlflowClient()
    run_id = _active_run_id(run_id)
    name, digest = (dataset.name, dataset.digest) if dataset is not None else (None, None)
    when = {}
    for key, value in metrics.items():
        history = with_retries(client.get_metric_history, "reading metrics")(run_id, key)
        same = [m for m in history if m.value == value]
        when[key] = (same[-1].timestamp, same[-1].step) if same else (get_current_time_millis(), 0)
    rows = []
    for model_id in model_ids:
        held = {(m.key, m.timestamp, m.step) for m in mlflow.get_logged_model(model_id).metrics or [] if m.run_id == run_id}
        rows += [Metric(key, value, *when[key], model_id=model_id, dataset_name=name, dataset_digest=digest, run_id=run_id)
                 for key, value in metrics.items() if (key, *when[key]) not in held]
    if rows:
        with_retries(client.log_batch, "logging model metrics")(run_id, metrics=rows)


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
    """The splits a run reads, as its MLflow inputs (context training / validation / testing).

    MLflow stores a dataset once per experiment, inserting it when a lookup finds none: processes
    starting together (tune workers) race on that insert and the losers get a unique-key error.
    The dataset the winner wrote is the one wanted, so a lost race is tried again."""
    log = with_retries(mlflow.log_input, "logging datasets")
    for name in names:
        if len(getattr(splits, name)) == 0:  # no validation hold-out (val_fraction=0): nothing read, nothing to list
            continue
        for attempt in range(3):
            try:
                log(dataset(splits, name), context=CONTEXTS[name])
                break
            except Exception as exc:
                if attempt == 2 or not lost_insert_race(exc):
                    raise


def lost_insert_race(exc: BaseException) -> bool:
    """An insert that another process made first (a unique key, in SQLite's or PostgreSQL's words)."""
    text = str(exc)
    return "UNIQUE constraint failed" in text or "duplicate key value" in text or type(exc).__name__ == "IntegrityError"


def _active_run_id(run_id: str | None) -> str:
    return run_id or mlflow.active_run().info.run_id


def log_table(table: pd.DataFrame, stem: str, run_id: str | None = None, listed: bool = True) -> None:
    """The same table as JSON (``mlflow.log_table``: shown and compared across runs in the UI's
    Evaluation view unless ``listed`` is false), CSV (for tools), Markdown (for reading) and HTML."""
    client = mlflow.MlflowClient()
    run_id = _active_run_id(run_id)
    with_retries(replace_table, f"writing {stem} tables")(table.astype(object).where(table.notna(), None), f"{stem}.json",
                                                          run_id, listed)
    log_text = with_retries(client.log_text, f"writing {stem} tables")
    log_text(run_id, table.to_csv(index=False), f"{stem}.csv")
    log_text(run_id, table.to_markdown(index=False) + "\n", f"{stem}.md")
    log_text(run_id, '<meta charset="utf-8">\n' + table.to_html(index=False), f"{stem}.html")  # "±", not "Â±"


def log_figure(figure, artifact_file: str, run_id: str | None = None) -> None:
    import matplotlib.pyplot as plt

    with_retries(mlflow.MlflowClient().log_figure, f"writing {artifact_file}")(_active_run_id(run_id), figure, artifact_file)
    plt.close(figure)


def log_image_grid(clean: torch.Tensor, corrupted: torch.Tensor, artifact_file: str = "samples.png",
                   corruption: str = "") -> None:
    """Clean images on the top row, their corruption below, each row labelled, at least 1.5 inches
    an image whatever their pixel size (values clamped for display only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(clean)
    figure, axes = plt.subplots(2, n, figsize=(1.6 * n + 1.2, 3.8), squeeze=False)
    for row, (images, name) in enumerate([(clean, "clean"), (corrupted, corruption or "corrupted")]):
        for i, ax in enumerate(axes[row]):
            image = images[i].clamp(0, 1).float().cpu()
            ax.imshow(image.permute(1, 2, 0).numpy() if image.shape[0] == 3 else image[0].numpy(), cmap="gray",
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(name, fontsize=9)
    figure.tight_layout()
    log_figure(figure, artifact_file)
