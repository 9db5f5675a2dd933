"""Optuna search: ranges, storage, pruning bookkeeping, resuming, and several workers on one study."""

import subprocess
import sys

import mlflow
import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

from cinv import cli
from cinv.commands.tune import TuneConfig
from cinv.config import ConfigError, build
from cinv.methods import Range
from cinv.tuning import Objective, parse_space, summarize
from conftest import ROOT, run_cli

TINY = ["--limit_per_class", "6", "--image_size", "32", "--student_batch_size", "16", "--probe_epochs", "2",
        "--val_draws", "1", "--reports", "2", "--pruner_startup_trials", "1"]


def test_default_space_is_the_papers():
    space = parse_space("student", "")
    assert space == {"lr": Range(1e-4, 1e-2, True), "weight_decay": Range(1e-4, 1e-3, True), "temperature": Range(0.1, 1.0)}
    assert parse_space("baseline", "") == {"lr": Range(1e-5, 0.5, True)}


def test_ranges_can_be_overridden():
    assert parse_space("fcl", "lam=(1e-6, 1e-2)", "lam") == {"lam": Range(1e-6, 1e-2, True)}
    with pytest.raises(ValueError, match="search: unknown parameter"):
        parse_space("fcl", "", "lam, beta")
    with pytest.raises(ValueError, match=r"unknown parameter 'lr'.*\(those in search\)"):
        parse_space("fcl", "lr=(1e-3, 1e-2)", "lam")
    space = parse_space("student", "lr=(1e-3, 5e-3), temperature=(0.2, 0.4)")
    assert space["lr"] == Range(1e-3, 5e-3, True) and space["temperature"] == Range(0.2, 0.4)
    assert space["weight_decay"] == Range(1e-4, 1e-3, True)


@pytest.mark.parametrize("method,text,needle", [
    ("student", "lr=(1e-2, 1e-4)", "empty or inverted"),
    ("student", "temperature=(0.5, 0.5)", "empty or inverted"),
    ("student", "momentum=(0.1, 0.9)", "unknown parameter 'momentum'.*tunable: lr, weight_decay, temperature"),
    ("baseline", "temperature=(0.1, 1)", "unknown parameter 'temperature' for baseline"),
    ("student", "lr=0.1", r"needs a \(low, high\) pair"),
    ("student", "lr=(0, 1e-2)", "log scale"),
    ("student", "lr=(1e-4", "cannot parse"),
])
def test_bad_ranges_are_config_errors(method, text, needle):
    with pytest.raises(ConfigError, match=needle):
        build(TuneConfig, {"method": method, "space": text})


def test_unreachable_storage_fails_before_anything_is_written(store, tmp_path):
    for url, needle in [("sqlite:////nonexistent/dir/optuna.db", "cannot open Optuna storage"),
                        (str(tmp_path / "missing" / "optuna.journal"), "does not exist")]:
        assert cli.run("tune", [*TINY, "--storage", url, "--study_name", "s"]) == 2
        runs = mlflow.search_runs(output_format="list")
        assert needle in runs[0].data.tags["cinv.error"]
    assert all(r.info.status == "FAILED" and r.data.tags.get("cinv.stage") is None for r in runs)
    assert not (tmp_path / "optuna.journal").exists() and not (tmp_path / "missing").exists()


def trial_runs(study):
    return [r for r in mlflow.search_runs(output_format="list") if r.data.tags.get("cinv.study") == study
            and r.data.tags.get("cinv.stage") == "trial"]


