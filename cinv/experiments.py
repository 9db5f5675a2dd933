"""The paper's experiments (seed 000), each one command: ``mlflow run . -e experiment -P name=...``.

An experiment is a grid of *cells*: a method (student probe, supervised baseline, teacher probe,
...) trained on one corruption and evaluated on another. Each training and each evaluation is a
child run of the experiment's parent run, which logs the table (CSV, Markdown, HTML) and the
figure. With ``seeds=0,1,2`` every model is trained once per seed and the table reports the mean
and standard error across seeds (``cinv.tables``). Trained models carry a ``fingerprint`` tag of
their training configuration, so a later experiment with the same configuration loads them
instead of training again. Each experiment follows its table's protocol by default (the
docstrings quote it); the lists (``corruptions``, ``label_fractions``, ...) override it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable

import mlflow
import pandas as pd
import torch

from cinv import distortions, encoders, restoration, tracking
from cinv.config import ExperimentConfig
from cinv.distortions import Distortion
from cinv.encoders import Classifier
from cinv.evaluation import Evaluation
from cinv.methods import attack_subset
from cinv.pipeline import (
    Setup,
    evaluate_model,
    log_classifier,
    log_encoder,
    recipe_of,
    setup,
    train_baseline,
    train_probe,
    train_student,
)
from cinv.registry import Registry
from cinv.runtime import derive_seed
from cinv.serving import LoadedEncoder, load_encoder
from cinv.tables import across_seeds, statistic_note

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
METHOD_NAMES = {
    "student": "student (ours)",
    "baseline": "supervised baseline",
    "teacher": "teacher, original representations",
    "teacher_clean_probe": "teacher probe trained on clean images",
    "student_clean_probe": "clean teacher probe on the student",
    "clean_classifier": "classifier trained on clean images",
    "probe": "linear probe",
    "classifier": "logged classifier",
    "rocl": "RoCL (linear evaluation)",
    "fcl": "FCL",
}


def _recipe(opts) -> dict:
    """The options that change what a training produces (not where it is logged or checkpointed)."""
    return opts.model_dump(exclude={"registered_model_name", "checkpoint_every_steps"})


def display(method: str) -> str:
    """A method's row label; ``<restorer> + <method>`` for a restore-then-classify baseline."""
    restorer, plus, method = method.rpartition(" + ")
    return f"{restorer}{plus}{METHOD_NAMES.get(method, method)}"


Plot = Callable[[pd.DataFrame], object]  # the experiment's figure, drawn from its final (across-seed) table


