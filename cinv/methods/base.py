"""One interface for every robust-training method, so that methods are peers.

A method is one class over :class:`Method` and one registry entry, the way solo-learn adds a
method: its name and row label, its typed options (next to it), its Optuna search space, what it
produces (an encoder, a classifier, or both), how it builds its model and the objective the one
training loop (:func:`cinv.training.loop.fit`) calls per batch. ``main``, ``experiment``,
``benchmark``, ``tune``, ``report`` and the tables find methods by name in
:data:`cinv.methods.METHODS` and ask them for nothing else.

Example, a method as a plug-in would write it::

    @METHODS.register("my_method")
    class MyMethod(Method):
        name, display = "my_method", "my method"
        Options = MyOptions              # an OptimOptions subclass
        space = {"lr": Range(1e-4, 1e-2, log=True)}
        produces = frozenset({"classifier", "encoder"})

        def build(self, ctx, opts):
            backbone = encoders.get(opts.backbone, opts.backbone_weights)
            return Classifier(backbone, ctx.splits.num_classes, backbone.embed_dim).to(ctx.device)

        def objective(self, model, ctx, opts, stream):
            return lambda views: F.cross_entropy(model(views.corrupted).float(), views.labels)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from mlflow.models.model import ModelInfo
from torch import nn

from cinv.config.base import Strict
from cinv.context import Setup
from cinv.data.datasets import label_subset
from cinv.data.stream import BatchStream
from cinv.registry import Registry
from cinv.runtime import derive_seed
from cinv.tracking.models import log_classifier, log_encoder
from cinv.tracking.runs import log_epoch_metrics
from cinv.training.checkpoint import Checkpointer
from cinv.training.loop import Objective, fit

__all__ = ["Method", "Range", "METHODS", "CELL_LABELS", "ModelStepHook"]

ModelStepHook = Callable[[nn.Module, int, int], None]  # (model in training, steps done, total steps)


@dataclass(frozen=True)
class Range:
    """One dimension of a search space."""

    low: float
    high: float
    log: bool = False


class Method:
    """A robust-training method: what it trains, on what, with which objective.

    Attributes:
        name: the registry name users type (``student``, ``baseline``, ``rocl``, ...).
        display: its row label in every table; ``title``: the longer label of the main job's table.
        Options: its typed options (validated like every config; a command holds them under ``name``).
        space: what ``tune`` searches, by option name.
        produces: ``{"encoder"}`` (a linear probe makes it a classifier), or ``{"classifier",
            "encoder"}`` (it trains its own head; its encoder is the fine-tuned backbone).
        clean_training: trains on clean images (RoCL, FCL); otherwise on the command's corruption.
        needs_teacher: uses the frozen teacher of the run context (``ctx.teacher``).
        model_tag: the ``method`` tag of the models it logs.
    """

    name: ClassVar[str] = ""
    display: ClassVar[str] = ""
    title: ClassVar[str] = ""
    Options: ClassVar[type[Strict]] = Strict
    space: ClassVar[dict[str, Range]] = {}
    produces: ClassVar[frozenset[str]] = frozenset({"encoder"})
    clean_training: ClassVar[bool] = False
    needs_teacher: ClassVar[bool] = False
    model_tag: ClassVar[str] = ""

    # ---- what a method defines -------------------------------------------------------------

    def build(self, ctx: Setup, opts) -> nn.Module:
        """The model to train, on ``ctx.device``."""
        raise NotImplementedError

    def objective(self, model: nn.Module, ctx: Setup, opts, stream: BatchStream) -> Objective:
        """``views -> loss`` for one batch."""
        raise NotImplementedError

    def output(self, model: nn.Module) -> nn.Module:
        """What the method produces from the model it trained (default: the model itself)."""
        return model

    def stream(self, ctx: Setup, opts, dataset=None) -> BatchStream:
        """The training batches (default: the command's corruption, augmented, shuffled)."""
        return ctx.stream("train", batch_size=opts.batch_size, purpose="train", dataset=dataset)

    def fit_options(self, opts) -> dict:
        """Optimiser and schedule for :func:`fit` (default: Adam with a cosine schedule)."""
        return {}

    def source(self, opts, teacher: str) -> str:
        """The pretrained network it starts from (the report's ``teacher`` column)."""
        for field in ("backbone", "encoder"):
            if hasattr(opts, field):
                return str(getattr(opts, field))
        return teacher

    # ---- what every method shares ----------------------------------------------------------

    def options(self, cfg) -> Strict:
        """This method's options in a command's config (its group named after the method), or its defaults."""
        opts = getattr(cfg, self.name, None)
        return opts if isinstance(opts, self.Options) else self.Options()

    def train(self, ctx: Setup, opts, *, label_fraction: float = 1.0, on_step: ModelStepHook | None = None,
              checkpointer: Checkpointer | None = None, log: bool = True) -> nn.Module:
        """Build, fit on (a class-balanced ``label_fraction`` of) the training split, return :meth:`output` in eval mode.

        The global torch RNG (which initialises new layers) is seeded from ``ctx.seed`` and the
        method first: a training depends on its seed alone, not on what the process ran before it,
        so seed 1 gives the same model whether it runs alone or after seed 0."""
        torch.manual_seed(derive_seed(ctx.seed, "init", self.name))
        model = self.build(ctx, opts)
        data = label_subset(ctx.splits.train, label_fraction, ctx.seed) if label_fraction < 1 else None
        stream = self.stream(ctx, opts, data)
        objective = self.objective(model, ctx, opts, stream)
        hook = (lambda step, total: on_step(self.output(model), step, total)) if on_step else None
        fit(model, objective, stream, epochs=opts.epochs, lr=opts.lr, weight_decay=opts.weight_decay,
            on_epoch=log_epoch_metrics if log else None, on_step=hook, checkpointer=checkpointer, desc=self.name,
            precision=ctx.precision, **self.fit_options(opts))
        return self.output(model).eval()

    def encoder(self, trained: nn.Module) -> nn.Module:
        """The representation: the trained encoder, or a classifier's backbone."""
        return trained.encoder if "classifier" in self.produces else trained

    def provenance(self, opts, teacher: str) -> dict[str, str]:
        """What its logged models are tagged with besides ``method`` (e.g. the backbone)."""
        tags = {"backbone": getattr(opts, "backbone", None), "encoder_name": getattr(opts, "encoder", None)}
        return {k: str(v) for k, v in tags.items() if v is not None}

    def log(self, ctx: Setup, trained: nn.Module, opts, teacher: str, **produced_by) -> dict[str, ModelInfo]:
        """Log what the method produced: ``encoder`` always, ``classifier`` when it trains its own head."""
        tags = {"method": self.model_tag or self.name, **self.provenance(opts, teacher), **produced_by}
        step = opts.epochs - 1 if hasattr(opts, "epochs") else None  # its final epoch's metrics go with the model
        infos = {"encoder": log_encoder(ctx, self.encoder(trained), name=f"{self.name}_encoder", step=step, **tags)}
        if "classifier" in self.produces:
            infos["classifier"] = log_classifier(ctx, trained, ctx.corruption, name=f"{self.name}_classifier", step=step, **tags)
        return infos


METHODS: Registry[Method] = Registry("method")

# Row labels of evaluation cells that are not a method's own (its display): one place for all.
CELL_LABELS = {
    "teacher_clean_probe": ("teacher probe trained on clean images", "Teacher, clean images (reference)"),
    "student_clean_probe": ("clean teacher probe on the student", "Clean teacher probe on the student"),
    "clean_classifier": ("classifier trained on clean images", "Classifier trained on clean images"),
    "probe": ("linear probe", "Linear probe"),
    "classifier": ("logged classifier", "Logged classifier"),
}
