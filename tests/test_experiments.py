"""The paper's experiments end to end on a tiny configuration, and the report built from the store."""

import mlflow
import pandas as pd
import pytest
import torch

import cinv
from cinv import corruption as distortions
from cinv.commands.experiment import ExperimentConfig
from cinv.config import ConfigError, build
from cinv.corruption import restoration
from cinv.corruption.restoration import Restored
from cinv.evaluation.report import evaluations, method_by_corruption
from conftest import check_experiment_run

TINY = {"limit_per_class": 8, "image_size": 32, "student_epochs": 1, "student_batch_size": 32, "baseline_epochs": 1,
        "baseline_batch_size": 32, "probe_epochs": 2, "eval_draws": 2, "probe_log_model": False}


def parent_outputs(run_id: str, name: str) -> pd.DataFrame:
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {f"{name}.csv", f"{name}.md", f"{name}.html", f"{name}.png"} <= artifacts
    return pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{name}.csv"))


def children(run_id: str) -> pd.DataFrame:
    return mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{run_id}'")


def test_lists_are_validated_with_the_flat_names():
    cfg = build(ExperimentConfig, {"name": "severity_shift", "corruptions": "random_mask(fraction=0.3); random_mask(fraction=0.99)",
                                   "label_fractions": "1, 0.1"})
    assert cfg.corruption_list == ["random_mask(fraction=0.3)", "random_mask(fraction=0.99)"]
    assert cfg.fraction_list == [1.0, 0.1]
    for bad, key in [({"corruptions": "random_mask(fraction=2)"}, "corruptions"), ({"label_fractions": "1,0"}, "label_fractions"),
                     ({"losses": "student_teacher,l1"}, "losses"), ({"name": "table99"}, "name")]:
        with pytest.raises(ConfigError, match=key):
            build(ExperimentConfig, {"name": "fixed_corruption", **bad})


def test_restored_corruption_inpaints_exactly_the_removed_pixels():
    images = torch.rand(3, 3, 16, 16)
    mask = distortions.get("random_mask", fraction=0.5)
    restored = Restored(mask, restoration.get("inpaint_biharmonic"))
    corrupted = mask(images, torch.Generator().manual_seed(4))
    out = restored(images, torch.Generator().manual_seed(4))
    removed = (corrupted == 0).all(dim=1, keepdim=True)
    assert torch.equal(out * ~removed, images * ~removed)  # kept pixels untouched
    assert ((out - images).abs() * removed).sum() < ((corrupted - images).abs() * removed).sum()  # removed ones filled in


