"""``student``: contrastive inversion (seed 000): a student S, a trainable copy of the frozen teacher R, learns
S(A(x)) ~ R(x) for a known corruption A, with a contrastive loss against the batch."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from cinv import distributed, losses
from cinv.config.base import Released, Runtime
from cinv.config.options import SCHEDULE, LossName, OptimOptions, RegisteredName
from cinv.data.stream import Views
from cinv.encoders.base import TrainModeBatchNorm, student_from
from cinv.methods.base import CI_CODE, METHODS, Method, Range, released_schedule
from cinv.runtime import FP32, Autocast, channels_last
from cinv.tracking.models import STUDENT_MODEL
from cinv.training.loop import Objective

__all__ = ["StudentOptions", "Student", "inversion_objective", "RELEASED_T_MAX"]

# noisy_clip_dataparallel.py line 252: num_steps = 126689 // (batch_size * gpus) with the configs' 256 and 4.
RELEASED_T_MAX = 126689 // (256 * 4)

class StudentOptions(OptimOptions):
    """Adam with a cosine schedule; the batch is the contrastive negatives."""

    loss: LossName = Field("student_teacher", description=f"inversion loss: {', '.join(losses.names())}")
    temperature: float = Field(0.1, gt=0, le=100, description="contrastive temperature tau")
    schedule: Literal["cosine", "released"] = SCHEDULE
    teacher_batchnorm: Literal["eval", "train"] = Field(
        "eval", description="the frozen teacher's BatchNorm: eval (its running statistics: the paper's 'fixed' "
        "representations) or train, as the released code ran it (batch statistics, running statistics updated each step, "
        "on a copy of the teacher; a resumed run restarts them from the teacher's)")
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

    display, title = "student (ours)", "Student (contrastive inversion)"
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
    # Read at Sriram-Ravula/Contrastive-Inversion noisy_clip_dataparallel.py @fe426a1 and the configs it reads.
    RELEASED = (
        Released("weight_decay", "appendix D.1: 'a learning rate of 0.0001, weight decay of 0.0001'",
                 f"{CI_CODE} noisy_clip_dataparallel.py:250 @fe426a1: torch.optim.Adam(self.noisy_visual_encoder"
                 ".parameters(), lr=self.hparams.lr), no weight decay (the configs' weight_decay: 0.0001 is never read)",
                 "preset paper: 1e-4, the text; student_weight_decay=0 runs as released", as_released=0.0),
        Released("schedule", "appendix D.1: 'a cosine learning rate schedule', 25 epochs (section 4)",
                 f"{CI_CODE} noisy_clip_dataparallel.py:251-253 @fe426a1: CosineAnnealingLR(optim, T_max=126689 // (256 * 4) "
                 "= 123) returned without 'interval': 'step', so Lightning 1.2 steps it once per epoch: after 25 epochs "
                 "the learning rate is still 0.91 of its start",
                 "schedule=cosine, annealed to 0 over every step; student_schedule=released runs as released",
                 as_released="released"),
        Released("teacher_batchnorm", "section 1 and Fig. 2: the teacher is the pretrained CLIP; appendix D.8: 'the teacher "
                 "representations, which are fixed'",
                 f"{CI_CODE} noisy_clip_dataparallel.py:155-157 @fe426a1: self.baseclip.eval() once, a registered submodule "
                 "that Lightning's model.train() (at fit start, after every validation) puts back in train mode: its "
                 "BatchNorm normalises by batch statistics and updates its running statistics every step",
                 "teacher_batchnorm=eval (frozen, eval mode); student_teacher_batchnorm=train runs as released",
                 as_released="train"),
        Released("lr", "appendix D.1: 'we use a learning rate of 0.0001'",
                 f"{CI_CODE} config/NoisyRN101/rand90_contrastive_nonfixed.yaml:17 @9abfd56: lr: 0.0003 (every student "
                 "config read)", "preset paper: 1e-4, the text; student_lr=3e-4 runs as released", as_released=3e-4),
        Released("loss", "section 3, eq. 1: L_MSE on l2-normalised outputs, -1/N sum <S(A(x)), R(x)>; section 4.5 ablates it",
                 f"{CI_CODE} noisy_clip_dataparallel.py:215-216 @fe426a1: F.mse_loss(input2, input1) on the raw "
                 "(unnormalised) CLIP embeddings, mean over batch x 512",
                 "loss=mse is eq. 1; loss=mse_unnormalized (loss_ablation: losses=...,mse_unnormalized) runs as released"),
    )

    def build(self, ctx, opts):
        if ctx.teacher is None:
            raise ValueError("contrastive inversion needs the frozen teacher in the run context")
        return student_from(ctx.teacher)

    def objective(self, model, ctx, opts, stream):
        # Over several processes: DDP, and negatives from the whole global batch (training.distributed).
        loss = distributed.Gathered(losses.get(opts.loss, temperature=opts.temperature))
        teacher = TrainModeBatchNorm(ctx.teacher) if opts.teacher_batchnorm == "train" else ctx.teacher
        channels_last(teacher)
        net = distributed.wrap(channels_last(model))
        return inversion_objective(torch.compile(net) if opts.compile else net, teacher, loss, ctx.precision)

    def optim(self, opts):
        return released_schedule(opts, RELEASED_T_MAX)

    def source(self, opts, teacher):
        return teacher

    def provenance(self, opts, teacher):
        return {"teacher": teacher, "loss": opts.loss}
