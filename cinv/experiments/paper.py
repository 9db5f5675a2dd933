"""The paper's experiments (seed 000), each one command: ``mlflow run . -e experiment -P name=...``.

An experiment is a recipe of the one engine (``experiments.engine``): a grid of *cells*, a method
(the student's probe, the supervised baseline, the teacher's probe, ...) trained on one
corruption and evaluated on another, in a [Lab][]. Each experiment follows its table's
protocol by default (the docstrings quote it); the lists (``corruptions``, ``label_fractions``,
``methods``, ...) override it. Experiments register by name in [EXPERIMENTS][], with the
methods they compare by default.
"""

from __future__ import annotations

import dataclasses
import textwrap

import mlflow
import pandas as pd

from cinv.corruption import from_spec as corruption_from_spec
from cinv.corruption import get as corruption_get
from cinv.corruption.base import Distortion
from cinv.corruption.imagenet_c import CORRUPTIONS as IMAGENET_C
from cinv.corruption.restoration import Restored, Restorer
from cinv.corruption.restoration import from_spec as restorer_from_spec
from cinv.data.datasets import EMBEDDED, load_target, read_label_shift
from cinv.data.datasets import label_shift as shift
from cinv.evaluation.tables import statistic_note
from cinv.experiments.engine import Lab, Plot, recipe
from cinv.methods import METHODS

__all__ = [ "SEVERITY_LEVELS", "ABLATION_LEVELS", "PAPER_CORRUPTIONS", "pixel_restorers", "grouped_bars", "lines"]

PAPER_CORRUPTIONS = [
    "random_mask(fraction=0.5)", "random_mask(fraction=0.75)", "random_mask(fraction=0.9)",
    "gaussian_noise(std=0.1)", "gaussian_noise(std=0.3)", "gaussian_noise(std=0.5)",
    "gaussian_blur(kernel_size=21, sigma=5)", "gaussian_blur(kernel_size=37, sigma=9)",
]
# Section 4.2 / Fig. 4: trained on a range, evaluated at fixed levels below, inside and beyond it;
# the paper's levels beyond the range are those of Table 12 (masks 96-99%, noise 0.35-0.5).
SEVERITY_LEVELS = {
    "random_mask": ("random_mask(fraction=(0.5, 0.95))", [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99], "fraction"),
    "gaussian_noise": ("gaussian_noise(std=(0.1, 0.3))", [0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5], "std"),
}
# Section 4.5 / Fig. 6: "the same random masking model described in Section 4.2, with a similar
# evaluation on fixed masking levels of 90-99%".
ABLATION_LEVELS = [0.9, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99]
LOSSES = ["student_teacher", "student_student", "student_both", "nt_xent", "mse"]
LABEL_FRACTIONS = [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01]
# ---- the experiments ---------------------------------------------------------------------

def _specs(cfg_list: list[str], default: list[str]) -> list[Distortion]:
    return [corruption_from_spec(spec) for spec in (cfg_list or default)]


def _severity_grid(lab: Lab, experiment: str) -> tuple[Distortion, list[Distortion]]:
    """The training range (``train_corruption``, default masks of 50-95%) and the fixed test levels."""
    train = corruption_from_spec(lab.cfg.train_corruption or SEVERITY_LEVELS["random_mask"][0])
    if train.name not in SEVERITY_LEVELS and not lab.cfg.corruption_list:
        raise ValueError(f"train_corruption: {experiment} has default levels for {', '.join(SEVERITY_LEVELS)}; "
                         f"give corruptions=... for {train.name}")
    _, levels, param = SEVERITY_LEVELS.get(train.name, (None, [], None))
    return train, _specs(lab.cfg.corruption_list, [f"{train.name}({param}={level})" for level in levels])


def _fractions(lab: Lab, name: str, fractions: list[float]) -> list[float]:
    """Label fractions a method's cells use: a probe on each; a method with its own head (the
    baseline) fine-tunes on all labels, as the paper's always did, unless ``baseline_fractions=true``."""
    return fractions if "classifier" not in METHODS.get(name).produces or lab.cfg.baseline_fractions else [1.0]