class Lab:
    """Trains (or reuses) the models an experiment needs for one training seed (``s.seed``) and
    evaluates them, one child run each; ``rows`` holds one row per evaluated cell."""

    def __init__(self, cfg: ExperimentConfig, s: Setup, teacher: encoders.FrozenEncoder):
        self.cfg, self.s, self.teacher = cfg, s, teacher
        self.rows: list[dict] = []
        self.recipe = recipe_of(cfg)
        self._models: dict[str, torch.nn.Module] = {}
        self._probes: dict[tuple, tuple[torch.nn.Module, Classifier]] = {}

    @property
    def seed(self) -> int:
        return self.s.seed

    # ---- models ----------------------------------------------------------------------

    def fingerprint(self, kind: str, corruption: Distortion, **extra) -> str:
        data = self.cfg.data.model_dump(exclude={"num_workers", "skip_bad_images"})
        payload = {"kind": kind, "data": data, "classes": self.s.splits.classes, "seed": self.seed, "corruption": corruption.spec, **extra}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def reusable(self, fingerprint: str) -> LoadedEncoder | None:
        if not self.cfg.reuse:
            return None
        experiments = [e.experiment_id for e in mlflow.search_experiments()]
        found = mlflow.search_logged_models(experiment_ids=experiments, filter_string=f"tags.fingerprint = '{fingerprint}'",
                                            output_format="list")
        ready = [m for m in found if str(m.status).endswith("READY")]
        return load_encoder(f"models:/{ready[0].model_id}", self.s.device) if ready else None

    def cached(self, kind: str, corruption: Distortion, train: Callable[[Setup], tuple[torch.nn.Module, object]],
               **extra) -> torch.nn.Module:
        """A model by training configuration: this run's, a logged one, or trained now."""
        fingerprint = self.fingerprint(kind, corruption, **extra)
        if fingerprint in self._models:
            return self._models[fingerprint]
        model = self.reusable(fingerprint)
        if model is None:
            with tracking.child_run(f"{kind} · {corruption.spec} · seed {self.seed}",
                                    **{"cinv.stage": kind, "fingerprint": fingerprint, "cinv.seed": str(self.seed)}):
                tracking.log_params({"corruption": corruption.spec, "seed": self.seed, **{k: str(v) for k, v in extra.items()}})
                model, info = train(dataclasses.replace(self.s, corruption=corruption))
                mlflow.set_logged_model_tags(info.model_id, {"fingerprint": fingerprint})
        else:
            mlflow.set_tag(f"cinv.reused.{kind}.{fingerprint}", model.model_uri)
        self._models[fingerprint] = model
        return model

    def student(self, corruption: Distortion, loss: str | None = None) -> torch.nn.Module:
        opts = self.cfg.student.model_copy(update={"loss": loss or self.cfg.student.loss, "registered_model_name": None})

        def train(s: Setup):
            student = train_student(s, self.teacher, opts, checkpoint=False)
            return student, log_encoder(s, student, method="contrastive_inversion", teacher=self.cfg.teacher, loss=opts.loss)

        return self.cached("student", corruption, train, teacher=self.cfg.teacher, teacher_weights=self.cfg.teacher_weights,
                           opts=_recipe(opts))

    def baseline(self, corruption: Distortion, label_fraction: float = 1.0) -> torch.nn.Module:
        """The fine-tuned classifier; its backbone is logged beside it for :meth:`baseline_backbone`."""
        opts = self.cfg.baseline.model_copy(update={"registered_model_name": None})
        extra = {"label_fraction": label_fraction, "opts": _recipe(opts)}
        backbone_fingerprint = self.fingerprint("baseline_backbone", corruption, **extra)

        def train(s: Setup):
            model = train_baseline(s, opts, checkpoint=False, label_fraction=label_fraction)
            produced_by = {"method": "supervised_baseline", "backbone": opts.backbone}
            backbone = log_encoder(s, model.encoder, **produced_by)
            mlflow.set_logged_model_tags(backbone.model_id, {"fingerprint": backbone_fingerprint})
            self._models[backbone_fingerprint] = model.encoder
            return model, log_classifier(s, model, corruption, **produced_by)

        return self.cached("baseline", corruption, train, **extra)

    def baseline_backbone(self, corruption: Distortion) -> torch.nn.Module:
        """The baseline's fine-tuned encoder without its head (transfer learning)."""
        opts = self.cfg.baseline.model_copy(update={"registered_model_name": None})
        fingerprint = self.fingerprint("baseline_backbone", corruption, label_fraction=1.0, opts=_recipe(opts))
        if fingerprint not in self._models:
            found = self.reusable(fingerprint)
            if found is None:
                self.baseline(corruption)  # trains and logs both
            else:
                self._models[fingerprint] = found
        return self._models[fingerprint]

    def clean_probe(self) -> Classifier:
        """The teacher's probe fitted on clean images."""
        return self.probe(self.teacher, distortions.get("none"))

    def clean_classifier(self) -> Classifier:
        """The classifier trained on clean images of the pixel-space baselines (Tables 7/8): "an
        ImageNet pre-trained ResNet-101 backbone with a linear classifier trained on clean
        ImageNet-100 images", i.e. the pretrained baseline backbone with a clean probe, or the
        teacher's clean probe (``clean_classifier=teacher``)."""
        if self.cfg.clean_classifier == "teacher":
            return self.clean_probe()
        if "clean backbone" not in self._models:
            self._models["clean backbone"] = encoders.freeze(
                encoders.get(self.cfg.baseline.backbone, self.cfg.baseline.backbone_weights)).to(self.s.device)
        return self.probe(self._models["clean backbone"], distortions.get("none"))

    def probe(self, encoder, corruption: Distortion, label_fraction: float | None = None, s: Setup | None = None) -> Classifier:
        """A probe fitted on ``corruption`` (of ``s``'s data, default the experiment's), once per
        encoder, corruption and label fraction: cells that evaluate it elsewhere share it."""
        s = s or self.s
        fraction = self.cfg.probe.label_fraction if label_fraction is None else label_fraction
        key = (id(encoder), corruption.spec, fraction, id(s.splits))
        if key not in self._probes:
            opts = self.cfg.probe.model_copy(update={"label_fraction": fraction})
            self._probes[key] = (encoder, train_probe(dataclasses.replace(s, corruption=corruption), encoder, opts, log=False))
        return self._probes[key][1]

    def source(self, method: str) -> str:
        """The pretrained network a method starts from (the report's ``teacher`` column)."""
        if method == "baseline":
            return self.cfg.baseline.backbone
        if method.endswith("clean_classifier") or method == "clean_classifier":
            return self.cfg.baseline.backbone if self.cfg.clean_classifier == "backbone" else self.cfg.teacher
        for name in ("rocl", "fcl"):
            if method == name and hasattr(self.cfg, name):
                return getattr(self.cfg, name).encoder
        return self.cfg.teacher

    # ---- cells -----------------------------------------------------------------------

    def cell(self, method: str, model: Callable[[], torch.nn.Module], evaluated_on: Distortion, *,
             trained_on: Distortion, setup: Setup | None = None, **labels) -> Evaluation:
        """Evaluate one model on one corruption in its own child run (on ``setup``'s test split,
        default the experiment's); record a table row. ``trained_on``: the corruption the model
        (and its probe) saw in training; ``labels``: the cell's other fields (label_fraction,
        loss, target, label_shift, severity, ...)."""
        shown = evaluated_on.corruption if isinstance(evaluated_on, Restored) else evaluated_on  # reported as the corruption
        condition = "; ".join(f"{k}={labels[k]}" for k in ("target", "label_shift") if k in labels)
        loss = labels.get("loss", self.cfg.student.loss if method == "student" else "")
        tags = {"cinv.stage": "evaluation", "cinv.experiment": self.cfg.name, **tracking.evaluation_tags(
            method, eval_corruption=evaluated_on.spec, train_corruption=trained_on.spec, teacher=self.source(method),
            dataset=(setup or self.s).splits.name, seed=self.seed, recipe=self.recipe, loss=loss,
            label_fraction=labels.get("label_fraction", self.cfg.probe.label_fraction), condition=condition),
            **{f"cinv.{k}": str(v) for k, v in labels.items()}}
        fitted = model()  # trainings open their own child runs, beside (not inside) the evaluation's
        with tracking.child_run(f"{display(method)} · {evaluated_on.spec} · seed {self.seed}", **tags):
            tracking.log_params({"corruption": evaluated_on.spec, "method": method, "seed": self.seed, **labels})
            result = evaluate_model(setup or self.s, fitted, self.cfg.eval, corruption=evaluated_on)
        self.rows.append({"method": display(method), "corruption": shown.spec, "train_corruption": trained_on.spec, **labels,
                          "seed": self.seed, "draws": len(result.draws),
                          **{f"{m}_{stat}": getattr(result, stat)(m) for m in result.metrics for stat in ("mean", "se")}})
        return result


