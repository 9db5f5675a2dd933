"""Gated promotion through MLflow aliases: a candidate replaces ``@champion`` only on a clear gain.

Both versions are evaluated under one protocol (same data, same corruption, same probe
training draws, same evaluation draws), so the per-draw top-1 differences are paired and their
standard error measures the noise of the comparison itself. The candidate becomes ``@champion``
when its mean gain exceeds ``margin_se`` standard errors of that difference; otherwise it gets
``@challenger`` and the reason as a version tag. Deprecated registry stages are not used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cinv.evaluation.metrics import Evaluation
from cinv.tracking.models import CHALLENGER, CHAMPION  # noqa: F401  (the aliases the rule moves)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    gain: float = math.nan  # mean paired top-1 difference, candidate - champion (points)
    gain_se: float = math.nan
    margin: float = math.nan


def decide(candidate: Evaluation, champion: Evaluation | None, margin_se: float = 2.0) -> Decision:
    if champion is None:
        return Decision(True, "no champion yet: the first evaluated candidate becomes champion")
    a, b = candidate.values("top1"), champion.values("top1")
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same draws; got {len(a)} and {len(b)}")
    diff = a - b
    gain = float(diff.mean())
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
    margin = margin_se * se
    if gain > margin:
        reason = f"promoted: top-1 gain {gain:+.2f} > margin {margin:.2f} ({margin_se:g} s.e. of the paired difference over {len(diff)} draws)"
        return Decision(True, reason, gain, se, margin)
    reason = f"not promoted: top-1 gain {gain:+.2f} <= margin {margin:.2f} ({margin_se:g} s.e. of the paired difference over {len(diff)} draws)"
    return Decision(False, reason, gain, se, margin)


def side_by_side(candidate: Evaluation, champion: Evaluation | None, labels: tuple[str, str]) -> pd.DataFrame:
    """Per-draw top-1 of both versions, their difference, and mean / s.e. rows."""
    cand = candidate.values("top1")
    table = pd.DataFrame({"draw": [str(i) for i in range(len(cand))], labels[0]: cand})
    if champion is not None:
        table[labels[1]] = champion.values("top1")
        table["difference"] = table[labels[0]] - table[labels[1]]
    numeric = table.drop(columns="draw")
    n = len(table)
    summary = pd.DataFrame([
        {"draw": "mean", **numeric.mean().to_dict()},
        {"draw": "s.e.", **(numeric.std(ddof=1) / np.sqrt(n) if n > 1 else numeric.mean() * 0).to_dict()},
    ])
    return pd.concat([table, summary], ignore_index=True).round(4)
