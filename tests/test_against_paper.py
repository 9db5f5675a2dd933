"""Every result held against its paper: the published values, the comparison of measured cells,
where the papers' text and their released code disagree, and the options that run as released."""

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cinv import settings
from cinv.commands import COMMANDS
from cinv.corruption import from_spec
from cinv.encoders.base import Encoder, FrozenEncoder, TrainModeBatchNorm
from cinv.evaluation.against_paper import NOT_IN_PAPER, compare, family_means, headline, relevant_deviations
from cinv.evaluation.published import PAPERS, PUBLISHED, by_paper, counterparts, target_name
from cinv.experiments import EXPERIMENTS
from cinv.losses import inversion
from cinv.methods import METHODS, label
from cinv.training.loop import Optim, make_schedule

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"


# ---- the published values ---------------------------------------------------------------------


def test_published_values_are_stored_once_each_with_its_paper_and_a_known_experiment():
    keys = [(p.paper, p.table, p.row, p.column, p.metric) for p in PUBLISHED]
    assert len(keys) == len(set(keys))
    known = set(EXPERIMENTS.names()) | set(COMMANDS)
    for p in PUBLISHED:
        assert p.paper in PAPERS and set(p.experiments) <= known, p
        assert 0 <= p.value <= 100 and (p.pm is None or 0 <= p.pm < 10), p
        assert p.setting.image_size in (32, 224) and 0 < p.setting.label_fraction <= 1, p
        assert dict(p.labels).get("label_fraction", p.setting.label_fraction) == p.setting.label_fraction, p
    table1 = [p for p in by_paper("inversion") if p.table == "Table 1"]
    assert len(table1) == 24 and {p.column for p in table1} == {"Supervised Baseline", "Ours", "Ours (10% labeled data)"}
    assert by_paper("fcl") == ()  # the FCL text lost its table cells: nothing is made up
    with pytest.raises(KeyError, match="unknown paper"):
        by_paper("simclr")


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds not found")
def test_every_published_number_of_table_1_is_printed_on_its_row_in_the_paper():
    text = next(SEEDS.glob("000_*.txt")).read_text()
    for p in by_paper("inversion"):
        if p.table != "Table 1":
            continue
        words = p.row.split(" ")
        rows = [line for line in text.splitlines() if line.startswith(" ".join(words[:2])) and words[-1] in line]
        assert any(f"{p.value:.2f}" in line for line in rows), p


def test_a_cell_finds_its_published_value_by_experiment_key_condition_and_labels():
    (found,) = counterparts("main", "student", "random_mask(fraction=0.9)", "top1", {"label_fraction": 1.0})
    assert (found.value, found.pm, found.table, found.setting.encoder) == (82.96, 0.08, "Table 1", "CLIP RN101")
    assert counterparts("main", "student", "random_mask(fraction=0.9)", "top1", {"label_fraction": 0.5}) == []
    assert counterparts("main", "student", "random_mask(fraction=0.9)", "top1", {}) == []  # a label the cell lacks
    (tenth,) = counterparts("fixed_corruption", "student", "random_mask(fraction=0.9)", "top1", {"label_fraction": 0.1})
    assert tenth.value == 79.87
    assert counterparts("main", "student", "random_mask(fraction=0.8)", "top1", {"label_fraction": 1.0}) == []
    # The benchmark stands for fixed_corruption only where its model trained on what it is scored on.
    same = {"label_fraction": 1.0, "train_corruption": "random_mask(fraction=0.5)"}
    assert [p.value for p in counterparts("benchmark", "student", "random_mask(fraction=0.5)", "top1", same)] == [85.87]
    other = {"label_fraction": 1.0, "train_corruption": "random_mask(fraction=(0.5, 0.95))"}
    assert counterparts("benchmark", "student", "random_mask(fraction=0.5)", "top1", other) == []
    assert target_name("cifar10(root=/data)") == "cifar10"
    assert target_name("folder(root='/d/imagenet', class_list='imagenet100b')") == "imagenet100b"
    assert target_name("embedded") == "embedded"


