"""``rocl``: RoCL (Kim et al., NeurIPS 2020), then its evaluation: linear evaluation (LE), robust linear evaluation
(r-LE), white-box PGD at several budgets on a seeded, class-balanced sample of the test split, and
transformation-smoothed inference."""

from __future__ import annotations

from typing import Annotated, ClassVar

import mlflow
import pandas as pd
import torch

from cinv.config.base import Paper, Section
from cinv.config.options import AttackOptions, DataOptions, EvalOptions, ProbeOptions, Trains, parse_budgets
from cinv.data.augment import simclr_augment
from cinv.encoders.base import freeze
from cinv.evaluation.against_paper import as_cells, compare, log_comparison
from cinv.evaluation.protocol import evaluate_model
from cinv.evaluation.robustness import attack_subset, robust_accuracy, smoothed_predict
from cinv.experiments.engine import register_trained, train_in_run, training_run_tags
from cinv.methods import METHODS
from cinv.probe import robust_linear_probe, train_probe
from cinv.runtime import FP32, derive_seed
from cinv.settings import deviations, recipe_key
from cinv.tracking.runs import log_table
from cinv.training.context import setup

# Seed 003, section 4 and the released code: CIFAR-10 at 32 px, trained on the whole training set, in float32.
ROCL_PAPER = {
    "dataset": Paper("cifar10", "section 4: CIFAR-10"),
    "class_list": Paper(None),
    "image_size": Paper(32, "CIFAR-10's native size"),
    "val_fraction": Paper(0.0, "rocl_train.py trains on the whole training split"),
    "limit_per_class": Paper(None, "every image of each class"),
    "precision": Paper(FP32.describe(), "src/rocl_train.py lines 85-164: plain float32 (no apex, no autocast)"),
}

# Linear evaluation (LE and r-LE) as the released code runs it, where the paper is silent: total_process.sh line 17
# (test: --epoch 150 --batch-size=1024 --lr $5, the README's learning rate 0.1) and line 23 (advtest: r-LE on PGD
# examples only); src/linear_eval.py: SGD(momentum=0.9, weight_decay=5e-4) on the linear layer, lr / 10 after epochs
# 30, 50 and 100 (adjust_lr), trained on the images as they are (inputs = ori unless --trans; src/argument.py:
# --trans default False); the r-LE attack eps 0.0314, alpha 0.007, 10 steps (src/argument.py linear_parser); the test
# attack PGD-20 with step eps / 10 (total_process.sh lines 19-20: --alpha=0.00314 at --epsilon=0.0314).
RELEASED_LINEAR_EVALUATION = {
    "probe_epochs": 150, "probe_batch_size": 1024, "probe_lr": 0.1, "probe_optimizer": "sgd", "probe_momentum": 0.9,
    "probe_weight_decay": 5e-4, "probe_milestones": "30,50,100", "probe_augment": False, "probe_feature_draws": 1,
    "attack_rle_epochs": 150, "attack_rle_alpha": 0.007, "attack_step_fraction": 0.1,
}


class RoCLConfig(Trains):
    """RoCL (Kim et al., NeurIPS 2020): adversarial self-supervised contrastive learning, then linear evaluation (LE),
    robust linear evaluation (r-LE), white-box PGD at several budgets and transformation-smoothed inference."""

    METHOD: ClassVar[str] = "rocl"
    PAPER = ROCL_PAPER
    NATIVE_RESOLUTION = True  # CIFAR-10 at its 32 px (the embedded subset too), MNIST at 28
    # The paper attacks the whole CIFAR-10 test set (PGD-20, l_inf 8/255 and 16/255, unseen l_2 and l_1), with r-LE and
    # smoothing; the CPU budget 500 images, four budgets, 3 r-LE epochs, 8 smoothing samples.
    PRESETS = {"cpu": {"attack_images": 500, "attack_budgets": "inf:8/255, inf:16/255, 2:0.5, 1:12", "attack_rle_epochs": 3,
                       "attack_smoothing_samples": 8},
               "paper": {"image_size": 32, "attack_images": 10_000, **RELEASED_LINEAR_EVALUATION}}
    data: Annotated[DataOptions, Section()] = DataOptions()
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    attack: Annotated[AttackOptions, Section("attack_")] = AttackOptions()


def run(cfg: RoCLConfig) -> pd.DataFrame:
    s = setup(cfg, "none")
    method, opts = METHODS.get("rocl"), cfg.options["rocl"]
    mlflow.set_tags(training_run_tags(s, method.name, opts, "", recipe_key(cfg)))
    encoder, infos = train_in_run(s, method.name, opts, "")
    register_trained(method.name, infos, opts)

    attackable = freeze(encoder, input_gradients=True)
    probes = {"LE": train_probe(s, encoder, cfg.probe, log=False).with_encoder(attackable)}
    if cfg.attack.rle_epochs:
        probes["r-LE"] = robust_linear_probe(s, encoder, cfg.attack.rle_epochs, cfg.probe, eps=cfg.attack.rle_eps,
                                             steps=cfg.attack.rle_steps, alpha=cfg.attack.rle_alpha)
    images, labels = attack_subset(s, cfg.attack.images, cfg.seed)
    rows = []
    for probe_name, model in probes.items():
        key = probe_name.lower().replace("-", "")
        clean = evaluate_model(s, model, EvalOptions(draws=1, batch_size=cfg.attack.batch_size), prefix=f"{key}_clean")
        rows.append({"probe": probe_name, "attack": "none (clean test set)", "top1": round(clean.mean("top1"), 2)})
        for norm, eps in parse_budgets(cfg.attack.budgets):
            for attack in ["pgd"] + (["autoattack"] if cfg.attack.autoattack and norm == "inf" else []):
                # AutoAttack is parameter-free: PGD's steps and step size are PGD's own
                pgd = {"steps": cfg.attack.steps, "step_size": cfg.attack.step_size(eps)} if attack == "pgd" else {}
                accuracy = robust_accuracy(model, images, labels, method=attack, norm=norm, eps=eps, **pgd,
                                           seed=derive_seed(cfg.seed, "eval attack"), batch_size=cfg.attack.batch_size)
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
    cells = as_cells(table, method.variant(opts), "attack", "top1", labels=("probe",))
    log_comparison(compare(cells, "rocl", deviations(cfg), metrics=["top1"]))
    return table
