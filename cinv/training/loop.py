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

from cinv import distributed
from cinv.data.stream import BatchStream, Views
from cinv.errors import NonFiniteLossError
from cinv.runtime import FP32, Autocast, channels_last, pause_point, progress, termination
from cinv.training.checkpoint import Checkpointer, rng_state, set_rng_state

log = logging.getLogger(__name__)
Objective = Callable[[Views], torch.Tensor]
EpochLogger = Callable[[int, dict[str, float]], None]
MetricLogger = Callable[[dict[str, float], int, bool], None]  # (metrics, optimiser step, once per step or per epoch)
Validation = Callable[[], dict[str, float]]
StepHook = Callable[[int, int], None]  # (optimiser steps done, steps in the whole run)


@dataclass
class History:
    epoch_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    steps: int = 0


@dataclass(frozen=True)
class Optim:
    """How a method's parameters are updated over a run.

    ``optimizer``: adam (cinv's methods), sgd or lars (with ``momentum``; RoCL); ``schedule``:
    ``cosine`` over all steps after a linear warm-up of ``warmup_epochs``; ``gradual_warmup``, the
    released RoCL's GradualWarmupScheduler (lr up to ``warmup_multiplier`` x lr over
    ``warmup_epochs``, then a cosine over ``epochs``, both per epoch); ``exponential``, the
    learning rate times ``decay`` once per epoch (FCL's Adam, 0.89); ``multistep``, divided by 10
    at each of ``milestones`` (epochs; RoCL's linear evaluation); or ``epoch_cosine``, PyTorch's
    CosineAnnealingLR with ``T_max = period`` stepped once per epoch, as the contrastive-inversion
    code's Lightning modules ran it (the factor (1 + cos(pi * epoch / period)) / 2)."""

    epochs: int
    lr: float
    weight_decay: float = 0.0
    optimizer: str = "adam"
    momentum: float = 0.9
    warmup_epochs: int = 0
    schedule: str = "cosine"
    decay: float = 1.0
    warmup_multiplier: float = 1.0
    milestones: tuple[int, ...] = ()
    period: int = 1


