"""Accuracy over independent corruption draws of an evaluation split.

Every model evaluated with the same seed sees the same draws (paired comparison). Only counts
are kept per draw, so memory does not grow with the number of draws. Note what "10 seeds" means
here: 10 draws of the corruption on one trained model, not 10 trainings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cinv.data.stream import BatchStream
from cinv.runtime import FP32, Autocast, channels_last, progress


@dataclass
class Evaluation:
    draws: list[dict[str, float]] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return list(self.draws[0]) if self.draws else []

    def values(self, metric: str) -> np.ndarray:
        return np.array([d[metric] for d in self.draws], dtype=float)

    def mean(self, metric: str) -> float:
        return float(self.values(metric).mean())

    def se(self, metric: str) -> float:
        """Standard error of the mean over draws (0 for a single, deterministic draw)."""
        v = self.values(metric)
        return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0

    def summary(self) -> dict[str, float]:
        out = {}
        for m in self.metrics:
            out[f"{m}_mean"], out[f"{m}_se"] = self.mean(m), self.se(m)
        out["draws"] = float(len(self.draws))
        return out


@torch.inference_mode()
def evaluate(model: nn.Module, stream: BatchStream, draws: int, desc: str = "evaluate",
             precision: Autocast = FP32) -> Evaluation:
    """Top-1 and top-5 (percent) per draw; ROC AUC too when there are two classes.

    A deterministic corruption (none, blur) gives identical draws, so it is evaluated once.
    """
    channels_last(model).eval()
    if not stream.corruption.stochastic:
        draws = 1
    result = Evaluation()
    for draw in range(draws):
        n = top1 = top5 = 0
        scores, labels = [], []
        for views in progress(stream.epoch(draw), total=len(stream), desc=f"{desc} draw {draw + 1}/{draws}", leave=False):
            with precision.context("eval"):
                logits = model(views.corrupted).float()
            k = min(5, logits.shape[1])
            topk = logits.topk(k, dim=1).indices
            hits = topk == views.labels[:, None]
            top1 += hits[:, 0].sum().item()
            top5 += hits.any(dim=1).sum().item()
            n += len(views.labels)
            if logits.shape[1] == 2:
                scores.append(logits.softmax(dim=1)[:, 1].cpu())
                labels.append(views.labels.cpu())
        metrics = {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n}
        if scores:
            metrics["auc"] = _roc_auc(torch.cat(labels).numpy(), torch.cat(scores).numpy())
        result.draws.append(metrics)
    return result


def _roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    return 100.0 * float(roc_auc_score(labels, scores))
