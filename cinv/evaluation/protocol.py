"""The evaluation protocol of a command: its draws of the test (or validation) split, logged and
read back, and an evaluation's summary attached to the logged models it measured."""

from __future__ import annotations

from mlflow.models.model import ModelInfo

from cinv.context import Setup
from cinv.corruption.base import Distortion
from cinv.evaluation.metrics import Evaluation, evaluate
from cinv.tracking.models import link_evaluation
from cinv.tracking.runs import dataset, log_evaluation, read_draws

__all__ = ["evaluate_model", "evaluation_of", "link"]


def evaluate_model(s: Setup, model, opts, corruption: Distortion | None = None, split: str = "test",
                   prefix: str | None = None) -> Evaluation:
    """Metrics logged as ``<prefix>_<metric>`` (prefix: the split's name unless given)."""
    stream = s.stream(split, batch_size=opts.batch_size, purpose="eval", corruption=corruption, seed=opts.draw_seed)
    result = evaluate(model, stream, opts.draws, desc=f"evaluate {prefix or split}", precision=s.precision)
    log_evaluation(result.summary(), result.draws, prefix=prefix or split, dataset=dataset(s.splits, split))
    return result


def evaluation_of(run_id: str, prefix: str = "test") -> Evaluation:
    """The evaluation a run logged, read back draw by draw, exactly (a resumed command's finished stage)."""
    return Evaluation(read_draws(run_id, prefix))


def link(infos: list[ModelInfo], evaluation: Evaluation, s: Setup, split: str = "test") -> None:
    """The evaluation's summary as metrics of the logged models it measured, on the split's dataset."""
    link_evaluation(infos, evaluation.summary(), dataset(s.splits, split), split)
