"""``evaluate``: a logged classifier on independent corruption draws of the test (or validation) split."""

from __future__ import annotations

from typing import Annotated, Literal

import mlflow
from pydantic import Field

from cinv.config.base import Section
from cinv.config.options import CORRUPTION, Corruption, DataOptions, EvalOptions, ModelURI, RunOptions
from cinv.errors import ConfigError
from cinv.evaluation.metrics import Evaluation
from cinv.evaluation.protocol import evaluate_model
from cinv.settings import recipe_key
from cinv.tracking import schema
from cinv.tracking.runs import evaluation_tags, log_model_input
from cinv.tracking.serving import load_encoder
from cinv.training.context import setup


class EvaluateConfig(RunOptions):
    """Evaluate a logged classifier on independent corruption draws of the test split."""

    model: ModelURI = Field(description="MLflow model URI of a classifier (a probe run's probe_classifier, a baseline "
                            "run's baseline_classifier)", json_schema_extra={"mlproject": "uri"})
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = CORRUPTION
    split: Literal["test", "val"] = Field("test", description="split to evaluate: test (reported) or val (model selection)")
    eval: Annotated[EvalOptions, Section()] = EvalOptions()


def run(cfg: EvaluateConfig) -> Evaluation:
    s = setup(cfg)
    model = load_encoder(cfg.model, s.device)
    log_model_input(cfg.model)
    mlflow.set_tags({schema.STAGE: "evaluate", schema.MODEL: cfg.model, **evaluation_tags(
        "classifier", eval_corruption=s.corruption.spec, train_corruption=str(model.metadata.get("corruption", "")),
        teacher=cfg.model, dataset=s.splits.name, seed=s.seed, recipe=recipe_key(cfg))})
    classes = model.metadata.get("classes")
    if classes is None:
        raise ConfigError(f"model: {cfg.model} is an encoder, not a classifier; fit a probe on it with the probe command")
    if len(classes) != s.splits.num_classes:
        raise ConfigError(f"model: {cfg.model} predicts {len(classes)} classes but the dataset has {s.splits.num_classes}")
    return evaluate_model(s, model, cfg.eval, split=cfg.split)
