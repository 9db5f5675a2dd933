"""``student``: contrastive inversion (seed 000): a student S, a trainable copy of the frozen teacher R, learns
S(A(x)) ~ R(x) for a known corruption A, with a contrastive loss against the batch."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from cinv import distributed, losses
from cinv.config.base import Runtime
from cinv.config.options import LossName, OptimOptions, RegisteredName
from cinv.data.stream import Views
from cinv.encoders.base import student_from
from cinv.methods.base import METHODS, Method, Range
from cinv.runtime import FP32, Autocast, channels_last
from cinv.tracking.models import STUDENT_MODEL
from cinv.training.loop import Objective

__all__ = ["StudentOptions", "Student", "inversion_objective"]

class StudentOptions(OptimOptions):
    """Adam with a cosine schedule; the batch is the contrastive negatives."""

    loss: LossName = Field("student_teacher", description=f"inversion loss: {', '.join(losses.names())}")
    temperature: float = Field(0.1, gt=0, le=100, description="contrastive temperature tau")
    registered_model_name: Annotated[RegisteredName, Runtime()] = Field(
        STUDENT_MODEL, description="register the student encoder under this name once the run has succeeded ('': do not)")
    compile: Annotated[bool, Runtime()] = Field(
        False, description="torch.compile the student for training (worth it for long GPU runs)")


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


@METHODS.register("student", aliases=("contrastive_inversion", "inversion"))
class Student(Method):
    """Contrastive inversion, the paper's method: the student starts as an exact copy of the teacher (``ctx.teacher``)."""

    name, display, title = "student", "student (ours)", "Student (contrastive inversion)"
    Options = StudentOptions
    PRESETS = {
        # Seed 000, section 4 and appendix C: Adam lr 1e-4, weight decay 1e-4, batch 256, 25 epochs, tau 0.1.
        "paper": {"epochs": 25, "batch_size": 256, "lr": 1e-4, "weight_decay": 1e-4},
        # The main job's budget on 2 CPU cores: 3 epochs of batch 128 at lr 2e-3.
        "cpu": {"epochs": 3, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4},
    }
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
