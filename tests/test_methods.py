"""FCL and RoCL as commands: the same loop, tracking and evaluation as contrastive inversion."""

import mlflow
import pandas as pd
import pytest

import cinv

QUICK_FCL = {"epochs": 1, "limit_per_class": 20, "warmup_start": 0, "warmup_epochs": 0.5, "batch_size": 64}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fcl", "cl_gaussian"])
def test_fcl_command_trains_and_scores_the_three_test_sets(store, shared, method):
    run_id = cinv.run_command("fcl", mnist=str(shared / "mnist.npz"), method=method, **QUICK_FCL)
    run = mlflow.get_run(run_id)
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/fcl_results.csv"))
    assert list(table["test set"]) == ["bal", "bal_un", "bal_nun"] and (table["images"] == 300).all()
    for name in ("bal", "bal_un", "bal_nun"):
        assert 0 <= run.data.metrics[f"{name}_top1_mean"] <= 100
    assert run.data.metrics["lr"] == pytest.approx(0.01 * 0.89)  # decayed once per epoch
    assert any(m.model_id for m in mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list"))


def test_fcl_rejects_bad_parameters(store):
    with pytest.raises(cinv.CommandFailed, match="method"):
        cinv.run_command("fcl", method="fcl2")
    with pytest.raises(cinv.CommandFailed, match="mnist"):
        cinv.run_command("fcl", mnist="/nonexistent/mnist.npz", epochs=1)


@pytest.mark.slow
def test_rocl_command_reports_clean_robust_and_smoothed_accuracy(store):
    run_id = cinv.run_command("rocl", limit_per_class=8, image_size=32, epochs=1, batch_size=32, warmup_epochs=0,
                              probe_epochs=2, attack_images=16, attack_steps=2, attack_rle_epochs=1,
                              attack_smoothing_samples=2, attack_budgets="inf:8/255, 2:0.5, 1:12")
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/rocl_results.csv"))
    assert list(table["probe"].unique()) == ["LE", "r-LE"] and len(table) == 2 * 5
    assert table["top1"].between(0, 100).all()
    clean = table[table["attack"].str.startswith("none (clean")].set_index("probe")["top1"]
    attacked = table[table["attack"] == "pgd l_inf 0.03137"].set_index("probe")["top1"]
    assert (attacked <= clean + 1e-9).all()  # an attack can only remove correct answers
    metrics = mlflow.get_run(run_id).data.metrics
    assert {"le_clean_top1_mean", "rle_clean_top1_mean", "le_pgd_linf_0p03137", "le_smoothed_top1"} <= set(metrics)
    run = mlflow.get_run(run_id)
    assert run.data.params["optimizer"] == "adam" and run.data.tags["cinv.preset"] == "cpu"  # the paper's LARS: preset=paper
    assert run.data.metrics["attack_images"] == 10 and run.data.metrics["attack_images_per_class"] == 1


@pytest.mark.slow
def test_benchmark_evaluates_every_method_on_one_suite(store):
    run_id = cinv.run_command(
        "benchmark", limit_per_class=8, image_size=32, student_epochs=1, student_batch_size=32, baseline_epochs=1,
        baseline_batch_size=32, probe_epochs=2, eval_draws=1, rocl_epochs=1, rocl_batch_size=32, fcl_epochs=1,
        fcl_batch_size=32, corruptions="random_mask(fraction=0.5); imagenet_c(corruption='fog', severity=3)",
        attack_images=16, attack_steps=2, attack_budgets="inf:4/255")
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/benchmark.csv"))
    assert table.groupby("method").size().to_dict() == {m: 3 for m in [
        "FCL", "RoCL (linear evaluation)", "student (ours)", "supervised baseline", "teacher probe trained on clean images"]}
    assert table["top1_mean"].between(0, 100).all()
    assert "benchmark.png" in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    children = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    assert set(children["tags.cinv.stage"]) == {"student", "baseline", "rocl", "fcl", "evaluation"}
