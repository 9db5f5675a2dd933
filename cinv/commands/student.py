"""``student``: train a robust student encoder by contrastive inversion of a frozen teacher, on one
process or several (torchrun, DDP)."""

from __future__ import annotations

from typing import Annotated

import mlflow
from pydantic import Field, model_validator

from cinv import distributed
from cinv.commands.common import checkpointer, log_samples, with_teacher
from cinv.config.base import Section
from cinv.config.options import (
    CORRUPTION,
    RESUME,
    TEACHER,
    TEACHER_WEIGHTS,
    Corruption,
    DataOptions,
    EncoderRef,
    RunOptions,
)
from cinv.encoders.base import Encoder
from cinv.methods import METHODS
from cinv.methods.inversion import StudentOptions
from cinv.tracking import schema
from cinv.tracking.models import register
from cinv.training.context import setup


class StudentConfig(RunOptions):
    """Train a robust student encoder by contrastive inversion of a frozen teacher."""

    resume_run_id: str | None = RESUME
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = CORRUPTION
    teacher: EncoderRef = TEACHER
    teacher_weights: str | None = TEACHER_WEIGHTS
    train: Annotated[StudentOptions, Section()] = StudentOptions()
    nproc: int = Field(1, ge=1, le=256, description="processes on this machine (torchrun --nproc-per-node): "
                       "DistributedDataParallel, batch_size is the global batch, split evenly over them")

    @model_validator(mode="after")
    def _split(self):
        if self.train.batch_size % self.nproc:
            raise ValueError(f"batch_size {self.train.batch_size} does not split evenly over nproc={self.nproc} processes")
        return self


def run(cfg: StudentConfig) -> Encoder:
    s = with_teacher(setup(cfg), cfg.teacher, cfg.teacher_weights)
    method = METHODS.get("student")
    main = distributed.is_main()  # another process of a distributed run trains and leaves MLflow to rank 0
    if main:
        mlflow.set_tags({schema.METHOD: method.model_tag, schema.STAGE: "student",
                         schema.PROCESSES: str(distributed.world().size)})
        log_samples(s)
    student = method.train(s, cfg.train, checkpointer=checkpointer(cfg.train, main), log=main)
    if main:
        info = method.log(s, student, cfg.train, cfg.teacher)["encoder"]
        register(info, cfg.train.registered_model_name)
    return student
