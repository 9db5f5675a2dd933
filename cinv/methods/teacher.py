"""The teacher's original representations (seed 000, Table 13): nothing is trained; the frozen
teacher is the encoder, and a probe on its features of corrupted (or clean) images measures how
much contrastive inversion recovers."""

from __future__ import annotations

from cinv.config.base import Strict
from cinv.methods.base import METHODS, Method


class TeacherOptions(Strict):
    """Nothing to set: the teacher is the command's ``teacher``."""


@METHODS.register("teacher")
class Teacher(Method):
    display, title = "teacher, original representations", "Teacher's original representations"
    Options = TeacherOptions
    produces = frozenset({"encoder"})
    needs_teacher = True
    trains = False

    def train(self, ctx, opts, *, label_fraction=1.0, on_step=None, checkpointer=None, log=True):
        if ctx.teacher is None:
            raise ValueError("the teacher method needs the frozen teacher in the run context")
        return ctx.teacher

    def log(self, ctx, trained, opts, teacher, **produced_by):
        return {}  # the teacher is the command's own pretrained network: nothing new to log
