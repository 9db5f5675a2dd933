"""One typed configuration per command: unknown keys and out-of-range values are errors.

Configs nest option groups (data, student, probe, ...). On the command line and in MLproject
they are flat ``key=value`` parameters: a group's fields appear under its prefix
(``student_lr``), or bare when the group is the command's own (``lr`` for ``student``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from cinv import distortions, encoders, losses
from cinv.data.datasets import EMBEDDED

STUDENT_MODEL, BASELINE_MODEL = "cinv-student", "cinv-baseline"  # registered model names, one per use
EMBEDDED_IMAGE_SIZE = 48  # chosen so the embedded main job fits in minutes on 2 CPU cores
MODEL_URI_SCHEMES = ("models:/", "runs:/", "file:/", "mlflow-artifacts:/")


class ConfigError(ValueError):
    """Invalid parameters, reported with the flat parameter names users typed."""


@dataclass(frozen=True)
class Section:
    """Marks a nested option group and the prefix its fields take when flattened."""

    prefix: str = ""


def _corruption(spec: str) -> str:
    return distortions.from_spec(spec).spec


def _encoder(name: str) -> str:
    if name.startswith(MODEL_URI_SCHEMES):
        return name
    return encoders.REGISTRY.check(name)


def _model_uri(uri: str) -> str:
    if not uri.startswith(MODEL_URI_SCHEMES):
        raise ValueError(f"must be an MLflow model URI starting with one of {', '.join(MODEL_URI_SCHEMES)}; got {uri!r}")
    return uri


def _dataset(value: str) -> str:
    if value != EMBEDDED and not Path(value).expanduser().is_dir():
        raise ValueError(f"dataset folder {value} not found; give '{EMBEDDED}' or an ImageFolder root with train/ and val/")
    return value


def _folder(value: str) -> str:
    if not Path(value).expanduser().is_dir():
        raise ValueError(f"folder {value} not found")
    return value


Corruption = Annotated[str, AfterValidator(_corruption)]
OptionalCorruption = Annotated[str | None, AfterValidator(lambda v: None if v is None else _corruption(v))]
EncoderRef = Annotated[str, AfterValidator(_encoder)]
LossName = Annotated[str, AfterValidator(losses.REGISTRY.check)]
ModelURI = Annotated[str, AfterValidator(_model_uri)]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DataOptions(Strict):
    dataset: Annotated[str, AfterValidator(_dataset)] = Field(
        EMBEDDED, description="'embedded' (CIFAR-10 subset shipped with cinv) or an ImageFolder root with train/ and val/"
    )
    class_list: str | None = Field(
        None, description="classes to use from a folder dataset: imagenet100, imagenet100b, or a file with one folder name per line"
    )
    image_size: int | None = Field(
        None, ge=16, le=1024, description=f"model input size in pixels; default {EMBEDDED_IMAGE_SIZE} for embedded, 224 for folders"
    )
    val_fraction: float = Field(0.05, gt=0, lt=1, description="share of folder train images held out for validation")
    num_workers: int = Field(4, ge=0, le=64, description="data-loader worker processes (folder datasets)")
    limit_per_class: int | None = Field(None, ge=1, description="use at most this many images per class in each split (quick runs)")
    skip_bad_images: bool = Field(False, description="leave out unreadable image files (counted in the metric skipped_images) "
                                  "instead of stopping; checks every file first")

    @property
    def resolved_image_size(self) -> int:
        return self.image_size or (EMBEDDED_IMAGE_SIZE if self.dataset == EMBEDDED else 224)


class OptimOptions(Strict):
    epochs: int = Field(ge=1, le=10_000, description="training epochs")
    batch_size: int = Field(ge=2, le=65_536, description="images per optimiser step")
    lr: float = Field(gt=0, le=10, description="Adam learning rate (cosine schedule over all steps)")
    weight_decay: float = Field(ge=0, le=1, description="Adam weight decay")
    checkpoint_every_steps: int = Field(0, ge=0, description="also checkpoint every N optimiser steps (0: every epoch only)")


class StudentOptions(OptimOptions):
    """Paper defaults: Adam lr 1e-4, weight decay 1e-4, batch 256, 25 epochs, tau 0.1."""

    epochs: int = Field(25, ge=1, le=10_000, description="student training epochs")
    batch_size: int = Field(256, ge=2, le=65_536, description="student batch size (contrastive negatives)")
    lr: float = Field(1e-4, gt=0, le=10, description="student Adam learning rate")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="student Adam weight decay")
    loss: LossName = Field("student_teacher", description=f"inversion loss: {', '.join(losses.names())}")
    temperature: float = Field(0.1, gt=0, le=100, description="contrastive temperature tau")
    registered_model_name: str | None = Field(None, description="register the student encoder under this name")


class BaselineOptions(OptimOptions):
    """Paper defaults: Adam lr 1e-3, batch 64, 25 epochs, cross-entropy, end to end."""

    backbone: EncoderRef = Field("efficientnet_lite0", description="pretrained backbone (the paper: torchvision:resnet101)")
    backbone_weights: str | None = Field(None, description="backbone weights: tag, file path, or 'none'; default: the backbone's own")
    epochs: int = Field(25, ge=1, le=10_000, description="baseline fine-tuning epochs")
    batch_size: int = Field(64, ge=2, le=65_536, description="baseline batch size")
    lr: float = Field(1e-3, gt=0, le=10, description="baseline Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, le=1, description="baseline Adam weight decay")
    registered_model_name: str | None = Field(None, description="register the fine-tuned backbone (an encoder) under this name")


class ProbeOptions(Strict):
    """Paper defaults: Adam lr 1e-3, batch 128, 10 epochs, trained on corrupted images."""

    epochs: int = Field(10, ge=1, le=10_000, description="probe epochs")
    batch_size: int = Field(128, ge=1, le=65_536, description="probe batch size (the paper used 8 for label fractions)")
    lr: float = Field(1e-3, gt=0, le=10, description="probe Adam learning rate")
    label_fraction: float = Field(1.0, gt=0, le=1, description="class-balanced fraction of training labels the probe sees")
    feature_draws: int = Field(1, ge=1, le=1000, description="corruption draws of the train set cached as features; epochs reuse them in turn")
    normalize: bool = Field(False, description="L2-normalise features before the linear layer")


class EvalOptions(Strict):
    draws: int = Field(10, ge=1, le=10_000, description="independent corruption draws of the evaluation set")
    batch_size: int = Field(256, ge=1, le=65_536, description="evaluation batch size")
    draw_seed: int = Field(0, ge=0, description="seed of the evaluation draws; equal seeds give every model the same draws")


class RunOptions(Strict):
    seed: int = Field(0, ge=0, description="seed for initialisation, shuffling, augmentation and training corruptions")
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N")


_CORRUPTION = Field("random_mask(fraction=0.9)", description="corruption spec, e.g. random_mask(fraction=0.9), gaussian_noise(std=(0.1, 0.3)), gaussian_blur(kernel_size=21, sigma=5)")
_TEACHER = Field("efficientnet_lite0", description="teacher encoder: efficientnet_lite0, open_clip:RN101, torchvision:resnet101, ...")
_TEACHER_WEIGHTS = Field(None, description="teacher weights: pretrained tag (openai), file path, or 'none'; default: the encoder's own")


_RESUME = Field(None, description="continue this FAILED or KILLED run from its latest checkpoint ('latest': the most "
               "recent unfinished run of this command)")


class StudentConfig(RunOptions):
    """Train a robust student encoder by contrastive inversion of a frozen teacher."""

    resume_run_id: str | None = _RESUME
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = _CORRUPTION
    teacher: EncoderRef = _TEACHER
    teacher_weights: str | None = _TEACHER_WEIGHTS
    train: Annotated[StudentOptions, Section()] = StudentOptions()


class BaselineConfig(RunOptions):
    """Fine-tune a pretrained backbone with a new head end to end on corrupted images."""

    resume_run_id: str | None = _RESUME
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = _CORRUPTION
    train: Annotated[BaselineOptions, Section()] = BaselineOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()


class ProbeConfig(RunOptions):
    """Fit a linear probe on a frozen encoder's features of corrupted images, then evaluate it."""

    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = _CORRUPTION
    encoder: EncoderRef = Field("efficientnet_lite0", description="encoder name (as for teacher) or MLflow model URI of a student")
    encoder_weights: str | None = Field(None, description="weights for a named encoder; ignored for model URIs")
    probe: Annotated[ProbeOptions, Section()] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()