@pytest.mark.slow
def test_fixed_corruption_reuses_trained_models_and_the_report_rebuilds_its_table(store):
    run_a = cinv.run_command("experiment", name="fixed_corruption", corruptions="gaussian_noise(std=0.3)",
                             label_fractions="1,0.5", baseline_fractions=True, **TINY)
    table = parent_outputs(run_a, "fixed_corruption")
    assert len(table) == 4 and set(table["method"]) == {"student (ours)", "supervised baseline"}
    assert table["top1_mean"].between(0, 100).all() and (table["draws"] == 2).all()
    trained = children(run_a)
    assert (trained["tags.cinv.stage"] == "student").sum() == 1  # one student, shared by both label fractions
    assert (trained["tags.cinv.stage"] == "baseline").sum() == 2  # the baseline trains on the labelled fraction
    # The student encoder's page shows the probe on all labels; the 50% probe's evaluation is on its own model.
    (student_encoder,) = mlflow.search_logged_models(filter_string="name = 'student_encoder'", output_format="list")
    linked = {m.key: m.value for m in student_encoder.metrics}["test_top1_mean"]
    all_labels = table[(table["method"] == "student (ours)") & (table["label_fraction"] == 1)]["top1_mean"].item()
    assert linked == pytest.approx(all_labels)

    # Same configuration: the logged models are reused; the evaluations are recomputed identically.
    run_b = cinv.run_command("experiment", name="fixed_corruption", corruptions="gaussian_noise(std=0.3)", label_fractions="1",
                             baseline_fractions=True, **TINY)
    again = children(run_b)
    assert set(again["tags.cinv.stage"]) == {"evaluation"}
    assert any(k.startswith("cinv.reused.student.") for k in mlflow.get_run(run_b).data.tags)
    first = table[table["label_fraction"] == 1]
    second = parent_outputs(run_b, "fixed_corruption")
    assert second.set_index("method")["top1_mean"].to_dict() == pytest.approx(first.set_index("method")["top1_mean"].to_dict(), abs=1e-6)

    report_run = cinv.run_command("report")
    rows = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{report_run}/evaluations.csv"))
    assert len(rows) == 6
    # run_b evaluated run_a's models again (same recipe, same seed): each counts once.
    cells = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{report_run}/report_top1.csv"))
    assert len(cells) == 4 and (cells["seeds"] == 1).all() and (cells["se_kind"] == "draws").all()
    report = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{report_run}/report_top1_table.csv"))
    cell = report[(report["method"] == "student (ours)") & (report["label_fraction"] == 0.5)]["gaussian_noise(std=0.3)"].item()
    expected = table[(table["method"] == "student (ours)") & (table["label_fraction"] == 0.5) & (table["corruption"] == "gaussian_noise(std=0.3)")]
    assert cell == f"{expected['top1_mean'].item():.2f} ± {expected['top1_se'].item():.2f}"

    # Every cell held against its paper: Table 1's Gaussian noise 0.3 row (student, all labels and 10%; baseline),
    # in the experiment's run and in the report's, with measured - published.
    for run_id in (run_a, report_run):
        compared = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/paper_comparison.csv"))
        top1 = compared[compared["metric"] == "top1"]
        student = top1[(top1["key"] == "student") & top1["labels"].astype(str).str.contains("label_fraction=1.0")].iloc[0]
        assert student["published"] == "81.30 ± 0.07" and "Table 1, Gaussian Noise σ = 0.3, Ours" in student["source"]
        assert student["difference"] == pytest.approx(student["measured_mean"] - 81.30, abs=0.01)
        assert "dataset" in student["deviations"] and "baseline_epochs" not in student["deviations"]
        assert (top1["published"] == "not in the paper").sum() == 2  # the student's and the baseline's 50% cells
        assert "81.30 ± 0.07" in mlflow.get_run(run_id).data.tags["cinv.paper_comparison"]


@pytest.mark.slow
@pytest.mark.parametrize("name, params, rows", [
    ("severity_shift", {"corruptions": "random_mask(fraction=0.3); random_mask(fraction=0.99)"}, 4),
    ("label_shift", {"corruptions": "random_mask(fraction=0.5); random_mask(fraction=0.99)"}, 4),
    ("original_representations", {"corruptions": "gaussian_blur(kernel_size=5, sigma=1)"}, 2),
    ("clean_probe_transfer", {"corruptions": "random_mask(fraction=0.5)"}, 3),
    ("pixel_baselines", {"corruptions": "gaussian_noise(std=0.2); random_mask(fraction=0.5)"}, 6),
    ("imagenet_c", {"corruptions": "imagenet_c(corruption='fog', severity=1); imagenet_c(corruption='fog', severity=5)",
                    "train_corruption": "random_blur_noise(blur_sigma=(1, 2))"}, 4),
])
def test_each_experiment_runs_end_to_end(store, name, params, rows):
    """label_efficiency and loss_ablation run end to end in tests/test_protocols.py, with these checks."""
    compares_the_baseline = name not in ("original_representations", "clean_probe_transfer")
    tiny = {k: v for k, v in TINY.items() if compares_the_baseline or not k.startswith("baseline_")}  # never an unused option
    check_experiment_run(cinv.run_command("experiment", name=name, **params, **tiny), name, rows)


def test_report_table_from_rows():
    rows = pd.DataFrame({"method": ["a", "a", "b"], "corruption": ["x", "y", "x"], "label_fraction": [1.0] * 3,
                         "experiment": [""] * 3, "mean": [50.0, 40.0, 30.0], "se": [1.0, 2.0, 0.5], "draws": [10] * 3,
                         "run_id": ["1", "2", "3"]})
    table = method_by_corruption(rows)
    assert table.set_index("method").loc["a", "x"] == "50.00 ± 1.00"
    assert table.set_index("method").loc["b", "y"] == ""
    assert evaluations(pd.DataFrame({"run_id": []})).empty


