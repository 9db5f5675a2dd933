"""The stages (student, baseline, probe, evaluate) and the main experiment that chains them.

Each ``run_*`` function expects an active MLflow run (the command-line wrapper opens it) and
logs into it; the pieces they share (loading data, building streams, training, evaluating)
are the plain functions above them, so the main job and the single-stage commands run the
same code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import pandas as pd
import torch
from mlflow.models.model import ModelInfo
from torch import nn

from cinv import distortions, distributed, encoders, losses, serving, tracking
from cinv.checkpoint import Checkpointer
from cinv.config import (
    MODEL_URI_SCHEMES,
    BaselineConfig,
    BaselineOptions,
    ConfigError,
    EvalOptions,
    EvaluateConfig,
    MainConfig,
    ProbeConfig,
    ProbeOptions,
    StudentConfig,
    StudentOptions,
)
from cinv.data.batches import BatchStream
from cinv.data.datasets import Splits, label_subset, load_splits, unaugmented
from cinv.distortions import Distortion
from cinv.encoders import Classifier, Encoder
from cinv.evaluation import Evaluation, evaluate
from cinv.probe import extract_features, fit_head
from cinv.runtime import FP32, Autocast, channels_last, derive_seed, resolve_device, resolve_precision
from cinv.serving import LoadedEncoder
from cinv.tables import across_seeds, statistic_note
from cinv.training import fit, inversion_objective, supervised_objective


@dataclass
class Setup:
    """What every stage needs: the data, the corruption, the device, the seed and the precision."""

    splits: Splits
    corruption: Distortion
    device: torch.device
    seed: int
    num_workers: int
    precision: Autocast = FP32

    def stream(self, split: str, *, batch_size: int, purpose: str, corruption: Distortion | None = None,
               seed: int | None = None, dataset=None, augment: bool = True) -> BatchStream:
        """``purpose``: ``train`` (shuffled, augmented, a last partial batch dropped, split over the
        processes of a distributed run), ``probe`` (shuffled and augmented, every image kept) or
        ``eval``; each has its own random streams. ``augment=False``: no random crops or flips (a
        method that makes its own views)."""
        train = purpose in ("train", "probe")
        w = distributed.world() if purpose == "train" else distributed.World()
        data = dataset if dataset is not None else getattr(self.splits, split)
        return BatchStream(
            data if augment else unaugmented(data),
            corruption=corruption or self.corruption,
            batch_size=batch_size,
            image_size=self.splits.image_size,
            device=self.device,
            train=train,
            augment_on_batch=self.splits.augment_on_batch,
            seed=self.seed if seed is None else seed,
            num_workers=0 if self.splits.augment_on_batch else self.num_workers,
            flip=self.splits.flip,
            rank=w.rank,
            world_size=w.size,
            purpose=purpose,
            drop_last=None if purpose == "train" else False,
            augment=augment,
        )


def setup(cfg, corruption: str | None = None) -> Setup:
    """From a command's config (its data, seed, device and precision); ``corruption``: cfg.corruption unless given."""
    data, seed = cfg.data, cfg.seed
    torch.manual_seed(seed)
    splits = load_splits(data.dataset, data.class_list, data.image_size, data.val_fraction, seed,
                         data.limit_per_class, data.skip_bad_images)
    if data.skip_bad_images and distributed.is_main():
        mlflow.log_metric("skipped_images", len(splits.skipped))
        if splits.skipped:
            tracking.log_json({"skipped": splits.skipped}, "skipped_images.json")
    device = distributed.device_for(resolve_device(cfg.device))
    precision = resolve_precision(device, cfg.precision)
    if distributed.is_main() and mlflow.active_run():
        mlflow.set_tag("cinv.autocast", precision.describe())
    return Setup(splits, distortions.from_spec(corruption or cfg.corruption), device, seed, data.num_workers, precision)


def load_encoder(name: str, weights: str | None, device: torch.device) -> Encoder | LoadedEncoder:
    """A registry name builds an encoder; a model URI loads a logged one."""
    if name.startswith(MODEL_URI_SCHEMES):
        return serving.load_encoder(name, device)
    return encoders.get(name, weights).to(device)


# ---- stages as functions ---------------------------------------------------------------

FEATURE_BATCH = 256  # images per encoder pass when caching probe features (no gradients)


ModelStepHook = Callable[[nn.Module, int, int], None]  # (model in training, steps done, total steps)


