"""``baseline``: fine-tune a pretrained backbone with a new head end to end on corrupted images."""

from __future__ import annotations

from typing import Annotated

import mlflow

from cinv.commands.common import checkpointer, log_samples
from cinv.config.base import Section
from cinv.config.options import CORRUPTION, RESUME, Corruption, DataOptions, EvalOptions, RunOptions
from cinv.evaluation.metrics import Evaluation
from cinv.evaluation.protocol import evaluate_model, link
from cinv.experiments.lab import recipe_of
from cinv.methods import METHODS
from cinv.methods.supervised import BaselineOptions
from cinv.tracking import schema
from cinv.tracking.models import register
from cinv.tracking.runs import evaluation_tags
from cinv.training.context import setup


class BaselineConfig(RunOptions):
    """Fine-tune a pretrained backbone with a new head end to end on corrupted images."""

    resume_run_id: str | None = RESUME
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = CORRUPTION
    train: Annotated[BaselineOptions, Section()] = BaselineOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()


def run(cfg: BaselineConfig) -> Evaluation:
    s = setup(cfg)
    mlflow.set_tags({schema.STAGE: "baseline", **evaluation_tags(
        "baseline", eval_corruption=s.corruption.spec, train_corruption=s.corruption.spec, teacher=cfg.train.backbone,
        dataset=s.splits.name, seed=s.seed, recipe=recipe_of(cfg))})
    log_samples(s)
    method = METHODS.get("baseline")
    model = method.train(s, cfg.train, checkpointer=checkpointer(cfg.train))
    result = evaluate_model(s, model, cfg.eval)
    infos = method.log(s, model, cfg.train, "")
    link(list(infos.values()), result, s)
    register(infos["encoder"], cfg.train.registered_model_name)
    return result
