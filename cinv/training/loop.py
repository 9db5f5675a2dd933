"""One optimisation loop for every trained model: the methods (``cinv.methods``) differ only in the
model they build and the per-batch objective they pass in.

Adam with weight decay honoured, and a cosine schedule whose period is counted in optimiser
steps and stepped once per step (the reference code counted steps but stepped per epoch, so its
learning rate barely decayed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from cinv import distributed
from cinv.data.stream import BatchStream, Views
from cinv.errors import NonFiniteLossError
from cinv.runtime import FP32, Autocast, channels_last, termination
from cinv.training.checkpoint import Checkpointer, rng_state, set_rng_state

log = logging.getLogger(__name__)
Objective = Callable[[Views], torch.Tensor]
EpochLogger = Callable[[int, dict[str, float]], None]
StepHook = Callable[[int, int], None]  # (optimiser steps done, steps in the whole run)


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
    optimizer: str = "adam",
    momentum: float = 0.9,
    warmup_epochs: int = 0,
    schedule: str = "cosine",
    decay: float = 0.89,
    precision: Autocast = FP32,
) -> History:
    """Train ``model`` on ``objective``; with a checkpointer, save every epoch (and every N steps)
    and continue from the run's latest checkpoint, bit for bit, when there is one.

    ``optimizer``: adam (cinv's methods), sgd or lars (with ``momentum``; RoCL); ``schedule``: cosine over
    all steps after a linear warm-up of ``warmup_epochs``, or the learning rate times ``decay``
    once per epoch (FCL's Adam, 0.89). ``precision``: the command's decision (runtime.resolve_precision);
    the objective runs under its ``train`` autocast.
    """
    channels_last(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("fit: the model has no trainable parameters")
    opt = make_optimizer(optimizer, params, lr, weight_decay, momentum)
    total_steps = epochs * len(stream)
    scheduler = make_schedule(opt, schedule, total_steps, warmup_epochs * len(stream), len(stream), decay)
    history = History()
    first_epoch, epoch_state, running, batches = 0, None, 0.0, 0
    # In a distributed run only rank 0 reads checkpoints; the others start from its copy.
    saved = distributed.from_main(checkpointer.latest() if checkpointer else None)
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        history = History(list(saved["history"]["epoch_loss"]), list(saved["history"]["lr"]), saved["step"])
        first_epoch, epoch_state = saved["epoch"], saved["epoch_state"]
        running, batches = saved["running"], saved["batches"]

    def state(epoch: int, current) -> dict:
        return {"step": history.steps, "epoch": epoch, "epoch_state": current.state(), "running": running,
                "batches": batches, "history": {"epoch_loss": history.epoch_loss, "lr": history.lr},
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state()}

    for epoch in range(first_epoch, epochs):
        model.train()
        current = stream.epoch(epoch, epoch_state if epoch == first_epoch else None)
        if epoch != first_epoch or epoch_state is None:
            running, batches = 0.0, 0
        already_closed = len(history.epoch_loss) > epoch  # resumed from this epoch's final checkpoint
        bar = tqdm(current, total=len(current), desc=f"{desc} {epoch + 1}/{epochs}", leave=False)
        for views in bar:
            with termination.deferred():  # a SIGTERM waits for the step (and its checkpoint) to end
                with precision.context("train"):
                    loss = objective(views)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"{desc}: loss became {loss.item()} at epoch {epoch + 1}, step {history.steps + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
                if not torch.isfinite(grad_norm):
                    raise NonFiniteLossError(f"{desc}: gradient norm became {grad_norm.item()} at epoch {epoch + 1}, "
                                             f"step {history.steps + 1}")
                opt.step()
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
                elif checkpointer and termination.pending():  # stopping: save where it stands, resume from here
                    checkpointer.save(state(epoch, current))
            if termination.pending():
                termination.stop()
        with termination.deferred():
            if not already_closed:
                history.epoch_loss.append(running / max(batches, 1))
                history.lr.append(opt.param_groups[0]["lr"])
                if checkpointer:
                    checkpointer.save(state(epoch, current))
                log.info("%s epoch %d/%d: loss %.4f, lr %.3g (%d steps)", desc, epoch + 1, epochs, history.epoch_loss[epoch],
                         history.lr[epoch], history.steps)
            if on_epoch:  # loggers are idempotent per epoch, so a resumed epoch end is not logged twice
                on_epoch(epoch, {"train_loss": history.epoch_loss[epoch], "lr": history.lr[epoch]})
        if termination.pending():
            termination.stop()
    return history


def make_optimizer(name: str, params, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    if name == "lars":  # timm's pure-PyTorch LARS: the reference code's torchlars was CUDA-only
        from timm.optim import Lars

        return Lars(params, lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coeff=0.001, eps=1e-8)
    raise ValueError(f"optimizer must be one of adam, sgd, lars; got {name!r}")


def make_schedule(optimizer, name: str, total_steps: int, warmup_steps: int, steps_per_epoch: int, decay: float):
    """Stepped once per optimiser step; the cosine period is counted in the same steps."""
    if name == "cosine" and warmup_steps == 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if name == "cosine":

        def factor(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if name == "exponential":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: decay ** (step // max(steps_per_epoch, 1)))
    raise ValueError(f"schedule must be one of cosine, exponential; got {name!r}")
