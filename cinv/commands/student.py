"""``student``: train a robust student encoder by contrastive inversion of a frozen teacher, on one
process or several (torchrun, DDP)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import mlflow
from pydantic import Field

from cinv import distributed, settings
from cinv.commands.common import checkpointer, log_samples, with_teacher
from cinv.config.base import Runtime, Section, Select
from cinv.config.options import (
    CORRUPTION,
    INVERSION_PAPER,
    INVERSION_RELEASED,
    RESUME,
    Corruption,
    DataOptions,
    Trains,
    WithTeacher,
)
from cinv.encoders.base import Encoder
from cinv.experiments.engine import register_trained, train_in_run, training_run_tags
from cinv.methods import METHODS
from cinv.tracking import schema
from cinv.training.context import setup


class StudentConfig(Trains, WithTeacher):
    """Train a robust student encoder by contrastive inversion of a frozen teacher."""

    METHOD: ClassVar[str] = "student"
    PAPER, PAPER_VS_CODE = INVERSION_PAPER, INVERSION_RELEASED
    resume_run_id: Annotated[str | None, Runtime()] = RESUME
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Annotated[Corruption, Select()] = CORRUPTION
    nproc: int = Field(1, ge=1, le=256, description="processes on this machine (torchrun --nproc-per-node): "
                       "DistributedDataParallel, student_batch_size is the global batch, split evenly over them")

    def check_options(self) -> None:
        batch = self.options["student"].batch_size
        if batch % self.nproc:
            raise ValueError(f"student_batch_size {batch} does not split evenly over nproc={self.nproc} processes")


def run(cfg: StudentConfig) -> Encoder:
    s = with_teacher(setup(cfg), cfg.teacher, cfg.teacher_weights)
    method, opts = METHODS.get("student"), cfg.options["student"]
    main = distributed.is_main()  # another process of a distributed run trains and leaves MLflow to rank 0
    if main:
        mlflow.set_tags({**training_run_tags(s, method.name, opts, cfg.teacher, settings.recipe_key(cfg)),
                         schema.PROCESSES: str(distributed.world().size)})
        log_samples(s)
    student, infos = train_in_run(s, method.name, opts, cfg.teacher, checkpointer=checkpointer(opts, main), log=main)
    register_trained(method.name, infos, opts)
    return student