class EvaluateConfig(RunOptions):
    """Evaluate a logged classifier on independent corruption draws of the test split."""

    model: ModelURI = Field(description="MLflow model URI of a classifier (probe or baseline run's 'classifier')")
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = _CORRUPTION
    split: Literal["test", "val"] = Field("test", description="split to evaluate: test (reported) or val (model selection)")
    eval: Annotated[EvalOptions, Section()] = EvalOptions()


class MainConfig(RunOptions):
    """The whole experiment on one corruption: teacher probes, student, student probe, baseline."""

    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = _CORRUPTION
    teacher: EncoderRef = _TEACHER
    teacher_weights: str | None = _TEACHER_WEIGHTS
    # Small budgets sized for the embedded default on 2 CPU cores (about 6 minutes in all).
    # Registered only once every stage has succeeded ('' skips registration).
    student: Annotated[StudentOptions, Section("student_")] = StudentOptions(
        epochs=3, batch_size=128, lr=2e-3, registered_model_name=STUDENT_MODEL)
    baseline: Annotated[BaselineOptions, Section("baseline_")] = BaselineOptions(epochs=3, registered_model_name=BASELINE_MODEL)
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()


class PromoteConfig(RunOptions):
    """Evaluate a registered version against @champion on one protocol; move @champion only on a clear gain."""

    name: str = Field(STUDENT_MODEL, min_length=1, description="registered model whose versions compete")
    version: int | None = Field(None, ge=1, description="candidate version; default: the latest")
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: OptionalCorruption = Field(None, description="corruption of the protocol; default: the candidate's 'corruption' tag")
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()
    margin_se: float = Field(2.0, ge=0, le=100, description="required gain in standard errors of the paired top-1 difference")