def checkpointer(opts, enabled: bool) -> Checkpointer | None:
    """Checkpoints go to the active run; a resumed run continues from its latest one."""
    return Checkpointer(mlflow.active_run().info.run_id, opts.checkpoint_every_steps) if enabled else None


def train_student(s: Setup, teacher: encoders.FrozenEncoder, opts: StudentOptions,
                  on_step: ModelStepHook | None = None, checkpoint: bool = True) -> Encoder:
    student = encoders.student_from(teacher)
    # Over several processes: DDP, and negatives from the whole global batch (cinv.distributed).
    loss = distributed.Gathered(losses.get(opts.loss, temperature=opts.temperature))
    hook = (lambda step, total: on_step(student, step, total)) if on_step else None
    main = distributed.is_main()
    channels_last(teacher)
    net = distributed.wrap(channels_last(student))
    fit(student, inversion_objective(torch.compile(net) if opts.compile else net, teacher, loss, s.precision),
        s.stream("train", batch_size=opts.batch_size, purpose="train"), epochs=opts.epochs, lr=opts.lr,
        weight_decay=opts.weight_decay, on_epoch=tracking.log_epoch_metrics if main else None, on_step=hook,
        checkpointer=checkpointer(opts, checkpoint and main), desc="student", precision=s.precision)
    return student.eval()


def train_baseline(s: Setup, opts: BaselineOptions, on_step: ModelStepHook | None = None,
                   checkpoint: bool = True, label_fraction: float = 1.0) -> Classifier:
    """End-to-end fine-tuning on corrupted images (of a class-balanced fraction of the labels)."""
    backbone = encoders.get(opts.backbone, opts.backbone_weights).to(s.device)
    model = Classifier(backbone, s.splits.num_classes, backbone.embed_dim).to(s.device)
    hook = (lambda step, total: on_step(model, step, total)) if on_step else None
    labelled = label_subset(s.splits.train, label_fraction, s.seed)
    fit(model, supervised_objective(model), s.stream("train", batch_size=opts.batch_size, purpose="train", dataset=labelled),
        epochs=opts.epochs, lr=opts.lr, weight_decay=opts.weight_decay, on_epoch=tracking.log_epoch_metrics,
        on_step=hook, checkpointer=checkpointer(opts, checkpoint), desc="baseline", precision=s.precision)
    return model.eval()


def train_probe(s: Setup, encoder, opts: ProbeOptions, corruption: Distortion | None = None, log: bool = True) -> Classifier:
    """Linear head on a frozen encoder, trained on (a labelled fraction of) corrupted train images:
    every labelled image (no partial batch dropped), the paper's batch size for the fraction."""
    frozen = encoder if isinstance(encoder, (encoders.FrozenEncoder, LoadedEncoder)) else encoders.freeze(encoder)
    labelled = label_subset(s.splits.train, opts.label_fraction, s.seed)
    stream = s.stream("train", batch_size=FEATURE_BATCH, purpose="probe", corruption=corruption, dataset=labelled)
    cache = extract_features(frozen, stream, opts.feature_draws, desc="probe features", precision=s.precision)
    model = Classifier(frozen, s.splits.num_classes, frozen.embed_dim, normalize=opts.normalize)
    model = model.reset_head(torch.Generator().manual_seed(derive_seed(s.seed, "probe head"))).to(s.device)
    batch_size = opts.batch_size_for(opts.label_fraction)
    fit_head(model, cache, epochs=opts.epochs, lr=opts.lr, batch_size=batch_size, seed=s.seed,
             on_epoch=tracking.log_epoch_metrics if log else None)
    if log:
        mlflow.log_metrics({"probe_train_images": len(cache.labels[0]), "probe_effective_batch_size": batch_size})
    return model.eval()


def evaluate_model(s: Setup, model, opts: EvalOptions, corruption: Distortion | None = None, split: str = "test",
                   prefix: str | None = None) -> Evaluation:
    """Metrics logged as ``<prefix>_<metric>`` (prefix: the split's name unless given)."""
    stream = s.stream(split, batch_size=opts.batch_size, purpose="eval", corruption=corruption, seed=opts.draw_seed)
    result = evaluate(model, stream, opts.draws, desc=f"evaluate {prefix or split}", precision=s.precision)
    tracking.log_evaluation(result, prefix=prefix or split)
    return result