class Trainer:
    """Trains ``model`` on ``objective`` over ``stream``: [resume][] (from the run's latest
    checkpoint, bit for bit), [step][] per batch, [end_epoch][]; [run][] does all three.

    With a checkpointer it saves at every epoch end (and every N steps, or when a SIGTERM asks to
    stop). ``precision``: the command's decision (``runtime.resolve_precision``); the objective runs
    under its ``train`` autocast. An objective whose schedule depends on the step (FCL's warm-up)
    has an ``at_step(steps)`` attribute, told the optimiser steps taken before each batch, so a
    resumed run continues its schedule. ``on_step(steps, total)`` after each step; ``on_epoch(epoch,
    metrics)`` at each epoch end (loggers are idempotent per epoch). ``log(metrics, step, per_epoch)``:
    ``train_loss`` and ``lr`` after every optimiser step, and at each epoch end ``train_loss_epoch``
    (the epoch's mean) and ``validate()``'s metrics, all at the optimiser step, so every curve
    shares one axis. ``announce``: each epoch's line at INFO (else DEBUG)."""

    def __init__(self, model: nn.Module, objective: Objective, stream: BatchStream, optim: Optim, *,
                 precision: Autocast = FP32, checkpointer: Checkpointer | None = None, desc: str = "train",
                 on_step: StepHook | None = None, on_epoch: EpochLogger | None = None, log: MetricLogger | None = None,
                 validate: Validation | None = None, announce: bool = True):
        self.model, self.objective, self.stream, self.optim = model, objective, stream, optim
        self.precision, self.checkpointer, self.desc = precision, checkpointer, desc
        self.on_step, self.on_epoch, self.log, self.validate = on_step, on_epoch, log, validate
        self.announce = logging.INFO if announce else logging.DEBUG  # a probe's epochs take milliseconds
        channels_last(model)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("fit: the model has no trainable parameters")
        self.opt = make_optimizer(optim.optimizer, self.params, optim.lr, optim.weight_decay, optim.momentum)
        self.total_steps = optim.epochs * len(stream)
        self.scheduler = make_schedule(self.opt, optim, len(stream))
        self.history = History()
        self.first_epoch, self.epoch_state = 0, None
        self.running, self.batches = 0.0, 0
        self.current = None  # the epoch in progress
        self.saved_at = -1  # the optimiser step of the latest checkpoint this process wrote

    def resume(self) -> None:
        """Continue from the latest checkpoint when there is one (in a distributed run, rank 0 reads it)."""
        saved = distributed.from_main(self.checkpointer.latest() if self.checkpointer else None)
        if saved is None:
            return
        self.model.load_state_dict(saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        self.history = History(list(saved["history"]["epoch_loss"]), list(saved["history"]["lr"]), saved["step"])
        self.first_epoch, self.epoch_state = saved["epoch"], saved["epoch_state"]
        self.running, self.batches = saved["running"], saved["batches"]

    def state(self, epoch: int) -> dict:
        return {"step": self.history.steps, "epoch": epoch, "epoch_state": self.current.state(), "running": self.running,
                "batches": self.batches, "history": {"epoch_loss": self.history.epoch_loss, "lr": self.history.lr},
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng_state()}

    def step(self, views: Views, epoch: int) -> float:
        """One optimiser step on one batch; a SIGTERM waits for it (and its checkpoint) to end."""
        with termination.deferred():
            if hasattr(self.objective, "at_step"):
                self.objective.at_step(self.history.steps)
            with self.precision.context("train"):
                loss = self.objective(views)
            where = f"epoch {epoch + 1}, step {self.history.steps + 1}"
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"{self.desc}: loss became {loss.item()} at {where}")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
            if not torch.isfinite(grad_norm):
                raise NonFiniteLossError(f"{self.desc}: gradient norm became {grad_norm.item()} at {where}")
            lr = self.opt.param_groups[0]["lr"]  # the step's own learning rate, before the schedule moves on
            self.opt.step()
            self.scheduler.step()
            self.history.steps += 1
            value = loss.item()  # one device sync per step
            self.running += value
            self.batches += 1
            if self.log:
                self.log({"train_loss": value, "lr": lr}, self.history.steps, False)
            if self.on_step:
                self.on_step(self.history.steps, self.total_steps)
                self.model.train()  # a hook may have evaluated the model
            if self.checkpointer and (self.checkpointer.due(self.history.steps) and len(self.current) > 0
                                      or termination.pending()):  # stopping: save where it stands, resume from here
                self.save(epoch)
        return self.running / self.batches

    def end_epoch(self, epoch: int) -> None:
        """Record the epoch's mean loss and last learning rate, checkpoint, log."""
        with termination.deferred():
            if len(self.history.epoch_loss) <= epoch:  # not when resumed from this epoch's final checkpoint
                self.history.epoch_loss.append(self.running / max(self.batches, 1))
                self.history.lr.append(self.opt.param_groups[0]["lr"])
                if self.checkpointer:
                    self.save(epoch)
                log.log(self.announce, "%s epoch %d/%d: loss %.4f, lr %.3g (%d steps)", self.desc, epoch + 1, self.optim.epochs,
                         self.history.epoch_loss[epoch], self.history.lr[epoch], self.history.steps)
            if self.on_epoch:
                self.on_epoch(epoch, {"train_loss": self.history.epoch_loss[epoch], "lr": self.history.lr[epoch]})
            if self.log:
                metrics = {"train_loss_epoch": self.history.epoch_loss[epoch], "epoch": float(epoch + 1)}
                if self.validate:
                    metrics |= self.validate()
                    self.model.train()
                self.log(metrics, self.history.steps, True)

    def run(self) -> History:
        """All epochs. SIGTERM or Ctrl-C wait for the step in progress (or the batch being loaded,
        and its step), then the run saves where it stands and stops: a resume loses nothing."""
        self.resume()
        with termination.deferred():
            for epoch in range(self.first_epoch, self.optim.epochs):
                self.model.train()
                self.current = self.stream.epoch(epoch, self.epoch_state if epoch == self.first_epoch else None)
                if epoch != self.first_epoch or self.epoch_state is None:
                    self.running, self.batches = 0.0, 0
                bar = progress(self.current, total=len(self.current), desc=f"{self.desc} {epoch + 1}/{self.optim.epochs}",
                           leave=False)
                for views in bar:
                    bar.set_postfix(loss=f"{self.step(views, epoch):.4f}")
                    pause_point(self.history.steps, self.desc)
                    if termination.pending():
                        self.save_where_it_stands(epoch)
                        termination.stop()
                self.end_epoch(epoch)
                if termination.pending():
                    termination.stop()
        return self.history

    def save_where_it_stands(self, epoch: int) -> None:
        """A checkpoint of the step just taken, unless the step saved one."""
        if self.checkpointer and self.saved_at != self.history.steps:
            self.save(epoch)

    def save(self, epoch: int) -> None:
        self.checkpointer.save(self.state(epoch))
        self.saved_at = self.history.steps


