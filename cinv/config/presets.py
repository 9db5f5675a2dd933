"""The papers' own settings, as flat parameters: what ``preset=paper`` sets, and what each run's
``deviations.json`` compares against. One place, so a preset and its citation cannot drift."""

from __future__ import annotations

from typing import Any

__all__ = ["INVERSION_PAPER", "EXPERIMENT_PAPER", "FCL_PAPER", "ROCL_PAPER", "BENCHMARK_PAPER"]

# The paper's settings (seed 000, section 4 and appendix C), as flat parameters.
INVERSION_PAPER: dict[str, Any] = {
    "teacher": "open_clip:RN101", "image_size": 224,
    "student_epochs": 25, "student_batch_size": 256, "student_lr": 1e-4, "student_weight_decay": 1e-4,
    "student_temperature": 0.1, "student_loss": "student_teacher",
    "baseline_backbone": "torchvision:resnet101", "baseline_backbone_weights": "IMAGENET1K_V1", "baseline_epochs": 25,
    "baseline_batch_size": 64, "baseline_lr": 1e-3, "baseline_weight_decay": 0.0,
    # The paper's probe re-ran the encoder every epoch: a fresh corruption draw for each of its 10 epochs.
    "probe_epochs": 10, "probe_batch_size": 128, "probe_fraction_batch_size": 8, "probe_lr": 1e-3, "probe_feature_draws": 10,
    "eval_draws": 10,
}
# Tables 7/8 inpaint with a Deep Decoder (5000 steps, the default of deep_decoder_steps).
EXPERIMENT_PAPER: dict[str, Any] = INVERSION_PAPER | {"inpainting": "deep_decoder"}

FCL_PAPER: dict[str, Any] = {  # seed 002, section 4.1 (synthetic MNIST)
    "epochs": 20, "lr": 0.01, "decay": 0.89, "warmup_start": 2, "warmup_epochs": 2, "k": 256, "lam": 1e-3,
    "temperature": 0.1, "sigma": 0.5, "loss": "xe", "reduction": "sum"}

ROCL_PAPER: dict[str, Any] = {  # seed 003, section 4 and the released code (CIFAR-10, ResNet-18 for 32-px inputs)
    "image_size": 32, "encoder": "cifar_resnet:resnet18", "encoder_weights": "none", "epochs": 1000, "batch_size": 256,
    "lr": 0.1, "weight_decay": 1e-6, "optimizer": "lars", "warmup_epochs": 10, "temperature": 0.5, "lam": 1 / 256,
    "eps": 8 / 255, "alpha": 0.007, "instance_steps": 7, "projector_hidden": 2048, "projector_dim": 128,
    "attack_images": 10_000, "attack_steps": 20, "attack_budgets": "inf:8/255, inf:16/255, 2:0.25, 2:0.5, 1:7.84, 1:12",
    "attack_rle_epochs": 10, "attack_smoothing_samples": 16}
ROCL_TRAINING = ("epochs", "batch_size", "lr", "weight_decay", "optimizer", "warmup_epochs", "temperature", "lam", "eps",
                  "alpha", "instance_steps", "projector_hidden", "projector_dim")
# Each method at its own paper's settings where they carry over to the benchmark's data (the teacher's
# resolution: RoCL's ResNet-18 gets its ImageNet stem, FCL keeps its loss settings and cinv's Adam).
BENCHMARK_PAPER: dict[str, Any] = (
    INVERSION_PAPER | {f"rocl_{k}": ROCL_PAPER[k] for k in ROCL_TRAINING}
    | {"rocl_encoder": "torchvision:resnet18", "rocl_encoder_weights": "none"}
    | {f"fcl_{k}": FCL_PAPER[k] for k in ("k", "lam", "temperature", "sigma", "loss", "reduction")}
    | {"attack_budgets": "inf:8/255, inf:16/255", "attack_images": 10_000})
