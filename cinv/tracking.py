"""Everything cinv writes to MLflow: runs, params, per-draw metrics, tables, plots, models.

Models are logged in MLflow's ``pt2`` format (``torch.export``) on purpose: loading one runs no
pickled code, and it carries its preprocessing (normalisation is inside the graph; input size
and class names are in the model's metadata). The batch dimension is dynamic.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from torch import nn

from cinv.evaluation import Evaluation

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
    starts, and MLflow forbids changing a param, so those keep MLflow's values; the resolved
    config is always complete in the run's ``config.json``.
    """
    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    new = {k: "" if v is None else v for k, v in params.items() if k not in existing}
    if new:
        mlflow.log_params(new)


def log_json(obj: Any, artifact_file: str) -> None:
    mlflow.log_dict(obj, artifact_file)


def log_epoch_metrics(epoch: int, metrics: dict[str, float]) -> None:
    mlflow.log_metrics(metrics, step=epoch)


def log_evaluation(evaluation: Evaluation, prefix: str = "test") -> dict[str, float]:
    """Each draw as step d of ``<prefix>_<metric>``, plus ``_mean`` and ``_se`` over draws."""
    for draw, metrics in enumerate(evaluation.draws):
        mlflow.log_metrics({f"{prefix}_{k}": v for k, v in metrics.items()}, step=draw)
    summary = {f"{prefix}_{k}": v for k, v in evaluation.summary().items()}
    mlflow.log_metrics(summary)
    return summary


def log_table(table: pd.DataFrame, stem: str) -> None:
    """The same table as CSV (for tools), Markdown (for reading) and HTML (for the UI)."""
    mlflow.log_text(table.to_csv(index=False), f"{stem}.csv")
    mlflow.log_text(table.to_markdown(index=False) + "\n", f"{stem}.md")
    mlflow.log_text(table.to_html(index=False), f"{stem}.html")


def log_figure(figure, artifact_file: str) -> None:
    import matplotlib.pyplot as plt

    mlflow.log_figure(figure, artifact_file)
    plt.close(figure)


def log_image_grid(clean: torch.Tensor, corrupted: torch.Tensor, artifact_file: str = "samples.png") -> None:
    """Clean images on the top row, their corruption below (values clamped for display only)."""
    from torchvision.utils import make_grid

    grid = make_grid(torch.cat([clean, corrupted]).clamp(0, 1).cpu(), nrow=len(clean), padding=2, pad_value=1.0)
    mlflow.log_image((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), artifact_file)


def log_model(model: nn.Module, name: str, *, image_size: int, metadata: dict[str, Any],
              tags: dict[str, str] | None = None) -> mlflow.models.model.ModelInfo:
    """Export ``model`` (eval mode, CPU copy) as pt2 with a signature and an input example."""
    from mlflow.models import infer_signature

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    example = torch.rand(2, 3, image_size, image_size)
    try:
        with torch.no_grad():
            output = model.to("cpu")(example)
        info = mlflow.pytorch.log_model(
            model,
            name=name,
            serialization_format="pt2",
            input_example=example.numpy(),
            signature=infer_signature(example.numpy(), output.numpy()),
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            metadata={"cinv": {**metadata, "image_size": image_size}},
            tags=tags,
        )
    finally:
        model.to(device).train(was_training)
    return info


def register(model_uri: str, name: str, tags: dict[str, Any]) -> mlflow.entities.model_registry.ModelVersion:
    """Register a fully written model and tag the version with what produced it."""
    return mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
