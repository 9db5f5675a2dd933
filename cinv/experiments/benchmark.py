"""Every method on one dataset, evaluated on one suite: the paper's corruptions, ImageNet-C style
corruptions and white-box PGD, one table. Methods come by name from ``methods.METHODS``: each
trains on the benchmark's training corruption, or on clean images when it trains clean (RoCL,
FCL); ``teacher`` is a probe on the teacher's clean features."""

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
from cinv.evaluation.robustness import robust_accuracy
from cinv.experiments.lab import Lab
from cinv.methods import METHODS, label
from cinv.runtime import derive_seed
from cinv.tracking import schema
from cinv.tracking.runs import child_named, child_run, evaluation_tags

__all__ = ["benchmark_cells", "method_models"]


def method_models(lab: Lab, cfg) -> dict[str, tuple[Distortion, Callable[[], torch.nn.Module]]]:
    """Each method's cell key, what it trains on, and its classifier (trained or reused on first use)."""
    train, clean = from_spec(cfg.train_corruption), get_corruption("none")
    out = {}
    for name in cfg.method_list:
        if name == "teacher":  # the reference: a probe on the teacher's clean features
            out["teacher_clean_probe"] = (clean, lab.clean_probe)
            continue
        trained_on = clean if METHODS.get(name).clean_training else train
        out[name] = (trained_on, lambda n=name, c=trained_on: lab.classifier(n, c))
    return out


def _attackable(model: torch.nn.Module) -> torch.nn.Module:
    """Probes hold a no-grad frozen encoder; PGD needs gradients with respect to the images."""
    if isinstance(model, Classifier) and isinstance(model.encoder, encoders.FrozenEncoder):
        return model.with_encoder(encoders.freeze(model.encoder, input_gradients=True))
    return model


def benchmark_cells(lab: Lab, cfg, images: torch.Tensor, labels: torch.Tensor) -> None:
    """The suite's cells for one seed, then PGD at each budget on the shared attacked images."""
    fitted: dict[str, torch.nn.Module] = {}
    models = method_models(lab, cfg)
    for key, (trained_on, build) in models.items():
        for corruption in [from_spec(spec) for spec in spec_list(cfg.corruptions)]:
            lab.cell(key, lambda k=key, b=build: fitted.setdefault(k, b()), corruption, trained_on=trained_on)
    for key, (trained_on, build) in models.items():
        for norm, eps in parse_budgets(cfg.attack.budgets):
            spec = f"pgd(norm='{norm}', eps={eps:.4g}, steps={cfg.attack.steps})"
            tags = {schema.STAGE: "evaluation", schema.EXPERIMENT: "benchmark", **evaluation_tags(
                key, eval_corruption=spec, train_corruption=trained_on.spec, teacher=lab.source(key),
                dataset=lab.s.splits.name, seed=lab.seed, recipe=lab.recipe, loss=cfg.student.loss if key == "student" else "")}
            name = f"{label(key)} · {spec} · seed {lab.seed}"
            if done := child_named(name, finished=True, tags=tags):  # attacked before a resumed run was interrupted
                accuracy = done.data.metrics["test_top1_mean"]
            else:
                model = fitted.setdefault(key, build())
                with child_run(name, **tags):
                    accuracy = robust_accuracy(_attackable(model), images, labels, norm=norm, eps=eps, steps=cfg.attack.steps,
                                               seed=derive_seed(lab.seed, "eval attack"), batch_size=cfg.attack.batch_size)
                    mlflow.log_metrics({"test_top1_mean": accuracy, "test_top1_se": 0.0, "test_draws": 1.0,
                                        "attack_images": len(labels)})
            lab.rows.append({"method": label(key), "corruption": spec, "train_corruption": models[key][0].spec,
                             "seed": lab.seed, "draws": 1, "top1_mean": accuracy, "top1_se": 0.0})