class Restored(Distortion):
    """A corruption followed by a pixel-space restorer that knows exactly which pixels were removed."""

    def __init__(self, corruption: Distortion, restorer: restoration.Restorer):
        super().__init__(**corruption.params)
        self.corruption, self.restorer = corruption, restorer
        self.name, self.stochastic = corruption.name, corruption.stochastic

    @property
    def spec(self) -> str:
        return f"{self.corruption.spec} -> {self.restorer.spec}"

    def apply(self, images, generator):
        keep = None
        if self.restorer.needs_mask:
            if generator is None:
                generator = torch.Generator(images.device).manual_seed(int(torch.randint(2**62, ()).item()))
            state = generator.get_state()
            keep = self.corruption.keep_mask(images, generator)
            generator.set_state(state)  # the corruption below draws the very same mask
        return self.restorer(self.corruption(images, generator), keep)


# ---- the experiments ---------------------------------------------------------------------

EXPERIMENTS: Registry[Callable[[Lab], Plot]] = Registry("experiment")


def _specs(cfg_list: list[str], default: list[str]) -> list[Distortion]:
    return [distortions.from_spec(spec) for spec in (cfg_list or default)]


def _severity_grid(lab: Lab, experiment: str) -> tuple[Distortion, list[Distortion]]:
    """The training range (``train_corruption``, default masks of 50-95%) and the fixed test levels."""
    train = distortions.from_spec(lab.cfg.train_corruption or SEVERITY_LEVELS["random_mask"][0])
    if train.name not in SEVERITY_LEVELS and not lab.cfg.corruption_list:
        raise ValueError(f"train_corruption: {experiment} has default levels for {', '.join(SEVERITY_LEVELS)}; "
                         f"give corruptions=... for {train.name}")
    _, levels, param = SEVERITY_LEVELS.get(train.name, (None, [], None))
    return train, _specs(lab.cfg.corruption_list, [f"{train.name}({param}={level})" for level in levels])


