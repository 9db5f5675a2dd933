"""The benchmark as a recipe of the engine: every compared method on one dataset, evaluated on one
suite (the paper's corruptions, ImageNet-C style corruptions and white-box PGD), one table. Each
method trains on the benchmark's training corruption, or on clean images when it trains clean
(RoCL, FCL); the teacher's probe on clean features is the reference row."""

from __future__ import annotations

from collections.abc import Callable

import mlflow
import torch

from cinv import encoders
from cinv.config.options import parse_budgets, spec_list
from cinv.corruption import from_spec
from cinv.corruption import get as get_corruption
from cinv.corruption.base import Distortion
from cinv.encoders.heads import Classifier
from cinv.evaluation.robustness import attack_subset, robust_accuracy
from cinv.experiments.engine import Lab, Plot, Trained, recipe, run_label
from cinv.experiments.paper import grouped_bars
from cinv.methods import METHODS, label
from cinv.runtime import derive_seed
from cinv.tracking import schema
from cinv.tracking.runs import child_named, child_run, evaluation_tags

__all__ = ["benchmark", "method_models"]


def method_models(lab: Lab) -> dict[str, tuple[Distortion, Callable[[], Trained]]]:
    """Each cell key, what it trains on, and its classifier (trained or reused on first use): the
    teacher's clean probe (the reference), then each compared method."""
    train, clean = from_spec(lab.cfg.train_corruption), get_corruption("none")
    out = {"teacher_clean_probe": (clean, lab.clean_probe)}
    for name in lab.compared:
        trained_on = clean if METHODS.get(name).clean_training else train
        out[name] = (trained_on, lambda n=name, c=trained_on: lab.classifier(n, c))
    return out


def _attackable(model: torch.nn.Module) -> torch.nn.Module:
    """Probes hold a no-grad frozen encoder; PGD needs gradients with respect to the images."""
    if isinstance(model, Classifier) and isinstance(model.encoder, encoders.FrozenEncoder):
        return model.with_encoder(encoders.freeze(model.encoder, input_gradients=True))
    return model


@recipe("benchmark")  # compares every registered method unless told otherwise (BenchmarkConfig.compared)
def benchmark(lab: Lab) -> Plot:
    """The suite's cells for one seed, then PGD at each budget on the same seeded, class-balanced
    test images for every method and seed (paired)."""
    cfg = lab.cfg
    fitted: dict[str, Trained] = {}
    models = method_models(lab)
    for key, (trained_on, build) in models.items():
        for corruption in [from_spec(spec) for spec in spec_list(cfg.corruptions)]:
            lab.cell(key, lambda k=key, b=build: fitted.setdefault(k, b()), corruption, trained_on=trained_on)
    images, labels = attack_subset(lab.s, cfg.attack.images, cfg.eval.draw_seed)
    for key, (trained_on, build) in models.items():
        for norm, eps in parse_budgets(cfg.attack.budgets):
            step = cfg.attack.step_size(eps)
            spec = f"pgd(norm='{norm}', eps={eps:.4g}, steps={cfg.attack.steps}{'' if step is None else f', step_size={step:.4g}'})"
            method = METHODS.find(key)
            tags = {schema.STAGE: "evaluation", schema.EXPERIMENT: lab.name, **evaluation_tags(
                method.name if method else key, eval_corruption=spec, train_corruption=trained_on.spec,
                teacher=lab.source(key), dataset=lab.s.splits.name, seed=lab.seed, recipe=lab.recipe(key),
                loss=getattr(lab.options(method.name), "loss", "") if method else "")}
            name = f"{run_label(key)} test · {spec} · seed {lab.seed}"
            if done := child_named(name, finished=True, tags=tags, parent=lab.root):  # attacked before an interruption
                accuracy = done.data.metrics["test_top1_mean"]
            else:
                with child_run(name, parent=lab.root, **tags):
                    model = fitted.setdefault(key, build()).model
                    accuracy = robust_accuracy(_attackable(model), images, labels, norm=norm, eps=eps, steps=cfg.attack.steps,
                                               step_size=step,
                                               seed=derive_seed(lab.seed, "eval attack"), batch_size=cfg.attack.batch_size)
                    mlflow.log_metrics({"test_top1_mean": accuracy, "test_top1_se": 0.0, "test_draws": 1.0,
                                        "attack_images": len(labels)})
            lab.keys.append(key)
            lab.rows.append({"method": label(key), "corruption": spec, "train_corruption": trained_on.spec,
                             "seed": lab.seed, "draws": 1, "top1_mean": accuracy, "top1_se": 0.0})
    return lambda table: grouped_bars(table, by="corruption", hue=["method"])
