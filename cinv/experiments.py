"""The paper's experiments (seed 000), each one command: ``mlflow run . -e experiment -P name=...``.

An experiment is a grid of *cells*: a method (student probe, supervised baseline, teacher probe,
...) trained on one corruption and evaluated on another. Each training and each evaluation is a
child run of the experiment's parent run, which logs the table (CSV, Markdown, HTML) and the
figure. Trained models carry a ``fingerprint`` tag of their training configuration, so a later
experiment with the same configuration loads them instead of training again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import pandas as pd
import torch

from cinv import distortions, encoders, restoration, tracking
from cinv.config import ExperimentConfig
from cinv.distortions import Distortion
from cinv.encoders import Classifier
from cinv.evaluation import Evaluation
from cinv.pipeline import (
    Setup,
    evaluate_model,
    log_classifier,
    log_encoder,
    setup,
    train_baseline,
    train_probe,
    train_student,
)
from cinv.registry import Registry
from cinv.serving import LoadedEncoder, load_encoder

PAPER_CORRUPTIONS = [
    "random_mask(fraction=0.5)", "random_mask(fraction=0.75)", "random_mask(fraction=0.9)",
    "gaussian_noise(std=0.1)", "gaussian_noise(std=0.3)", "gaussian_noise(std=0.5)",
    "gaussian_blur(kernel_size=21, sigma=5)", "gaussian_blur(kernel_size=37, sigma=9)",
]
SEVERITY_LEVELS = {  # Fig. 4 / Table 10: levels below, inside and beyond the training range
    "random_mask": ("random_mask(fraction=(0.5, 0.95))", [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99], "fraction"),
    "gaussian_noise": ("gaussian_noise(std=(0.1, 0.3))", [0.05, 0.1, 0.2, 0.3, 0.4, 0.5], "std"),
}
METHOD_NAMES = {
    "student": "student (ours)",
    "baseline": "supervised baseline",
    "teacher": "teacher, original representations",
    "teacher_clean_probe": "teacher probe trained on clean images",
    "student_clean_probe": "clean teacher probe on the student",
    "rocl": "RoCL (linear evaluation)",
    "fcl": "FCL",
}


def _recipe(opts) -> dict:
    """The options that change what a training produces (not where it is logged or checkpointed)."""
    return opts.model_dump(exclude={"registered_model_name", "checkpoint_every_steps"})


@dataclass
class Outcome:
    table: pd.DataFrame
    figure: object


class Lab:
    """Trains (or reuses) the models an experiment needs and evaluates them, one child run each."""

    def __init__(self, cfg: ExperimentConfig, s: Setup, teacher: encoders.FrozenEncoder):
        self.cfg, self.s, self.teacher = cfg, s, teacher
        self.rows: list[dict] = []
        self._models: dict[str, torch.nn.Module] = {}

    # ---- models ----------------------------------------------------------------------

    def fingerprint(self, kind: str, corruption: Distortion, **extra) -> str:
        data = self.cfg.data.model_dump(exclude={"num_workers", "skip_bad_images"})
        payload = {"kind": kind, "data": data, "classes": self.s.splits.classes, "seed": self.cfg.seed, "corruption": corruption.spec, **extra}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def _reusable(self, fingerprint: str) -> LoadedEncoder | None:
        if not self.cfg.reuse:
            return None
        experiments = [e.experiment_id for e in mlflow.search_experiments()]
        found = mlflow.search_logged_models(experiment_ids=experiments, filter_string=f"tags.fingerprint = '{fingerprint}'",
                                            output_format="list")
        ready = [m for m in found if str(m.status).endswith("READY")]
        return load_encoder(f"models:/{ready[0].model_id}", self.s.device) if ready else None

    def _cached(self, kind: str, corruption: Distortion, train: Callable[[Setup], tuple[torch.nn.Module, object]],
                **extra) -> torch.nn.Module:
        """A model by training configuration: this run's, a logged one, or trained now."""
        fingerprint = self.fingerprint(kind, corruption, **extra)
        if fingerprint in self._models:
            return self._models[fingerprint]
        model = self._reusable(fingerprint)
        if model is None:
            with tracking.child_run(f"{kind} · {corruption.spec}", **{"cinv.stage": kind, "fingerprint": fingerprint}):
                tracking.log_params({"corruption": corruption.spec, **{k: str(v) for k, v in extra.items()}})
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

        return self._cached("student", corruption, train, teacher=self.cfg.teacher, teacher_weights=self.cfg.teacher_weights,
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

        return self._cached("baseline", corruption, train, **extra)

    def baseline_backbone(self, corruption: Distortion) -> torch.nn.Module:
        """The baseline's fine-tuned encoder without its head (transfer learning)."""
        opts = self.cfg.baseline.model_copy(update={"registered_model_name": None})
        fingerprint = self.fingerprint("baseline_backbone", corruption, label_fraction=1.0,
                                       opts=_recipe(opts))
        if fingerprint not in self._models:
            found = self._reusable(fingerprint)
            if found is None:
                self.baseline(corruption)  # trains and logs both
            else:
                self._models[fingerprint] = found
        return self._models[fingerprint]

    def clean_probe(self) -> Classifier:
        """The teacher's probe fitted on clean images: the classifier trained on clean data."""
        if "teacher clean probe" not in self._models:
            self._models["teacher clean probe"] = self.probe(self.teacher, distortions.get("none"))
        return self._models["teacher clean probe"]

    def probe(self, encoder, corruption: Distortion, label_fraction: float = 1.0) -> Classifier:
        """Probes are cheap next to trainings: fitted afresh, inside the evaluation's child run."""
        opts = self.cfg.probe.model_copy(update={"label_fraction": label_fraction})
        return train_probe(dataclasses.replace(self.s, corruption=corruption), encoder, opts, log=False)

    # ---- cells -----------------------------------------------------------------------

    def cell(self, method: str, model: Callable[[], torch.nn.Module], evaluated_on: Distortion, setup: Setup | None = None,
             **labels) -> Evaluation:
        """Evaluate one model on one corruption in its own child run (on ``setup``'s test split,
        default the experiment's); record a table row."""
        tags = {"cinv.stage": "evaluation", "cinv.experiment": self.cfg.name, "cinv.method": method,
                "cinv.eval_corruption": evaluated_on.spec, **{f"cinv.{k}": str(v) for k, v in labels.items()}}
        fitted = model()  # trainings open their own child runs, beside (not inside) the evaluation's
        with tracking.child_run(f"{METHOD_NAMES.get(method, method)} · {evaluated_on.spec}", **tags):
            tracking.log_params({"corruption": evaluated_on.spec, "method": method, **labels})
            result = evaluate_model(setup or self.s, fitted, self.cfg.eval, corruption=evaluated_on)
        shown = evaluated_on.corruption if isinstance(evaluated_on, Restored) else evaluated_on  # reported as the corruption
        self.rows.append({"method": METHOD_NAMES.get(method, method), "corruption": shown.spec, **labels,
                          **{f"{m}_{stat}": round(getattr(result, stat)(m), 4) for m in result.metrics for stat in ("mean", "se")},
                          "draws": len(result.draws)})
        return result

    def table(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows)
        if "top1_mean" in table:  # readable next to the exact columns
            table.insert(2, "top1", table["top1_mean"].map("{:.2f}".format) + " ± " + table["top1_se"].map("{:.2f}".format))
        return table


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

EXPERIMENTS: Registry[Callable[[Lab], Outcome]] = Registry("experiment")


def _specs(cfg_list: list[str], default: list[str]) -> list[Distortion]:
    return [distortions.from_spec(spec) for spec in (cfg_list or default)]


@EXPERIMENTS.register("fixed_corruption")
def fixed_corruption(lab: Lab) -> Outcome:
    """Table 1/4: student and supervised baseline per corruption, with 100% and 10% of labels."""
    for corruption in _specs(lab.cfg.corruption_list, PAPER_CORRUPTIONS):
        for fraction in lab.cfg.fraction_list or [1.0, 0.1]:
            lab.cell("student", lambda c=corruption, f=fraction: lab.probe(lab.student(c), c, f), corruption, label_fraction=fraction)
            lab.cell("baseline", lambda c=corruption, f=fraction: lab.baseline(c, f), corruption, label_fraction=fraction)
    table = lab.table()
    return Outcome(table, grouped_bars(table, by="corruption", hue=["method", "label_fraction"]))


@EXPERIMENTS.register("label_efficiency")
def label_efficiency(lab: Lab) -> Outcome:
    """Fig. 3: accuracy against the fraction of labels the probe (and the baseline) saw."""
    for corruption in _specs(lab.cfg.corruption_list, ["random_mask(fraction=0.9)"]):
        for fraction in lab.cfg.fraction_list or [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01]:
            lab.cell("student", lambda c=corruption, f=fraction: lab.probe(lab.student(c), c, f), corruption, label_fraction=fraction)
            lab.cell("baseline", lambda c=corruption, f=fraction: lab.baseline(c, f), corruption, label_fraction=fraction)
    table = lab.table()
    return Outcome(table, lines(table, x="label_fraction", xlabel="fraction of labels", log_x=True))


@EXPERIMENTS.register("severity_shift")
def severity_shift(lab: Lab) -> Outcome:
    """Fig. 4 / Table 10: train on a severity range, evaluate below, inside and beyond it."""
    train = distortions.from_spec(lab.cfg.train_corruption or SEVERITY_LEVELS["random_mask"][0])
    if train.name not in SEVERITY_LEVELS and not lab.cfg.corruption_list:
        raise ValueError(f"train_corruption: severity_shift has default levels for {', '.join(SEVERITY_LEVELS)}; "
                         f"give corruptions=... for {train.name}")
    _, levels, param = SEVERITY_LEVELS.get(train.name, (None, [], None))
    tests = _specs(lab.cfg.corruption_list, [f"{train.name}({param}={level})" for level in levels])
    for corruption in tests:
        severity = next(iter(corruption.params.values()), None)
        lab.cell("student", lambda: lab.probe(lab.student(train), train), corruption, train_corruption=train.spec, severity=severity)
        lab.cell("baseline", lambda: lab.baseline(train), corruption, train_corruption=train.spec, severity=severity)
    table = lab.table()
    return Outcome(table, lines(table, x="severity", xlabel=f"test severity (trained on {train.spec})"))


@EXPERIMENTS.register("label_shift")
def label_shift(lab: Lab) -> Outcome:
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
    train = distortions.from_spec(cfg.train_corruption or SEVERITY_LEVELS["random_mask"][0])
    if train.name not in SEVERITY_LEVELS and not cfg.corruption_list:
        raise ValueError(f"train_corruption: label_shift has default levels for {', '.join(SEVERITY_LEVELS)}; "
                         f"give corruptions=... for {train.name}")
    _, levels, param = SEVERITY_LEVELS.get(train.name, (None, [], None))
    mlflow.log_params({"label_shift_pairs": ", ".join(f"{a}->{b}" for a, b in pairs), "shifted_test_images": len(shifted)})
    for corruption in _specs(cfg.corruption_list, [f"{train.name}({param}={level})" for level in levels]):
        severity = next(iter(corruption.params.values()), None)
        labels = {"train_corruption": train.spec, "severity": severity, "label_shift": table}
        lab.cell("student", lambda: lab.probe(lab.student(train), train), corruption, setup=evaluation, **labels)
        lab.cell("baseline", lambda: lab.baseline(train), corruption, setup=evaluation, **labels)
    rows = lab.table()
    return Outcome(rows, lines(rows, x="severity", xlabel=f"test severity on unseen classes (trained on {train.spec})"))


@EXPERIMENTS.register("transfer")
def transfer(lab: Lab) -> Outcome:
    """Table 2/5/6: encoders trained on the experiment's dataset under a corruption, frozen, with
    a new linear probe per target dataset fitted and evaluated under the same corruption. A
    two-class target is also scored with ROC AUC (the COVID X-ray set)."""
    from cinv.data.datasets import load_target

    cfg = lab.cfg
    for corruption in _specs(cfg.corruption_list, [SEVERITY_LEVELS["random_mask"][0], SEVERITY_LEVELS["gaussian_noise"][0]]):
        for target in cfg.target_list or ["embedded"]:
            splits = load_target(target, lab.s.splits.image_size, cfg.data.val_fraction, cfg.seed, cfg.data.limit_per_class)
            there = dataclasses.replace(lab.s, splits=splits, corruption=corruption)
            probe = cfg.probe

            def on_target(encoder, there=there, probe=probe):
                return train_probe(there, encoder, probe, log=False)

            labels = {"train_corruption": corruption.spec, "target": target}
            lab.cell("student", lambda c=corruption, f=on_target: f(lab.student(c)), corruption, setup=there, **labels)
            lab.cell("baseline", lambda c=corruption, f=on_target: f(lab.baseline_backbone(c)), corruption, setup=there, **labels)
            lab.cell("teacher", lambda f=on_target: f(lab.teacher), corruption, setup=there, **labels)
    table = lab.table()
    return Outcome(table, grouped_bars(table, by="target", hue=["method", "train_corruption"]))


@EXPERIMENTS.register("loss_ablation")
def loss_ablation(lab: Lab) -> Outcome:
    """Fig. 6: the five inversion losses at the same budget."""
    for corruption in _specs(lab.cfg.corruption_list, ["random_mask(fraction=0.9)"]):
        for loss in lab.cfg.loss_list or ["student_teacher", "student_student", "student_both", "nt_xent", "mse"]:
            lab.cell("student", lambda c=corruption, name=loss: lab.probe(lab.student(c, loss=name), c), corruption, loss=loss)
    table = lab.table()
    return Outcome(table, grouped_bars(table, by="loss", hue=["corruption"]))


@EXPERIMENTS.register("original_representations")
def original_representations(lab: Lab) -> Outcome:
    """Table 13: a probe on the teacher's original features of corrupted images, next to the student's."""
    for corruption in _specs(lab.cfg.corruption_list, PAPER_CORRUPTIONS):
        lab.cell("teacher", lambda c=corruption: lab.probe(lab.teacher, c), corruption)
        lab.cell("student", lambda c=corruption: lab.probe(lab.student(c), c), corruption)
    table = lab.table()
    return Outcome(table, grouped_bars(table, by="corruption", hue=["method"]))


@EXPERIMENTS.register("clean_probe_transfer")
def clean_probe_transfer(lab: Lab) -> Outcome:
    """Table 9: the probe fitted on clean teacher features, moved unchanged onto the student."""
    for corruption in _specs(lab.cfg.corruption_list, PAPER_CORRUPTIONS):
        lab.cell("student_clean_probe", lambda c=corruption: lab.clean_probe().with_encoder(lab.student(c)), corruption)
        lab.cell("teacher_clean_probe", lab.clean_probe, corruption)
        lab.cell("student", lambda c=corruption: lab.probe(lab.student(c), c), corruption)
    table = lab.table()
    return Outcome(table, grouped_bars(table, by="corruption", hue=["method"]))


PIXEL_DEFAULTS = ["gaussian_noise(std=0.1)", "gaussian_noise(std=0.3)", "gaussian_noise(std=0.5)",
                  "random_mask(fraction=0.5)", "random_mask(fraction=0.75)", "random_mask(fraction=0.9)"]


@EXPERIMENTS.register("pixel_baselines")
def pixel_baselines(lab: Lab) -> Outcome:
    """Tables 7/8: restore in pixel space (NLM for noise, inpainting with the very mask that removed
    the pixels), then classify with a probe trained on clean images; the student for comparison."""
    restorers = {"gaussian_noise": "nl_means", "random_mask": lab.cfg.inpainting}
    for corruption in _specs(lab.cfg.corruption_list, PIXEL_DEFAULTS):
        if corruption.name not in restorers:
            raise ValueError(f"corruptions: pixel_baselines restores {', '.join(restorers)}; got {corruption.spec}")
        restored = Restored(corruption, restoration.get(restorers[corruption.name]))
        lab.cell(f"{restored.restorer.spec} + clean classifier", lab.clean_probe, restored)
        lab.cell("teacher_clean_probe", lab.clean_probe, corruption)
        lab.cell("student", lambda c=corruption: lab.probe(lab.student(c), c), corruption)
    table = lab.table()
    return Outcome(table, grouped_bars(table, by="corruption", hue=["method"]))


@EXPERIMENTS.register("imagenet_c")
def imagenet_c(lab: Lab) -> Outcome:
    """Table 14: ImageNet-C's 19 corruptions x 5 severities; a student trained on random blur and
    noise against a baseline fine-tuned on clean images, mean top-1 over the severities."""
    from cinv import imagenet_c as ic

    train = distortions.from_spec(lab.cfg.train_corruption or "random_blur_noise(blur_sigma=(1, 5), noise_std=(0.05, 0.5), p=0.8)")
    tests = _specs(lab.cfg.corruption_list, [f"imagenet_c(corruption={name!r}, severity={level})"
                                             for name in ic.CORRUPTIONS for level in range(1, 6)])
    for corruption in tests:
        labels = {"train_corruption": train.spec, "family": corruption.params.get("corruption", corruption.name),
                  "severity": corruption.params.get("severity")}
        lab.cell("student", lambda: lab.probe(lab.student(train), train), corruption, **labels)
        lab.cell("baseline", lambda: lab.baseline(distortions.get("none")), corruption, **labels)
    table = lab.table()
    return Outcome(table, grouped_bars(table, by="family", hue=["method"]))


# ---- plots -------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grouped_bars(table: pd.DataFrame, by: str, hue: list[str], metric: str = "top1"):
    """Bars of mean ± s.e. per ``by`` group (means over any other column, e.g. severities)."""
    plt = _plt()
    cells = table.groupby([by, *hue], sort=False).agg(mean=(f"{metric}_mean", "mean"), se=(f"{metric}_se", "mean")).reset_index()
    groups = list(dict.fromkeys(cells[by]))
    series = list(dict.fromkeys(map(tuple, cells[hue].values.tolist())))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(groups) * max(1, len(series)) ** 0.5), 4))
    for i, key in enumerate(series):
        part = cells[(cells[hue].apply(tuple, axis=1) == key)]
        x = [groups.index(g) + (i - (len(series) - 1) / 2) * width for g in part[by]]
        ax.bar(x, part["mean"], width, yerr=part["se"], label=", ".join(f"{v}" for v in key), capsize=2)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric} (%), mean ± s.e. over draws")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def lines(table: pd.DataFrame, x: str, xlabel: str, metric: str = "top1", log_x: bool = False):
    """One line per method (and per corruption when there are several), mean ± s.e. over draws."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    series = ["method", "corruption"] if x != "severity" and table["corruption"].nunique() > 1 else ["method"]
    for key, part in table.groupby(series, sort=False):
        part = part.sort_values(x)
        ax.errorbar(part[x].astype(float), part[f"{metric}_mean"], yerr=part[f"{metric}_se"], marker="o", capsize=2,
                    label=", ".join(map(str, key if isinstance(key, tuple) else (key,))))
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (%), mean ± s.e. over draws")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---- command -----------------------------------------------------------------------------


def run_experiment(cfg: ExperimentConfig) -> pd.DataFrame:
    s = setup(cfg, "none")
    mlflow.set_tags({"cinv.stage": "experiment", "cinv.experiment": cfg.name})
    teacher = encoders.freeze(encoders.get(cfg.teacher, cfg.teacher_weights)).to(s.device)
    outcome = EXPERIMENTS.get(cfg.name, lab=Lab(cfg, s, teacher))
    tracking.log_table(outcome.table, cfg.name)
    tracking.log_figure(outcome.figure, f"{cfg.name}.png")
    return outcome.table


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

        encoder = lab._cached("rocl", clean, fit_rocl, opts=_recipe(cfg.rocl))
        return lab.probe(encoder, clean)

    def fcl() -> torch.nn.Module:
        def fit_fcl(s: Setup):
            model = methods.train_fcl(s, cfg.fcl)
            return model, log_classifier(s, model, clean, method="fcl")

        return lab._cached("fcl", clean, fit_fcl, opts=_recipe(cfg.fcl))

    table = {
        "student": lambda: lab.probe(lab.student(train), train),
        "baseline": lambda: lab.baseline(train),
        "rocl": rocl,
        "fcl": fcl,
        "teacher": lab.clean_probe,
    }
    return {("teacher_clean_probe" if name == "teacher" else name): table[name] for name in cfg.method_list}


def _attackable(model: torch.nn.Module) -> torch.nn.Module:
    """Probes hold a no-grad frozen encoder; PGD needs gradients with respect to the images."""
    if isinstance(model, Classifier) and isinstance(model.encoder, encoders.FrozenEncoder):
        return model.with_encoder(encoders.freeze(model.encoder, input_gradients=True))
    return model


def run_benchmark(cfg) -> pd.DataFrame:
    from cinv import attacks
    from cinv.config import parse_budgets
    from cinv.methods import _attacked_images

    s = setup(cfg, "none")
    mlflow.set_tags({"cinv.stage": "experiment", "cinv.experiment": "benchmark"})
    teacher = encoders.freeze(encoders.get(cfg.teacher, cfg.teacher_weights)).to(s.device)
    lab = Lab(cfg, s, teacher)
    models = _method_models(lab, cfg)
    fitted: dict[str, torch.nn.Module] = {}
    for method, build in models.items():
        for corruption in _specs(cfg.corruption_list, []):
            lab.cell(method, lambda m=method, b=build: fitted.setdefault(m, b()), corruption)
    images, labels = _attacked_images(s, cfg.attack.images)
    for method, model in fitted.items():
        for norm, eps in parse_budgets(cfg.attack.budgets):
            spec = f"pgd(norm='{norm}', eps={eps:.4g}, steps={cfg.attack.steps})"
            with tracking.child_run(f"{METHOD_NAMES.get(method, method)} · {spec}", **{
                    "cinv.stage": "evaluation", "cinv.experiment": "benchmark", "cinv.method": method, "cinv.eval_corruption": spec}):
                accuracy = attacks.robust_accuracy(_attackable(model), images, labels, norm=norm, eps=eps, steps=cfg.attack.steps,
                                                   seed=cfg.seed, batch_size=cfg.attack.batch_size)
                mlflow.log_metrics({"test_top1_mean": accuracy, "test_top1_se": 0.0, "test_draws": 1.0})
            lab.rows.append({"method": METHOD_NAMES.get(method, method), "corruption": spec, "top1_mean": round(accuracy, 4),
                             "top1_se": 0.0, "draws": 1})
    table = lab.table()
    tracking.log_table(table, "benchmark")
    tracking.log_figure(grouped_bars(table, by="corruption", hue=["method"]), "benchmark.png")
    return table
