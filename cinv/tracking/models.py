"""Logged models: encoders and classifiers as MLflow ``pt2`` models, tagged with what produced
them, and their registration.

Models are logged in MLflow's ``pt2`` format (``torch.export``) on purpose: loading one runs no
pickled code, and it carries its preprocessing (normalisation is inside the graph; input size
and class names are in the model's metadata). The batch dimension is dynamic.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.models.model import ModelInfo
from torch import nn

from cinv.context import Setup
from cinv.corruption.base import Distortion
from cinv.encoders.base import Encoder
from cinv.encoders.heads import Classifier
from cinv.tracking import schema
from cinv.tracking.runs import log_model_metrics
from cinv.tracking.serving import quiet_pt2
from cinv.tracking.store import with_retries

STUDENT_MODEL, BASELINE_MODEL = "cinv-student", "cinv-baseline"  # registered model names, one per use

CHAMPION, CHALLENGER = "champion", "challenger"

__all__ = ["STUDENT_MODEL", "BASELINE_MODEL", "CHAMPION", "CHALLENGER", "log_model", "log_encoder", "log_classifier",
           "link_evaluation", "register", "model_tags", "corruption_tags", "describe_model", "logged_models_of"]


def log_model(model: nn.Module, name: str, *, examples: torch.Tensor, metadata: dict[str, Any],
              tags: dict[str, str] | None = None, step: int | None = None) -> mlflow.models.model.ModelInfo:
    """Export ``model`` (eval mode, CPU copy) as pt2 with a signature and a real image as the input
    example (see [slim_examples][]). ``step``: the training step it was logged at (its last epoch): MLflow links the run's
    metrics of that step to the model, so its train_loss is the final one."""
    from mlflow.models import infer_signature

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    example = examples.detach().float().cpu().contiguous()
    try:
        with torch.no_grad():
            output = model.to("cpu")(example)
        with quiet_pt2():
            info = with_retries(mlflow.pytorch.log_model, f"logging model {name}")(
                model,
                name=name,
                serialization_format="pt2",
                input_example=example.numpy(),
                signature=infer_signature(example.numpy(), output.numpy()),
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                metadata={"cinv": {**metadata, "image_size": int(example.shape[-1]), "channels": int(example.shape[1])}},
                tags=tags,
                **({"step": step} if step is not None else {}),
            )
    finally:
        model.to(device).train(was_training)
    slim_examples(info.model_id, example)
    return info


EXAMPLE_FILES = ("input_example.json", "serving_input_example.json")


def slim_examples(model_id: str, example: torch.Tensor) -> None:
    """Rewrite the logged model's input and serving examples as one image, 3 decimals, compact JSON.

    The pt2 export traces a batch of two (with one it would fix the batch size to 1), and MLflow
    writes that batch as full-precision float32 text, the serving example indented one value a line:
    274 KB and 415 KB for two 48-px images. What the UI shows and a server is sent then is one image
    of about 40 KB in each file; the signature keeps the batch dimension free."""
    one = example[:1].double().numpy().round(3).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        for name, payload in zip(EXAMPLE_FILES, (one, {"inputs": one}), strict=True):
            Path(tmp, name).write_text(json.dumps(payload, separators=(",", ":")))
        with_retries(mlflow.MlflowClient().log_model_artifacts, "writing the model's examples")(model_id, tmp)


def logged_models_of(run_id: str) -> dict[str, mlflow.models.model.ModelInfo]:
    """The models a run logged (READY ones), by name: what a finished stage of a resumed command hands on."""
    from mlflow.models import get_model_info

    experiment = with_retries(mlflow.get_run, "reading a run")(run_id).info.experiment_id
    found = with_retries(mlflow.search_logged_models, "reading logged models")(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{run_id}'", output_format="list")
    return {m.name: get_model_info(f"models:/{m.model_id}") for m in found if str(m.status).endswith("READY")}


def corruption_tags(corruption: Distortion) -> dict[str, str]:
    """The spec and each parameter on its own, so models can be filtered by severity."""
    return {"corruption": corruption.spec, "corruption.name": corruption.name,
            **{f"corruption.{k}": str(tuple(v) if isinstance(v, list) else v) for k, v in corruption.params.items()}}


def model_tags(s: Setup, corruption: Distortion | None = None, **produced_by) -> dict[str, str]:
    return {"dataset": s.splits.name, **corruption_tags(corruption or s.corruption),
            **{k: str(v) for k, v in produced_by.items()}}


def log_encoder(s: Setup, encoder: Encoder, name: str = "encoder", step: int | None = None, **produced_by) -> ModelInfo:
    """An encoder as a pt2 model, tagged with what produced it, its preprocessing in the metadata."""
    tags = model_tags(s, **produced_by)
    return log_model(encoder, name, examples=s.examples(), tags=tags, step=step, metadata={
        "kind": "encoder", "embed_dim": encoder.embed_dim, "preprocessing": encoder.preprocessing,
        "resize": s.splits.resize, **tags})


def log_classifier(s: Setup, model: Classifier, corruption: Distortion, name: str = "classifier", step: int | None = None,
                   **produced_by) -> ModelInfo:
    """A classifier as a pt2 model; its metadata holds the class names (``LoadedEncoder.predict_classes``)."""
    tags = model_tags(s, corruption, **produced_by)
    return log_model(model, name, examples=s.examples(), tags=tags, step=step, metadata={
        "kind": "classifier", "classes": s.splits.classes, "resize": s.splits.resize, **tags})


def link_evaluation(infos: list[ModelInfo], summary: dict[str, float], dataset=None, split: str = "test") -> None:
    """An evaluation's summary (``<split>_top1_mean``, ...) as metrics of each logged model, on
    the evaluation dataset: shown on the model's page, found by ``search_logged_models``."""
    log_model_metrics([info.model_id for info in infos], {f"{split}_{k}": v for k, v in summary.items()}, dataset=dataset)