@recipe("fixed_corruption", methods=("student", "baseline"))
def fixed_corruption(lab: Lab) -> Plot:
    """Table 1/4: per corruption, the student's probe on 100% and 10% of the labels (batch 8 on the
    fraction, appendix C) and the supervised baseline fine-tuned on all labels."""
    fractions = lab.cfg.fraction_list or [1.0, 0.1]
    for corruption in _specs(lab.cfg.corruption_list, PAPER_CORRUPTIONS):
        for name in lab.compared:
            for fraction in _fractions(lab, name, fractions):
                lab.cell(name, lambda n=name, c=corruption, f=fraction: lab.classifier(n, c, f), corruption,
                         trained_on=corruption, label_fraction=fraction)
    return lambda table: grouped_bars(table, by="corruption", hue=["method", "label_fraction"])


@recipe("label_efficiency", methods=("student", "baseline"))
def label_efficiency(lab: Lab) -> Plot:
    """Fig. 3: "robust encoders on images with 90% random pixel masking and additive Gaussian noise
    with standard deviation 0.5", a probe on each fraction of the labels (batch 8), "compared to a
    supervised baseline that uses all of the labeled training samples"."""
    fractions = lab.cfg.fraction_list or LABEL_FRACTIONS
    for corruption in _specs(lab.cfg.corruption_list, ["random_mask(fraction=0.9)", "gaussian_noise(std=0.5)"]):
        for name in lab.compared:
            for fraction in _fractions(lab, name, fractions):
                lab.cell(name, lambda n=name, c=corruption, f=fraction: lab.classifier(n, c, f), corruption,
                         trained_on=corruption, label_fraction=fraction)
    return lambda table: lines(table, x="label_fraction", xlabel="fraction of labels", series=["method", "corruption"], log_x=True)


@recipe("severity_shift", methods=("student", "baseline"))
def severity_shift(lab: Lab) -> Plot:
    """Fig. 4 / Tables 10, 12: trained (and the probe fitted) on a severity range, evaluated at
    fixed levels below, inside and beyond it (masks to 96-99%, noise 0.35-0.5)."""
    train, tests = _severity_grid(lab, "severity_shift")
    for corruption in tests:
        severity = next(iter(corruption.params.values()), None)
        for name in lab.compared:
            lab.cell(name, lambda n=name: lab.classifier(n, train), corruption, trained_on=train, severity=severity)
    return lambda table: lines(table, x="severity", xlabel=f"test severity (trained on {train.spec})")


@recipe("label_shift", methods=("student", "baseline"))
def label_shift(lab: Lab) -> Plot:
    """Table 3 / Fig. 5: models trained on the seen classes, evaluated on images of unseen, similar
    classes labelled as their seen counterparts, across severities."""
    cfg = lab.cfg
    table = cfg.label_shift_table or ("cifar10" if cfg.data.dataset == EMBEDDED else "imagenet100")
    pairs = read_label_shift(table)
    trained, shifted = shift(lab.s.splits, pairs, None if cfg.data.dataset == EMBEDDED else cfg.data.dataset)
    lab.s = dataclasses.replace(lab.s, splits=trained)
    evaluation = dataclasses.replace(lab.s, splits=dataclasses.replace(trained, test=shifted))
    train, tests = _severity_grid(lab, "label_shift")
    mlflow.log_params({"label_shift_pairs": ", ".join(f"{a}->{b}" for a, b in pairs), "shifted_test_images": len(shifted)})
    for corruption in tests:
        severity = next(iter(corruption.params.values()), None)
        labels = {"severity": severity, "label_shift": table}
        for name in lab.compared:
            lab.cell(name, lambda n=name: lab.classifier(n, train), corruption, trained_on=train, setup=evaluation, **labels)
    return lambda rows: lines(rows, x="severity", xlabel=f"test severity on unseen classes (trained on {train.spec})")


@recipe("transfer", methods=("student", "baseline", "teacher"))
def transfer(lab: Lab) -> Plot:
    """Table 2/5/6: encoders trained on the experiment's dataset under a corruption, frozen, with
    a new linear probe per target dataset fitted and evaluated under the same corruption. A
    two-class target is also scored with ROC AUC (the COVID X-ray set)."""
    cfg = lab.cfg
    for corruption in _specs(cfg.corruption_list, [SEVERITY_LEVELS["random_mask"][0], SEVERITY_LEVELS["gaussian_noise"][0]]):
        for target in cfg.target_list or ["embedded"]:
            splits = load_target(target, lab.s.splits.image_size, cfg.data.val_fraction, cfg.seed, cfg.data.limit_per_class)
            there = dataclasses.replace(lab.s, splits=splits, corruption=corruption)

            def on_target(encoder, there=there, c=corruption):
                return lab.probe(encoder, c, s=there)

            labels = {"target": target}
            for name in lab.compared:
                lab.cell(name, lambda n=name, c=corruption, f=on_target: f(lab.encoder(n, c)), corruption,
                         trained_on=corruption, setup=there, **labels)
    return lambda table: grouped_bars(table, by="target", hue=["method", "train_corruption"])


