"""``main``: the whole experiment on one corruption: the teacher's probes (clean reference, and on
corrupted images), then each method (default the student and the supervised baseline) trained
and evaluated, each a child run, once per training seed."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated

import mlflow
import pandas as pd
from pydantic import Field

from cinv.commands.common import MethodList, checkpointer, log_samples, method_list, with_teacher
from cinv.config.base import Section
from cinv.config.options import (
    CORRUPTION,
    RESUME,
    TEACHER,
    TEACHER_WEIGHTS,
    Comparison,
    Corruption,
    DataOptions,
    EncoderRef,
    EvalOptions,
    ProbeOptions,
)
from cinv.config.presets import INVERSION_PAPER
from cinv.context import Setup
from cinv.corruption import get as get_corruption
from cinv.evaluation.metrics import Evaluation
from cinv.evaluation.protocol import evaluate_model, evaluation_of, link
from cinv.evaluation.tables import across_seeds, statistic_note
from cinv.experiments.lab import recipe_of
from cinv.methods import METHODS, title
from cinv.methods.inversion import StudentOptions
from cinv.methods.supervised import BaselineOptions
from cinv.probe import train_probe
from cinv.tracking import schema
from cinv.tracking.models import (
    BASELINE_MODEL,
    STUDENT_MODEL,
    log_classifier,
    logged_models_of,
    register,
)
from cinv.tracking.runs import (
    child_named,
    child_run,
    dataset,
    evaluation_tags,
    log_datasets,
    log_figure,
    log_model_input,
    log_params,
    log_table,
)
from cinv.training.checkpoint import Checkpointer
from cinv.training.context import setup

# The parent run's <name>_top1_mean / _se, by row.
PARENT_METRICS = {"teacher_clean_probe": "teacher_clean", "teacher": "teacher_corrupted"}


class MainConfig(Comparison):
    """The whole experiment on one corruption: teacher probes, student, student probe, baseline."""

    PRESETS = {"cpu": {}, "paper": INVERSION_PAPER}
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = CORRUPTION
    teacher: EncoderRef = TEACHER
    teacher_weights: str | None = TEACHER_WEIGHTS
    # Small budgets sized for the embedded default on 2 CPU cores (about 5 minutes in all).
    # Registered only once every stage has succeeded ('' skips registration).
    student: Annotated[StudentOptions, Section("student_")] = StudentOptions(
        epochs=3, batch_size=128, lr=2e-3, registered_model_name=STUDENT_MODEL)
    baseline: Annotated[BaselineOptions, Section("baseline_")] = BaselineOptions(epochs=3, registered_model_name=BASELINE_MODEL)
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()
    methods: MethodList = Field("student, baseline", description="methods compared with the teacher's representations, "
                                "separated by ',' (any registered method; one without its own parameters here runs with "
                                "its defaults)")
    resume_run_id: str | None = RESUME


def run(cfg: MainConfig) -> pd.DataFrame:
    """Teacher probes, then each method, each a child run, once per training seed (``seeds``); the
    table reports across seeds when there are several."""
    started = time.time()
    s = with_teacher(setup(cfg), cfg.teacher, cfg.teacher_weights)
    mlflow.set_tags({schema.STAGE: "main", **schema.corruption_tags(s.corruption.spec, s.corruption.name, s.corruption.params)})
    log_samples(s)
    recipe, seeds = recipe_of(cfg), cfg.seed_list
    rows, registered = [], None
    for seed in seeds:
        results, infos = stages(cfg, dataclasses.replace(s, seed=seed), recipe)
        registered = registered or infos  # the first seed's models are the ones registered
        for key, result in results.items():
            rows.append({"model": title(key), "evaluated on": "clean" if key == "teacher_clean_probe" else s.corruption.spec,
                         "seed": seed, "draws": len(result.draws),
                         **{f"{m}_{stat}": getattr(result, stat)(m) for m in ("top1", "top5") for stat in ("mean", "se")}})
    table = across_seeds(pd.DataFrame(rows), keys=["model", "evaluated on"])
    log_table(pd.DataFrame(rows), "results_per_seed")
    log_table(table, "results")
    log_figure(comparison_plot(table, s.corruption.spec), "results.png")
    for key, row in zip(results, table.itertuples(index=False), strict=True):
        name = PARENT_METRICS.get(key, key)
        mlflow.log_metrics({f"{name}_top1_mean": row.top1_mean, f"{name}_top1_se": row.top1_se})
    mlflow.set_tags({schema.SE_KIND: table["se_kind"].iloc[0], schema.STATISTIC: statistic_note(table)})
    # Registered only now that every stage has succeeded.
    for name, info in registered.items():
        register(info, getattr(METHODS.get(name).options(cfg), "registered_model_name", None))
    mlflow.log_metric("wall_time_s", time.time() - started)
    return table


def stages(cfg: MainConfig, s: Setup, recipe: str) -> tuple[dict[str, Evaluation], dict]:
    """The child runs of one training seed (``s.seed``): the teacher's probes, then per method a
    training run and, for an encoder, a probe run; a method with its own head is evaluated in its
    training run. Returns the evaluations by row and each method's logged encoder."""
    clean = get_corruption("none")
    results: dict[str, Evaluation] = {}
    encoders_logged = {}
    probe_params = {f"probe_{k}": v for k, v in cfg.probe.model_dump().items()} | {"seed": s.seed}
    corrupted = s.corruption.spec
    test = dataset(s.splits, "test")

    def named(stage: str, on: str = corrupted) -> str:
        return f"{stage} · {on} · seed {s.seed}"

    def tags(key: str, stage: str, trained_on: str, source: str, **extra) -> dict[str, str]:
        return {schema.STAGE: stage, **extra, **evaluation_tags(
            key, eval_corruption="none" if key == "teacher_clean_probe" else corrupted, train_corruption=trained_on,
            teacher=source, dataset=s.splits.name, seed=s.seed, recipe=recipe, label_fraction=cfg.probe.label_fraction)}

    for key, run_name, on in (("teacher_clean_probe", "teacher_clean_probe", clean), ("teacher", "teacher_corrupted_probe", None)):
        if done := child_named(named(run_name, (on or s.corruption).spec), finished=True):  # a resumed run's finished stage
            results[key] = evaluation_of(done.info.run_id)
            continue
        with child_run(named(run_name, (on or s.corruption).spec),
                       **tags(key, "probe", (on or s.corruption).spec, cfg.teacher, **{schema.ENCODER: cfg.teacher})):
            log_datasets(s.splits, "train", "test")
            log_params({"corruption": (on or s.corruption).spec, "encoder": cfg.teacher} | probe_params)
            probe = train_probe(s, s.teacher, cfg.probe, corruption=on)
            results[key] = evaluate_model(s, probe, cfg.eval, corruption=on)

    for name in method_list(cfg.methods):
        method = METHODS.get(name)
        opts = method.options(cfg)
        unregistered = opts.model_copy(update={"registered_model_name": None}) if hasattr(opts, "registered_model_name") else opts
        source = method.source(opts, cfg.teacher)
        params = {f"{name}_{k}": v for k, v in opts.model_dump().items()} | {"corruption": corrupted, "seed": s.seed}
        if "classifier" in method.produces:  # trained and evaluated in one run
            if done := child_named(named(name), finished=True):
                results[name] = evaluation_of(done.info.run_id)
                encoders_logged[name] = logged_models_of(done.info.run_id)[f"{name}_encoder"]
                continue
            with child_run(named(name), **tags(name, name, corrupted, source, **{schema.METHOD: name})) as run:
                log_datasets(s.splits, "train", "test")
                log_params(params)
                model = method.train(s, unregistered, checkpointer=checkpointer(opts))
                results[name] = evaluate_model(s, model, cfg.eval)
                infos = logged_models_of(run.info.run_id)  # a reopened stage may have logged them already
                infos = {kind: infos[f"{name}_{kind}"] for kind in ("encoder", "classifier")} if len(infos) == 2 else \
                    method.log(s, model, opts, cfg.teacher)
                link(list(infos.values()), results[name], s)
            encoders_logged[name] = infos["encoder"]
            continue
        model = None
        if done := child_named(named(name), finished=True):
            info = logged_models_of(done.info.run_id).get(f"{name}_encoder")
        else:
            with child_run(named(name), **{schema.STAGE: name, schema.METHOD: method.model_tag or name,
                                           schema.SEED: str(s.seed)}) as run:
                log_datasets(s.splits, "train")
                log_params(params)
                model = method.train(s, unregistered, checkpointer=checkpointer(opts))
                info = logged_models_of(run.info.run_id).get(f"{name}_encoder") or \
                    method.log(s, model, opts, cfg.teacher).get("encoder")
        if probed := child_named(named(f"{name}_probe"), finished=True):
            results[name] = evaluation_of(probed.info.run_id)
        else:
            if model is None:  # its training finished before the interruption: its final checkpoint, exactly
                model = method.train(s, unregistered, checkpointer=Checkpointer(done.info.run_id), log=False)
            uri = info.model_uri if info else name
            with child_run(named(f"{name}_probe"), **tags(name, "probe", corrupted, source, **{schema.ENCODER: uri})) as run:
                if hasattr(opts, "loss"):
                    mlflow.set_tag(schema.LOSS, opts.loss)
                log_datasets(s.splits, "train", "test")
                if info:
                    log_model_input(info.model_uri)
                log_params({"corruption": corrupted, "encoder": uri} | probe_params)
                probe = train_probe(s, model, cfg.probe)
                results[name] = evaluate_model(s, probe, cfg.eval)
                probe_info = logged_models_of(run.info.run_id).get("probe_classifier") or log_classifier(
                    s, probe, s.corruption, name="probe_classifier", method="linear_probe", encoder=uri)
                link([i for i in (info, probe_info) if i], results[name], s)
        if info:
            encoders_logged[name] = info
    return results, encoders_logged


def comparison_plot(table: pd.DataFrame, corruption: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.8 * len(table) + 0.6))
    ax.barh(table["model"], table["top1_mean"], xerr=table["top1_se"],
            color=["#999999", "#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"][: len(table)])
    for y, v in enumerate(table["top1_mean"]):
        ax.text(v + 0.5, y, f"{v:.1f}", va="center")
    ax.set_xlabel(f"top-1 accuracy (%): {statistic_note(table)}", fontsize=8)
    ax.set_title(f"corruption: {corruption}")
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    fig.tight_layout()
    return fig