def describe_model(info: ModelInfo) -> str:
    """What a logged encoder is, in one paragraph: method, teacher or backbone, corruption, test
    top-1 ± s.e. when it has been evaluated, and the run that produced it."""
    model = mlflow.get_logged_model(info.model_id)
    tags = model.tags
    metrics = {m.key: m.value for m in model.metrics or []}
    source = tags.get("teacher") or tags.get("backbone") or tags.get("encoder_name") or "?"
    top1 = (f"test top-1 {metrics['test_top1_mean']:.2f} ± {metrics.get('test_top1_se', float('nan')):.2f} (s.e. over "
            f"{int(metrics.get('test_draws', 0))} draws)") if "test_top1_mean" in metrics else "not evaluated yet"
    return (f"{tags.get('method', '?')} encoder from {source}, trained on {tags.get('dataset', '?')} under "
            f"{tags.get('corruption', '?')}; {top1}. Run: runs:/{model.source_run_id}.")


DESCRIPTIONS = {STUDENT_MODEL: "Robust student encoders from cinv: contrastive inversion of a frozen pretrained teacher "
                               "under a known corruption. @champion is the version promotion chose (cinv promote).",
                BASELINE_MODEL: "Fine-tuned backbones of cinv's supervised baseline, as encoders (head removed)."}


def register(info: ModelInfo, name: str | None) -> ModelVersion | None:
    """Register a fully logged model: the version carries the model's tags (provenance) and a
    description of what it is; the first version of a name becomes ``@champion`` (the rule
    ``promote`` applies), so ``models:/<name>@champion`` works at once."""
    if not name:
        return None
    client = mlflow.MlflowClient()
    tags = {k: str(v) for k, v in mlflow.get_logged_model(info.model_id).tags.items() if not k.startswith("mlflow.")}
    version = with_retries(mlflow.register_model, f"registering {name}")(info.model_uri, name, tags=tags)
    with_retries(client.update_model_version, f"describing {name}")(name, version.version, description=describe_model(info))
    registered = client.get_registered_model(name)
    if not registered.description:
        with_retries(client.update_registered_model, f"describing {name}")(
            name, description=DESCRIPTIONS.get(name, "Encoders registered by cinv; @champion is the promoted version."))
    if CHAMPION not in registered.aliases:
        with_retries(client.set_registered_model_alias, f"setting @{CHAMPION}")(name, CHAMPION, version.version)
        with_retries(client.set_model_version_tag, f"setting @{CHAMPION}")(
            name, version.version, schema.PROMOTION, "champion: the first registered version of this name")
    return version