@recipe("loss_ablation", uses=("student",), compares=False)
def loss_ablation(lab: Lab) -> Plot:
    """Fig. 6 (section 4.5): every loss trains "the same random masking model described in Section
    4.2" (masks of 50-95%, ``train_corruption``), its probe is fitted on that range, and each is
    evaluated "on fixed masking levels of 90-99%"."""
    train = corruption_from_spec(lab.cfg.train_corruption or SEVERITY_LEVELS["random_mask"][0])
    if train.name != "random_mask" and not lab.cfg.corruption_list:
        raise ValueError(f"train_corruption: loss_ablation has default levels for random_mask; give corruptions=... for {train.name}")
    tests = _specs(lab.cfg.corruption_list, [f"random_mask(fraction={level})" for level in ABLATION_LEVELS])
    for loss in lab.cfg.loss_list or LOSSES:
        for corruption in tests:
            severity = next(iter(corruption.params.values()), None)
            lab.cell("student", lambda name=loss: lab.probe(lab.trained("student", train, loss=name), train), corruption,
                     trained_on=train, loss=loss, severity=severity)
    return lambda table: lines(table, x="severity", xlabel=f"test mask fraction (trained on {train.spec})", series=["loss"])


@recipe("original_representations", methods=("teacher", "student"))
def original_representations(lab: Lab) -> Plot:
    """Table 13: a probe on the teacher's original features of corrupted images, next to the student's."""
    for corruption in _specs(lab.cfg.corruption_list, PAPER_CORRUPTIONS):
        for name in lab.compared:
            lab.cell(name, lambda n=name, c=corruption: lab.classifier(n, c), corruption, trained_on=corruption)
    return lambda table: grouped_bars(table, by="corruption", hue=["method"])


@recipe("clean_probe_transfer", uses=("student", "teacher"), compares=False)
def clean_probe_transfer(lab: Lab) -> Plot:
    """Table 9: the probe fitted on clean teacher features, moved unchanged onto the student."""
    clean = corruption_get("none")
    for corruption in _specs(lab.cfg.corruption_list, PAPER_CORRUPTIONS):
        lab.cell("student_clean_probe", lambda c=corruption: lab.clean_probe().model.with_encoder(lab.trained("student", c).model), corruption,
                 trained_on=corruption)
        lab.cell("teacher_clean_probe", lab.clean_probe, corruption, trained_on=clean)
        lab.cell("student", lambda c=corruption: lab.classifier("student", c), corruption, trained_on=corruption)
    return lambda table: grouped_bars(table, by="corruption", hue=["method"])


PIXEL_DEFAULTS = ["gaussian_noise(std=0.1)", "gaussian_noise(std=0.3)", "gaussian_noise(std=0.5)",
                  "random_mask(fraction=0.5)", "random_mask(fraction=0.75)", "random_mask(fraction=0.9)"]


def pixel_restorers(cfg) -> dict[str, Restorer]:
    """The restorer for each corruption the pixel baselines restore."""
    return {"gaussian_noise": restorer_from_spec(cfg.denoising), "random_mask": restorer_from_spec(cfg.inpainting)}


