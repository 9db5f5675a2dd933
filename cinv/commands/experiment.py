"""``experiment``: one of the paper's experiments (``experiments.paper``), once per training seed;
trainings and evaluations as child runs, one table and one figure."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import mlflow
import pandas as pd
from pydantic import AfterValidator, Field

from cinv import losses
from cinv.commands.common import MethodList, method_list, with_teacher
from cinv.config.base import Paper, Released, Runtime, Section, Select
from cinv.config.options import (
    INVERSION_PAPER,
    INVERSION_RELEASED,
    RESUME,
    Comparison,
    DataOptions,
    EvalOptions,
    FractionList,
    LossList,
    OptionalCorruption,
    ProbeOptions,
    SpecList,
    TargetList,
    WithTeacher,
    float_list,
    loss_list,
    spec_list,
    target_list,
)
from cinv.corruption.restoration import DeepDecoder, NLMeans
from cinv.corruption.restoration import from_spec as restorer_from_spec
from cinv.data.datasets import EMBEDDED
from cinv.evaluation.published import target_name
from cinv.experiments import EXPERIMENTS
from cinv.experiments.engine import hold_against_paper, log_results
from cinv.experiments.engine import run as run_recipe
from cinv.methods.base import CI_CODE
from cinv.tracking import schema
from cinv.training.context import setup

# The paper's experiments; main and benchmark are recipes of the same engine with commands of their own.
EXPERIMENT_NAMES = ("fixed_corruption", "label_efficiency", "severity_shift", "label_shift", "transfer", "loss_ablation",
                    "original_representations", "clean_probe_transfer", "pixel_baselines", "imagenet_c")


def restorer_spec(spec: str) -> str:
    """A restorer spec that builds (registered name, known parameters)."""
    restorer_from_spec(spec)
    return spec


class ExperimentConfig(Comparison, WithTeacher):
    """One of the paper's experiments: trainings and evaluations as child runs, one table and one figure.

    Empty lists take the experiment's own defaults (the paper's protocol); see the README."""

    PAPER = INVERSION_PAPER | {
        "targets": Paper("cifar10; cifar100; stl10; covid_xray; imagenet100b", "section 4.3 and Table 2: CIFAR-10, "
                         "CIFAR-100, STL-10, the COVID X-ray set and ImageNet-100B"),
        "label_shift_table": Paper("imagenet100", "Table 3: five classes of the full ImageNet as ImageNet-100 classes")}
    PAPER_VS_CODE = (*INVERSION_RELEASED, *(Released(*row[:4], changes_training=False, only=row[4]) for row in (
        ("inpainting", "appendix D.3: Deep Decoder 'to perform inpainting on images with random missing pixels'",
         f"{CI_CODE} inpainting_test.py:82-84 @91b1738 draws one mask, line 116 a new one for every image, and lines "
         "129-132 with deep_decoder/include/fit.py:101 fit the network to the first mask's pixels (zeros included)",
         "the network is fitted to the very pixels that were kept (the text); the released mismatch is a bug, not "
         "reproduced", ("pixel_baselines",)),
        ("denoising", "appendix D.3: non-local means, no parameters and no clipping stated",
         f"{CI_CODE} denoising_baselines.py:56-60 @9cd05fe: denoise_nl_means(sigma=estimate, fast_mode=True) with "
         "scikit-image's default h=0.1 at every noise level, its output not clipped to [0, 1]",
         "preset paper: nl_means(h=0.1, clamp=False), as released: the paper is silent, so the code decides (unclipped "
         "noisy pixels reach the classifier as they did there); cinv's default clips, a camera's range", ("pixel_baselines",)),
        ("label_shift_table", "Table 3: class names only ('Cup -> Cocktail Shaker', ...)",
         f"{CI_CODE} README.md:38 @7e998f7: n07930864 (cup), the ILSVRC-2012 class; utils.py:1061-1069 @9cd05fe maps the "
         "classes by name", "n07930864, as released (the spec's n03147509 is a WordNet synset with no ImageNet folder)",
         ("label_shift",)),
        ("train_corruption", "appendix D.8: Gaussian blur with sigma in [1, 5], noise in [0.05, 0.5], each with "
         "probability 0.8 (no kernel size)",
         f"{CI_CODE} utils.py:825 @9cd05fe: transforms.GaussianBlur(kernel_size=23, sigma=[1, 5])",
         "random_blur_noise's kernel is 23 pixels, as released (cinv had 31: 3 sigma at sigma 5)", ("imagenet_c",)))))
    # Tables 7/8 restore with what the authors' scripts ran: inpainting_test.py's Deep Decoder and
    # denoising_baselines.py's non-local means (cinv.corruption.restoration, RELEASED beside each).
    PRESETS = {"paper": {"inpainting": DeepDecoder.RELEASED, "denoising": NLMeans.RELEASED}}

    name: Annotated[Literal[EXPERIMENT_NAMES], Select()] = Field(
        "fixed_corruption", description=f"experiment: {', '.join(EXPERIMENT_NAMES)}")
    corruptions: Annotated[SpecList, Select()] = Field("", description="evaluation corruptions separated by ';' (default: "
                                                      "the experiment's)")
    train_corruption: Annotated[OptionalCorruption, Select()] = Field(
        None, description="severity_shift / imagenet_c: the corruption (range) the student trains on (default: the "
        "experiment's)")
    label_fractions: Annotated[FractionList, Select()] = Field("", description="probe label fractions, e.g. 1,0.1 "
                                                              "(default: the experiment's)")
    losses: Annotated[LossList, Select()] = Field("", description=f"loss_ablation: losses to compare (default: all of "
                                                 f"{', '.join(losses.names())})")
    targets: Annotated[TargetList, Select()] = Field(
        "", description="transfer: datasets separated by ';': cifar10(root='/data'), cifar100(root=...), stl10(root=...), "
        "folder(root='/data/covid'), folder(root='/data/imagenet', class_list='imagenet100b'), embedded (default)")
    label_shift_table: Annotated[str | None, Select()] = Field(
        None, description="label_shift: TSV of unseen -> seen classes (source_wnid, target_wnid columns) or cifar10 / "
        "imagenet100 (default: cifar10 for embedded, else imagenet100)")
    inpainting: Annotated[str, AfterValidator(restorer_spec)] = Field(
        "inpaint_biharmonic", description="pixel_baselines: restorer spec for masked pixels, e.g. inpaint_biharmonic or "
        "deep_decoder(steps=5000) (preset paper: the authors' inpainting_test.py Deep Decoder)")
    denoising: Annotated[str, AfterValidator(restorer_spec)] = Field(
        "nl_means", description="pixel_baselines: restorer spec for Gaussian noise, e.g. nl_means or nl_means(h=0.1) "
        "(preset paper: the authors' denoising_baselines.py non-local means)")
    clean_classifier: Literal["backbone", "teacher"] = Field(
        "backbone", description="pixel_baselines: the classifier trained on clean images that classifies restored ones: "
        "the pretrained baseline_backbone with a probe fitted on clean images (the paper's Tables 7/8), or the teacher's")
    baseline_fractions: bool = Field(False, description="fixed_corruption / label_efficiency: also fine-tune the baseline "
                                     "on each label fraction (not in the paper, whose baseline always sees all labels)")
    reuse: Annotated[bool, Runtime()] = Field(True, description="reuse a model already logged with the same training "
                                              "configuration (fingerprint tag) instead of training it again")
    resume_run_id: Annotated[str | None, Runtime()] = RESUME
    data: Annotated[DataOptions, Section()] = DataOptions()
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()
    methods: Annotated[MethodList, Select()] = Field(
        "", description="methods to compare, separated by ',' (any registered method, plug-ins included; default: the "
        "experiment's own, e.g. student, baseline)")

    # Settings that only some experiments read: the others' recipes leave them out.
    READ_BY: ClassVar[dict[str, tuple[str, ...]]] = {"inpainting": ("pixel_baselines",), "denoising": ("pixel_baselines",),
               "clean_classifier": ("pixel_baselines",), "baseline_fractions": ("fixed_corruption", "label_efficiency"),
               "targets": ("transfer",), "label_shift_table": ("label_shift",)}

    def canonical(self, settings):
        settings = super().canonical(settings)
        if "targets" in settings:  # the targets as the paper names them; default the experiment's own dataset
            settings["targets"] = "; ".join(target_name(t) for t in self.target_list) or "embedded"
        if "label_shift_table" in settings and not settings["label_shift_table"]:
            settings["label_shift_table"] = "cifar10" if self.data.dataset == EMBEDDED else "imagenet100"
        return {k: v for k, v in settings.items() if self.name in self.READ_BY.get(k, (self.name,))}

    def compared(self) -> list[str]:
        """The methods the experiment compares: ``methods`` when given, else the experiment's own."""
        return method_list(self.methods) or list(EXPERIMENTS.get(self.name).methods)

    def method_names(self) -> list[str]:
        return list(dict.fromkeys(["teacher", *self.compared(), *EXPERIMENTS.get(self.name).uses]))

    def check_options(self) -> None:
        if self.methods and not EXPERIMENTS.get(self.name).compares:
            raise ValueError(f"methods: {self.name} has fixed cells ({EXPERIMENTS.get(self.name).doc.splitlines()[0]}); "
                             "it does not compare methods")

    @property
    def corruption_list(self) -> list[str]:
        return spec_list(self.corruptions)

    @property
    def fraction_list(self) -> list[float]:
        return float_list(self.label_fractions)

    @property
    def target_list(self) -> list[str]:
        return target_list(self.targets)

    @property
    def loss_list(self) -> list[str]:
        return loss_list(self.losses)


def run(cfg: ExperimentConfig) -> pd.DataFrame:
    s = with_teacher(setup(cfg, "none"), cfg.teacher, cfg.teacher_weights)
    mlflow.set_tags({schema.STAGE: "experiment", schema.EXPERIMENT: cfg.name})
    rows, plot, labs = run_recipe(cfg, s, EXPERIMENTS.get(cfg.name))
    hold_against_paper(cfg, rows, labs)
    return log_results(rows, cfg.name, plot)
