"""What several commands do alike: load the teacher into the run context, build or load an
encoder by name or model URI, log sample images, checkpoint, and register."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import torch
from pydantic import AfterValidator

from cinv import encoders
from cinv.config.options import MODEL_URI_SCHEMES
from cinv.context import Setup
from cinv.encoders.base import Encoder
from cinv.methods import METHODS
from cinv.tracking.runs import log_image_grid
from cinv.tracking.serving import LoadedEncoder
from cinv.tracking.serving import load_encoder as load_logged
from cinv.training.checkpoint import Checkpointer, for_active_run

__all__ = ["with_teacher", "load_encoder", "log_samples", "checkpointer", "method_list", "MethodList"]


def with_teacher(s: Setup, name: str, weights: str | None) -> Setup:
    """The run context with the frozen teacher R on its device."""
    return dataclasses.replace(s, teacher=encoders.freeze(encoders.get(name, weights)).to(s.device))


def load_encoder(name: str, weights: str | None, device: torch.device) -> Encoder | LoadedEncoder:
    """A registry name builds an encoder; a model URI loads a logged one."""
    if name.startswith(MODEL_URI_SCHEMES):
        return load_logged(name, device)
    return encoders.get(name, weights).to(device)


def log_samples(s: Setup, n: int = 8) -> None:
    """A grid of clean test images over their corruption (``samples.png``)."""
    views = next(iter(s.stream("test", batch_size=n, purpose="eval").epoch(0)))
    log_image_grid(views.clean, views.corrupted, "samples.png", corruption=s.corruption.spec)


def checkpointer(opts, enabled: bool = True) -> Checkpointer | None:
    """The active run's checkpoints ([cinv.training.checkpoint.for_active_run][]), unless disabled."""
    return for_active_run(opts) if enabled else None


def method_list(text: str) -> list[str]:
    """Method names separated by ',', each registered in ``methods.METHODS`` (plug-ins included), by
    their one name (an old name, an alias, stands for it)."""
    names = [METHODS.canonical(m.strip()) for m in text.split(",") if m.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"a method is named twice in {text!r}")
    return names


MethodList = Annotated[str, AfterValidator(lambda v: ", ".join(method_list(v)))]