def cells(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_compare_puts_the_published_value_the_difference_and_the_cells_deviations_beside_each_cell():
    table = cells(key=["student", "baseline", "teacher_clean_probe"],
                  corruption=["random_mask(fraction=0.9)", "random_mask(fraction=0.9)", "none"],
                  train_corruption=["random_mask(fraction=0.9)", "random_mask(fraction=0.9)", "none"],
                  top1_mean=[44.28, 41.85, 61.95], top1_se=[0.35, 0.29, 0.0], top5_mean=[90.89, 89.16, 96.3],
                  top5_se=[0.14, 0.09, 0.0])
    deviations = {"dataset": {}, "image_size": {}, "student_lr": {}, "baseline_backbone": {}}
    options = {"student": ["student_lr"], "baseline": ["baseline_backbone"]}
    out = compare(table, "main", deviations, options=options, defaults={"label_fraction": 1.0})
    student = out[(out["key"] == "student") & (out["metric"] == "top1")].iloc[0]
    assert student["published"] == "82.96 ± 0.08" and student["difference"] == pytest.approx(44.28 - 82.96)
    assert student["measured"] == "44.28 ± 0.35" and student["cell"] == label("student")
    assert student["deviations"] == "dataset, image_size, student_lr"  # not the baseline's options
    assert student["paper setting"] == "ImageNet-100, CLIP RN101, 224 px"
    top5 = out[(out["key"] == "student") & (out["metric"] == "top5")].iloc[0]
    assert top5["published"] == "96.34 ± 0.04"  # Table 4 beside the top-5
    baseline = out[(out["key"] == "baseline") & (out["metric"] == "top1")].iloc[0]
    assert baseline["published"] == "74.12 ± 0.09" and baseline["deviations"] == "dataset, image_size, baseline_backbone"
    clean = out[out["key"] == "teacher_clean_probe"]
    assert clean["published"].tolist() == [NOT_IN_PAPER] and math.isnan(clean["difference"].iloc[0])
    lines = headline(out)
    assert lines[0].startswith("student (ours), random_mask(fraction=0.9): paper 82.96 ± 0.08 (inversion: Table 1")
    assert "measured 44.28 ± 0.35 (-38.68); deviations: dataset, image_size, student_lr" in lines[0]
    assert lines[-1] == f"1 measured cell(s) {NOT_IN_PAPER}"
    assert relevant_deviations(deviations, "teacher", options) == ["dataset", "image_size"]


def test_imagenet_c_families_are_compared_as_the_mean_over_their_severities():
    spec = "imagenet_c(corruption='fog', severity={})"
    train = "random_blur_noise(blur_sigma=(1, 5), noise_std=(0.05, 0.5), p=0.8, kernel_size=23)"
    table = cells(key=["student"] * 5, corruption=[spec.format(s) for s in range(1, 6)], family=["fog"] * 5,
                  severity=list(range(1, 6)), train_corruption=[train] * 5, top1_mean=[80.0, 70, 60, 50, 40],
                  top1_se=[1.0] * 5)
    means = family_means(table)
    assert means["top1_mean"].tolist() == [60.0] and means["top1_se"].iloc[0] == pytest.approx(5 ** 0.5 / 5)
    out = compare(table, "imagenet_c", {}, defaults={"label_fraction": 1.0})
    fog = out[out["evaluated on"] == "imagenet_c"].iloc[0]
    (published,) = [p for p in by_paper("inversion") if p.table == "Table 14" and dict(p.labels).get("family") == "fog"
                    and p.method == "student"]
    assert fog["published_value"] == published.value and fog["difference"] == pytest.approx(60.0 - published.value)
    assert (out["published"] == NOT_IN_PAPER).sum() == 5  # each severity alone is not in the paper


# ---- the paper's text against its released code ----------------------------------------------


def describe(command: str, **params) -> dict:
    return json.loads(json.dumps(settings.describe(settings.build(COMMANDS[command].config, params)), default=str))


def test_a_paper_preset_dry_run_names_where_the_text_and_the_released_code_disagree_and_every_deviation():
    described = describe("main", preset="paper")
    conflicts = {c["setting"]: c for c in described["paper_vs_code"]}
    assert {"student_weight_decay", "student_schedule", "student_teacher_batchnorm", "precision",
            "baseline_schedule"} <= set(conflicts)
    decay = conflicts["student_weight_decay"]
    assert "appendix D.1" in decay["paper"] and "noisy_clip_dataparallel.py:250" in decay["released"]
    assert decay["value"] == 1e-4 and "student_weight_decay=0" in decay["cinv"]
    assert "T_max=126689 // (256 * 4) = 123" in conflicts["student_schedule"]["released"]
    assert conflicts["student_teacher_batchnorm"]["value"] == "eval"
    # Deviations on the embedded data: the stored 32-px images upsampled, its fixed validation split.
    deviations = described["deviations"]
    assert deviations["image_size"]["value"] == "224 (upsampled from the stored 32 px)"
    assert deviations["val_fraction"]["paper"] == 0.0 and "fixed" in deviations["val_fraction"]["value"]
    assert {"dataset", "class_list", "precision"} <= set(deviations)
    # An experiment lists its own conflicts and deviations only where it reads the setting.
    shift = describe("experiment", name="label_shift", preset="paper")
    assert "label_shift_table" in {c["setting"] for c in shift["paper_vs_code"]}
    assert shift["deviations"]["label_shift_table"] == {"value": "cifar10", "paper": "imagenet100", "source": pytest.approx(
        shift["deviations"]["label_shift_table"]["source"])}
    fixed = describe("experiment", name="fixed_corruption", preset="paper")
    assert "label_shift_table" not in {c["setting"] for c in fixed["paper_vs_code"]}
    assert not {"label_shift_table", "targets"} & set(fixed["deviations"])
    assert describe("experiment", name="transfer", preset="paper")["deviations"]["targets"]["value"] == "embedded"
    rocl = {c["setting"] for c in describe("rocl", preset="paper")["paper_vs_code"]}
    assert rocl == {"rocl_regularizer", "rocl_augment_order"}


def test_the_released_schedule_is_a_cosine_stepped_once_per_epoch_over_t_max_epochs():
    from cinv.methods.student import RELEASED_T_MAX

    assert RELEASED_T_MAX == 123
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = make_schedule(opt, Optim(epochs=25, lr=1.0, schedule="epoch_cosine", period=RELEASED_T_MAX), steps_per_epoch=3)
    rates = []
    for _ in range(25 * 3):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert rates[:3] == [1.0] * 3 and rates[3] == rates[5] < 1.0  # changes at epoch boundaries only
    assert rates[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 24 / 123))) == pytest.approx(0.909, abs=1e-3)
    student = METHODS.get("student")
    released = student.optim(student.configure("paper", schedule="released"))
    assert (released.schedule, released.period) == ("epoch_cosine", 123)
    assert student.optim(student.configure("paper")).schedule == "cosine"
    baseline = METHODS.get("baseline")
    assert baseline.optim(baseline.configure("paper", schedule="released")).period == 494