class EmbedConfig(RunOptions):
    """Embed a folder of images with a logged encoder; write file names and embeddings to Parquet."""

    model: ModelURI = Field(f"models:/{STUDENT_MODEL}@champion", description="encoder model URI")
    images: Annotated[str, AfterValidator(_folder)] = Field(description="folder of images (searched recursively)")
    corruption: Corruption = Field("none", description="corrupt the images first, e.g. random_mask(fraction=0.9)")
    batch_size: int = Field(256, ge=1, le=65_536, description="images per encoder pass")
    output: str = Field("embeddings.parquet", min_length=1, description="Parquet file to write (also logged as an artifact)")


class TuneConfig(RunOptions):
    """Search the paper's hyper-parameters with Optuna: one MLflow run per study, one child run per trial."""

    study_name: str = Field("cinv-tune", min_length=1, description="Optuna study; re-running with the same name resumes it")
    method: Literal["student", "baseline"] = Field("student", description="what the trials train")
    space: str = Field("", description="override search ranges, e.g. lr=(1e-4, 1e-2), temperature=(0.1, 0.5); "
                       "student: lr, weight_decay (log), temperature; baseline: lr (log)")
    n_trials: int = Field(20, ge=1, le=100_000, description="trials this worker runs (several workers may share a study)")
    storage: str | None = Field(None, description="Optuna storage: a journal file, or an RDB URL (postgresql://...); "
                                "default: optuna.journal beside the MLflow store")
    pruner: Literal["median", "none"] = Field("median", description="prune trials whose intermediate score is below the median")
    pruner_startup_trials: int = Field(5, ge=0, description="trials completed before pruning starts")
    proxy_epochs: int = Field(1, ge=1, le=10_000, description="training budget per trial (the paper judged after one epoch)")
    reports: int = Field(4, ge=1, le=1000, description="validation scores reported per trial (pruning checkpoints)")
    val_draws: int = Field(2, ge=1, le=1000, description="corruption draws of the validation split per score")
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = _CORRUPTION
    teacher: EncoderRef = _TEACHER
    teacher_weights: str | None = _TEACHER_WEIGHTS
    student: Annotated[StudentOptions, Section("student_")] = StudentOptions(epochs=3, batch_size=128, lr=2e-3)
    baseline: Annotated[BaselineOptions, Section("baseline_")] = BaselineOptions(epochs=3)
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()
    retrain: bool = Field(False, description="retrain with the best parameters for the full budget (student_epochs or "
                          "baseline_epochs), evaluate on the test split, register if *_registered_model_name is set")

    @model_validator(mode="after")
    def _space(self):
        from cinv.tuning import parse_space

        parse_space(self.method, self.space)
        return self


