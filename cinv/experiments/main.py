"""The main job as a recipe of the engine: on one corruption, the teacher's probe on clean images
(the reference), the teacher's original representations (Table 13), and each compared method
(default the student and the supervised baseline), once per training seed; one table whose rows
are the models, with the figure and the parent run's summary metrics."""

from __future__ import annotations

import textwrap

import pandas as pd

from cinv.corruption import get as get_corruption
from cinv.evaluation.tables import across_seeds, statistic_note
from cinv.experiments.engine import Lab, Plot, recipe
from cinv.methods import title

__all__ = ["main", "main_table", "comparison_plot", "PARENT_METRICS"]

# The parent run's <name>_top1_mean / _se, by row; a method's row is named after the method.
PARENT_METRICS = {"teacher_clean_probe": "teacher_clean", "teacher": "teacher_corrupted"}


@recipe("main", methods=("student", "baseline"))
def main(lab: Lab) -> Plot:
    """On the run's corruption: the teacher's probe on clean images, a probe on the teacher's
    original features of corrupted images, then each method trained on the corruption (a probe
    on its encoder unless it has its own head), evaluated on it."""
    corruption, clean = lab.s.corruption, get_corruption("none")
    lab.cell("teacher_clean_probe", lab.clean_probe, clean, trained_on=clean)
    for name in ["teacher", *(m for m in lab.compared if m != "teacher")]:
        lab.cell(name, lambda n=name: lab.classifier(n, corruption), corruption, trained_on=corruption)
    return lambda table: comparison_plot(table, corruption.spec)


def main_table(rows: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-seed rows, the table): rows named by the models' titles and what they were evaluated on."""
    per_seed = pd.DataFrame({
        "model": [title(key) for key in keys],
        "evaluated on": ["clean" if c == "none" else c for c in rows["corruption"]],
        "seed": rows["seed"], "draws": rows["draws"],
        **{c: rows[c] for c in rows.columns if c.startswith(("top1_", "top5_"))},
    })
    return per_seed, across_seeds(per_seed, keys=["model", "evaluated on"])


def comparison_plot(table: pd.DataFrame, corruption: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.8 * len(table) + 1.2))
    ax.barh(table["model"], table["top1_mean"], xerr=table["top1_se"],
            color=["#999999", "#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"][: len(table)])
    for y, v in enumerate(table["top1_mean"]):
        ax.text(v + 0.5, y, f"{v:.1f}", va="center")
    ax.set_xlabel("\n".join(textwrap.wrap(f"top-1 accuracy (%): {statistic_note(table)}", 95)), fontsize=8)  # whole
    ax.set_title(f"corruption: {corruption}")
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    fig.tight_layout()
    return fig