def _baseline_fractions(lab: Lab, fractions: list[float]) -> list[float]:
    """The paper's baseline always fine-tunes on all labels; ``baseline_fractions=true`` adds the others."""
    return fractions if lab.cfg.baseline_fractions else [1.0]


@EXPERIMENTS.register("fixed_corruption")
def fixed_corruption(lab: Lab) -> Plot:
    """Table 1/4: per corruption, the student's probe on 100% and 10% of the labels (batch 8 on the
    fraction, appendix C) and the supervised baseline fine-tuned on all labels."""
    fractions = lab.cfg.fraction_list or [1.0, 0.1]
    for corruption in _specs(lab.cfg.corruption_list, PAPER_CORRUPTIONS):
        for fraction in fractions:
            lab.cell("student", lambda c=corruption, f=fraction: lab.probe(lab.student(c), c, f), corruption,
                     trained_on=corruption, label_fraction=fraction)
        for fraction in _baseline_fractions(lab, fractions):
            lab.cell("baseline", lambda c=corruption, f=fraction: lab.baseline(c, f), corruption, trained_on=corruption,
                     label_fraction=fraction)
    return lambda table: grouped_bars(table, by="corruption", hue=["method", "label_fraction"])


@EXPERIMENTS.register("label_efficiency")
def label_efficiency(lab: Lab) -> Plot:
    """Fig. 3: "robust encoders on images with 90% random pixel masking and additive Gaussian noise
    with standard deviation 0.5", a probe on each fraction of the labels (batch 8), "compared to a
    supervised baseline that uses all of the labeled training samples"."""
    fractions = lab.cfg.fraction_list or LABEL_FRACTIONS
    for corruption in _specs(lab.cfg.corruption_list, ["random_mask(fraction=0.9)", "gaussian_noise(std=0.5)"]):
        for fraction in fractions:
            lab.cell("student", lambda c=corruption, f=fraction: lab.probe(lab.student(c), c, f), corruption,
                     trained_on=corruption, label_fraction=fraction)
        for fraction in _baseline_fractions(lab, fractions):
            lab.cell("baseline", lambda c=corruption, f=fraction: lab.baseline(c, f), corruption, trained_on=corruption,
                     label_fraction=fraction)
    return lambda table: lines(table, x="label_fraction", xlabel="fraction of labels", series=["method", "corruption"], log_x=True)


@EXPERIMENTS.register("severity_shift")
def severity_shift(lab: Lab) -> Plot:
    """Fig. 4 / Tables 10, 12: trained (and the probe fitted) on a severity range, evaluated at
    fixed levels below, inside and beyond it (masks to 96-99%, noise 0.35-0.5)."""
    train, tests = _severity_grid(lab, "severity_shift")
    for corruption in tests:
        severity = next(iter(corruption.params.values()), None)
        lab.cell("student", lambda: lab.probe(lab.student(train), train), corruption, trained_on=train, severity=severity)
        lab.cell("baseline", lambda: lab.baseline(train), corruption, trained_on=train, severity=severity)
    return lambda table: lines(table, x="severity", xlabel=f"test severity (trained on {train.spec})")


@EXPERIMENTS.register("label_shift")
def label_shift(lab: Lab) -> Plot:
    """Table 3 / Fig. 5: models trained on the seen classes, evaluated on images of unseen, similar
    classes labelled as their seen counterparts, across severities."""
    from cinv.data.datasets import EMBEDDED, read_label_shift
    from cinv.data.datasets import label_shift as shift

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
        lab.cell("student", lambda: lab.probe(lab.student(train), train), corruption, trained_on=train, setup=evaluation, **labels)
        lab.cell("baseline", lambda: lab.baseline(train), corruption, trained_on=train, setup=evaluation, **labels)
    return lambda rows: lines(rows, x="severity", xlabel=f"test severity on unseen classes (trained on {train.spec})")


