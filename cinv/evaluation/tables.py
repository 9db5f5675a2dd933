"""Results tables whose error bars say what they are.

A row of a result is one trained model (one seed) evaluated on one condition: the mean and
standard error of each metric over the evaluation draws. [across_seeds][] turns those rows
into the cells a table shows:

- several independent training seeds: the mean over seeds of each seed's mean, and the standard
  error *across seeds* (``se_kind`` = ``seeds``): what a reader needs to compare methods;
- one seed: the mean and standard error *over evaluation draws* of that one model (``se_kind`` =
  ``draws``), which says how well the draws pin its accuracy down, not how much another training
  would move it (the paper's "10 seeds" are such draws).

Every cell carries ``seeds`` and ``draws`` (evaluation draws per seed), so each number in a table
can be cited with what it averages.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SE_KINDS = ("seeds", "draws")
STAT_COLUMNS = ("seed", "draws")


def metric_names(rows: pd.DataFrame) -> list[str]:
    """The metrics a rows table holds, in column order: ``top1`` for ``top1_mean``/``top1_se``."""
    return [c.removesuffix("_mean") for c in rows.columns if c.endswith("_mean") and f"{c.removesuffix('_mean')}_se" in rows]


def across_seeds(rows: pd.DataFrame, keys: list[str] | None = None, sd: bool = False) -> pd.DataFrame:
    """One cell per distinct ``keys`` (default: every column that is not a statistic), from rows
    with ``seed``, ``draws`` and ``<metric>_mean`` / ``<metric>_se`` per trained model.

    Rows that repeat a (cell, seed) pair are the same trained model evaluated again: the last
    one counts, once. Output columns: the keys, ``seeds``, ``draws``, ``se_kind``, and for each
    metric ``<metric>_mean``, ``<metric>_se`` and a readable ``<metric>`` (``mean ± se``). ``sd``:
    also ``<metric>_sd``, the standard deviation across seeds (what FCL's paper reports), and the
    readable ``mean ± sd (s.e. se)``.
    """
    metrics = metric_names(rows)
    stats = {*STAT_COLUMNS, *(f"{m}_{s}" for m in metrics for s in ("mean", "se")), *metrics}
    keys = keys if keys is not None else [c for c in rows.columns if c not in stats]
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "seeds", "draws", "se_kind", *(f"{m}_{s}" for m in metrics for s in ("mean", "se"))])
    rows = rows.drop_duplicates(subset=[*keys, "seed"], keep="last")
    out = []
    for _, group in rows.groupby(keys, sort=False, dropna=False):
        first = group.iloc[0]
        cell = {k: first[k] for k in keys}
        n = len(group)
        cell.update(seeds=n, draws=int(group["draws"].min()), se_kind="seeds" if n > 1 else "draws")
        for m in metrics:
            means = group[f"{m}_mean"].astype(float).to_numpy()
            if n > 1:
                valid = means[~np.isnan(means)]
                cell[f"{m}_mean"] = float(valid.mean()) if len(valid) else math.nan
                cell[f"{m}_se"] = float(valid.std(ddof=1) / math.sqrt(len(valid))) if len(valid) > 1 else math.nan
            else:
                cell[f"{m}_mean"], cell[f"{m}_se"] = float(means[0]), float(first[f"{m}_se"])
            if sd:
                valid = means[~np.isnan(means)]
                cell[f"{m}_sd"] = float(valid.std(ddof=1)) if len(valid) > 1 else math.nan
        out.append(cell)
    table = pd.DataFrame(out)
    for m in reversed(metrics):  # readable next to the exact columns, after the keys
        text = table[f"{m}_mean"].map("{:.2f}".format) + " ± " + table[f"{m}_se"].map("{:.2f}".format)
        if sd:
            text = (table[f"{m}_mean"].map("{:.2f}".format) + " ± " + table[f"{m}_sd"].map("{:.2f}".format)
                    + " (s.e. " + table[f"{m}_se"].map("{:.2f}".format) + ")")
        table.insert(len(keys), m, text.where(table[f"{m}_mean"].notna(), ""))
    return table


def statistic_note(table: pd.DataFrame) -> str:
    """One sentence for a table's caption: what its ± means."""
    kinds = set(table["se_kind"]) if "se_kind" in table and len(table) else set()
    seeds = sorted(set(table["seeds"])) if "seeds" in table and len(table) else []
    draws = sorted(set(table["draws"])) if "draws" in table and len(table) else []
    if kinds == {"seeds"}:
        return (f"mean ± standard error across {'/'.join(map(str, seeds))} independent training seeds "
                f"(each seed's accuracy a mean over {'/'.join(map(str, draws))} evaluation draws)")
    if kinds == {"draws"}:
        return (f"one training seed: mean ± standard error over {'/'.join(map(str, draws))} corruption draws of the "
                "evaluation set on that one model (not across trainings)")
    return "± is across seeds where seeds > 1, over evaluation draws of one model where seeds = 1 (column se_kind)"