def _bn_encoder() -> Encoder:
    body = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Encoder(body, embed_dim=4, mean=[0.0] * 3, std=[1.0] * 3, input_size=5, name="bn")


def test_a_train_mode_batchnorm_teacher_uses_batch_statistics_on_a_copy_of_the_frozen_teacher():
    teacher = FrozenEncoder(_bn_encoder())
    released = TrainModeBatchNorm(teacher)
    released.train(False)  # whatever the loop asks, its BatchNorm stays in train mode
    x = torch.randn(8, 3, 5, 5) * 3 + 2
    with torch.inference_mode():
        batch, frozen = released(x), teacher(x)
    bn, original = released.encoder.backbone[1], teacher.encoder.backbone[1]
    assert bn.training and not original.training
    assert bn.num_batches_tracked == 1 and original.num_batches_tracked == 0  # the run's teacher untouched
    assert not torch.allclose(batch, frozen)
    assert all(not p.requires_grad for p in released.parameters())


def test_the_released_mse_ablation_is_elementwise_on_the_raw_embeddings():
    s, t = torch.randn(6, 8) * 3, torch.randn(6, 8)
    raw = inversion.get("mse_unnormalized")
    assert raw(s, t).item() == pytest.approx(F.mse_loss(s, t).item())
    assert raw(s * 2, t).item() != pytest.approx(raw(s, t).item())
    assert inversion.get("mse")(s * 2, t).item() == pytest.approx(inversion.get("mse")(s, t).item())  # eq. 1: unit vectors
    with pytest.raises(ValueError, match="mse_unnormalized"):
        raw(s, t[:, :4])


def test_rocl_runs_its_regulariser_on_a_separate_forward_and_its_augmentations_in_the_released_order():
    from cinv.data.augment import SimCLRAugment
    from cinv.data.stream import Views
    from cinv.losses.rocl import RoCLLoss
    from cinv.methods.rocl import rocl_objective

    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    projector = nn.Linear(4, 3)
    x = torch.rand(6, 3, 12, 12)
    views = Views(x, x, torch.zeros(6, dtype=torch.long))
    augment = SimCLRAugment(order="released")
    assert type(augment._pipeline((12, 12))[0]).__name__ == "ColorJitter"
    assert type(SimCLRAugment()._pipeline((12, 12))[0]).__name__ == "RandomResizedCrop"

    def loss_of(regularizer: str, lam: float) -> float:
        objective = rocl_objective(encoder, projector, RoCLLoss(0.5, lam), steps=1, augmentation=augment,
                                   generator=torch.Generator().manual_seed(1), regularizer=regularizer)
        return objective(views).item()

    assert loss_of("separate", 0.0) == pytest.approx(loss_of("shared", 0.0), rel=1e-5)
    assert loss_of("separate", 1.0) != pytest.approx(loss_of("shared", 1.0), rel=1e-4)
    with pytest.raises(ValueError, match="regularizer"):
        rocl_objective(encoder, projector, RoCLLoss(), regularizer="both")


def test_the_imagenet_c_training_blur_uses_the_released_23_pixel_kernel():
    delta = torch.zeros(1, 1, 61, 61)
    delta[0, 0, 30, 30] = 1.0
    spread = {}
    for size in (23, 0):
        blur = from_spec(f"random_blur_noise(blur_sigma=5, noise_std=0, p=1, kernel_size={size})")
        out = blur(delta, torch.Generator().manual_seed(0))[0, 0]
        spread[size] = int((out[30] > 0).sum())
    assert spread == {23: 23, 0: 31}
    with pytest.raises(ValueError, match="kernel_size"):
        from_spec("random_blur_noise(kernel_size=22)")


def test_the_docs_generator_reads_the_results_files_labels_as_cinv_writes_them():
    sys.path.insert(0, str(ROOT / "docs"))
    import results

    assert {key: label(key) for key in results.ROW_KEYS.values()} == {v: k for k, v in results.ROW_KEYS.items()}
    assert results.paper_cells("main", "student (ours)", "random_mask(fraction=0.9)", 44.28, {"label_fraction": 1.0})[:2] \
        == ["82.96 ± 0.08", "-38.68"]