@recipe("pixel_baselines", methods=("student",), uses=("baseline", "teacher"))
def pixel_baselines(lab: Lab) -> Plot:
    """Tables 7/8: restore in pixel space (non-local means for noise; inpainting with the very mask
    that removed the pixels: the ``inpainting`` spec, the authors' Deep Decoder under preset paper), then
    classify "with a classification model trained on clean image data" (``clean_classifier``: the
    pretrained baseline backbone with a probe fitted on clean images, as the paper's); the same
    classifier without restoration and the student for comparison."""
    restorers = pixel_restorers(lab.cfg)
    clean = corruption_get("none")
    for corruption in _specs(lab.cfg.corruption_list, PIXEL_DEFAULTS):
        if corruption.name not in restorers:
            raise ValueError(f"corruptions: pixel_baselines restores {', '.join(restorers)}; got {corruption.spec}")
        restored = Restored(corruption, restorers[corruption.name])
        lab.cell(f"{restored.restorer.spec} + clean_classifier", lab.clean_classifier, restored, trained_on=clean)
        lab.cell("clean_classifier", lab.clean_classifier, corruption, trained_on=clean)
        for name in lab.compared:
            lab.cell(name, lambda n=name, c=corruption: lab.classifier(n, c), corruption, trained_on=corruption)
    return lambda table: grouped_bars(table, by="corruption", hue=["method"])


@recipe("imagenet_c", methods=("student", "baseline"))
def imagenet_c(lab: Lab) -> Plot:
    """Table 14: ImageNet-C's 19 corruptions x 5 severities; a student trained on random blur and
    noise against a baseline fine-tuned on clean images, mean top-1 over the severities (any
    other compared method trains on the student's range)."""
    train = corruption_from_spec(lab.cfg.train_corruption or "random_blur_noise(blur_sigma=(1, 5), noise_std=(0.05, 0.5), p=0.8)")
    clean = corruption_get("none")
    tests = _specs(lab.cfg.corruption_list, [f"imagenet_c(corruption={name!r}, severity={level})"
                                             for name in IMAGENET_C for level in range(1, 6)])
    for corruption in tests:
        labels = {"family": corruption.params.get("corruption", corruption.name), "severity": corruption.params.get("severity")}
        for name in lab.compared:  # the paper's baseline is fine-tuned on clean images, every other method on the range
            on = clean if name == "baseline" else train
            lab.cell(name, lambda n=name, c=on: lab.classifier(n, c), corruption, trained_on=on, **labels)
    return lambda table: grouped_bars(table, by="family", hue=["method"])


# ---- plots -------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grouped_bars(table: pd.DataFrame, by: str, hue: list[str], metric: str = "top1"):
    """Bars of mean ± s.e. per ``by`` group (means over any other column, e.g. severities)."""
    plt = _plt()
    cells = table.groupby([by, *hue], sort=False, dropna=False).agg(
        mean=(f"{metric}_mean", "mean"), se=(f"{metric}_se", "mean")).reset_index()
    groups = list(dict.fromkeys(cells[by]))
    series = list(dict.fromkeys(map(tuple, cells[hue].values.tolist())))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(groups) * max(1, len(series)) ** 0.5), 4))
    for i, key in enumerate(series):
        part = cells[(cells[hue].apply(tuple, axis=1) == key)]
        x = [groups.index(g) + (i - (len(series) - 1) / 2) * width for g in part[by]]
        ax.bar(x, part["mean"], width, yerr=part["se"], label=", ".join(f"{v}" for v in key), capsize=2)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups], rotation=30, ha="right", fontsize=8)
    _label(ax, table, metric)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def lines(table: pd.DataFrame, x: str, xlabel: str, series: list[str] | None = None, metric: str = "top1",
          log_x: bool = False):
    """One line per ``series`` value (default: per method), mean ± s.e.; a series with a single
    point (the all-labels baseline of Fig. 3) is drawn as a horizontal reference line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    series = series or ["method"]
    for key, part in table.groupby(series, sort=False, dropna=False):
        label = ", ".join(map(str, key if isinstance(key, tuple) else (key,)))
        if len(part) == 1 and len(table[x].unique()) > 1:
            line = ax.axhline(part[f"{metric}_mean"].iloc[0], linestyle="--", linewidth=1, label=f"{label} ({x}={part[x].iloc[0]})")
            ax.axhspan(*(part[f"{metric}_mean"].iloc[0] + s * part[f"{metric}_se"].fillna(0).iloc[0] for s in (-1, 1)),
                       color=line.get_color(), alpha=0.15)
            continue
        part = part.sort_values(x)
        ax.errorbar(part[x].astype(float), part[f"{metric}_mean"], yerr=part[f"{metric}_se"], marker="o", capsize=2, label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    _label(ax, table, metric)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _label(ax, table: pd.DataFrame, metric: str) -> None:
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("\n".join(textwrap.wrap(statistic_note(table), 90)), fontsize=7)


