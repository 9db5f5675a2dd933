"""Contrastive inversion (seed 000): a student S, a trainable copy of the frozen teacher R, learns
S(A(x)) ~ R(x) for a known corruption A, with a contrastive loss against the batch."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from cinv import distributed, losses
from cinv.config.options import LossName, OptimOptions
from cinv.data.stream import Views
from cinv.encoders.base import student_from
from cinv.methods.base import METHODS, Method, Range
from cinv.runtime import FP32, Autocast, channels_last
from cinv.training.loop import Objective

__all__ = ["StudentOptions", "ContrastiveInversion", "inversion_objective"]


class StudentOptions(OptimOptions):
    """Paper defaults: Adam lr 1e-4, weight decay 1e-4, batch 256, 25 epochs, tau 0.1."""

    epochs: int = Field(25, ge=1, le=10_000, description="student training epochs")
    batch_size: int = Field(256, ge=2, le=65_536, description="student batch size (contrastive negatives)")
    lr: float = Field(1e-4, gt=0, le=10, description="student Adam learning rate")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="student Adam weight decay")
    loss: LossName = Field("student_teacher", description=f"inversion loss: {', '.join(losses.names())}")
    temperature: float = Field(0.1, gt=0, le=100, description="contrastive temperature tau")
    registered_model_name: str | None = Field(None, description="register the student encoder under this name")
    compile: bool = Field(False, description="torch.compile the student for training (worth it for long GPU runs)")


def inversion_objective(student: nn.Module, teacher: nn.Module, loss: nn.Module, precision: Autocast = FP32) -> Objective:
    """S(A(x)) against R(x): the teacher sees the clean view, the student its corruption.

    The frozen teacher is inference, under the command's ``frozen`` autocast (bf16 where the
    hardware has it natively, CPU included), while the student trains in the loop's own."""

    def objective(views: Views) -> torch.Tensor:
        # No autograd bookkeeping at all for the teacher.
        with torch.inference_mode(), precision.context("frozen"):
            target = teacher(views.clean)
        # A float32 copy outside inference mode: a normal tensor again, which autograd may save.
        return loss(student(views.corrupted), target.to(torch.float32, copy=True))

    return objective


@METHODS.register("student")
class ContrastiveInversion(Method):
    """The paper's method: the student starts as an exact copy of the teacher (``ctx.teacher``)."""

    name, display, title = "student", "student (ours)", "Student (contrastive inversion)"
    model_tag = "contrastive_inversion"
    Options = StudentOptions
    space = {"lr": Range(1e-4, 1e-2, log=True), "weight_decay": Range(1e-4, 1e-3, log=True), "temperature": Range(0.1, 1.0)}
    produces = frozenset({"encoder"})
    needs_teacher = True

    def build(self, ctx, opts):
        if ctx.teacher is None:
            raise ValueError("contrastive inversion needs the frozen teacher in the run context")
        return student_from(ctx.teacher)

    def objective(self, model, ctx, opts, stream):
        # Over several processes: DDP, and negatives from the whole global batch (training.distributed).
        loss = distributed.Gathered(losses.get(opts.loss, temperature=opts.temperature))
        channels_last(ctx.teacher)
        net = distributed.wrap(channels_last(model))
        return inversion_objective(torch.compile(net) if opts.compile else net, ctx.teacher, loss, ctx.precision)

    def source(self, opts, teacher):
        return teacher

    def provenance(self, opts, teacher):
        return {"teacher": teacher, "loss": opts.loss}
