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

import mlflow
import numpy as np
import pandas as pd

from cinv import serving, tracking
from cinv.config import ConfigError, PromoteConfig
from cinv.evaluation import Evaluation

CHAMPION, CHALLENGER = "champion", "challenger"
REASON_TAG = "cinv.promotion"


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


def run_promote(cfg: PromoteConfig) -> pd.DataFrame:
    """Candidate vs @champion under one protocol; @champion moves only on a clear gain."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from cinv.pipeline import evaluate_model, setup, train_probe

    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{cfg.name}'")
    except MlflowException as exc:
        raise ConfigError(f"name: {exc.message}") from None
    if not versions:
        raise ConfigError(f"name: no registered model {cfg.name!r} with versions")
    by_number = {int(v.version): v for v in versions}
    number = cfg.version or max(by_number)
    if number not in by_number:
        raise ConfigError(f"version: {cfg.name} has no version {number}; versions: {', '.join(map(str, sorted(by_number)))}")
    candidate = by_number[number]
    aliases = client.get_registered_model(cfg.name).aliases  # search results do not carry aliases
    champion = by_number.get(int(aliases[CHAMPION])) if CHAMPION in aliases else None
    mlflow.set_tags({"cinv.stage": "promote", "cinv.candidate": f"{cfg.name}/{number}",
                     "cinv.champion": f"{cfg.name}/{champion.version}" if champion else "none"})
    if champion is not None and int(champion.version) == number:
        print(f"{cfg.name} version {number} is already @{CHAMPION}; nothing to do")
        return pd.DataFrame()
    spec = cfg.corruption or candidate.tags.get("corruption")
    if not spec:
        raise ConfigError(f"corruption: version {number} has no 'corruption' tag; pass corruption=...")
    s = setup(cfg, spec)
    mlflow.log_params({"candidate_version": number, "champion_version": champion.version if champion else "", "protocol_corruption": s.corruption.spec})

    def evaluate_version(version) -> Evaluation:
        uri = f"models:/{cfg.name}/{version.version}"
        with tracking.child_run(f"{cfg.name} v{version.version}", **{"cinv.stage": "probe", "cinv.encoder": uri}):
            probe = train_probe(s, serving.load_encoder(uri, s.device), cfg.probe)
            return evaluate_model(s, probe, cfg.eval)

    try:
        candidate_eval = evaluate_version(candidate)
        champion_eval = evaluate_version(champion) if champion is not None else None
    except Exception as exc:
        client.set_model_version_tag(cfg.name, candidate.version, REASON_TAG, f"evaluation failed, not promoted: {exc}"[:5000])
        raise
    decision = decide(candidate_eval, champion_eval, cfg.margin_se)
    labels = (f"v{number}", f"v{champion.version}" if champion else "champion")
    table = side_by_side(candidate_eval, champion_eval, labels)
    tracking.log_table(table, "promotion")
    mlflow.log_metrics({k: v for k, v in {"gain": decision.gain, "gain_se": decision.gain_se, "margin": decision.margin}.items()
                        if v == v})
    mlflow.set_tag("cinv.decision", decision.reason)
    if decision.promote:
        client.set_registered_model_alias(cfg.name, CHAMPION, candidate.version)
        if CHALLENGER in aliases and int(aliases[CHALLENGER]) == number:
            client.delete_registered_model_alias(cfg.name, CHALLENGER)
    else:
        client.set_registered_model_alias(cfg.name, CHALLENGER, candidate.version)
    client.set_model_version_tag(cfg.name, candidate.version, REASON_TAG, decision.reason)
    client.set_model_version_tag(cfg.name, candidate.version, "cinv.promotion_run", mlflow.active_run().info.run_id)
    print(f"{cfg.name} v{number}: {decision.reason}")
    return table
