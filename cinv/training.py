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

from cinv.checkpoint import Checkpointer, rng_state, set_rng_state
from cinv.data.batches import BatchStream, Views
from cinv.errors import CinvError
from cinv.runtime import autocast

Objective = Callable[[Views], torch.Tensor]
EpochLogger = Callable[[int, dict[str, float]], None]
StepHook = Callable[[int, int], None]  # (optimiser steps done, steps in the whole run)


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
    on_step: StepHook | None = None,
    checkpointer: Checkpointer | None = None,
    desc: str = "train",
) -> History:
    """Train ``model`` on ``objective``; with a checkpointer, save every epoch (and every N steps)
    and continue from the run's latest checkpoint, bit for bit, when there is one."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("fit: the model has no trainable parameters")
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    total_steps = epochs * len(stream)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    history = History()
    first_epoch, epoch_state, running, batches = 0, None, 0.0, 0
    saved = checkpointer.latest() if checkpointer else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        history = History(list(saved["history"]["epoch_loss"]), list(saved["history"]["lr"]), saved["step"])
        first_epoch, epoch_state = saved["epoch"], saved["epoch_state"]
        running, batches = saved["running"], saved["batches"]

    def state(epoch: int, current) -> dict:
        return {"step": history.steps, "epoch": epoch, "epoch_state": current.state(), "running": running,
                "batches": batches, "history": {"epoch_loss": history.epoch_loss, "lr": history.lr},
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state()}

    for epoch in range(first_epoch, epochs):
        model.train()
        current = stream.epoch(epoch, epoch_state if epoch == first_epoch else None)
        if epoch != first_epoch or epoch_state is None:
            running, batches = 0.0, 0
        already_closed = len(history.epoch_loss) > epoch  # resumed from this epoch's final checkpoint
        bar = tqdm(current, total=len(current), desc=f"{desc} {epoch + 1}/{epochs}", leave=False)
        for views in bar:
            with autocast(stream.device):
                loss = objective(views)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"{desc}: loss became {loss.item()} at epoch {epoch + 1}, step {history.steps + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            if not torch.isfinite(grad_norm):
                raise NonFiniteLossError(f"{desc}: gradient norm became {grad_norm.item()} at epoch {epoch + 1}, "
                                         f"step {history.steps + 1}")
            optimizer.step()
            scheduler.step()
            history.steps += 1
            running += loss.item()
            batches += 1
            bar.set_postfix(loss=f"{running / batches:.4f}")
            if on_step:
                on_step(history.steps, total_steps)
                model.train()  # a hook may have evaluated the model
            if checkpointer and checkpointer.due(history.steps) and len(current) > 0:
                checkpointer.save(state(epoch, current))
        if not already_closed:
            history.epoch_loss.append(running / max(batches, 1))
            history.lr.append(optimizer.param_groups[0]["lr"])
            if checkpointer:
                checkpointer.save(state(epoch, current))
        if on_epoch:  # loggers are idempotent per epoch, so a resumed epoch end is not logged twice
            on_epoch(epoch, {"train_loss": history.epoch_loss[epoch], "lr": history.lr[epoch]})
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

