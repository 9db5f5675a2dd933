"""``baseline``: fine-tune a pretrained backbone with a new head end to end on corrupted images."""

from __future__ import annotations

from typing import Annotated, ClassVar

import mlflow

from cinv import settings
from cinv.commands.common import checkpointer, log_samples
from cinv.config.base import Paper, Runtime, Section, Select
from cinv.config.options import CORRUPTION, INVERSION_PAPER, RESUME, Corruption, DataOptions, EvalOptions, Trains
from cinv.evaluation.metrics import Evaluation
from cinv.evaluation.protocol import evaluate_model, link
from cinv.experiments.engine import register_trained, train_in_run
from cinv.methods import METHODS
from cinv.runtime import FP32
from cinv.tracking import schema
from cinv.tracking.runs import evaluation_tags
from cinv.training.context import setup


class BaselineConfig(Trains):
    """Fine-tune a pretrained backbone with a new head end to end on corrupted images."""

    METHOD: ClassVar[str] = "baseline"
    # The paper ran only its CLIP networks in 16-bit (appendix C): the ResNet-101 baseline in 32-bit.
    PAPER = INVERSION_PAPER | {"precision": Paper(FP32.describe(), "appendix D.1: only the CLIP networks ran in 16-bit")}
    resume_run_id: Annotated[str | None, Runtime()] = RESUME
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Annotated[Corruption, Select()] = CORRUPTION
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()


def run(cfg: BaselineConfig) -> Evaluation:
    s = setup(cfg)
    method, opts = METHODS.get("baseline"), cfg.options["baseline"]
    mlflow.set_tags({schema.STAGE: "baseline", **evaluation_tags(
        "baseline", eval_corruption=s.corruption.spec, train_corruption=s.corruption.spec, teacher=opts.backbone,
        dataset=s.splits.name, seed=s.seed, recipe=settings.recipe_key(cfg))})
    log_samples(s)
    # logged before its evaluation: MLflow then gives the models the test metrics with their dataset
    model, infos = train_in_run(s, method.name, opts, "", checkpointer=checkpointer(opts))
    result = evaluate_model(s, model, cfg.eval)
    link(list(infos.values()), result, s)
    register_trained(method.name, infos, opts)
    return result