def corruption_tags(corruption: Distortion) -> dict[str, str]:
    """The spec and each parameter on its own, so runs and models can be filtered by severity."""
    return {"corruption": corruption.spec, "corruption.name": corruption.name,
            **{f"corruption.{k}": str(tuple(v) if isinstance(v, list) else v) for k, v in corruption.params.items()}}


def model_tags(s: Setup, corruption: Distortion | None = None, **produced_by) -> dict[str, str]:
    return {"dataset": s.splits.name, **corruption_tags(corruption or s.corruption),
            **{k: str(v) for k, v in produced_by.items()}}


def log_encoder(s: Setup, encoder: Encoder, **produced_by) -> ModelInfo:
    """An encoder as a pt2 model, tagged with what produced it, its preprocessing in the metadata."""
    tags = model_tags(s, **produced_by)
    return tracking.log_model(encoder, "encoder", image_size=s.splits.image_size, tags=tags, channels=s.splits.channels, metadata={
        "kind": "encoder", "embed_dim": encoder.embed_dim, "preprocessing": encoder.preprocessing,
        "resize": s.splits.resize, **tags})


def log_classifier(s: Setup, model: Classifier, corruption: Distortion, **produced_by) -> ModelInfo:
    tags = model_tags(s, corruption, **produced_by)
    return tracking.log_model(model, "classifier", image_size=s.splits.image_size, tags=tags, channels=s.splits.channels, metadata={
        "kind": "classifier", "classes": s.splits.classes, "resize": s.splits.resize, **tags})


def tag_with_evaluation(infos: list[ModelInfo], evaluation: Evaluation, split: str = "test") -> None:
    summary = {f"{split}_{k}": f"{v:.4f}" for k, v in evaluation.summary().items()}
    for info in infos:
        mlflow.set_logged_model_tags(info.model_id, summary)


def register(info: ModelInfo, name: str | None) -> None:
    """Register a fully logged model; the version carries the model's tags (provenance, metrics)."""
    if name:
        tags = mlflow.get_logged_model(info.model_id).tags
        tracking.register(info.model_uri, name, {k: v for k, v in tags.items() if not k.startswith("mlflow.")})


def log_samples(s: Setup, n: int = 8) -> None:
    stream = s.stream("test", batch_size=n, purpose="eval")
    views = next(iter(stream.epoch(0)))
    tracking.log_image_grid(views.clean, views.corrupted, "samples.png")


# ---- commands --------------------------------------------------------------------------


def run_student(cfg: StudentConfig) -> Encoder:
    s = setup(cfg)
    teacher = encoders.freeze(encoders.get(cfg.teacher, cfg.teacher_weights)).to(s.device)
    if not distributed.is_main():  # another process of a distributed run: train, leave MLflow to rank 0
        return train_student(s, teacher, cfg.train)
    mlflow.set_tags({"cinv.method": "contrastive_inversion", "cinv.stage": "student",
                     "cinv.processes": str(distributed.world().size)})
    log_samples(s)
    student = train_student(s, teacher, cfg.train)
    info = log_encoder(s, student, method="contrastive_inversion", teacher=cfg.teacher, loss=cfg.train.loss)
    register(info, cfg.train.registered_model_name)
    return student


def run_baseline(cfg: BaselineConfig) -> Evaluation:
    s = setup(cfg)
    mlflow.set_tags({"cinv.stage": "baseline", **tracking.evaluation_tags(
        "baseline", eval_corruption=s.corruption.spec, train_corruption=s.corruption.spec, teacher=cfg.train.backbone,
        dataset=s.splits.name, seed=s.seed, recipe=recipe_of(cfg))})
    log_samples(s)
    return baseline_stage(s, cfg.train, cfg.eval)[0]


def baseline_stage(s: Setup, opts: BaselineOptions, eval_opts: EvalOptions) -> tuple[Evaluation, ModelInfo]:
    """Train, evaluate, and log both the classifier and its fine-tuned backbone (an encoder)."""
    model = train_baseline(s, opts)
    result = evaluate_model(s, model, eval_opts)
    produced_by = {"method": "supervised_baseline", "backbone": opts.backbone}
    backbone = log_encoder(s, model.encoder, **produced_by)
    tag_with_evaluation([backbone, log_classifier(s, model, s.corruption, **produced_by)], result)
    register(backbone, opts.registered_model_name)
    return result, backbone