@EXPERIMENTS.register("transfer")
def transfer(lab: Lab) -> Plot:
    """Table 2/5/6: encoders trained on the experiment's dataset under a corruption, frozen, with
    a new linear probe per target dataset fitted and evaluated under the same corruption. A
    two-class target is also scored with ROC AUC (the COVID X-ray set)."""
    from cinv.data.datasets import load_target

    cfg = lab.cfg
    for corruption in _specs(cfg.corruption_list, [SEVERITY_LEVELS["random_mask"][0], SEVERITY_LEVELS["gaussian_noise"][0]]):
        for target in cfg.target_list or ["embedded"]:
            splits = load_target(target, lab.s.splits.image_size, cfg.data.val_fraction, cfg.seed, cfg.data.limit_per_class)
            there = dataclasses.replace(lab.s, splits=splits, corruption=corruption)

            def on_target(encoder, there=there, c=corruption):
                return lab.probe(encoder, c, s=there)

            labels = {"target": target}
            lab.cell("student", lambda c=corruption, f=on_target: f(lab.student(c)), corruption, trained_on=corruption,
                     setup=there, **labels)
            lab.cell("baseline", lambda c=corruption, f=on_target: f(lab.baseline_backbone(c)), corruption,
                     trained_on=corruption, setup=there, **labels)
            lab.cell("teacher", lambda f=on_target: f(lab.teacher), corruption, trained_on=corruption, setup=there, **labels)
    return lambda table: grouped_bars(table, by="target", hue=["method", "train_corruption"])


@EXPERIMENTS.register("loss_ablation")
def loss_ablation(lab: Lab) -> Plot:
    """Fig. 6 (section 4.5): every loss trains "the same random masking model described in Section
    4.2" (masks of 50-95%, ``train_corruption``), its probe is fitted on that range, and each is
    evaluated "on fixed masking levels of 90-99%"."""
    train = distortions.from_spec(lab.cfg.train_corruption or SEVERITY_LEVELS["random_mask"][0])
    if train.name != "random_mask" and not lab.cfg.corruption_list:
        raise ValueError(f"train_corruption: loss_ablation has default levels for random_mask; give corruptions=... for {train.name}")
    tests = _specs(lab.cfg.corruption_list, [f"random_mask(fraction={level})" for level in ABLATION_LEVELS])
    for loss in lab.cfg.loss_list or LOSSES:
        for corruption in tests:
            severity = next(iter(corruption.params.values()), None)
            lab.cell("student", lambda name=loss: lab.probe(lab.student(train, loss=name), train), corruption,
                     trained_on=train, loss=loss, severity=severity)
    return lambda table: lines(table, x="severity", xlabel=f"test mask fraction (trained on {train.spec})", series=["loss"])


@EXPERIMENTS.register("original_representations")
def original_representations(lab: Lab) -> Plot:
    """Table 13: a probe on the teacher's original features of corrupted images, next to the student's."""
    for corruption in _specs(lab.cfg.corruption_list, PAPER_CORRUPTIONS):
        lab.cell("teacher", lambda c=corruption: lab.probe(lab.teacher, c), corruption, trained_on=corruption)
        lab.cell("student", lambda c=corruption: lab.probe(lab.student(c), c), corruption, trained_on=corruption)
    return lambda table: grouped_bars(table, by="corruption", hue=["method"])


@EXPERIMENTS.register("clean_probe_transfer")
def clean_probe_transfer(lab: Lab) -> Plot:
    """Table 9: the probe fitted on clean teacher features, moved unchanged onto the student."""
    clean = distortions.get("none")
    for corruption in _specs(lab.cfg.corruption_list, PAPER_CORRUPTIONS):
        lab.cell("student_clean_probe", lambda c=corruption: lab.clean_probe().with_encoder(lab.student(c)), corruption,
                 trained_on=corruption)
        lab.cell("teacher_clean_probe", lab.clean_probe, corruption, trained_on=clean)
        lab.cell("student", lambda c=corruption: lab.probe(lab.student(c), c), corruption, trained_on=corruption)
    return lambda table: grouped_bars(table, by="corruption", hue=["method"])


PIXEL_DEFAULTS = ["gaussian_noise(std=0.1)", "gaussian_noise(std=0.3)", "gaussian_noise(std=0.5)",
                  "random_mask(fraction=0.5)", "random_mask(fraction=0.75)", "random_mask(fraction=0.9)"]