def validation_loss(model: nn.Module, objective: Objective, stream: BatchStream, precision: Autocast = FP32,
                    max_batches: int | None = None) -> dict[str, float]:
    """``val_loss``: the training objective's mean over the validation batches (the same draws every
    epoch), the model in eval mode, no parameter updated (an objective that needs input gradients,
    an attack or FCL's utility, takes them itself)."""
    model.eval()
    total, batches = 0.0, 0
    with torch.no_grad():
        for views in stream.epoch(0):
            if max_batches is not None and batches >= max_batches:
                break
            with precision.context("train"):
                total += float(objective(views))
            batches += 1
    return {"val_loss": total / batches} if batches else {}


def fit(model: nn.Module, objective: Objective, stream: BatchStream, optim: Optim, **options) -> History:
    """``Trainer(model, objective, stream, optim, **options).run()``."""
    return Trainer(model, objective, stream, optim, **options).run()


def make_optimizer(name: str, params, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    if name == "lars":  # timm's pure-PyTorch LARS: the reference code's torchlars was CUDA-only
        from timm.optim import Lars

        return Lars(params, lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coeff=0.001, eps=1e-8)
    raise ValueError(f"optimizer must be one of adam, sgd, lars; got {name!r}")


def make_schedule(optimizer, optim: Optim, steps_per_epoch: int):
    """Stepped once per optimiser step; cosine periods are counted in the same steps, the
    per-epoch schedules change the learning rate at epoch boundaries only."""
    steps_per_epoch = max(steps_per_epoch, 1)
    total_steps, warmup_steps = optim.epochs * steps_per_epoch, optim.warmup_epochs * steps_per_epoch
    name = optim.schedule
    if name == "cosine" and warmup_steps == 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if name == "cosine":

        def factor(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if name == "gradual_warmup":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: gradual_warmup(
            step // steps_per_epoch, optim.warmup_multiplier, optim.warmup_epochs, optim.epochs))
    if name == "exponential":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: optim.decay ** (step // steps_per_epoch))
    if name == "multistep":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: step_factor(step // steps_per_epoch, optim.milestones))
    if name == "epoch_cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * (step // steps_per_epoch) / max(optim.period, 1))))
    raise ValueError(f"schedule must be one of cosine, gradual_warmup, exponential, multistep, epoch_cosine; got {name!r}")


def step_factor(epoch: int, milestones) -> float:
    """The learning-rate factor of epoch ``epoch`` (from 0): divided by 10 after each milestone
    epoch, as the released RoCL's ``adjust_lr(epoch)`` runs after epoch ``epoch`` (src/linear_eval.py:
    ``if epoch >= 30: lr = lr / 10`` for 30, 50 and 100)."""
    return 0.1 ** sum(epoch > m for m in milestones)


def gradual_warmup(epoch: int, multiplier: float, warmup_epochs: int, epochs: int) -> float:
    """The learning-rate factor of training epoch ``epoch`` (from 0) under the released RoCL's
    ``GradualWarmupScheduler(multiplier, total_epoch=warmup_epochs, after_scheduler=
    CosineAnnealingLR(T_max=epochs))``, stepped at the start of each epoch (src/rocl_train.py lines
    115-116 and 126): epoch e trains at 1 + (m - 1)(e + 1)/W up to the peak m at e = W - 1, then at
    m (1 + cos(pi (e + 1 - W) / epochs)) / 2. (The package's hand-over epoch depends on the torch
    version it ran with; this is the schedule's stated form.)"""
    if epoch + 1 <= warmup_epochs:
        return 1 + (multiplier - 1) * (epoch + 1) / warmup_epochs
    return multiplier * 0.5 * (1 + math.cos(math.pi * min((epoch + 1 - warmup_epochs) / max(epochs, 1), 1.0)))
