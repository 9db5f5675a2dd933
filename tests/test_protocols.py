"""The papers' protocols, honest statistics and defaults that say what they are (each test fails on
the behaviour it replaced): a researcher cites these numbers."""

import dataclasses
import math

import mlflow
import pandas as pd
import pytest
import torch
from torch import nn

import cinv
from cinv import corruption as distortions
from cinv import encoders
from cinv.commands import CONFIGS as COMMANDS
from cinv.commands.experiment import ExperimentConfig
from cinv.commands.main import MainConfig
from cinv.commands.probe import ProbeConfig
from cinv.commands.rocl import RoCLConfig
from cinv.commands.student import StudentConfig
from cinv.config import flat_fields, preset_keys
from cinv.config.options import ProbeOptions
from cinv.data.datasets import load_splits
from cinv.errors import ConfigError
from cinv.evaluation.tables import across_seeds
from cinv.methods import METHODS
from cinv.probe import train_probe
from cinv.runtime import FP32, Autocast, resolve_precision
from cinv.settings import build, deviations
from cinv.training.context import setup
from conftest import ROOT, check_experiment_run, write_image_folder

TINY = {"limit_per_class": 8, "image_size": 32, "student_epochs": 1, "student_batch_size": 32, "baseline_epochs": 1,
        "baseline_batch_size": 32, "probe_epochs": 2, "eval_draws": 2, "probe_log_model": False}


def tiny_encoder(size: int = 16) -> encoders.Encoder:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return encoders.Encoder(net, embed_dim=4, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=size, name="tiny")


def experiment_table(run_id: str, name: str) -> pd.DataFrame:
    return pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{name}.csv"))


def child_runs(run_id: str) -> pd.DataFrame:
    return mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{run_id}'")


# ---- protocols ------------------------------------------------------------------------------


@pytest.mark.slow
def test_loss_ablation_trains_on_the_mask_range_and_evaluates_at_90_to_99_percent(store):
    """Section 4.5: "the same random masking model described in Section 4.2 [50-95%], with a
    similar evaluation on fixed masking levels of 90-99%"; not trained and tested at 90%."""
    tiny = {k: v for k, v in TINY.items() if not k.startswith("baseline_")}  # the ablation trains students only
    run_id = cinv.run_command("experiment", name="loss_ablation", losses="student_teacher,mse", **tiny)
    table = check_experiment_run(run_id, "loss_ablation", rows=14)  # 2 losses x 7 levels
    assert set(table["train_corruption"]) == {"random_mask(fraction=(0.5, 0.95))"}
    levels = [f"random_mask(fraction={v})" for v in (0.9, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99)]
    assert [list(table[table["loss"] == loss]["corruption"]) for loss in ("student_teacher", "mse")] == [levels, levels]
    trained = child_runs(run_id)
    students = trained[trained["tags.cinv.stage"] == "student"]
    assert len(students) == 2 and set(students["params.corruption"]) == {"random_mask(fraction=(0.5, 0.95))"}
    # train_corruption is honoured, no longer ignored
    other = cinv.run_command("experiment", name="loss_ablation", losses="mse", corruptions="random_mask(fraction=0.9)",
                             train_corruption="random_mask(fraction=(0.8, 0.9))", **tiny)
    assert set(experiment_table(other, "loss_ablation")["train_corruption"]) == {"random_mask(fraction=(0.8, 0.9))"}


def test_severity_shift_default_grids_hold_the_papers_levels():
    from cinv.experiments.paper import SEVERITY_LEVELS

    masks, noise = SEVERITY_LEVELS["random_mask"][1], SEVERITY_LEVELS["gaussian_noise"][1]
    assert {0.96, 0.97, 0.98, 0.99} <= set(masks)  # Fig. 4, Table 12
    assert {0.35, 0.4, 0.45, 0.5} <= set(noise)  # Fig. 4, Table 12
    assert {0.5, 0.7, 0.9} <= set(masks) and {0.1, 0.2, 0.3} <= set(noise)  # inside the range (Table 10)


def test_probe_on_a_label_fraction_uses_the_papers_batch_size():
    opts = ProbeOptions()
    assert (opts.batch_size_for(1.0), opts.batch_size_for(0.1)) == (128, 8)
    assert ProbeOptions(fraction_batch_size=32).batch_size_for(0.05) == 32  # told otherwise