def pixel_restorers(cfg: ExperimentConfig) -> dict[str, restoration.Restorer]:
    """The restorer for each corruption the pixel baselines restore."""
    inpainting = (restoration.get("deep_decoder", steps=cfg.deep_decoder_steps) if cfg.inpainting == "deep_decoder"
                  else restoration.get(cfg.inpainting))
    return {"gaussian_noise": restoration.get("nl_means"), "random_mask": inpainting}


@EXPERIMENTS.register("pixel_baselines")
def pixel_baselines(lab: Lab) -> Plot:
    """Tables 7/8: restore in pixel space (non-local means for noise; inpainting with the very mask
    that removed the pixels: Deep Decoder with ``deep_decoder_steps``, 5000 in the paper), then
    classify "with a classification model trained on clean image data" (``clean_classifier``: the
    pretrained baseline backbone with a probe fitted on clean images, as the paper's); the same
    classifier without restoration and the student for comparison."""
    restorers = pixel_restorers(lab.cfg)
    clean = distortions.get("none")
    for corruption in _specs(lab.cfg.corruption_list, PIXEL_DEFAULTS):
        if corruption.name not in restorers:
            raise ValueError(f"corruptions: pixel_baselines restores {', '.join(restorers)}; got {corruption.spec}")
        restored = Restored(corruption, restorers[corruption.name])
        lab.cell(f"{restored.restorer.spec} + clean_classifier", lab.clean_classifier, restored, trained_on=clean)
        lab.cell("clean_classifier", lab.clean_classifier, corruption, trained_on=clean)
        lab.cell("student", lambda c=corruption: lab.probe(lab.student(c), c), corruption, trained_on=corruption)
    return lambda table: grouped_bars(table, by="corruption", hue=["method"])


@EXPERIMENTS.register("imagenet_c")
def imagenet_c(lab: Lab) -> Plot:
    """Table 14: ImageNet-C's 19 corruptions x 5 severities; a student trained on random blur and
    noise against a baseline fine-tuned on clean images, mean top-1 over the severities."""
    from cinv import imagenet_c as ic

    train = distortions.from_spec(lab.cfg.train_corruption or "random_blur_noise(blur_sigma=(1, 5), noise_std=(0.05, 0.5), p=0.8)")
    clean = distortions.get("none")
    tests = _specs(lab.cfg.corruption_list, [f"imagenet_c(corruption={name!r}, severity={level})"
                                             for name in ic.CORRUPTIONS for level in range(1, 6)])
    for corruption in tests:
        labels = {"family": corruption.params.get("corruption", corruption.name), "severity": corruption.params.get("severity")}
        lab.cell("student", lambda: lab.probe(lab.student(train), train), corruption, trained_on=train, **labels)
        lab.cell("baseline", lambda: lab.baseline(clean), corruption, trained_on=clean, **labels)
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
    ax.set_title(statistic_note(table), fontsize=7)


# ---- command -----------------------------------------------------------------------------


def per_seed(cfg, s: Setup, teacher: encoders.FrozenEncoder, cells: Callable[[Lab], object]) -> tuple[pd.DataFrame, object]:
    """Run ``cells`` once per training seed (a Lab each; the data splits stay those of ``seed``);
    the rows of every seed and the last return value."""
    rows, out = [], None
    for seed in cfg.seed_list:
        lab = Lab(cfg, dataclasses.replace(s, seed=seed), teacher)
        out = cells(lab)
        rows += lab.rows
    return pd.DataFrame(rows), out


def log_results(rows: pd.DataFrame, stem: str, plot: Plot) -> pd.DataFrame:
    """The per-seed rows and the across-seed table (CSV, Markdown, HTML) and its figure."""
    table = across_seeds(rows)
    tracking.log_table(rows, f"{stem}_per_seed")
    tracking.log_table(table, stem)
    tracking.log_figure(plot(table), f"{stem}.png")
    mlflow.set_tag("cinv.statistic", statistic_note(table)[:5000])
    return table


def run_experiment(cfg: ExperimentConfig) -> pd.DataFrame:
    s = setup(cfg, "none")
    mlflow.set_tags({"cinv.stage": "experiment", "cinv.experiment": cfg.name})
    teacher = encoders.freeze(encoders.get(cfg.teacher, cfg.teacher_weights)).to(s.device)
    rows, plot = per_seed(cfg, s, teacher, lambda lab: EXPERIMENTS.get(cfg.name, lab=lab))
    return log_results(rows, cfg.name, plot)