def run_probe(cfg: ProbeConfig) -> Evaluation:
    s = setup(cfg)
    mlflow.set_tags({"cinv.stage": "probe", "cinv.encoder": cfg.encoder, **tracking.evaluation_tags(
        "probe", eval_corruption=s.corruption.spec, train_corruption=s.corruption.spec, teacher=cfg.encoder,
        dataset=s.splits.name, seed=s.seed, recipe=recipe_of(cfg), label_fraction=cfg.probe.label_fraction)})
    encoder = load_encoder(cfg.encoder, cfg.encoder_weights, s.device)
    model = train_probe(s, encoder, cfg.probe)
    result = evaluate_model(s, model, cfg.eval)
    tag_with_evaluation([log_classifier(s, model, s.corruption, method="linear_probe", encoder=cfg.encoder)], result)
    return result


def run_evaluate(cfg: EvaluateConfig) -> Evaluation:
    s = setup(cfg)
    model = serving.load_encoder(cfg.model, s.device)
    mlflow.set_tags({"cinv.stage": "evaluate", "cinv.model": cfg.model, **tracking.evaluation_tags(
        "classifier", eval_corruption=s.corruption.spec, train_corruption=str(model.metadata.get("corruption", "")),
        teacher=cfg.model, dataset=s.splits.name, seed=s.seed, recipe=recipe_of(cfg))})
    classes = model.metadata.get("classes")
    if classes is None:
        raise ConfigError(f"model: {cfg.model} is an encoder, not a classifier; fit a probe on it with the probe command")
    if len(classes) != s.splits.num_classes:
        raise ConfigError(f"model: {cfg.model} predicts {len(classes)} classes but the dataset has {s.splits.num_classes}")
    return evaluate_model(s, model, cfg.eval, split=cfg.split)


# What the main job's table and the report call each evaluated model, by method key.
ROWS = {
    "teacher_clean_probe": "Teacher, clean images (reference)",
    "teacher": "Teacher's original representations",
    "student": "Student (contrastive inversion)",
    "baseline": "Supervised baseline (end to end)",
}
PARENT_METRICS = {"teacher_clean_probe": "teacher_clean", "teacher": "teacher_corrupted", "student": "student",
                  "baseline": "baseline"}  # the parent run's <name>_top1_mean / _se
RECIPE_GROUPS = ("data", "teacher", "teacher_weights", "student", "baseline", "probe", "eval", "encoder", "encoder_weights",
                 "model", "train", "rocl", "fcl", "attack")
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


def run_main(cfg: MainConfig) -> pd.DataFrame:
    """Teacher probes (clean, corrupted), student, student probe and baseline, each a child run,
    once per training seed (``seeds``); the table reports across seeds when there are several."""
    started = time.time()
    s = setup(cfg)
    mlflow.set_tags({"cinv.stage": "main", **{f"cinv.{k}": v for k, v in corruption_tags(s.corruption).items()}})
    log_samples(s)
    teacher = encoders.freeze(encoders.get(cfg.teacher, cfg.teacher_weights)).to(s.device)
    recipe, seeds = recipe_of(cfg), cfg.seed_list
    rows, registered = [], None
    for seed in seeds:
        here = dataclasses.replace(s, seed=seed)
        results, infos = main_stages(cfg, here, teacher, recipe, suffix=f" · seed {seed}" if len(seeds) > 1 else "")
        registered = registered or infos  # the first seed's models are the ones registered
        for key, result in results.items():
            rows.append({"model": ROWS[key], "evaluated on": "clean" if key == "teacher_clean_probe" else s.corruption.spec,
                         "seed": seed, "draws": len(result.draws),
                         **{f"{m}_{stat}": getattr(result, stat)(m) for m in ("top1", "top5") for stat in ("mean", "se")}})
    table = across_seeds(pd.DataFrame(rows), keys=["model", "evaluated on"])
    tracking.log_table(pd.DataFrame(rows), "results_per_seed")
    tracking.log_table(table, "results")
    tracking.log_figure(comparison_plot(table, s.corruption.spec), "results.png")
    for key, row in zip(PARENT_METRICS.values(), table.itertuples(index=False), strict=True):
        mlflow.log_metrics({f"{key}_top1_mean": row.top1_mean, f"{key}_top1_se": row.top1_se})
    mlflow.set_tag("cinv.se_kind", table["se_kind"].iloc[0])
    # Registered only now that every stage has succeeded.
    register(registered["student"], cfg.student.registered_model_name)
    register(registered["baseline"], cfg.baseline.registered_model_name)
    mlflow.log_metric("wall_time_s", time.time() - started)
    return table