@pytest.mark.slow
def test_label_efficiency_runs_both_corruptions_against_an_all_labels_baseline(store):
    run_id = cinv.run_command("experiment", name="label_efficiency", label_fractions="1,0.25", **TINY)
    table = check_experiment_run(run_id, "label_efficiency", rows=6)
    assert set(table["corruption"]) == {"random_mask(fraction=0.9)", "gaussian_noise(std=0.5)"}  # Fig. 3: both
    student = table[table["method"] == "student (ours)"]
    baseline = table[table["method"] == "supervised baseline"]
    assert sorted(student["label_fraction"]) == [0.25, 0.25, 1.0, 1.0]
    assert set(baseline["label_fraction"]) == {1.0} and len(baseline) == 2  # "uses all of the labeled training samples"


def test_a_probe_on_a_fraction_trains_with_batch_8_on_every_labelled_image(store):
    cfg = build(ProbeConfig, {"limit_per_class": 60, "image_size": 16, "label_fraction": "0.5", "epochs": 1})
    s = setup(cfg)
    with mlflow.start_run() as run:
        train_probe(s, tiny_encoder(), cfg.probe)
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["probe_effective_batch_size"] == 8 and metrics["probe_train_images"] == 300


def test_probe_features_keep_the_last_partial_batch(store):
    """600 labelled images with feature batches of 256: all 600 train the probe (not 512)."""
    cfg = build(ProbeConfig, {"limit_per_class": 60, "image_size": 16, "epochs": 1})
    s = setup(cfg)
    assert len(s.splits.train) == 600
    with mlflow.start_run() as run:
        train_probe(s, tiny_encoder(), cfg.probe)
    assert mlflow.get_run(run.info.run_id).data.metrics["probe_train_images"] == 600


