"""The lab an experiment runs in: trains (or reuses) the models it needs, by method name, for one
training seed, and evaluates them, one child run per training and per evaluated cell.

Trained models carry a ``fingerprint`` tag of their training configuration (data, seed,
corruption, method options, teacher, label fraction), so a later experiment in the same store
with the same configuration loads them instead of training again (``reuse=false`` forces
training). Every evaluation is tagged with its recipe and seed (``tracking.schema.RECIPE``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable

import mlflow
import pandas as pd
import torch

from cinv import encoders
from cinv.context import Setup
from cinv.corruption import get as get_corruption
from cinv.corruption.base import Distortion
from cinv.corruption.restoration import Restored
from cinv.encoders.heads import Classifier
from cinv.evaluation.metrics import Evaluation
from cinv.evaluation.protocol import evaluate_model, evaluation_of
from cinv.evaluation.tables import across_seeds, statistic_note
from cinv.methods import METHODS, label
from cinv.probe import train_probe
from cinv.tracking import schema
from cinv.tracking.models import logged_models_of
from cinv.tracking.runs import (
    child_named,
    child_run,
    children,
    evaluation_tags,
    log_datasets,
    log_figure,
    log_params,
    log_table,
    resuming,
)
from cinv.tracking.serving import LoadedEncoder, load_encoder
from cinv.training.checkpoint import for_active_run

__all__ = ["Lab", "Plot", "recipe_of", "training_options", "per_seed", "log_results"]

Plot = Callable[[pd.DataFrame], object]  # an experiment's figure, drawn from its final (across-seed) table

RECIPE_GROUPS = ("data", "teacher", "teacher_weights", "student", "baseline", "probe", "eval", "encoder", "encoder_weights",
                 "model", "train", "rocl", "fcl", "trades", "attack")
NOT_RECIPE = {"registered_model_name", "checkpoint_every_steps", "compile", "num_workers", "skip_bad_images", "batch_size",
              "label_fraction"}


def recipe_of(cfg) -> str:
    """A short hash of everything a result depends on besides its seed and its cell's own fields
    (data, teacher, training budgets and optimiser, probe, evaluation protocol): the report never
    averages results whose recipes differ. Training batch sizes count; evaluation batch sizes do not."""
    dump = cfg.model_dump(mode="json")
    kept = {}
    for group in RECIPE_GROUPS:
        if group not in dump:
            continue
        value = dump[group]
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in NOT_RECIPE or (k == "batch_size" and group != "eval")}
        kept[group] = value
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def training_options(opts) -> dict:
    """The options that change what a training produces (not where it is logged or checkpointed)."""
    return opts.model_dump(exclude={"registered_model_name", "checkpoint_every_steps"})


class Lab:
    """Models by method name and training corruption for one seed (``s.seed``), and evaluated cells;
    ``rows`` holds one row per cell. ``s.teacher`` is the frozen teacher."""

    def __init__(self, cfg, s: Setup):
        self.cfg, self.s = cfg, s
        self.rows: list[dict] = []
        self.recipe = recipe_of(cfg)
        self._models: dict[str, torch.nn.Module] = {}
        self._probes: dict[tuple, tuple[torch.nn.Module, Classifier]] = {}

    @property
    def seed(self) -> int:
        return self.s.seed

    @property
    def teacher(self) -> encoders.FrozenEncoder:
        return self.s.teacher

    # ---- models ----------------------------------------------------------------------

    def fingerprint(self, kind: str, corruption: Distortion, **extra) -> str:
        data = self.cfg.data.model_dump(exclude={"num_workers", "skip_bad_images"})
        payload = {"kind": kind, "data": data, "classes": self.s.splits.classes, "seed": self.seed, "corruption": corruption.spec, **extra}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def reusable(self, fingerprint: str) -> LoadedEncoder | None:
        """A logged model with this fingerprint: from any run (``reuse``), or, resuming, from this run's own finished trainings."""
        if not (self.cfg.reuse or resuming()):
            return None
        experiments = [e.experiment_id for e in mlflow.search_experiments()]
        found = mlflow.search_logged_models(experiment_ids=experiments, filter_string=f"tags.fingerprint = '{fingerprint}'",
                                            output_format="list")
        ready = [m for m in found if str(m.status).endswith("READY")]
        if not self.cfg.reuse:
            own = {run.info.run_id for run in children()}
            ready = [m for m in ready if m.source_run_id in own]
        return load_encoder(f"models:/{ready[0].model_id}", self.s.device) if ready else None

    def _fingerprints(self, method, opts, corruption: Distortion, label_fraction: float) -> tuple[str, str]:
        """(what the method produces, its encoder): the same key for a method that produces an encoder."""
        extra = {"opts": training_options(opts)}
        if method.source(opts, self.cfg.teacher) == self.cfg.teacher:
            extra |= {"teacher": self.cfg.teacher, "teacher_weights": self.cfg.teacher_weights}
        if "classifier" in method.produces:
            extra["label_fraction"] = label_fraction
            return self.fingerprint(method.name, corruption, **extra), self.fingerprint(f"{method.name}_backbone", corruption, **extra)
        key = self.fingerprint(method.name, corruption, **extra)
        return key, key

    def _options(self, method, **overrides):
        """The method's options in this experiment, never registering what the lab trains."""
        opts = method.options(self.cfg)
        update = {k: v for k, v in {**overrides, "registered_model_name": None}.items() if k in type(opts).model_fields}
        return opts.model_copy(update=update)

    def trained(self, name: str, corruption: Distortion, *, label_fraction: float = 1.0, **overrides) -> torch.nn.Module:
        """What method ``name`` produces when trained on ``corruption`` (and a label fraction, for
        a method with its own head): this run's, a logged one, or trained now in a child run."""
        method = METHODS.get(name)
        opts = self._options(method, **overrides)
        key, encoder_key = self._fingerprints(method, opts, corruption, label_fraction)
        if key in self._models:
            return self._models[key]
        model = self.reusable(key)
        if model is None:
            with child_run(f"{name} · {corruption.spec} · seed {self.seed}",
                           **{schema.STAGE: name, "fingerprint": key, schema.SEED: str(self.seed)}):
                log_datasets(self.s.splits, "train")
                log_params({"corruption": corruption.spec, "seed": self.seed, "label_fraction": label_fraction,
                            **{k: str(v) for k, v in training_options(opts).items()}})
                here = dataclasses.replace(self.s, corruption=corruption)
                model = method.train(here, opts, label_fraction=label_fraction, checkpointer=for_active_run(opts))
                logged = logged_models_of(mlflow.active_run().info.run_id)  # a reopened training may have logged them
                infos = {kind: logged[f"{name}_{kind}"] for kind in ("encoder", "classifier") if f"{name}_{kind}" in logged} \
                    or method.log(here, model, opts, self.cfg.teacher)
                for kind, info in infos.items():
                    mlflow.set_logged_model_tags(info.model_id, {"fingerprint": encoder_key if kind == "encoder" else key})
            if "classifier" in method.produces:
                self._models[encoder_key] = method.encoder(model)
        else:
            mlflow.set_tag(schema.reused(name, key), model.model_uri)
        self._models[key] = model
        return model

    def encoder(self, name: str, corruption: Distortion) -> torch.nn.Module:
        """The representation method ``name`` learns on ``corruption`` (a classifier's backbone; transfer)."""
        method = METHODS.get(name)
        _, encoder_key = self._fingerprints(method, self._options(method), corruption, 1.0)
        if encoder_key not in self._models:
            found = self.reusable(encoder_key)
            if found is None:
                trained = self.trained(name, corruption)
                self._models.setdefault(encoder_key, method.encoder(trained))
            else:
                self._models[encoder_key] = found
        return self._models[encoder_key]

    def classifier(self, name: str, corruption: Distortion, label_fraction: float | None = None,
                   probe_on: Distortion | None = None) -> torch.nn.Module:
        """Method ``name`` as a classifier: its own head (trained on the label fraction), or a probe
        (on the label fraction, fitted on ``probe_on``, default the training corruption) on what it learned."""
        method = METHODS.get(name)
        fraction = self.cfg.probe.label_fraction if label_fraction is None else label_fraction
        if "classifier" in method.produces:
            return self.trained(name, corruption, label_fraction=fraction)
        return self.probe(self.trained(name, corruption), probe_on or corruption, fraction)

    def clean_probe(self) -> Classifier:
        """The teacher's probe fitted on clean images."""
        return self.probe(self.teacher, get_corruption("none"))

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
        return self.probe(self._models["clean backbone"], get_corruption("none"))

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

    def source(self, key: str) -> str:
        """The pretrained network a cell's model starts from (the report's ``teacher`` column)."""
        if key.endswith("clean_classifier"):
            return self.cfg.baseline.backbone if self.cfg.clean_classifier == "backbone" else self.cfg.teacher
        method = METHODS.find(key)
        return method.source(method.options(self.cfg), self.cfg.teacher) if method else self.cfg.teacher

    # ---- cells -----------------------------------------------------------------------

    def cell(self, key: str, model: Callable[[], torch.nn.Module], evaluated_on: Distortion, *,
             trained_on: Distortion, setup: Setup | None = None, **labels) -> Evaluation:
        """Evaluate one model on one corruption in its own child run (on ``setup``'s test split,
        default the experiment's); record a table row. ``key``: a method's name or a cell variant
        (``methods.CELL_LABELS``); ``trained_on``: the corruption the model (and its probe) saw in
        training; ``labels``: the cell's other fields (label_fraction, loss, target, severity, ...)."""
        shown = evaluated_on.corruption if isinstance(evaluated_on, Restored) else evaluated_on  # reported as the corruption
        condition = "; ".join(f"{k}={labels[k]}" for k in ("target", "label_shift") if k in labels)
        loss = labels.get("loss", self.cfg.student.loss if key == "student" else "")
        tags = {schema.STAGE: "evaluation", schema.EXPERIMENT: self.cfg.name, **evaluation_tags(
            key, eval_corruption=evaluated_on.spec, train_corruption=trained_on.spec, teacher=self.source(key),
            dataset=(setup or self.s).splits.name, seed=self.seed, recipe=self.recipe, loss=loss,
            label_fraction=labels.get("label_fraction", self.cfg.probe.label_fraction), condition=condition)}
        name = " · ".join([label(key), evaluated_on.spec, *(f"{k}={v}" for k, v in labels.items()),
                           *([f"trained on {trained_on.spec}"] if trained_on.spec != evaluated_on.spec else []), f"seed {self.seed}"])
        if done := child_named(name, finished=True, tags=tags):  # evaluated before this run was interrupted
            result = evaluation_of(done.info.run_id)
        else:
            fitted = model()  # trainings open their own child runs, beside (not inside) the evaluation's
            with child_run(name, **tags):
                log_datasets((setup or self.s).splits, "test")
                log_params({"corruption": evaluated_on.spec, "method": key, "seed": self.seed, **labels})
                result = evaluate_model(setup or self.s, fitted, self.cfg.eval, corruption=evaluated_on)
        self.rows.append({"method": label(key), "corruption": shown.spec, "train_corruption": trained_on.spec, **labels,
                          "seed": self.seed, "draws": len(result.draws),
                          **{f"{m}_{stat}": getattr(result, stat)(m) for m in result.metrics for stat in ("mean", "se")}})
        return result


def per_seed(cfg, s: Setup, cells: Callable[[Lab], object]) -> tuple[pd.DataFrame, object]:
    """Run ``cells`` once per training seed (a Lab each; the data splits stay those of ``seed``);
    the rows of every seed and the last return value."""
    rows, out = [], None
    for seed in cfg.seed_list:
        lab = Lab(cfg, dataclasses.replace(s, seed=seed))
        out = cells(lab)
        rows += lab.rows
    return pd.DataFrame(rows), out


def log_results(rows: pd.DataFrame, stem: str, plot: Plot) -> pd.DataFrame:
    """The per-seed rows and the across-seed table (CSV, Markdown, HTML) and its figure."""
    table = across_seeds(rows)
    log_table(rows, f"{stem}_per_seed")
    log_table(table, stem)
    log_figure(plot(table), f"{stem}.png")
    mlflow.set_tag(schema.STATISTIC, statistic_note(table)[:5000])
    return table
