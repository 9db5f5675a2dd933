"""One optimisation loop for every trained model: the contrastive-inversion student and the
supervised baseline (and later methods) differ only in the per-batch objective they pass in.

Adam with weight decay honoured, and a cosine schedule whose period is counted in optimiser
steps and stepped once per step (the reference code counted steps but stepped per epoch, so its
learning rate barely decayed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from cinv.data.batches import BatchStream, Views
from cinv.errors import CinvError
from cinv.runtime import autocast

Objective = Callable[[Views], torch.Tensor]
EpochLogger = Callable[[int, dict[str, float]], None]


class NonFiniteLossError(CinvError):
    """Training diverged: the run stops rather than writing NaN weights."""


@dataclass
class History:
    epoch_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    steps: int = 0


def fit(
    model: nn.Module,
    objective: Objective,
    stream: BatchStream,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    on_epoch: EpochLogger | None = None,
    desc: str = "train",
) -> History:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("fit: the model has no trainable parameters")
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    total_steps = epochs * len(stream)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    history = History()
    for epoch in range(epochs):
        model.train()
        running, batches = 0.0, 0
        bar = tqdm(stream.epoch(epoch), total=len(stream), desc=f"{desc} {epoch + 1}/{epochs}", leave=False)
        for views in bar:
            with autocast(stream.device):
                loss = objective(views)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"{desc}: loss became {loss.item()} at epoch {epoch + 1}, step {history.steps + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            history.steps += 1
            running += loss.item()
            batches += 1
            bar.set_postfix(loss=f"{running / batches:.4f}")
        history.epoch_loss.append(running / max(batches, 1))
        history.lr.append(optimizer.param_groups[0]["lr"])
        if on_epoch:
            on_epoch(epoch, {"train_loss": history.epoch_loss[-1], "lr": history.lr[-1]})
    return history


def inversion_objective(student: nn.Module, teacher: nn.Module, loss: nn.Module) -> Objective:
    """S(A(x)) against R(x): the teacher sees the clean view, the student its corruption."""

    def objective(views: Views) -> torch.Tensor:
        with torch.no_grad():
            target = teacher(views.clean)
        return loss(student(views.corrupted), target)

    return objective


def supervised_objective(classifier: nn.Module) -> Objective:
    """Cross-entropy on corrupted images: the end-to-end supervised baseline."""
    criterion = nn.CrossEntropyLoss()

    def objective(views: Views) -> torch.Tensor:
        return criterion(classifier(views.corrupted).float(), views.labels)

    return objective

