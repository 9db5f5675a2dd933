"""Commands as users run them: fresh processes, a real MLflow store, the real registry."""

import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from conftest import ROOT, run_cli, write_image_folder

TINY = ["--limit_per_class", "12", "--image_size", "32"]


def runs(experiment="cinv"):
    exp = mlflow.get_experiment_by_name(experiment)
    return mlflow.search_runs([exp.experiment_id], output_format="list") if exp else []


@pytest.mark.slow
def test_main_through_mlflow_run_records_everything(store, tmp_path):
    """The Quickstart's main job (smaller), then what an MLflow 3 user expects to find."""
    proc = run_cli(["-m", "mlflow", "run", str(ROOT), "--env-manager", "local", "--experiment-name", "cinv", "-e", "main",
                    "-P", "limit_per_class=20", "-P", "image_size=32", "-P", "student_epochs=2", "-P", "student_checkpoint_every_steps=1",
                    "-P", "baseline_epochs=1", "-P", "probe_epochs=2"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Student (contrastive inversion)" in proc.stdout
    assert "workflowType=machine_learning" in proc.stdout  # the run's page in the UI

    client = MlflowClient()
    experiment = client.get_experiment_by_name("cinv")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on training runs
    all_runs = runs()
    parent = next(r for r in all_runs if "mlflow.parentRunId" not in r.data.tags)
    children = {r.info.run_name.split(" · ")[0]: r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    cells = {"teacher clean probe test", "teacher test", "student test", "baseline test"}
    assert set(children) == cells | {"student train", "baseline train"}  # one run per evaluated cell, one per training
    assert children["student train"].info.run_name == "student train · random_mask(fraction=0.9) · seed 0"
    assert len({name[:15] for name in children}) == len(children)  # they differ in what the runs table shows
    assert parent.info.run_name == "main · random_mask(fraction=0.9) · seed 0"
    assert parent.info.status == "FINISHED" and all(r.info.status == "FINISHED" for r in children.values())
    assert "Student (contrastive inversion)" in parent.data.tags["mlflow.note.content"]  # the description holds the table

    # `mlflow run` logs the MLproject params itself, shell-quoted (mlflow/mlflow#6811); cinv logs the
    # values it used for the rest; the resolved config is complete in config.json.
    params = parent.data.params
    assert params["corruption"].strip("'") == "random_mask(fraction=0.9)"
    assert params["student_epochs"] == "2" and params["eval_draws"] == "10" and params["student_lr"] == "0.002"
    assert params["teacher_weights"] == "imagenet" and params["probe_feature_draws"] == "3"
    assert "" not in {v.strip("'") for v in params.values()}  # no parameter shows as the literal ''
    config = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/config.json")
    assert config["corruption"] == "random_mask(fraction=0.9)" and config["options"]["student"]["epochs"] == 2
    assert children["student train"].data.params["corruption"] == "random_mask(fraction=0.9)"
    for name in ("teacher test", "student test", "baseline test"):
        draws = mlflow.load_table("test_draws.json", run_ids=[children[name].info.run_id])
        assert list(draws["draw"]) == list(range(10)), name  # per-draw accuracies: a table, not a metric curve
        assert children[name].data.metrics["test_top1_mean"] == pytest.approx(draws["top1"].mean())
        assert draws["top1"].between(0, 100).all()
        assert not client.get_metric_history(children[name].info.run_id, "test_top1")
    assert len(mlflow.load_table("test_draws.json", run_ids=[children["teacher clean probe test"].info.run_id])) == 1
    for name in ("teacher clean probe test", "teacher test", "student test"):
        probe_run = client.get_run(children[name].info.run_id)  # every probe's curve and size in its cell's run
        assert len(client.get_metric_history(probe_run.info.run_id, "probe_loss")) == 2
        assert probe_run.data.metrics["probe_train_images"] == 200
    student_run = children["student train"].info.run_id
    epochs = client.get_metric_history(student_run, "train_loss_epoch")
    steps = client.get_metric_history(student_run, "train_loss")  # per optimiser step, on the same axis
    assert len(epochs) == 2 and len(steps) == epochs[-1].step and [m.step for m in steps] == list(range(1, len(steps) + 1))
    assert len(client.get_metric_history(student_run, "lr")) == len(steps)
    assert [m.step for m in client.get_metric_history(student_run, "val_loss")] == [m.step for m in epochs]
    for run in (parent, *children.values()):  # datasets on every run, by context
        contexts = {tag.value for d in client.get_run(run.info.run_id).inputs.dataset_inputs for tag in d.tags}
        assert "training" in contexts or "testing" in contexts, run.info.run_name
    assert {d.dataset.name for d in client.get_run(parent.info.run_id).inputs.dataset_inputs} == {
        "embedded-train", "embedded-val", "embedded-test"}

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.csv", "results.md", "results.html", "results.json", "results.png", "samples.png", "config.json",
            "paper_comparison.json", "deviations.json"} <= artifacts
    # Held against the paper: Table 1's Random Mask 90% beside the student, in the table, the description and the output.
    compared = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{parent.info.run_id}/paper_comparison.csv"))
    student = compared[(compared["key"] == "student") & (compared["metric"] == "top1")].iloc[0]
    assert student["published"] == "82.96 ± 0.08" and student["source"].startswith("inversion: Table 1, Random Mask 90%, Ours")
    assert student["difference"] == pytest.approx(children["student test"].data.metrics["test_top1_mean"] - 82.96, abs=0.01)
    assert {"dataset", "image_size", "teacher"} <= set(student["deviations"].split(", "))
    assert compared[compared["key"] == "teacher_clean_probe"]["published"].tolist() == ["not in the paper"]
    assert "paper 82.96 ± 0.08" in parent.data.tags["mlflow.note.content"] and "paper 82.96 ± 0.08" in proc.stdout
    listed = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/deviations.json")
    assert "student_teacher_batchnorm" in {c["setting"] for c in listed["paper_vs_code"]}
    assert not client.list_artifacts(children["student train"].info.run_id, "checkpoints")  # FINISHED: removed

    # MLflow 3 logged models: evaluation metrics linked to the model, final training metrics, distinct names.
    evaluated = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id],
                                            filter_string="metrics.test_top1_mean > 0", output_format="list")
    assert {m.name for m in evaluated} >= {"student_encoder", "student_probe", "teacher_probe", "teacher_probe_clean",
                                           "baseline_encoder", "baseline_classifier"}
    names = [m.name for m in mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")]
    assert len(names) == len(set(names)), names  # unique within the job
    probe = next(m for m in evaluated if m.name == "student_probe")
    probe_loss = {m.key: m for m in probe.metrics}["probe_loss"]
    final = client.get_metric_history(children["student test"].info.run_id, "probe_loss")[-1]
    assert probe_loss.value == pytest.approx(final.value) and probe_loss.step == final.step  # the final epoch's
    version = client.get_model_version("cinv-student", "1")
    model_id = version.source.removeprefix("models:/")  # the version's logged model
    student_model = mlflow.get_logged_model(model_id)
    metrics = {m.key: m for m in student_model.metrics}
    assert metrics["test_top1_mean"].value == pytest.approx(children["student test"].data.metrics["test_top1_mean"])
    assert metrics["test_top1_mean"].dataset_name == "embedded-test"
    final = client.get_metric_history(children["student train"].info.run_id, "train_loss_epoch")[-1]
    assert metrics["train_loss_epoch"].value == pytest.approx(final.value) and metrics["train_loss_epoch"].step == final.step
    assert "val_loss" in metrics  # the last epoch's training metrics go with the model
    probe_inputs = client.get_run(children["student test"].info.run_id).inputs.model_inputs
    assert [m.model_id for m in probe_inputs] == [model_id]  # the probe records the encoder it used

    assert version.tags["method"] == "student"  # one name everywhere
    assert version.tags["corruption"] == "random_mask(fraction=0.9)"
    assert version.run_id == children["student train"].info.run_id
    assert "student" in version.description and "test top-1" in version.description
    aliases = {k: str(v) for k, v in client.get_registered_model("cinv-student").aliases.items()}
    assert aliases == {"champion": "1"}  # the Quickstart's next step works
    assert client.get_registered_model("cinv-student").description
    baseline = client.get_model_version("cinv-baseline", "1")
    assert baseline.tags["method"] == "baseline" and baseline.run_id == children["baseline train"].info.run_id
    encoder = mlflow.pytorch.load_model("models:/cinv-student@champion")
    with torch.no_grad():
        assert encoder(torch.rand(3, 3, 32, 32)).shape == (3, 1280)
    photos = write_image_folder(tmp_path / "photos", {"a": 2}) / "train"
    embed = run_cli(["-m", "cinv.cli", "embed", "--images", str(photos), "--output", str(tmp_path / "e.parquet")], cwd=tmp_path)
    assert embed.returncode == 0, embed.stderr[-2000:]  # embed's default, models:/cinv-student@champion, works at once
    assert len(pd.read_parquet(tmp_path / "e.parquet")) == 2


@pytest.mark.slow
def test_stage_commands_chain_through_model_uris(store, tmp_path):
    student = run_cli([str(ROOT / "entrypoints/student.py"), *TINY, "--epochs", "1", "--batch_size", "32",
                       "--registered_model_name", "tiny-student"], cwd=tmp_path)
    assert student.returncode == 0, student.stderr[-3000:]
    probe = run_cli([str(ROOT / "entrypoints/probe.py"), *TINY, "--encoder", "models:/tiny-student/1",
                     "--epochs", "2", "--eval_draws", "3"], cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr[-3000:]
    probe_run = next(r for r in runs() if r.data.tags.get("cinv.command") == "probe")
    assert len(mlflow.load_table("test_draws.json", run_ids=[probe_run.info.run_id])) == 3
    evaluate = run_cli([str(ROOT / "entrypoints/evaluate.py"), *TINY, "--model", f"runs:/{probe_run.info.run_id}/probe_classifier",
                        "--draws", "3"], cwd=tmp_path)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    eval_run = next(r for r in runs() if r.data.tags.get("cinv.command") == "evaluate")
    # Same data, corruption and draw seed: the logged classifier reproduces the probe run's numbers.
    assert eval_run.data.metrics["test_top1_mean"] == pytest.approx(probe_run.data.metrics["test_top1_mean"], abs=1e-6)
    baseline = run_cli([str(ROOT / "entrypoints/baseline.py"), *TINY, "--epochs", "1", "--eval_draws", "2"], cwd=tmp_path)
    assert baseline.returncode == 0, baseline.stderr[-3000:]


def test_progress_bars_stay_off_a_log_file(store, tmp_path):
    """Output that is not a terminal gets the stages' one-line logs, not a progress-bar redraw per
    batch, nor MLflow's system-metrics monitor lines (three per run; shown with -v)."""
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    proc = subprocess.run([sys.executable, "-m", "cinv.cli", "student", "--limit_per_class", "8", "--image_size", "32",
                           "--epochs", "2", "--batch_size", "8"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stderr and "it/s" not in proc.stderr, proc.stderr[-2000:]
    assert len([line for line in proc.stderr.splitlines() if "student epoch" in line]) == 2  # one line per epoch
    assert "system_metrics" not in proc.stderr, proc.stderr[-2000:]


def test_version_is_the_packages():
    from importlib.metadata import version

    proc = subprocess.run([sys.executable, "-c", "from cinv.cli import console; console()", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"cinv {version('cinv')}"
    text = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{version("cinv")}"' in text and 'license = "Apache-2.0"' in text
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert f"## [{version('cinv')}]" in (ROOT / "CHANGELOG.md").read_text()
    assert f"version: {version('cinv')}" in (ROOT / "CITATION.cff").read_text()


def test_help_shows_each_default_once_and_folds_the_methods_a_command_does_not_run(capsys):
    from cinv import cli

    with pytest.raises(SystemExit):
        cli.run("main", ["--help"])
    short = capsys.readouterr().out
    assert "(default: )" not in short and "(default: (none))" not in short and "(none)" not in short
    assert "--student_lr" in short and "--rocl_lr" not in short and "--fcl_lam" not in short
    assert "rocl: 23 options" in short.replace("\n  ", " ") and "--help-all" in short
    assert cli.run("main", ["--help-all"]) == 0
    full = capsys.readouterr().out
    assert "--rocl_lr" in full and "--trades_beta" in full
    warmup = " ".join(full.split("--rocl_warmup_multiplier")[1].split("--rocl_detach")[0].split())
    assert "(default: preset cpu: none; preset paper: 15.0)" in warmup, warmup  # both presets, not one


def test_patched_restores_every_key_as_it_was_whatever_the_block_did():
    from cinv.runtime import patched

    table = {"kept": 1, "set": 2, "none": None}
    with patched(table, {"set": 20, "new": 30, "none": 5}, keep=("kept", "later")):
        table.update(kept=10, later=40)
        assert table == {"kept": 10, "set": 20, "none": 5, "new": 30, "later": 40}
    assert table == {"kept": 1, "set": 2, "none": None}  # a key held as None is put back, not dropped
    with pytest.raises(RuntimeError), patched(table, {"set": 3}):
        raise RuntimeError
    assert table["set"] == 2
