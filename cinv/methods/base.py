"""One interface for every robust-training method, so that methods are peers.

A method is one module holding one class over [Method][] and its registry entry, the way
solo-learn adds a method, and one name everywhere: the registry name is the module's name, the
class's name (lower-cased), the prefix of its options on every command (``<name>_<option>``) and
the ``method`` tag of the models it logs. Beside the class sit its typed ``Options`` and its
``PRESETS`` (``cpu`` and ``paper``), the way timm keeps ``default_cfgs`` next to
``@register_model``: the only place a method's settings are declared. ``main``, ``experiment``,
``benchmark``, ``tune``, ``report`` and the tables find methods by name in
[cinv.methods.METHODS][] and ask them for nothing else.

Example, a method as a plug-in would write it (``my_method.py``)::

    class MyMethodOptions(OptimOptions):
        backbone: EncoderRef = Field("efficientnet_lite0", description="pretrained backbone")

    @METHODS.register("my_method")
    class MyMethod(Method):
        display = "my method"
        Options = MyMethodOptions
        PRESETS = {"cpu": {"epochs": 3, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0},
                   "paper": {"epochs": 25, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0}}
        space = {"lr": Range(1e-4, 1e-2, log=True)}
        produces = frozenset({"classifier", "encoder"})

        def build(self, ctx, opts):
            backbone = encoders.get(opts.backbone)
            return Classifier(backbone, ctx.splits.num_classes, backbone.embed_dim).to(ctx.device)

        def objective(self, model, ctx, opts, stream):
            return lambda views: F.cross_entropy(model(views.corrupted).float(), views.labels)

Then ``-P methods=student,my_method -P my_method_lr=0.01`` works in every command that runs methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import mlflow
import torch
from mlflow.models.model import ModelInfo
from torch import nn

from cinv import distributed
from cinv.config.base import PRESET_NAMES, Released, Strict, validate
from cinv.context import Setup
from cinv.data.datasets import EMBEDDED_FACTS, DataFacts, label_subset
from cinv.data.stream import BatchStream
from cinv.registry import Registry
from cinv.runtime import derive_seed
from cinv.tracking.models import log_classifier, log_encoder
from cinv.tracking.runs import last_step, training_logger
from cinv.training.checkpoint import Checkpointer
from cinv.training.loop import Objective, Optim, Trainer, validation_loss

__all__ = ["Method", "Range", "METHODS", "CELL_LABELS", "ModelStepHook", "released_schedule", "CI_CODE", "ROCL_CODE"]

# The authors' released code, read at these commits (paper_vs_code cites file and line in them).
CI_CODE = "Sriram-Ravula/Contrastive-Inversion"
ROCL_CODE = "Kim-Minseon/RoCL"


def released_schedule(opts, t_max: int) -> Optim:
    """Adam with ``opts.schedule``: ``cosine`` over every step, or ``released``: the contrastive-
    inversion code's CosineAnnealingLR(T_max=t_max) stepped once per epoch by Lightning."""
    if opts.schedule == "released":
        return Optim(epochs=opts.epochs, lr=opts.lr, weight_decay=opts.weight_decay, schedule="epoch_cosine", period=t_max)
    return Optim(epochs=opts.epochs, lr=opts.lr, weight_decay=opts.weight_decay)

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
        name: the one name users type and cinv records (registry, module, option prefix, model tag).
        display: its row label in every table; ``title``: the longer label of the main job's table.
        Options: its typed options; ``PRESETS``: per preset (``cpu``, ``paper``), the values of
            the options that have no default or whose value depends on the preset. The ``paper``
            preset is what the method's paper ran, unless [paper][] says otherwise.
        space: what ``tune`` searches, by option name.
        produces: ``{"encoder"}`` (a linear probe makes it a classifier), or ``{"classifier",
            "encoder"}`` (it trains its own head; its encoder is the fine-tuned backbone).
        registers: the kind its ``registered_model_name`` registers: ``encoder``, or ``classifier``
            (FCL, whose model is the whole network).
        clean_training: trains on clean images (RoCL, FCL); otherwise on the command's corruption.
        needs_teacher: uses the frozen teacher of the run context (``ctx.teacher``).
        trains: False for a method that only evaluates an existing network (the teacher's representations).
        RELEASED: each setting where its paper's text and its authors' released code disagree
            ([cinv.config.base.Released][]), with what cinv does and the option that runs the other.
    """

    name: ClassVar[str] = ""  # set by METHODS.register: the registered name, written once
    display: ClassVar[str] = ""
    title: ClassVar[str] = ""
    Options: ClassVar[type[Strict]] = Strict
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"cpu": {}, "paper": {}}
    space: ClassVar[dict[str, Range]] = {}
    produces: ClassVar[frozenset[str]] = frozenset({"encoder"})
    registers: ClassVar[str] = "encoder"  # the kind its registered_model_name names
    clean_training: ClassVar[bool] = False
    needs_teacher: ClassVar[bool] = False
    trains: ClassVar[bool] = True
    RELEASED: ClassVar[tuple[Released, ...]] = ()  # where its paper's text and its released code disagree

    # ---- its settings ------------------------------------------------------------------------

    def preset(self, name: str, data: DataFacts) -> dict[str, Any]:
        """The option values preset ``name`` sets on this data (a method whose settings depend on
        the dataset overrides this)."""
        if name not in PRESET_NAMES:
            raise ValueError(f"unknown preset {name!r}; presets are {', '.join(PRESET_NAMES)}")
        return dict(self.PRESETS.get(name, {}))

    def paper(self, data: DataFacts) -> dict[str, Any]:
        """What the method's paper ran on the paper's data, option by option (a value may be a
        [cinv.config.base.Paper][] that says where): by default its options' plain defaults
        and its ``paper`` preset. A method leaves out what its paper does not state."""
        defaults = {k: f.default for k, f in self.Options.model_fields.items() if not f.is_required()}
        return defaults | self.preset("paper", data)

    def configure(self, preset: str = "cpu", data: DataFacts | None = None, **values) -> Strict:
        """Validated options: preset ``preset`` on ``data`` (default: the embedded dataset), then ``values``."""
        data = data or EMBEDDED_FACTS
        return validate(self.Options, self.preset(preset, data) | values, lambda loc: f"{self.name}_{'.'.join(loc)}")

    # ---- what a method defines ---------------------------------------------------------------

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

    def optim(self, opts) -> Optim:
        """Optimiser and schedule (default: Adam with a cosine schedule over every step)."""
        return Optim(epochs=opts.epochs, lr=opts.lr, weight_decay=opts.weight_decay)

    def variant(self, opts) -> str:
        """What a run of it is tagged as (``cinv.method``): its name, or the declared variant its
        options select (FCL's ``method``, RoCL without its attack: ``simclr``)."""
        return self.name

    def source(self, opts, teacher: str) -> str:
        """The pretrained network it starts from (the report's ``teacher`` column)."""
        for field in ("backbone", "encoder"):
            if hasattr(opts, field):
                return str(getattr(opts, field))
        return teacher

    # ---- what every method shares ------------------------------------------------------------

    def train(self, ctx: Setup, opts, *, label_fraction: float = 1.0, on_step: ModelStepHook | None = None,
              checkpointer: Checkpointer | None = None, log: bool = True) -> nn.Module:
        """Build, fit on (a class-balanced ``label_fraction`` of) the training split, return [output][] in eval mode.

        The global torch RNG (which initialises new layers) is seeded from ``ctx.seed`` and the
        method first: a training depends on its seed alone, not on what the process ran before it,
        so seed 1 gives the same model whether it runs alone or after seed 0."""
        torch.manual_seed(derive_seed(ctx.seed, "init", self.name))
        model = self.build(ctx, opts)
        data = label_subset(ctx.splits.train, label_fraction, ctx.seed) if label_fraction < 1 else None
        stream = self.stream(ctx, opts, data)
        objective = self.objective(model, ctx, opts, stream)
        hook = (lambda step, total: on_step(self.output(model), step, total)) if on_step else None
        validate = self.validation(ctx, model, objective, stream) if log else None
        Trainer(model, objective, stream, self.optim(opts), precision=ctx.precision, checkpointer=checkpointer,
                desc=self.name, on_step=hook, log=training_logger() if log else None, validate=validate).run()
        if log:
            mlflow.flush_async_logging()  # the per-step points, before a model links the final step's metrics
        return self.output(model).eval()

    VALIDATION_IMAGES = 2048  # at most this many validation images per epoch: a curve, not an evaluation

    def validation(self, ctx: Setup, model: nn.Module, objective, stream: BatchStream):
        """``val_loss`` per epoch (the objective on the validation split, the training stream's
        corruption, the same draws each epoch), or None without a validation split, and in a run
        over several processes (only the main process logs, and the objective gathers across all)."""
        if ctx.splits.val is None or len(ctx.splits.val) == 0 or distributed.world().size > 1:
            return None
        val = ctx.stream("val", batch_size=stream.batch_size, purpose="eval", corruption=stream.corruption,
                         augment=stream.augment)
        batches = -(-self.VALIDATION_IMAGES // stream.batch_size)
        return lambda: validation_loss(model, objective, val, ctx.precision, max_batches=batches)

    def encoder(self, trained: nn.Module) -> nn.Module:
        """The representation: the trained encoder, or a classifier's backbone."""
        return trained.encoder if "classifier" in self.produces else trained

    def provenance(self, opts, teacher: str) -> dict[str, str]:
        """What its logged models are tagged with besides ``method`` (e.g. the backbone)."""
        tags = {"backbone": getattr(opts, "backbone", None), "encoder_name": getattr(opts, "encoder", None)}
        return {k: str(v) for k, v in tags.items() if v is not None}

    def log(self, ctx: Setup, trained: nn.Module, opts, teacher: str, **produced_by) -> dict[str, ModelInfo]:
        """Log what the method produced: ``encoder`` always, ``classifier`` when it trains its own head."""
        tags = {"method": self.name, **self.provenance(opts, teacher), **produced_by}
        step = last_step("train_loss_epoch")  # its final epoch's metrics go with the model
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