def test_released_rocl_linear_evaluation_sgd_milestones_and_unaugmented_features(store, monkeypatch):
    import cinv.probe as probe

    cfg = build(ProbeConfig, {"limit_per_class": 10, "image_size": 16, "epochs": 4, "feature_draws": 2, "augment": "false",
                              "corruption": "none",
                              "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "milestones": "1,2"})
    s = setup(cfg)
    seen = {}
    fit_head = probe.fit_head

    def spy(classifier, cache, **kw):
        seen["cache"], seen["kw"] = cache, kw
        return fit_head(classifier, cache, **kw)

    lrs = []
    step = torch.optim.SGD.step

    def record(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(probe, "fit_head", spy)
    monkeypatch.setattr(torch.optim.SGD, "step", record)
    with mlflow.start_run():
        train_probe(s, tiny_encoder(), cfg.probe)
    # Unaugmented: every cached draw is the same images' features (the released --trans false).
    assert torch.equal(seen["cache"].features[0].sort(0).values, seen["cache"].features[1].sort(0).values)
    assert seen["kw"]["optimizer"] == "sgd" and seen["kw"]["milestones"] == (1, 2)
    per_epoch = len(lrs) // 4
    assert [lrs[e * per_epoch] for e in range(4)] == pytest.approx([0.1, 0.1, 0.01, 0.001])  # / 10 after epochs 1, 2


def test_robust_linear_evaluation_steps_with_the_released_alpha(store, monkeypatch):
    import cinv.probe as probe

    cfg = build(ProbeConfig, {"limit_per_class": 4, "image_size": 16, "epochs": 1})
    s = setup(cfg)
    alphas = []

    def attack(model, images, labels, *, eps, alpha, steps, generator):
        alphas.append((eps, alpha, steps))
        return images

    monkeypatch.setattr(probe, "classwise_pgd", attack)
    probe.robust_linear_probe(s, tiny_encoder(), 1, cfg.probe, eps=0.0314, steps=10, alpha=0.007)
    probe.robust_linear_probe(s, tiny_encoder(), 1, cfg.probe, eps=0.0314, steps=10)
    assert alphas[0] == (0.0314, 0.007, 10) and alphas[-1] == (0.0314, 0.0314 / 4, 10)


def test_fp32_switches_tf32_off_when_a_run_starts(store):
    from cinv.runtime import tf32_allowed

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # what an Ampere GPU may use
        setup(build(ProbeConfig, {"limit_per_class": 2, "image_size": 16, "precision": "auto"}))
        assert tf32_allowed()  # auto leaves PyTorch's settings
        setup(build(ProbeConfig, {"limit_per_class": 2, "image_size": 16, "precision": "fp32"}))
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_paper_presets_train_on_the_whole_training_split(tmp_path):
    root = write_image_folder(tmp_path / "imagenet", {"n01440764": 6, "n01443537": 6})
    splits = load_splits(str(root), None, 32, val_fraction=0.0, seed=0)
    assert len(splits.train) == 12 and len(splits.val) == 0  # "we did not use a separate validation set"
    paper = build(MainConfig, {"preset": "paper", "dataset": str(root)})
    assert paper.data.val_fraction == 0.0 and "val_fraction" not in deviations(paper)
    assert build(RoCLConfig, {"preset": "paper"}).data.val_fraction == 0.0


def test_pixel_baselines_classify_with_the_pretrained_backbone_and_its_clean_probe(store):
    from cinv.experiments import EXPERIMENTS
    from cinv.experiments.engine import Lab
    from cinv.experiments.paper import pixel_restorers

    cfg = build(ExperimentConfig, {"name": "pixel_baselines", "limit_per_class": 4, "image_size": 32, "probe_epochs": 1,
                                   "baseline_backbone": "cifar_resnet:resnet18", "baseline_backbone_weights": "none"})
    s = setup(cfg, "none")
    teacher = encoders.freeze(tiny_encoder(32))
    s = dataclasses.replace(s, teacher=teacher)
    recipe = EXPERIMENTS.get("pixel_baselines")
    with mlflow.start_run():
        clean = Lab(cfg, s, recipe).clean_classifier().model
        assert clean.encoder.encoder.name == "cifar_resnet:resnet18"  # the paper's clean classifier: backbone + clean probe
        as_teacher = Lab(cfg.model_copy(update={"clean_classifier": "teacher"}), s, recipe).clean_classifier().model
    assert as_teacher.encoder.encoder is teacher.encoder
    paper = build(ExperimentConfig, {"name": "pixel_baselines", "preset": "paper"})
    restorers = pixel_restorers(paper)
    inpainting, denoising = restorers["random_mask"], restorers["gaussian_noise"]
    # The authors' inpainting_test.py (lines 91-94, 119, 124-136) and denoising_baselines.py (lines 56, 59)
    assert (inpainting.name, inpainting.steps, inpainting.channels, inpainting.layers, inpainting.flat_blocks) == (
        "deep_decoder", 5000, 256, 5, 1)
    assert (inpainting.lr, inpainting.reg_noise, inpainting.find_best, inpainting.keep_observed) == (0.0025, 0.005, True, False)
    assert (denoising.h, denoising.patch_size, denoising.patch_distance, denoising.clamp) == (0.1, 7, 11, False)
    assert pixel_restorers(paper.model_copy(update={"inpainting": "deep_decoder(steps=50)"}))["random_mask"].steps == 50
    cpu = pixel_restorers(build(ExperimentConfig, {"name": "pixel_baselines"}))
    assert cpu["random_mask"].name == "inpaint_biharmonic" and cpu["gaussian_noise"].h is None
    with pytest.raises(ConfigError, match="inpainting"):
        build(ExperimentConfig, {"name": "pixel_baselines", "inpainting": "deep_decoder(depth=3)"})


def test_attacked_images_are_a_seeded_class_balanced_sample(store):
    from cinv.evaluation.robustness import attack_subset

    cfg = build(RoCLConfig, {"image_size": 32})
    s = setup(cfg, "none")
    with mlflow.start_run():
        images, labels = attack_subset(s, 1000, seed=0)
        logged = mlflow.get_run(mlflow.active_run().info.run_id).data.metrics
        again, _ = attack_subset(s, 1000, seed=0)
        other, _ = attack_subset(s, 1000, seed=1)
    assert images.shape == (1000, 3, 32, 32)
    assert torch.bincount(labels, minlength=10).tolist() == [100] * 10  # the first 1,000 covered 5 classes
    assert logged["attack_images"] == 1000 and logged["attack_images_per_class"] == 100
    assert torch.equal(images, again) and not torch.equal(images, other)


def test_fcl_term_is_summed_over_the_batch_so_lambda_is_the_papers():
    from cinv.methods.fcl import fcl_loss

    loss = fcl_loss(FCL.configure("paper"))
    assert loss.reduction == "sum"
    z, z_pos, z_neg = torch.randn(3, 16, 8).unbind(0)
    summed = loss(z, z_pos, z_neg)
    mean = fcl_loss(FCL.configure("paper", reduction="mean"))(z, z_pos, z_neg)
    assert summed.item() == pytest.approx(16 * mean.item(), rel=1e-5)


def test_patch_gaussian_fcl_keeps_the_patchs_sigma_apart_from_fcls():
    from cinv.methods.fcl import fcl_corruption

    opts = FCL.configure("paper", method="patch_gaussian_fcl", sigma=0.5, patch_sigma=0.1, patch_size=25)
    assert fcl_corruption(opts) == "patch_gaussian(patch_size=25, sigma=0.1)"
    assert opts.sigma == 0.5  # FCL's own noise on the utility-ranked features
    assert fcl_corruption(FCL.configure("paper", method="patch_gaussian")) == "patch_gaussian(patch_size=25, sigma=0.1)"


FCL = METHODS.get("fcl")


def write_cifar10(root, n: int = 60):
    """CIFAR-10 in torchvision's on-disk (python pickle) format, from the embedded images."""
    import pickle

    from cinv.data.datasets import load_embedded

    test = load_embedded().test
    images, labels = test.images[:: max(1, len(test.images) // n)][:n], test.labels[:: max(1, len(test.images) // n)][:n]
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = images.reshape(len(images), -1).numpy()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels.tolist()}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, fh)
    return images


@pytest.fixture
def cifar10(tmp_path, monkeypatch):
    images = write_cifar10(tmp_path / "cifar")
    # Our files are CIFAR-10's format, not its exact bytes: only the checksum test is skipped.
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    return tmp_path / "cifar", images


@pytest.mark.parametrize("command", [c for c, cls in COMMANDS.items() if "dataset" in {f.key for f in flat_fields(cls)}
                                     and c not in ("fcl",)])
def test_every_command_takes_cifar_from_torchvisions_local_files(command, cifar10):
    root, _ = cifar10
    required = {"model": "models:/m/1", "images": str(root), "name": "fixed_corruption"}
    params = {f.key: required[f.key] for f in flat_fields(COMMANDS[command]) if f.required}
    config = build(COMMANDS[command], {**params, "dataset": f"cifar10(root={root})"})  # no quotes needed
    assert config.data.dataset == f"cifar10(root={root})"


def test_cifar_trains_on_its_32_px_images_without_crop_or_resize(cifar10):
    root, images = cifar10
    splits = load_splits(f"cifar10(root={root})", None, None, 0.1, 0)
    assert splits.image_size == 32 and splits.resize == "resize" and splits.augment_on_batch
    cfg = build(StudentConfig, {"dataset": f"cifar10(root={root})"})
    s = setup(cfg, "none")
    views = next(iter(s.stream("test", batch_size=8, purpose="eval").epoch(0)))
    assert torch.equal(views.clean, images[:8].float() / 255)  # no Resize(37) + CenterCrop(32)


def test_a_folder_of_small_images_can_be_resized_whole(tmp_path):
    """folder(..., preprocessing=resize): a CIFAR folder at 32 px is not cropped to its centre."""
    from PIL import Image

    root = write_image_folder(tmp_path / "small", {"a": 3, "b": 3}, size=32)
    splits = load_splits(f"folder(root={root}, preprocessing=resize)", None, 32, 0.3, 0)
    image, _ = splits.test[0]
    original = torch.from_numpy(__import__("numpy").asarray(Image.open(sorted((root / "val" / "a").iterdir())[0]))).permute(2, 0, 1)
    assert torch.equal(image, original)
    cropped, _ = load_splits(str(root), None, 32, 0.3, 0).test[0]
    assert not torch.equal(cropped, original)  # the ImageNet path resizes to 37 and crops


def test_rocl_gets_its_images_without_a_random_crop_under_its_own_views(tmp_path):
    from cinv.methods.rocl import rocl_stream

    root = write_image_folder(tmp_path / "inet", {"a": 6, "b": 6}, size=40)
    cfg = build(RoCLConfig, {"dataset": str(root), "image_size": 32, "num_workers": 0})
    s = setup(cfg, "none")
    stream = rocl_stream(s, batch_size=4)

    def by_item(epoch: int) -> dict[int, torch.Tensor]:
        order = [i for batch in stream.batch_keys(epoch) for i in batch]
        images = torch.cat([v.clean for v in stream.epoch(epoch)])
        return {(i[0] if isinstance(i, tuple) else i): img for i, img in zip(order, images, strict=True)}

    first, second = by_item(0), by_item(1)
    common = set(first) & set(second)
    assert common and all(torch.equal(first[i], second[i]) for i in common)  # the same image every epoch: RoCL crops it itself
    folder = stream.dataset.dataset  # a Subset of the train folder, seen through its evaluation transform
    assert not stream.augment and folder.transform is folder.plain


def test_the_baselines_resnet101_names_the_original_imagenet_weights():
    from torchvision.models import ResNet101_Weights

    from cinv.encoders.zoo import torchvision_weights

    assert torchvision_weights("resnet101") == ResNet101_Weights.IMAGENET1K_V1  # the 2021 paper's, not V2
    assert torchvision_weights("resnet101", "IMAGENET1K_V2") == ResNet101_Weights.IMAGENET1K_V2
    assert build(MainConfig, {"preset": "paper"}).options["baseline"].backbone_weights == "IMAGENET1K_V1"


# ---- data and randomness ------------------------------------------------------------------


def test_evaluation_draws_never_repeat_training_or_probe_corruptions():
    cfg = build(StudentConfig, {"limit_per_class": 4, "image_size": 16, "corruption": "random_mask(fraction=0.5)"})
    s = setup(cfg)
    data = s.splits.test

    def masks(purpose: str) -> torch.Tensor:
        views = next(iter(s.stream("test", batch_size=8, purpose=purpose, dataset=data, augment=False).epoch(0)))
        return (views.corrupted == 0).all(dim=1)

    evaluation, training, probe = masks("eval"), masks("train"), masks("probe")
    assert not torch.equal(evaluation, training) and not torch.equal(evaluation, probe) and not torch.equal(training, probe)
    assert torch.equal(evaluation, masks("eval"))  # and each is repeatable


def test_precision_is_decided_once_and_fp32_turns_bf16_off_on_cuda_too():
    cuda = torch.device("cuda")
    assert resolve_precision(cuda, "fp32") == Autocast("cuda")  # no autocast in any role
    assert resolve_precision(cuda, "auto").train == torch.bfloat16
    assert resolve_precision(torch.device("cpu"), "auto").train is None  # CPU training stays fp32


def test_fit_runs_the_objective_under_the_commands_training_precision():
    from cinv.data.datasets import TensorImages
    from cinv.data.stream import BatchStream
    from cinv.training.loop import Optim, fit

    data = TensorImages(torch.randint(0, 255, (16, 3, 8, 8), dtype=torch.uint8), torch.arange(16) % 2)
    stream = BatchStream(data, corruption=distortions.get("none"), batch_size=8, image_size=8, device=torch.device("cpu"),
                         train=True, augment_on_batch=True, seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 2))
    seen = []

    def objective(views):
        seen.append(torch.is_autocast_enabled("cpu"))
        return nn.functional.cross_entropy(model(views.corrupted).float(), views.labels)

    fit(model, objective, stream, Optim(epochs=1, lr=0.01, weight_decay=0.0), precision=Autocast("cpu", train=torch.bfloat16))
    fit(model, objective, stream, Optim(epochs=1, lr=0.01, weight_decay=0.0), precision=FP32)
    assert seen == [True, True, False, False]


# ---- independent seeds and statistics -----------------------------------------------------


def test_across_seeds_says_what_its_error_bar_is():
    rows = pd.DataFrame({"method": ["a"] * 3 + ["b"], "seed": [0, 1, 2, 0], "draws": [10] * 4,
                         "top1_mean": [50.0, 52.0, 54.0, 40.0], "top1_se": [0.1, 0.2, 0.3, 0.4]})
    table = across_seeds(rows).set_index("method")
    assert table.loc["a", "top1_mean"] == 52.0 and table.loc["a", "top1_se"] == pytest.approx(2 / math.sqrt(3))
    assert (table.loc["a", "seeds"], table.loc["a", "se_kind"]) == (3, "seeds")
    assert (table.loc["b", "top1_se"], table.loc["b", "se_kind"], table.loc["b", "draws"]) == (0.4, "draws", 10)
    # The same model (same seed) evaluated twice counts once: the later evaluation.
    again = across_seeds(pd.concat([rows, rows.iloc[[0]].assign(top1_mean=50.0)])).set_index("method")
    assert again.loc["a", "seeds"] == 3 and again.loc["a", "top1_mean"] == 52.0


@pytest.mark.slow
def test_main_trains_every_model_once_per_seed_and_reports_across_seeds(store):
    run_id = cinv.run_command("main", limit_per_class=8, image_size=32, student_epochs=1, baseline_epochs=1, probe_epochs=2,
                              eval_draws=2, seeds="0,1", student_registered_model_name="", baseline_registered_model_name="",
                              probe_log_model=False)
    children = child_runs(run_id)
    assert len(children) == 12 and sorted(children["tags.cinv.seed"].unique()) == ["0", "1"]  # 4 cells and 2 trainings a seed
    per_seed = experiment_table(run_id, "results_per_seed")
    table = experiment_table(run_id, "results")
    assert (table["seeds"] == 2).all() and (table["se_kind"] == "seeds").all()
    assert table["draws"].tolist() == [1, 2, 2, 2]  # clean images: one deterministic draw
    for model, part in per_seed.groupby("model"):
        row = table[table["model"] == model].iloc[0]
        assert row["top1_mean"] == pytest.approx(part["top1_mean"].mean())
        assert row["top1_se"] == pytest.approx(part["top1_mean"].std(ddof=1) / math.sqrt(2))
    student = children[children["tags.mlflow.runName"] == "student test · random_mask(fraction=0.9) · seed 1"]
    assert student["metrics.test_top1_mean"].item() == pytest.approx(
        per_seed[(per_seed["model"] == "Student (contrastive inversion)") & (per_seed["seed"] == 1)]["top1_mean"].item())


def runs_frame(rows: list[dict]) -> pd.DataFrame:
    """``mlflow.search_runs`` output for evaluation runs with the given recipe tags."""
    out = []
    for i, row in enumerate(rows):
        tags = {"method": "student", "loss": "student_teacher", "teacher": "t", "dataset": "d", "train_corruption": "m",
                "label_fraction": "1", "condition": "", "eval_corruption": "m", "recipe": "r", "seed": "0"} | row
        out.append({"run_id": f"run{i}", "status": "FINISHED", "start_time": pd.Timestamp(2026, 1, 1) + pd.Timedelta(seconds=i),
                    "metrics.test_top1_mean": float(tags.pop("mean")), "metrics.test_top1_se": 0.5, "metrics.test_draws": 10.0,
                    "tags.cinv.stage": "evaluation", **{f"tags.cinv.{k}": v for k, v in tags.items()}})
    return pd.DataFrame(out)


def test_report_averages_only_over_seeds_of_one_recipe():
    from cinv.evaluation.report import cells, evaluations

    runs = runs_frame([
        {"mean": 50, "seed": "0"}, {"mean": 54, "seed": "1"},  # one recipe, two seeds: averaged
        {"mean": 99, "seed": "1"},  # the same model (recipe, seed) evaluated again: counts once, the latest
        {"mean": 10, "loss": "mse"}, {"mean": 20, "train_corruption": "m2"}, {"mean": 30, "label_fraction": "0.1"},
        {"mean": 40, "condition": "label_shift=cifar10"}, {"mean": 60, "recipe": "r2"}, {"mean": 70, "teacher": "t2"},
        {"mean": 80, "dataset": "d2"}, {"mean": 90, "eval_corruption": "m3"},
    ])
    table = cells(evaluations(runs))
    assert list(table.columns) == ["method", "loss", "teacher", "dataset", "train_corruption", "label_fraction", "condition",
                                   "corruption", "recipe", "seeds", "draws", "mean", "se", "se_kind"]
    assert len(table) == 9
    pooled = table[table["seeds"] == 2].iloc[0]
    assert (pooled["mean"], pooled["se_kind"]) == ((50 + 99) / 2, "seeds")
    assert set(table[table["seeds"] == 1]["se_kind"]) == {"draws"} and (table[table["seeds"] == 1]["se"] == 0.5).all()


# ---- presets ------------------------------------------------------------------------------


def test_presets_set_the_papers_settings_and_explicit_parameters_win():
    paper = build(MainConfig, {"preset": "paper"})
    student, baseline = paper.options["student"], paper.options["baseline"]
    assert (paper.teacher, paper.data.image_size, baseline.backbone) == ("open_clip:RN101", 224, "torchvision:resnet101")
    assert (student.epochs, student.batch_size, student.lr) == (25, 256, 1e-4)
    assert (paper.probe.feature_draws, baseline.epochs) == (10, 25)
    # The embedded data is not the paper's: its kind, its class list, its stored 32-px images upsampled to 224 and its
    # fixed validation images; and the precision.
    assert set(deviations(paper)) == {"dataset", "class_list", "image_size", "val_fraction", "precision"}
    cpu = build(MainConfig, {})
    assert cpu.preset == "cpu" and {"teacher", "student_epochs", "image_size"} <= set(deviations(cpu))
    assert build(MainConfig, {"preset": "paper", "student_epochs": "2"}).options["student"].epochs == 2
    assert build(MainConfig, {"preset": "paper", "student_epochs": ""}).options["student"].epochs == 25  # '': the preset's
    rocl = build(RoCLConfig, {"preset": "paper"})
    assert (rocl.options["rocl"].encoder, rocl.data.image_size, rocl.options["rocl"].epochs) == ("cifar_resnet:resnet18", 32, 1000)
    for command in ("main", "experiment", "benchmark", "rocl", "fcl", "student", "baseline", "tune"):
        assert "preset" in COMMANDS[command].model_fields
        assert preset_keys(COMMANDS[command]) <= {f.key for f in flat_fields(COMMANDS[command])}
    text = (ROOT / "MLproject").read_text()
    assert "default: ''" not in text and "student_epochs" not in text.split("parameters:")[1]  # passed through, never ''


def write_imagenet100_folder(root, classes: int = 3, per_class: int = 3, size: int = 64):
    from cinv.data.datasets import read_class_list

    wnids = read_class_list("imagenet100")[:classes]
    write_image_folder(root, {w: per_class for w in wnids}, size=size)
    (root / "classes.txt").write_text("\n".join(wnids) + "\n")
    return root


@pytest.mark.slow
def test_the_paper_preset_runs_end_to_end_on_a_cpu(store, tmp_path):
    """The paper-scale path (open_clip RN101 at 224 px, ResNet-101 baseline, batch 256) with random
    weights on a few generated images under ImageNet-100 class names: one step each."""
    root = write_imagenet100_folder(tmp_path / "imagenet")
    run_id = cinv.run_command("main", preset="paper", dataset=str(root), class_list=str(root / "classes.txt"),
                              teacher_weights="none", baseline_backbone_weights="none", student_epochs=1, baseline_epochs=1,
                              probe_epochs=1, probe_feature_draws=1, eval_draws=1, num_workers=0, val_fraction=0.34,
                              probe_log_model=False)
    config = mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json")
    student, baseline = config["options"]["student"], config["options"]["baseline"]
    assert (config["teacher"], config["data"]["image_size"], student["batch_size"]) == ("open_clip:RN101", 224, 256)
    assert baseline["backbone"] == "torchvision:resnet101" and config["preset"] == "paper"
    differs = mlflow.artifacts.load_dict(f"runs:/{run_id}/deviations.json")["differs_from_paper"]
    assert set(differs) == {"student_epochs", "baseline_epochs", "probe_epochs", "probe_feature_draws", "eval_draws",
                            "baseline_backbone_weights", "teacher_weights", "class_list", "val_fraction", "precision"}
    params = mlflow.get_run(run_id).data.params
    assert params["student_batch_size"] == "256" and params["preset"] == "paper"
    children = child_runs(run_id)
    assert len(children) == 6 and (children["status"] == "FINISHED").all()
    assert mlflow.get_run(run_id).data.tags["cinv.preset"] == "paper"
