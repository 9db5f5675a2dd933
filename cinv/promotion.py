"""Gated promotion through MLflow aliases: a candidate replaces ``@champion`` only on a clear gain.

Both versions are evaluated under one protocol (same data, same corruption, same probe
training draws, same evaluation draws), so the per-draw top-1 differences are paired and their
standard error measures the noise of the comparison itself. The candidate becomes ``@champion``
when its mean gain exceeds ``margin_se`` standard errors of that difference; otherwise it gets
``@challenger`` and the reason as a version tag. Deprecated registry stages are not used.

Promotion, in one place: the rule (``decide``), the evaluation of both versions under one
protocol (``promote``, what the ``promote`` command calls), and the compare-and-set that moves
the alias when promotions race (``move_champion``). The first version of a name becomes
``@champion`` when it is registered (``tracking.models.register``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from cinv.errors import ConfigError
from cinv.evaluation.metrics import Evaluation
from cinv.evaluation.protocol import evaluate_model
from cinv.probe import train_probe
from cinv.tracking import schema
from cinv.tracking.lease import first_writer
from cinv.tracking.models import CHALLENGER, CHAMPION
from cinv.tracking.runs import child_run, log_table
from cinv.tracking.serving import load_encoder
from cinv.training.context import setup

__all__ = ["CHAMPION", "CHALLENGER", "Decision", "decide", "side_by_side", "promote", "move_champion"]


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


def promote(cfg) -> pd.DataFrame:
    """Candidate vs @champion under one protocol (``cfg``: the ``promote`` command's config);
    @champion moves only on a clear gain, by [move_champion][]."""
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
    mlflow.set_tags({schema.STAGE: "promote", schema.CANDIDATE: f"{cfg.name}/{number}",
                     schema.CHAMPION: f"{cfg.name}/{champion.version}" if champion else "none"})
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
        with child_run(f"{cfg.name} v{version.version}", **{schema.STAGE: "probe", schema.ENCODER: uri}):
            probe = train_probe(s, load_encoder(uri, s.device), cfg.probe)
            return evaluate_model(s, probe, cfg.eval)

    try:
        candidate_eval = evaluate_version(candidate)
        champion_eval = evaluate_version(champion) if champion is not None else None
    except Exception as exc:
        client.set_model_version_tag(cfg.name, candidate.version, schema.PROMOTION, f"evaluation failed, not promoted: {exc}"[:5000])
        raise
    decision = decide(candidate_eval, champion_eval, cfg.margin_se)
    labels = (f"v{number}", f"v{champion.version}" if champion else "champion")
    table = side_by_side(candidate_eval, champion_eval, labels)
    log_table(table, "promotion")
    mlflow.log_metrics({k: v for k, v in {"gain": decision.gain, "gain_se": decision.gain_se, "margin": decision.margin}.items()
                        if v == v})
    reason = decision.reason
    protocol = hashlib.sha256(json.dumps({"corruption": s.corruption.spec, **cfg.model_dump(
        mode="json", include={"data", "probe", "eval", "margin_se", "seed"})}, sort_keys=True).encode()).hexdigest()[:16]
    if decision.promote and (moved := move_champion(cfg.name, champion, candidate, mlflow.active_run().info.run_id,
                                                    decision.gain, protocol)):
        reason = f"not promoted: {moved}; the comparison was with v{champion.version if champion else 'none'} ({reason})"
    elif decision.promote:
        aliases = client.get_registered_model(cfg.name).aliases
        if CHALLENGER in aliases and int(aliases[CHALLENGER]) == number:
            client.delete_registered_model_alias(cfg.name, CHALLENGER)
    else:
        client.set_registered_model_alias(cfg.name, CHALLENGER, candidate.version)
    mlflow.set_tag(schema.DECISION, reason)
    client.set_model_version_tag(cfg.name, candidate.version, schema.PROMOTION, reason)
    described = client.get_model_version(cfg.name, candidate.version).description or ""
    client.update_model_version(cfg.name, candidate.version, description=(
        f"{described}\n\nPromotion against {labels[1]} (run runs:/{mlflow.active_run().info.run_id}): {reason}").strip())
    client.set_model_version_tag(cfg.name, candidate.version, schema.PROMOTION_RUN, mlflow.active_run().info.run_id)
    print(f"{cfg.name} v{number}: {reason}")
    return table


def move_champion(name: str, champion, candidate, run_id: str, gain: float = float("nan"), protocol: str = "",
                  wait_s: float = 60.0) -> str | None:
    """Move @champion from ``champion`` (the version the gate compared with; None: there was none)
    to ``candidate``; None when it did, else what happened instead.

    A compare-and-set: MLflow refuses to change a param once written, so a param named after the
    champion's reign on its run (its succession) is written by exactly one promotion, which
    records its candidate, its gain over that champion and its protocol. A promotion that finds
    the succession taken by one with a smaller gain under the same protocol waits for that one to
    be crowned and succeeds it in turn: of promotions that cleared the gate against the same
    champion, the one with the larger gain ends as @champion, whatever the order they finish in."""
    client = MlflowClient()
    mine = json.dumps({"version": str(candidate.version), "gain": gain, "protocol": protocol, "run": run_id})
    while True:
        expected = champion.version if champion else None
        anchor = champion.run_id if champion else min(client.search_model_versions(f"name = '{name}'"),
                                                      key=lambda v: int(v.version)).run_id
        # One key per reign (a version may reign, lose and reign again): named by the promotion that
        # crowned it, which every promotion compared with this reign reads alike.
        reign = champion.tags.get(schema.CROWNED, "registered") if champion else "none"
        key = f"{schema.SUCCESSION}.{name}.v{expected or 'none'}.{reign}"
        current = client.get_registered_model(name).aliases.get(CHAMPION)
        if str(current) != str(expected):
            won = client.get_run(anchor).data.params.get(key) if anchor else None
            if won is None:  # moved by hand, not by a promotion of this reign
                return f"@{CHAMPION} moved to v{current} while this promotion was evaluated" if current else \
                    f"@{CHAMPION} was removed while this promotion was evaluated"
        else:
            won = first_writer(anchor, key, mine) if anchor else mine
        if won == mine:
            client.set_registered_model_alias(name, CHAMPION, candidate.version)
            client.set_model_version_tag(name, candidate.version, schema.CROWNED, run_id)
            return None
        other = _claim(won)
        if other is None or other["protocol"] != protocol or not gain > other["gain"]:
            theirs = f"v{other['version']}, gain {other['gain']:+.2f}" if other else won
            return f"another promotion took @{CHAMPION} from v{expected} first ({theirs}; this one's gain {gain:+.2f})"
        champion = _crowned(name, other, wait_s)  # it gained less over the same champion: succeed it
        if champion is None:
            return f"v{other['version']} took the succession of v{expected} but was not crowned within {wait_s:.0f} s"


def _claim(value: str | None) -> dict | None:
    try:
        claim = json.loads(value or "")
        return claim if {"version", "gain", "protocol", "run"} <= set(claim) else None
    except (TypeError, ValueError):
        return None


def _crowned(name: str, claim: dict, wait_s: float):
    """The version ``claim`` names once its promotion has set @champion and its crown (it does so
    right after winning the succession), or None after ``wait_s``."""
    client, deadline = MlflowClient(), time.monotonic() + wait_s
    while time.monotonic() < deadline:
        version = client.get_model_version(name, claim["version"])
        if version.tags.get(schema.CROWNED) == claim["run"]:
            return version
        time.sleep(0.1)
    return None
