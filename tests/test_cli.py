"""Commands as users run them: fresh processes, a real MLflow store, the real registry."""

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from conftest import ROOT, run_cli

TINY = ["--limit_per_class", "12", "--image_size", "32"]


def runs(experiment="Default"):
    exp = mlflow.get_experiment_by_name(experiment)
    return mlflow.search_runs([exp.experiment_id], output_format="list") if exp else []


@pytest.mark.slow
def test_main_through_mlflow_run_records_everything(store, tmp_path):
    proc = run_cli(["-m", "mlflow", "run", str(ROOT), "--env-manager", "local", "-e", "main",
                    "-P", "limit_per_class=20", "-P", "image_size=32", "-P", "student_epochs=1",
                    "-P", "baseline_epochs=1", "-P", "probe_epochs=2"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Student (contrastive inversion)" in proc.stdout

    client = MlflowClient()
    all_runs = runs()
    parent = next(r for r in all_runs if "mlflow.parentRunId" not in r.data.tags)
    children = {r.info.run_name: r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"teacher_clean_probe", "teacher_corrupted_probe", "student", "student_probe", "baseline"}
    assert parent.info.status == "FINISHED" and all(r.info.status == "FINISHED" for r in children.values())

    # `mlflow run` logs the MLproject params itself, shell-quoted (mlflow/mlflow#6811);
    # the resolved config is complete in config.json.
    assert parent.data.params["corruption"].strip("'") == "random_mask(fraction=0.9)"
    assert parent.data.params["student_epochs"] == "1" and parent.data.params["eval_draws"] == "10"
    config = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/config.json")
    assert config["corruption"] == "random_mask(fraction=0.9)" and config["student"]["epochs"] == 1
    assert children["student"].data.params["corruption"] == "random_mask(fraction=0.9)"
    for name in ("teacher_corrupted_probe", "student_probe", "baseline"):
        history = client.get_metric_history(children[name].info.run_id, "test_top1")
        assert sorted(m.step for m in history) == list(range(10)), name
        values = [m.value for m in history]
        mean = children[name].data.metrics["test_top1_mean"]
        assert mean == pytest.approx(sum(values) / 10)
        assert 0 <= min(values) and max(values) <= 100
    assert len(client.get_metric_history(children["teacher_clean_probe"].info.run_id, "test_top1")) == 1
    assert len(client.get_metric_history(children["student"].info.run_id, "train_loss")) == 1

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.csv", "results.md", "results.html", "results.png", "samples.png", "config.json"} <= artifacts

    version = client.get_model_version("cinv-student", "1")
    assert version.tags["method"] == "contrastive_inversion"
    assert version.tags["corruption"] == "random_mask(fraction=0.9)"
    assert version.run_id == children["student"].info.run_id
    assert float(version.tags["test_top1_mean"]) == pytest.approx(children["student_probe"].data.metrics["test_top1_mean"], abs=1e-3)
    baseline = client.get_model_version("cinv-baseline", "1")
    assert baseline.tags["method"] == "supervised_baseline" and baseline.run_id == children["baseline"].info.run_id
    encoder = mlflow.pytorch.load_model("models:/cinv-student/1")
    with torch.no_grad():
        assert encoder(torch.rand(3, 3, 32, 32)).shape == (3, 1280)


@pytest.mark.slow
def test_stage_commands_chain_through_model_uris(store, tmp_path):
    student = run_cli([str(ROOT / "entrypoints/student.py"), *TINY, "--epochs", "1", "--batch_size", "32",
                       "--registered_model_name", "tiny-student"], cwd=tmp_path)
    assert student.returncode == 0, student.stderr[-3000:]
    probe = run_cli([str(ROOT / "entrypoints/probe.py"), *TINY, "--encoder", "models:/tiny-student/1",
                     "--epochs", "2", "--eval_draws", "3"], cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr[-3000:]
    probe_run = next(r for r in runs() if r.data.tags.get("cinv.command") == "probe")
    assert len(MlflowClient().get_metric_history(probe_run.info.run_id, "test_top1")) == 3
    evaluate = run_cli([str(ROOT / "entrypoints/evaluate.py"), *TINY, "--model", f"runs:/{probe_run.info.run_id}/classifier",
                        "--draws", "3"], cwd=tmp_path)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    eval_run = next(r for r in runs() if r.data.tags.get("cinv.command") == "evaluate")
    # Same data, corruption and draw seed: the logged classifier reproduces the probe run's numbers.
    assert eval_run.data.metrics["test_top1_mean"] == pytest.approx(probe_run.data.metrics["test_top1_mean"], abs=1e-6)
    baseline = run_cli([str(ROOT / "entrypoints/baseline.py"), *TINY, "--epochs", "1", "--eval_draws", "2"], cwd=tmp_path)
    assert baseline.returncode == 0, baseline.stderr[-3000:]