def test_pruned_trials_are_finished_runs_tagged_pruned(store, tmp_path, monkeypatch):
    from cinv.training.context import setup

    def pruned(self, trial, params):
        trial.report(1.0, 0)
        raise optuna.TrialPruned("pruned for the test")

    monkeypatch.setattr(Objective, "train_and_score", pruned)
    cfg = build(TuneConfig, {"study_name": "p", "limit_per_class": "2", "device": "cpu"})
    with mlflow.start_run() as parent:
        study = optuna.create_study(direction="maximize")
        objective = Objective(cfg, setup(cfg), parent.info.run_id, parent.info.experiment_id)
        study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    runs = trial_runs("p")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["optuna.state"] for r in runs} == {"PRUNED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}


@pytest.mark.slow
def test_resume_and_summary(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.run("tune", [*TINY, "--study_name", "r", "--n_trials", "2"]) == 0
    assert cli.run("tune", [*TINY, "--study_name", "r", "--n_trials", "2"]) == 0
    study = optuna.load_study(study_name="r", storage=optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal"))))
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    runs = mlflow.search_runs(output_format="list")
    parent = next(r for r in runs if r.data.tags.get("cinv.stage") == "study")
    worker = next(r for r in runs if r.data.tags.get("cinv.stage") == "tune worker")
    assert worker.data.tags["mlflow.parentRunId"] == parent.info.run_id
    trials = trial_runs("r")
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trials) == [0, 1, 2, 3]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    for run in trials:
        assert set(run.data.params) >= {"lr", "weight_decay", "temperature"}
        assert run.data.tags["optuna.state"] in ("COMPLETE", "PRUNED")
    parent = mlflow.get_run(parent.info.run_id)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "optimization_history.png", "intermediate_values.png"} <= artifacts
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert float(parent.data.tags["best.lr"]) == pytest.approx(study.best_params["lr"], rel=1e-5)

    # Two workers that finish together both see no trial running: only one writes the summary
    # (two at once collided on the server's database, on set_tag).
    from concurrent.futures import ThreadPoolExecutor

    history = mlflow.MlflowClient().get_metric_history
    assert len(history(parent.info.run_id, "trials_complete")) == 2  # one summary per worker that finished
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: summarize(study, parent.info.run_id), range(2)))
    assert len(history(parent.info.run_id, "trials_complete")) == 2  # these 4 trials were summarised already
    assert "cinv.summary_by.4" in mlflow.get_run(parent.info.run_id).data.params


@pytest.mark.slow
def test_three_workers_share_one_study_without_losing_or_duplicating_trials(store, tmp_path):
    journal = tmp_path / "optuna.journal"
    command = [sys.executable, str(ROOT / "entrypoints/tune.py"), *TINY, "--study_name", "shared", "--n_trials", "2",
               "--storage", str(journal)]
    import os

    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    results = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [err[-2000:] for _, err in results]
    study = optuna.load_study(study_name="shared", storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
    runs = mlflow.search_runs(output_format="list")
    parents = [r for r in runs if r.data.tags.get("cinv.stage") == "study"]
    assert len(parents) == 1
    workers_runs = [r for r in runs if r.data.tags.get("cinv.stage") == "tune worker"]
    assert len(workers_runs) == 2 and {r.data.tags["mlflow.parentRunId"] for r in workers_runs} == {parents[0].info.run_id}
    trials = trial_runs("shared")
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trials) == list(range(6))
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in trials}
    # the study's trials table is the last worker's: every trial in its final state, none still RUNNING
    table = mlflow.load_table("trials.json", run_ids=[parents[0].info.run_id])
    assert sorted(table["number"]) == list(range(6)) and set(table["state"]) <= {"COMPLETE", "PRUNED"}


