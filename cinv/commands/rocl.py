"""``rocl``: RoCL (seed 003), then its evaluation: linear evaluation (LE), robust linear evaluation
(r-LE), white-box PGD at several budgets on a seeded, class-balanced sample of the test split, and
transformation-smoothed inference."""

from __future__ import annotations

from typing import Annotated

import mlflow
import pandas as pd
import torch
from pydantic import model_validator

from cinv.config.base import Presets, Section
from cinv.config.options import AttackOptions, DataOptions, EvalOptions, ProbeOptions, RunOptions, parse_budgets
from cinv.config.presets import ROCL_PAPER
from cinv.data.augment import simclr_augment
from cinv.data.datasets import EMBEDDED
from cinv.encoders.base import freeze
from cinv.evaluation.protocol import evaluate_model
from cinv.evaluation.robustness import attack_subset, robust_accuracy, smoothed_predict
from cinv.methods import METHODS
from cinv.methods.rocl import ROCL_CPU, RoCLOptions
from cinv.probe import robust_linear_probe, train_probe
from cinv.runtime import derive_seed
from cinv.tracking import schema
from cinv.tracking.models import register
from cinv.tracking.runs import log_table
from cinv.training.context import setup


class RoCLConfig(RunOptions, Presets):
    """RoCL (seed 003): adversarial self-supervised contrastive learning, then linear evaluation (LE),
    robust linear evaluation (r-LE), white-box PGD at several budgets and transformation-smoothed inference."""

    PRESETS = {"cpu": {}, "paper": ROCL_PAPER}
    data: Annotated[DataOptions, Section()] = DataOptions()
    train: Annotated[RoCLOptions, Section()] = ROCL_CPU
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    attack: Annotated[AttackOptions, Section("attack_")] = AttackOptions(
        images=500, budgets="inf:8/255, inf:16/255, 2:0.5, 1:12", rle_epochs=3, smoothing_samples=8)


    @model_validator(mode="before")
    @classmethod
    def _native_size(cls, values):
        # The embedded subset is stored at 48 px for the main job; RoCL's CIFAR images are 32 px.
        # Every other dataset keeps its own size (28 px MNIST for mnist_cnn).
        if isinstance(values, dict):
            data = values.get("data") or {}
            data = data.model_dump() if isinstance(data, DataOptions) else dict(data)
            if data.get("image_size") is None and data.get("dataset", EMBEDDED) == EMBEDDED:
                values = {**values, "data": {**data, "image_size": 32}}
        return values


def run(cfg: RoCLConfig) -> pd.DataFrame:
    s = setup(cfg, "none")
    mlflow.set_tags({schema.STAGE: "rocl", schema.METHOD: "rocl" if cfg.train.adversarial else "simclr"})
    method = METHODS.get("rocl")
    encoder = method.train(s, cfg.train)
    register(method.log(s, encoder, cfg.train, "")["encoder"], cfg.train.registered_model_name)

    attackable = freeze(encoder, input_gradients=True)
    probes = {"LE": train_probe(s, encoder, cfg.probe, log=False).with_encoder(attackable)}
    if cfg.attack.rle_epochs:
        probes["r-LE"] = robust_linear_probe(s, encoder, cfg.attack.rle_epochs, cfg.probe.lr, cfg.probe.batch_size,
                                             eps=cfg.attack.rle_eps, steps=cfg.attack.rle_steps)
    images, labels = attack_subset(s, cfg.attack.images, cfg.seed)
    rows = []
    for probe_name, model in probes.items():
        key = probe_name.lower().replace("-", "")
        clean = evaluate_model(s, model, EvalOptions(draws=1, batch_size=cfg.attack.batch_size), prefix=f"{key}_clean")
        rows.append({"probe": probe_name, "attack": "none (clean test set)", "top1": round(clean.mean("top1"), 2)})
        for norm, eps in parse_budgets(cfg.attack.budgets):
            for attack in ["pgd"] + (["autoattack"] if cfg.attack.autoattack and norm == "inf" else []):
                accuracy = robust_accuracy(model, images, labels, norm=norm, eps=eps, steps=cfg.attack.steps,
                                           seed=derive_seed(cfg.seed, "eval attack"), method=attack,
                                           batch_size=cfg.attack.batch_size)
                mlflow.log_metric(f"{key}_{attack}_l{norm}_{eps:.4g}".replace(".", "p"), accuracy)
                rows.append({"probe": probe_name, "attack": f"{attack} l_{norm} {eps:.4g}", "top1": round(accuracy, 2)})
        if cfg.attack.smoothing_samples:
            generator = torch.Generator(s.device).manual_seed(derive_seed(cfg.seed, "smoothing"))
            with torch.no_grad():
                family = simclr_augment(s.splits.channels, s.splits.flip)
                logits = torch.cat([smoothed_predict(model, chunk, samples=cfg.attack.smoothing_samples, generator=generator,
                                                     augmentation=family) for chunk in images.split(cfg.attack.batch_size)])
            accuracy = 100.0 * (logits.argmax(1) == labels).float().mean().item()
            mlflow.log_metric(f"{key}_smoothed_top1", accuracy)
            rows.append({"probe": probe_name, "attack": f"none, smoothed over {cfg.attack.smoothing_samples} augmentations",
                         "top1": round(accuracy, 2)})
    table = pd.DataFrame(rows)
    log_table(table, "rocl_results")
    return table
