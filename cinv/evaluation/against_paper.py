"""Every measured cell held against its paper: the published value beside it, measured − published,
and the run's deviations from the paper's setting.

A cell is found among the published values by the experiment (or command) that measured it, its
cell key, what it was evaluated on and the labels the published value names
([cinv.evaluation.published.counterparts][]). A cell without a counterpart says so: "not in the paper". The point is
honesty, not agreement: a CPU run of the embedded default is 40 points from ImageNet-100 with CLIP,
and the table says that and why (its deviations) instead of hiding it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import mlflow
import pandas as pd

from cinv.evaluation.published import Published, counterparts
from cinv.methods import METHODS, label
from cinv.tracking import schema
from cinv.tracking.runs import log_table

__all__ = ["NOT_IN_PAPER", "compare", "headline", "relevant_deviations", "family_means", "log_comparison", "as_cells"]

NOT_IN_PAPER = "not in the paper"


def relevant_deviations(deviations: Mapping[str, Mapping], key: str, options: Mapping[str, Iterable[str]]) -> list[str]:
    """The deviation keys that bear on one cell: the run's own settings and the options of the
    cell's method, not another method's options (``options``: each method's option keys)."""
    method = METHODS.find(key.removesuffix("_clean_probe"))
    others = {k for name, keys in options.items() if method is None or name != method.name for k in keys}
    return [k for k in deviations if k not in others]


def _setting(p: Published) -> str:
    s = p.setting
    fraction = "" if s.label_fraction >= 1 else f", {s.label_fraction:.0%} of labels"
    return f"{s.dataset}, {s.encoder}, {s.image_size} px{fraction}"


def _pm(value: float, pm: float | None) -> str:
    return f"{value:.2f}" if pm is None else f"{value:.2f} ± {pm:.2f}"


def compare(cells: pd.DataFrame, experiment: str, deviations: Mapping[str, Mapping], *,
            options: Mapping[str, Iterable[str]] | None = None,
            defaults: Mapping[str, object] | None = None, metrics: Iterable[str] = ("top1", "top5")) -> pd.DataFrame:
    """One row per measured cell and metric (``top1`` always, another metric where the paper has
    it): the cell, measured mean ± its s.e., the published value ± its ±, measured − published, where
    the value is printed and what it was measured in, and the run's deviations that bear on the
    cell. ``cells``: an across-seed table with a ``key`` column (the cell key), ``corruption`` and
    ``<metric>_mean`` / ``<metric>_se``; its other columns are the cell's labels. ``options``:
    each method's option keys (``<method>_<option>``), so a cell lists only its own method's."""
    options = options or {}
    cells = pd.concat([cells, family_means(cells)], ignore_index=True) if "family" in cells else cells
    out = []
    stats = {"key", "corruption", "seeds", "draws", "se_kind", "method", "severities"}
    for _, cell in cells.iterrows():
        labels = {**(defaults or {}), **{c: cell[c] for c in cells.columns
                                         if c not in stats and not c.startswith(("top1", "top5", "auc")) and pd.notna(cell[c])}}
        shown = {k: v for k, v in labels.items() if k not in (defaults or {}) or k in cells.columns}
        for metric in metrics:
            if f"{metric}_mean" not in cells or pd.isna(cell.get(f"{metric}_mean")):
                continue
            found = counterparts(experiment, cell["key"], cell["corruption"], metric, labels)
            if not found and metric != "top1":
                continue
            measured, se = float(cell[f"{metric}_mean"]), cell.get(f"{metric}_se")
            row = {"cell": label(cell["key"]), "key": cell["key"], "evaluated on": cell["corruption"],
                   "labels": ", ".join(f"{k}={v}" for k, v in shown.items()), "metric": metric,
                   "measured": _pm(measured, None if pd.isna(se) else float(se)), "measured_mean": round(measured, 4)}
            for p in found or [None]:
                if p is None:
                    out.append({**row, "published": NOT_IN_PAPER, "published_value": math.nan, "difference": math.nan,
                                "source": "", "paper setting": "", "deviations": ""})
                    continue
                out.append({**row, "published": _pm(p.value, p.pm), "published_value": p.value,
                            "difference": round(measured - p.value, 2),
                            "source": f"{p.paper}: {p.table}, {p.row}, {p.column}" + (f" (± {p.pm_kind})" if p.pm_kind else ""),
                            "paper setting": _setting(p),
                            "deviations": ", ".join(relevant_deviations(deviations, cell["key"], options)) or "none"})
    columns = ["cell", "key", "evaluated on", "labels", "metric", "measured", "published", "difference", "source", "paper setting",
               "deviations", "measured_mean", "published_value"]
    return pd.DataFrame(out, columns=columns)


def headline(table: pd.DataFrame, limit: int = 6) -> list[str]:
    """One line per compared top-1 cell, e.g. "Student (contrastive inversion), random_mask(fraction=0.9):
    paper 82.96 ± 0.08 (inversion: Table 1, Random Mask 90%, Ours; ImageNet-100, CLIP RN101, 224 px),
    measured 44.28 ± 0.35 (-38.68); deviations: teacher, dataset, image_size, ..."; then how many
    cells have no published counterpart."""
    if table.empty:
        return []
    found = table[(table["published"] != NOT_IN_PAPER) & (table["metric"] == "top1")]
    lines = []
    for _, r in found.head(limit).iterrows():
        source = r["source"].split(" (±")[0]
        lines.append(f"{r['cell']}, {r['evaluated on']}: paper {r['published']} ({source}; {r['paper setting']}), "
                     f"measured {r['measured']} ({r['difference']:+.2f}); deviations: {r['deviations']}")
    if len(found) > limit:
        lines.append(f"... and {len(found) - limit} more compared cells (paper_comparison table)")
    missing = int((table["published"] == NOT_IN_PAPER).sum())
    if missing:
        lines.append(f"{missing} measured cell(s) {NOT_IN_PAPER}")
    return lines


def as_cells(table: pd.DataFrame, key: str, condition: str, mean: str, se: str | None = None,
             labels: tuple[str, ...] = ()) -> pd.DataFrame:
    """A single-method command's results table as top-1 cells for [compare][]: one model
    (``key``), the ``condition`` column as what each row was evaluated on, the ``mean`` (and
    ``se``) columns as measured, and the ``labels`` columns."""
    return pd.DataFrame({"key": key, "corruption": table[condition], "top1_mean": table[mean].astype(float),
                         "top1_se": table[se] if se else float("nan"), **{name: table[name] for name in labels}})


def family_means(cells: pd.DataFrame) -> pd.DataFrame:
    """Table 14's cells: the mean top-1 over the five severities of each ImageNet-C family (s.e.
    propagated from the severities' own), as cells evaluated on ``imagenet_c``."""
    if "family" not in cells or "corruption" not in cells:
        return cells.iloc[:0]
    part = cells[cells["corruption"].astype(str).str.startswith("imagenet_c(")]
    if part.empty:
        return part
    keys = [c for c in ("key", "family", "train_corruption") if c in part]
    out = []
    for values, group in part.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
        for metric in ("top1", "top5"):
            if f"{metric}_mean" in group:
                row[f"{metric}_mean"] = float(group[f"{metric}_mean"].mean())
                row[f"{metric}_se"] = float((group[f"{metric}_se"].astype(float) ** 2).sum() ** 0.5 / len(group))
        out.append({**row, "corruption": IMAGENET_C, "severities": len(group)})
    return pd.DataFrame(out)


IMAGENET_C = "imagenet_c"  # Table 14's condition: a family's mean over its severities


def log_comparison(table: pd.DataFrame) -> list[str]:
    """The ``paper_comparison`` table on the active run, and its headline lines as a tag (the run's
    description and the command's output show them)."""
    if table.empty:
        return []
    lines = headline(table)
    log_table(table, "paper_comparison", listed=False)
    mlflow.set_tag(schema.PAPER_COMPARISON, "\n".join(lines)[:5000] or NOT_IN_PAPER)
    return lines
