"""``probe``: fit a linear probe on a frozen encoder (by name, or a logged one by model URI) on
(a label fraction of) corrupted images, then evaluate it."""

from __future__ import annotations

from typing import Annotated

import mlflow
from pydantic import Field

from cinv.commands.common import load_encoder
from cinv.config.base import Section
from cinv.config.options import (
    CORRUPTION,
    MODEL_URI_SCHEMES,
    Corruption,
    DataOptions,
    EncoderRef,
    EvalOptions,
    ProbeOptions,
    RunOptions,
    WeightsRef,
)
from cinv.evaluation.metrics import Evaluation
from cinv.evaluation.protocol import evaluate_model, link
from cinv.probe import train_probe
from cinv.settings import recipe_key
from cinv.tracking import schema
from cinv.tracking.models import log_classifier
from cinv.tracking.runs import evaluation_tags, log_model_input
from cinv.training.context import setup


class ProbeConfig(RunOptions):
    """Fit a linear probe on a frozen encoder's features of corrupted images, then evaluate it."""

    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = CORRUPTION
    encoder: EncoderRef = Field("efficientnet_lite0", description="encoder name (as for teacher) or MLflow model URI of a student")
    encoder_weights: WeightsRef = Field(None, description="weights for a named encoder; ignored for model URIs")
    probe: Annotated[ProbeOptions, Section()] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()


def run(cfg: ProbeConfig) -> Evaluation:
    s = setup(cfg)
    mlflow.set_tags({schema.STAGE: "probe", schema.ENCODER: cfg.encoder, **evaluation_tags(
        "probe", eval_corruption=s.corruption.spec, train_corruption=s.corruption.spec, teacher=cfg.encoder,
        dataset=s.splits.name, seed=s.seed, recipe=recipe_key(cfg), label_fraction=cfg.probe.label_fraction)})
    encoder = load_encoder(cfg.encoder, cfg.encoder_weights, s.device)
    if cfg.encoder.startswith(MODEL_URI_SCHEMES):
        log_model_input(cfg.encoder)
    model = train_probe(s, encoder, cfg.probe)
    # Logged before its evaluation: MLflow then gives it the test metrics with their dataset.
    info = log_classifier(s, model, s.corruption, name="probe_classifier", method="linear_probe", encoder=cfg.encoder,
                          step=cfg.probe.epochs - 1)
    result = evaluate_model(s, model, cfg.eval)
    link([info], result, s)
    return result