def main_stages(cfg: MainConfig, s: Setup, teacher, recipe: str, suffix: str = "") -> tuple[dict[str, Evaluation], dict[str, ModelInfo]]:
    """The main job's five child runs for one training seed (``s.seed``)."""
    clean = distortions.get("none")
    results: dict[str, Evaluation] = {}
    probe_params = {f"probe_{k}": v for k, v in cfg.probe.model_dump().items()} | {"seed": s.seed}
    corrupted = s.corruption.spec

    def tags(method: str, stage: str, trained_on: str, source: str, **extra) -> dict[str, str]:
        return {"cinv.stage": stage, **extra, **tracking.evaluation_tags(
            method, eval_corruption="none" if method == "teacher_clean_probe" else corrupted, train_corruption=trained_on,
            teacher=source, dataset=s.splits.name, seed=s.seed, recipe=recipe, label_fraction=cfg.probe.label_fraction)}

    with tracking.child_run("teacher_clean_probe" + suffix, **tags("teacher_clean_probe", "probe", "none", cfg.teacher,
                                                                     **{"cinv.encoder": cfg.teacher})):
        tracking.log_params({"corruption": clean.spec, "encoder": cfg.teacher} | probe_params)
        probe = train_probe(s, teacher, cfg.probe, corruption=clean)
        results["teacher_clean_probe"] = evaluate_model(s, probe, cfg.eval, corruption=clean)

    with tracking.child_run("teacher_corrupted_probe" + suffix, **tags("teacher", "probe", corrupted, cfg.teacher,
                                                                         **{"cinv.encoder": cfg.teacher})):
        tracking.log_params({"corruption": corrupted, "encoder": cfg.teacher} | probe_params)
        probe = train_probe(s, teacher, cfg.probe)
        results["teacher"] = evaluate_model(s, probe, cfg.eval)

    with tracking.child_run("student" + suffix, **{"cinv.stage": "student", "cinv.method": "contrastive_inversion",
                                                   "cinv.seed": str(s.seed)}):
        tracking.log_params({f"student_{k}": v for k, v in cfg.student.model_dump().items()} | {"corruption": corrupted,
                                                                                             "seed": s.seed})
        student = train_student(s, teacher, cfg.student)
        student_info = log_encoder(s, student, method="contrastive_inversion", teacher=cfg.teacher, loss=cfg.student.loss)

    with tracking.child_run("student_probe" + suffix, **tags("student", "probe", corrupted, cfg.teacher,
                                                               **{"cinv.encoder": student_info.model_uri})):
        mlflow.set_tag("cinv.loss", cfg.student.loss)
        tracking.log_params({"corruption": corrupted, "encoder": student_info.model_uri} | probe_params)
        probe = train_probe(s, student, cfg.probe)
        results["student"] = evaluate_model(s, probe, cfg.eval)
        probe_info = log_classifier(s, probe, s.corruption, method="linear_probe", encoder=student_info.model_uri)
        tag_with_evaluation([student_info, probe_info], results["student"])

    with tracking.child_run("baseline" + suffix, **tags("baseline", "baseline", corrupted, cfg.baseline.backbone)):
        tracking.log_params({f"baseline_{k}": v for k, v in cfg.baseline.model_dump().items()} | {"corruption": corrupted,
                                                                                               "seed": s.seed})
        results["baseline"], baseline_info = baseline_stage(s, cfg.baseline.model_copy(update={"registered_model_name": None}), cfg.eval)
    return results, {"student": student_info, "baseline": baseline_info}


def comparison_plot(table: pd.DataFrame, corruption: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(table["model"], table["top1_mean"], xerr=table["top1_se"], color=["#999999", "#d62728", "#1f77b4", "#ff7f0e"][: len(table)])
    for y, v in enumerate(table["top1_mean"]):
        ax.text(v + 0.5, y, f"{v:.1f}", va="center")
    ax.set_xlabel(f"top-1 accuracy (%): {statistic_note(table)}", fontsize=8)
    ax.set_title(f"corruption: {corruption}")
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    fig.tight_layout()
    return fig
