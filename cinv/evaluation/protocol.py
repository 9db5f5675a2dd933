"""The evaluation protocol of a command: its draws of the test (or validation) split, logged."""

from __future__ import annotations

from cinv.corruption.base import Distortion
from cinv.evaluation.metrics import Evaluation, evaluate
from cinv.tracking.runs import dataset, log_evaluation
from cinv.training.context import Setup

__all__ = ["evaluate_model"]


def evaluate_model(s: Setup, model, opts, corruption: Distortion | None = None, split: str = "test",
                   prefix: str | None = None) -> Evaluation:
    """Metrics logged as ``<prefix>_<metric>`` (prefix: the split's name unless given)."""
    stream = s.stream(split, batch_size=opts.batch_size, purpose="eval", corruption=corruption, seed=opts.draw_seed)
    result = evaluate(model, stream, opts.draws, desc=f"evaluate {prefix or split}", precision=s.precision)
    log_evaluation(result, prefix=prefix or split, dataset=dataset(s.splits, split))
    return result
