"""Logged models: encoders and classifiers as MLflow ``pt2`` models, tagged with what produced
them, and their registration.

Models are logged in MLflow's ``pt2`` format (``torch.export``) on purpose: loading one runs no
pickled code, and it carries its preprocessing (normalisation is inside the graph; input size
and class names are in the model's metadata). The batch dimension is dynamic.
"""

from __future__ import annotations

from typing import Any

import mlflow
import torch
from mlflow.models.model import ModelInfo
from torch import nn

from cinv.corruption.base import Distortion
from cinv.encoders.base import Encoder
from cinv.encoders.heads import Classifier
from cinv.evaluation.metrics import Evaluation
from cinv.tracking.runs import with_retries
from cinv.training.context import Setup

STUDENT_MODEL, BASELINE_MODEL = "cinv-student", "cinv-baseline"  # registered model names, one per use

__all__ = ["STUDENT_MODEL", "BASELINE_MODEL", "log_model", "log_encoder", "log_classifier", "tag_with_evaluation", "register", "model_tags", "corruption_tags"]


def log_model(model: nn.Module, name: str, *, image_size: int, metadata: dict[str, Any],
              tags: dict[str, str] | None = None, channels: int = 3) -> mlflow.models.model.ModelInfo:
    """Export ``model`` (eval mode, CPU copy) as pt2 with a signature and an input example."""
    from mlflow.models import infer_signature

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    example = torch.rand(2, channels, image_size, image_size)
    try:
        with torch.no_grad():
            output = model.to("cpu")(example)
        info = with_retries(mlflow.pytorch.log_model, f"logging model {name}")(
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


def corruption_tags(corruption: Distortion) -> dict[str, str]:
    """The spec and each parameter on its own, so models can be filtered by severity."""
    return {"corruption": corruption.spec, "corruption.name": corruption.name,
            **{f"corruption.{k}": str(tuple(v) if isinstance(v, list) else v) for k, v in corruption.params.items()}}


def model_tags(s: Setup, corruption: Distortion | None = None, **produced_by) -> dict[str, str]:
    return {"dataset": s.splits.name, **corruption_tags(corruption or s.corruption),
            **{k: str(v) for k, v in produced_by.items()}}


def log_encoder(s: Setup, encoder: Encoder, **produced_by) -> ModelInfo:
    """An encoder as a pt2 model, tagged with what produced it, its preprocessing in the metadata."""
    tags = model_tags(s, **produced_by)
    return log_model(encoder, "encoder", image_size=s.splits.image_size, tags=tags, channels=s.splits.channels, metadata={
        "kind": "encoder", "embed_dim": encoder.embed_dim, "preprocessing": encoder.preprocessing,
        "resize": s.splits.resize, **tags})


def log_classifier(s: Setup, model: Classifier, corruption: Distortion, **produced_by) -> ModelInfo:
    tags = model_tags(s, corruption, **produced_by)
    return log_model(model, "classifier", image_size=s.splits.image_size, tags=tags, channels=s.splits.channels, metadata={
        "kind": "classifier", "classes": s.splits.classes, "resize": s.splits.resize, **tags})


def tag_with_evaluation(infos: list[ModelInfo], evaluation: Evaluation, split: str = "test") -> None:
    summary = {f"{split}_{k}": f"{v:.4f}" for k, v in evaluation.summary().items()}
    for info in infos:
        mlflow.set_logged_model_tags(info.model_id, summary)


def register(info: ModelInfo, name: str | None) -> None:
    """Register a fully logged model; the version carries the model's tags (provenance, metrics)."""
    if name:
        tags = mlflow.get_logged_model(info.model_id).tags
        tags = {k: str(v) for k, v in tags.items() if not k.startswith("mlflow.")}
        with_retries(mlflow.register_model, f"registering {name}")(info.model_uri, name, tags=tags)