def test_label_shift_inside_the_dataset_removes_the_unseen_classes_everywhere():
    from cinv.data.datasets import dataset_targets, label_shift, load_splits, read_label_shift

    splits = load_splits("embedded", None, 32, 0.05, 0, limit_per_class=5)
    pairs = read_label_shift("cifar10")
    assert pairs == [("cat", "dog"), ("automobile", "truck")]
    trained, shifted = label_shift(splits, pairs)
    assert trained.classes == [c for c in splits.classes if c not in ("cat", "automobile")]
    assert sorted(set(dataset_targets(trained.train))) == list(range(8)) and len(trained.train) == 40
    dog, truck = trained.classes.index("dog"), trained.classes.index("truck")
    assert sorted(dataset_targets(shifted)) == [dog] * 5 + [truck] * 5
    cat = splits.classes.index("cat")
    originals = [int(splits.test[i][1]) for i in range(len(splits.test))]
    assert sum(o == cat for o in originals) == 5  # the shifted images are exactly the unseen class's test images


def test_label_shift_outside_the_dataset_reads_the_unseen_classes_from_val(tmp_path):
    from cinv.data.datasets import DatasetError, label_shift, load_splits
    from conftest import write_image_folder

    root = write_image_folder(tmp_path / "imagenet", {"n01": 3, "n02": 3, "n99": 4})
    classes = tmp_path / "seen.txt"
    classes.write_text("n01\nn02\n")
    splits = load_splits(str(root), str(classes), 32, 0.3, 0)
    trained, shifted = label_shift(splits, [("n99", "n02")], root)
    assert trained.classes == ["n01", "n02"] and len(shifted) == 4
    assert {shifted[i][1] for i in range(len(shifted))} == {1} and shifted[0][0].shape == (3, 32, 32)
    with pytest.raises(DatasetError, match="not among the trained classes"):
        label_shift(splits, [("n99", "n77")], root)


def write_cifar10(root, images: torch.Tensor, labels: list[int]):
    """CIFAR-10 in torchvision's on-disk (python pickle) format, from real images."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = images.reshape(len(images), -1).numpy().astype(np.uint8)  # CIFAR rows are channel-major
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, fh)


def test_torchvision_targets_read_local_files_and_never_download(tmp_path, monkeypatch):
    from cinv.data.datasets import DatasetError, load_embedded, load_target

    with pytest.raises(DatasetError, match="never downloads"):
        load_target(f"cifar10(root='{tmp_path}')", 32, 0.1, 0)
    test = load_embedded().test
    write_cifar10(tmp_path, test.images[:50], [i % 10 for i in range(50)])
    # Our files are CIFAR-10's format, not its exact bytes: only the checksum test is skipped.
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    splits = load_target(f"cifar10(root='{tmp_path}')", 32, 0.2, 0)
    assert splits.classes == [f"class{i}" for i in range(10)] and len(splits.train) == 200 and len(splits.val) == 50
    assert torch.equal(splits.test[3][0], test.images[3]) and splits.test[3][1] == 3


@pytest.mark.slow
def test_transfer_to_a_binary_folder_reports_auc(store, tmp_path):
    from conftest import write_image_folder

    target = write_image_folder(tmp_path / "xray", {"covid": 6, "normal": 6})
    run_id = cinv.run_command("experiment", name="transfer", corruptions="random_mask(fraction=0.5)",
                              targets=f"folder(root='{target}'); embedded", num_workers=0, **TINY)
    table = parent_outputs(run_id, "transfer")
    assert len(table) == 6 and set(table["method"]) == {"student (ours)", "supervised baseline", "teacher, original representations"}
    binary = table[table["target"].str.startswith("folder")]
    assert binary["auc_mean"].between(0, 100).all() and table[table["target"] == "embedded"]["auc_mean"].isna().all()
    trained = children(run_id)
    assert (trained["tags.cinv.stage"] == "baseline").sum() == 1 and (trained["tags.cinv.stage"] == "student").sum() == 1