COMMANDS: dict[str, type[Strict]] = {
    "main": MainConfig,
    "student": StudentConfig,
    "baseline": BaselineConfig,
    "probe": ProbeConfig,
    "evaluate": EvaluateConfig,
    "promote": PromoteConfig,
    "embed": EmbedConfig,
    "tune": TuneConfig,
}


# ---- flat view ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FlatField:
    key: str
    path: tuple[str, ...]
    annotation: Any
    default: Any
    required: bool
    description: str


def _section(field) -> Section | None:
    return next((m for m in field.metadata if isinstance(m, Section)), None)


def flat_fields(cls: type[Strict], defaults: Strict | None = None, prefix: str = "", path: tuple = ()) -> list[FlatField]:
    """Every leaf parameter of a config with its flat key, in declaration order."""
    out: list[FlatField] = []
    for name, field in cls.model_fields.items():
        section = _section(field)
        default = getattr(defaults, name) if defaults is not None else field.get_default(call_default_factory=True)
        if section is not None:
            out += flat_fields(field.annotation, default, prefix + section.prefix, path + (name,))
        else:
            out.append(FlatField(prefix + name, path + (name,), field.annotation, default, field.is_required() and defaults is None,
                                 field.description or ""))
    keys = [f.key for f in out]
    assert len(keys) == len(set(keys)), f"{cls.__name__}: flat keys collide: {keys}"
    return out


def _optional(annotation) -> bool:
    return type(None) in get_args(annotation) or get_origin(annotation) is None and annotation is type(None)


def build(cls: type[Strict], flat: dict[str, Any]):
    """Validate flat parameters (strings from a command line are fine) into a config."""
    fields = {f.key: f for f in flat_fields(cls)}
    unknown = sorted(set(flat) - set(fields))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    # Start from the command's own defaults: a group's defaults in one command (main's short
    # student budget) differ from the group's class defaults (the paper's), and overriding one
    # parameter must not reset the others.
    values = {key: f.default for key, f in fields.items() if not f.required}
    values.update(flat)
    nested: dict[str, Any] = {}
    for key, value in values.items():
        field = fields[key]
        if value == "" and _optional(field.annotation):
            value = None
        node = nested
        for part in field.path[:-1]:
            node = node.setdefault(part, {})
        node[field.path[-1]] = value
    try:
        return cls.model_validate(nested)
    except ValidationError as exc:
        by_path = {f.path: f.key for f in fields.values()}
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
            key = by_path.get(loc, ".".join(loc)) or "parameters"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "value_error" and "input" in err and not isinstance(err["input"], dict) else ""))
        raise ConfigError("invalid parameter " + "; ".join(problems)) from None


def to_flat(config: Strict) -> dict[str, Any]:
    """The resolved config as flat parameters (what gets logged to MLflow)."""
    out = {}
    for f in flat_fields(type(config)):
        node = config
        for part in f.path:
            node = getattr(node, part)
        out[f.key] = node
    return out