def test_a_study_created_for_another_method_is_not_silently_reused(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    study = optuna.create_study(study_name="m", storage=storage, direction="maximize")
    study.set_user_attr("cinv.space", {"method": "baseline", "space": {"lr": [1e-5, 0.5, True]}})
    study.set_user_attr("cinv.mlflow_run_id", "abc")
    assert cli.run("tune", [*TINY, "--study_name", "m"]) == 2
    assert "use a new study_name" in mlflow.search_runs(output_format="list")[0].data.tags["cinv.error"]
    assert len(optuna.load_study(study_name="m", storage=storage).trials) == 0


def test_a_summary_that_lands_after_a_later_one_is_written_again_from_the_study_as_it_is(store, tmp_path, monkeypatch):
    """Worker A summarises 2 trials; while it writes, worker B adds a third, claims its summary and
    writes it first (on a loaded machine, A's slower upload lands last). A sees B's claim and
    rewrites, so the study's run ends with all 3 trials."""
    from cinv import tuning
    from cinv.tracking.lease import first_writer

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    study = optuna.create_study(study_name="late", storage=storage, direction="maximize")
    for value in (1.0, 2.0):
        study.add_trial(optuna.trial.create_trial(params={"x": value}, distributions={"x": optuna.distributions.FloatDistribution(0, 9)},
                                                  value=value))
    with mlflow.start_run() as parent:
        pass
    written, original = [], tuning.write_summary

    def write_summary(study_, trials, run_id):
        if not written:  # B, in the middle of A's write: a third trial, claimed and summarised first
            study.add_trial(optuna.trial.create_trial(params={"x": 3.0}, distributions={
                "x": optuna.distributions.FloatDistribution(0, 9)}, value=3.0))
            assert first_writer(run_id, "cinv.summary_by.3", "worker B") == "worker B"
            original(study_, tuning.trials_table(study_), run_id)
        written.append(len(trials))
        original(study_, trials, run_id)

    monkeypatch.setattr(tuning, "write_summary", write_summary)
    summarize(study, parent.info.run_id)
    assert written == [2, 3]
    table = mlflow.load_table("trials.json", run_ids=[parent.info.run_id])
    assert sorted(table["number"]) == [0, 1, 2]


def test_tune_entry_point_help():
    proc = run_cli([str(ROOT / "entrypoints/tune.py"), "--help"], cwd=ROOT)
    assert proc.returncode == 0 and "--space" in proc.stdout and "--storage" in proc.stdout


def test_a_storage_url_with_a_password_is_refused_before_it_could_be_logged():
    assert build(TuneConfig, {"storage": "postgresql+psycopg://cinv@db:5432/optuna"}).storage.endswith("/optuna")
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        build(TuneConfig, {"storage": "postgresql+psycopg://cinv:s3cret@db:5432/optuna"})


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_a_failed_trial_and_the_last_worker_writes_the_summary(store, tmp_path, monkeypatch):
    """The journal storage has no Optuna heartbeats: cinv records each trial's worker and fails the
    trials of a worker that is gone, so the killed trial does not stay RUNNING forever."""
    import os
    import signal
    import time
    from pathlib import Path

    journal, pause = tmp_path / "optuna.journal", tmp_path / "pause"
    args = [*TINY, "--study_name", "k", "--n_trials", "1", "--storage", str(journal)]
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore", "CINV_PAUSE_AFTER_STEP": "1",
           "CINV_PAUSE_FILE": str(pause)}
    victim = subprocess.Popen([sys.executable, str(ROOT / "entrypoints/tune.py"), *args], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not Path(f"{pause}.reached").exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert Path(f"{pause}.reached").exists(), victim.communicate()[1][-2000:]
    victim.send_signal(signal.SIGKILL)  # mid-trial: no chance to clean up
    victim.wait()

    monkeypatch.chdir(tmp_path)
    assert cli.run("tune", args) == 0  # a later worker
    study = optuna.load_study(study_name="k", storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    states = {t.number: t.state for t in study.trials}
    assert states[0] == optuna.trial.TrialState.FAIL and "is gone" in study.trials[0].user_attrs["failed_because"]
    assert states[1] in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    parent = next(r for r in mlflow.search_runs(output_format="list") if r.data.tags.get("cinv.stage") == "study")
    table = mlflow.load_table("trials.json", run_ids=[parent.info.run_id])  # the summary was written
    assert sorted(table["number"]) == [0, 1] and "RUNNING" not in set(table["state"])
    # The killed worker's MLflow runs end too, each with its reason: none is left RUNNING.
    runs = mlflow.search_runs(output_format="list")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    trial = next(r for r in runs if r.info.run_name == "trial 0")
    assert trial.info.status == "FAILED" and "is gone" in trial.data.tags["cinv.error"]
    assert parent.info.run_id == study.user_attrs["cinv.mlflow_run_id"]  # the killed worker had created the study
    killed = mlflow.get_run(parent.info.run_id)
    assert killed.info.status == "KILLED" and "is gone" in killed.data.tags["cinv.error"]