# ---- benchmark: every method on one suite --------------------------------------------------------


def _method_models(lab: Lab, cfg) -> dict[str, Callable[[], torch.nn.Module]]:
    """Each method's classifier, trained (or reused) on first use."""
    from cinv import methods

    train = distortions.from_spec(cfg.train_corruption)
    clean = distortions.get("none")

    def rocl() -> torch.nn.Module:
        def fit_rocl(s: Setup):
            encoder = methods.train_rocl(s, cfg.rocl)
            return encoder, log_encoder(s, encoder, method="rocl", encoder_name=cfg.rocl.encoder)

        encoder = lab.cached("rocl", clean, fit_rocl, opts=_recipe(cfg.rocl))
        return lab.probe(encoder, clean)

    def fcl() -> torch.nn.Module:
        def fit_fcl(s: Setup):
            model = methods.train_fcl(s, cfg.fcl)
            return model, log_classifier(s, model, clean, method="fcl")

        return lab.cached("fcl", clean, fit_fcl, opts=_recipe(cfg.fcl))

    table = {
        "student": (train, lambda: lab.probe(lab.student(train), train)),
        "baseline": (train, lambda: lab.baseline(train)),
        "rocl": (clean, rocl),
        "fcl": (clean, fcl),
        "teacher": (clean, lab.clean_probe),
    }
    return {("teacher_clean_probe" if name == "teacher" else name): table[name] for name in cfg.method_list}


def _attackable(model: torch.nn.Module) -> torch.nn.Module:
    """Probes hold a no-grad frozen encoder; PGD needs gradients with respect to the images."""
    if isinstance(model, Classifier) and isinstance(model.encoder, encoders.FrozenEncoder):
        return model.with_encoder(encoders.freeze(model.encoder, input_gradients=True))
    return model


def run_benchmark(cfg) -> pd.DataFrame:
    s = setup(cfg, "none")
    mlflow.set_tags({"cinv.stage": "experiment", "cinv.experiment": "benchmark"})
    teacher = encoders.freeze(encoders.get(cfg.teacher, cfg.teacher_weights)).to(s.device)
    # The same seeded, class-balanced test images for every method and seed (paired).
    images, labels = attack_subset(s, cfg.attack.images, cfg.eval.draw_seed)
    rows, _ = per_seed(cfg, s, teacher, lambda lab: benchmark_cells(lab, cfg, images, labels))
    return log_results(rows, "benchmark", lambda table: grouped_bars(table, by="corruption", hue=["method"]))


def benchmark_cells(lab: Lab, cfg, images: torch.Tensor, labels: torch.Tensor) -> None:
    from cinv import attacks
    from cinv.config import parse_budgets

    fitted: dict[str, torch.nn.Module] = {}
    models = _method_models(lab, cfg)
    for method, (trained_on, build) in models.items():
        for corruption in _specs(cfg.corruption_list, []):
            lab.cell(method, lambda m=method, b=build: fitted.setdefault(m, b()), corruption, trained_on=trained_on)
    for method, model in fitted.items():
        for norm, eps in parse_budgets(cfg.attack.budgets):
            spec = f"pgd(norm='{norm}', eps={eps:.4g}, steps={cfg.attack.steps})"
            tags = {"cinv.stage": "evaluation", "cinv.experiment": "benchmark", **tracking.evaluation_tags(
                method, eval_corruption=spec, train_corruption=models[method][0].spec, teacher=lab.source(method),
                dataset=lab.s.splits.name, seed=lab.seed, recipe=lab.recipe,
                loss=cfg.student.loss if method == "student" else "")}
            with tracking.child_run(f"{display(method)} · {spec} · seed {lab.seed}", **tags):
                accuracy = attacks.robust_accuracy(_attackable(model), images, labels, norm=norm, eps=eps, steps=cfg.attack.steps,
                                                   seed=derive_seed(lab.seed, "eval attack"), batch_size=cfg.attack.batch_size)
                mlflow.log_metrics({"test_top1_mean": accuracy, "test_top1_se": 0.0, "test_draws": 1.0,
                                    "attack_images": len(labels)})
            lab.rows.append({"method": display(method), "corruption": spec, "train_corruption": models[method][0].spec,
                             "seed": lab.seed, "draws": 1, "top1_mean": accuracy, "top1_se": 0.0})
