"""Checkpoints, resume after a crash, non-finite training, and store failures."""

import io
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from cinv import corruption as distortions
from cinv.data.datasets import TensorImages
from cinv.data.stream import BatchStream
from cinv.errors import NonFiniteLossError
from cinv.tracking.resume import latest_resumable
from cinv.training.checkpoint import Checkpointer
from cinv.training.loop import Optim, fit
from conftest import ROOT, run_cli, write_image_folder

STUDENT = [str(ROOT / "entrypoints/student.py"), "--limit_per_class", "32", "--image_size", "32", "--epochs", "3",
           "--batch_size", "16", "--lr", "1e-3", "--checkpoint_every_steps", "3"]


def tiny_stream(seed=0):
    labels = torch.arange(4).repeat_interleave(12)
    images = torch.randint(0, 255, (48, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return BatchStream(TensorImages(images, labels), corruption=distortions.get("gaussian_noise", std=0.1), batch_size=8,
                       image_size=8, device=torch.device("cpu"), train=True, augment_on_batch=True, seed=seed)


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.Dropout(0.3), nn.Linear(16, 4))


def supervised(model):
    return lambda views: nn.functional.cross_entropy(model(views.corrupted), views.labels)


def test_checkpoints_hold_the_model_and_resume_bit_for_bit_in_process(store):
    """Interrupt fit at step 9 of 18 (dropout and corruption draws included), resume, compare."""
    with mlflow.start_run() as reference:
        model = make_model()
        fit(model, supervised(model), tiny_stream(), Optim(epochs=3, lr=0.01, weight_decay=1e-4),
            checkpointer=Checkpointer(reference.info.run_id, every_steps=2))
    expected = model.state_dict()

    class Crash(Exception):
        pass

    with mlflow.start_run() as crashed:
        model = make_model()
        def crash(step, total):
            if step == 9:
                raise Crash

        with pytest.raises(Crash):
            fit(model, supervised(model), tiny_stream(), Optim(epochs=3, lr=0.01, weight_decay=1e-4), on_step=crash,
                checkpointer=Checkpointer(crashed.info.run_id, every_steps=2))
        saved = Checkpointer(crashed.info.run_id).latest()
        # 6 steps per epoch, saves every 2 steps: the newest is mid-epoch 2, after 2 of its batches.
        assert (saved["step"], saved["epoch"], saved["epoch_state"]["position"]) == (8, 1, 2)
        assert set(saved["model"]) == set(expected)  # the trained model only: nothing else rides along
        model = make_model()  # a fresh process would start from scratch too
        history = fit(model, supervised(model), tiny_stream(), Optim(epochs=3, lr=0.01, weight_decay=1e-4),
                      checkpointer=Checkpointer(crashed.info.run_id, every_steps=2))
    assert history.steps == 18
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_an_objective_that_follows_the_step_continues_its_schedule_after_a_resume(store):
    """FCL's warm-up follows the optimiser step: a resumed training is told the step it resumes at
    (it used to count from 0 again, restarting the warm-up)."""
    told = []

    def objective_of(model):
        objective = supervised(model)
        objective.at_step = told.append
        return objective

    with mlflow.start_run() as run:
        model = make_model()

        def crash(step, total):
            if step == 9:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            fit(model, objective_of(model), tiny_stream(), Optim(epochs=3, lr=0.01), on_step=crash,
                checkpointer=Checkpointer(run.info.run_id, every_steps=2))
        assert told == list(range(9))
        told.clear()
        model = make_model()
        fit(model, objective_of(model), tiny_stream(), Optim(epochs=3, lr=0.01), checkpointer=Checkpointer(run.info.run_id))
    assert told == list(range(8, 18))  # from the checkpoint at step 8, not from 0


def test_unreadable_checkpoints_are_said_in_one_line_and_a_tag_not_a_silent_restart(store, caplog):
    with mlflow.start_run() as run:
        model = make_model()
        fit(model, supervised(model), tiny_stream(), Optim(epochs=1, lr=0.01), checkpointer=Checkpointer(run.info.run_id, 2))
        client = MlflowClient()
        for slot in ("a", "b"):  # both slots damaged (a disk or a copy gone wrong)
            client.log_text(run.info.run_id, "not a checkpoint", f"checkpoints/train-{slot}.pt")
        with caplog.at_level("WARNING", logger="cinv"):
            assert Checkpointer(run.info.run_id).latest() is None
    lines = [r.getMessage() for r in caplog.records if "no readable checkpoint" in r.getMessage()]
    assert len(lines) == 1 and "train-a.pt" in lines[0] and "train-b.pt" in lines[0] and "step 0" in lines[0]
    assert "train-a.pt: corrupt, not a readable checkpoint file (16 bytes)" in lines[0]
    assert "weights_only" not in lines[0]  # never torch's hint to load the file with pickle
    assert "restarts from step 0" in mlflow.get_run(run.info.run_id).data.tags["cinv.checkpoint_lost"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(store):
    with mlflow.start_run() as run:
        model = make_model()
        step = {"n": 0}

        def objective(views):
            step["n"] += 1
            loss = supervised(model)(views)
            return loss * float("nan") if step["n"] == 5 else loss

        with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 1, step 5"):
            fit(model, objective, tiny_stream(), Optim(epochs=2, lr=0.01, weight_decay=0.0),
                checkpointer=Checkpointer(run.info.run_id, every_steps=2))
        saved = Checkpointer(run.info.run_id).latest()
    assert saved["step"] == 4
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_non_finite_gradient_stops_training():
    model = make_model()
    model[1].weight.register_hook(lambda grad: grad * float("inf"))  # a finite loss with an infinite gradient
    with pytest.raises(NonFiniteLossError, match="gradient norm became"):
        fit(model, supervised(model), tiny_stream(), Optim(epochs=1, lr=0.01, weight_decay=0.0))
    assert torch.isfinite(model[1].weight).all()  # the step was not taken


def checkpoint_step(run_id):
    tag = MlflowClient().get_run(run_id).data.tags.get("cinv.checkpoint_step")
    return int(tag) if tag else -1


def interrupt_at_checkpoint(argv, cwd, sig, after_step, child=None, exclude=(), group=False, trainer=None):
    """Start ``argv``, paused after optimiser step ``after_step`` (of the ``trainer``-named
    training, default any) by the CINV_PAUSE_* hook, and send ``sig`` while it waits there: to the
    process, or with ``group`` to its whole process group (as ``timeout``, Slurm and Kubernetes
    do). No polling race: the signal always lands at that step. The (``child``-named) run's id."""
    pause = Path(cwd) / f"pause-{after_step}-{sig}"
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore", "CINV_PAUSE_AFTER_STEP": str(after_step),
           "CINV_PAUSE_FILE": str(pause), **({"CINV_PAUSE_IN": trainer} if trainer else {})}
    victim = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=group)
    reached, deadline = Path(f"{pause}.reached"), time.time() + 600
    while not reached.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    run_id = None
    if reached.exists():
        runs = [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                if r.info.run_id not in exclude and (child is None or r.info.run_name.startswith(child))
                and r.info.status == "RUNNING"]
        run_id = runs[0].info.run_id if runs else None
        if group:
            os.killpg(victim.pid, sig)
        else:
            victim.send_signal(sig)
    stderr = victim.communicate(timeout=600)[1]
    return run_id, victim.returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_kill_at_a_random_step_then_resume_matches_an_uninterrupted_run(store, tmp_path, sig):
    uninterrupted = run_cli(STUDENT, cwd=tmp_path)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    reference = mlflow.search_runs(output_format="list")[0]

    kill_after = random.Random().randint(3, 50)  # 60 steps in all; checkpoints every 3 and at epoch ends
    run_id, code, stderr = interrupt_at_checkpoint(STUDENT, tmp_path, sig, kill_after, exclude={reference.info.run_id})
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL, f"the run ended before step {kill_after}: {stderr[-2000:]}"
        assert mlflow.get_run(run_id).info.status == "RUNNING"  # SIGKILL leaves no chance to clean up
    else:  # what timeout, docker stop, Kubernetes and Slurm send: one line, KILLED, exit 143
        assert code == 143, f"the run ended before step {kill_after}: {stderr[-2000:]}"
        killed = mlflow.get_run(run_id)
        assert killed.info.status == "KILLED" and "SIGTERM" in killed.data.tags["cinv.error"]
        assert f"resume_run_id={run_id}" in stderr.strip().splitlines()[-1] and "Traceback" not in stderr

    resumed = run_cli([*STUDENT, "--resume_run_id", run_id], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["cinv.resumed"] == "1"

    def logged_encoder(run):
        (model,) = mlflow.search_logged_models(filter_string=f"source_run_id = '{run}'", output_format="list")
        return mlflow.pytorch.load_model(f"models:/{model.model_id}")

    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the same weights: the same embeddings, bit for bit
        assert torch.equal(logged_encoder(run_id)(images), logged_encoder(reference.info.run_id)(images))
    client = MlflowClient()
    for metric in ("train_loss", "lr"):
        ours = sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric))
        theirs = sorted((m.step, m.value) for m in client.get_metric_history(reference.info.run_id, metric))
        assert ours == theirs, metric
    assert not client.list_artifacts(run_id, "checkpoints")  # FINISHED: the checkpoints are removed


@pytest.mark.slow
def test_a_run_still_training_cannot_be_resumed_by_another_process(store, tmp_path):
    """Two processes on one run would write the same checkpoint slots and log two encoders."""
    long_student = [*STUDENT[:6], "30", *STUDENT[7:]]  # 30 epochs: still training after the two attempts below
    victim_id, victim = None, subprocess.Popen(
        [sys.executable, *long_student], cwd=tmp_path, env={**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and victim.poll() is None:
            runs = mlflow.search_runs(output_format="list")
            if runs and checkpoint_step(runs[0].info.run_id) >= 3:
                victim_id = runs[0].info.run_id
                break
            time.sleep(0.05)
        assert victim_id, "the student ended or never checkpointed"
        explicit = run_cli([*long_student, "--resume_run_id", victim_id], cwd=tmp_path)
        latest = run_cli([*long_student, "--resume_run_id", "latest"], cwd=tmp_path)
        assert victim.poll() is None, "the victim must still be training for this test to mean anything"
    finally:
        victim.kill()
        victim.wait()
    assert explicit.returncode == 2 and re.search(rf"run {victim_id} is still RUNNING: .*stop that process first",
                                                   explicit.stderr.strip().splitlines()[-1]), explicit.stderr[-2000:]
    assert latest.returncode == 2 and "to resume" in latest.stderr, latest.stderr[-2000:]
    run = mlflow.get_run(victim_id)
    assert "cinv.resumed" not in run.data.tags and len(mlflow.search_runs(output_format="list")) == 1
    # killed now (SIGKILL: no clean-up, the lease goes stale with its process): resumable again
    assert run.info.status == "RUNNING" and latest_resumable("student") == victim_id


MAIN = [str(ROOT / "entrypoints/main.py"), "--limit_per_class", "12", "--image_size", "32", "--student_epochs", "2",
        "--student_batch_size", "16", "--student_checkpoint_every_steps", "1", "--baseline_epochs", "1", "--probe_epochs", "2",
        "--probe_log_model", "false"]


def children_of(parent_id):
    return mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                              output_format="list")


def folder_student(tmp_path) -> list[str]:
    """The student on an image folder read by 2 loader worker processes, 6 steps an epoch."""
    root = write_image_folder(tmp_path / "data", {"n1": 24, "n2": 24}, size=32)
    return [str(ROOT / "entrypoints/student.py"), "--dataset", str(root), "--num_workers", "2", "--image_size", "32",
            "--epochs", "2", "--batch_size", "16", "--checkpoint_every_steps", "100"]


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_loader_workers_stops_as_sigterm_to_the_pid_does(store, tmp_path):
    """timeout, Slurm and Kubernetes signal the whole group: the workers leave it to the main
    process, which saves the step it stands at, marks the run KILLED and exits 143 in one line."""
    run_id, code, stderr = interrupt_at_checkpoint(folder_student(tmp_path), tmp_path, signal.SIGTERM, 4, group=True)
    assert code == 143, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.count("error") <= 1, stderr[-3000:]
    run = mlflow.get_run(run_id)
    assert run.info.status == "KILLED" and "SIGTERM" in run.data.tags["cinv.error"]
    assert checkpoint_step(run_id) == 4  # the step in progress is kept: no checkpoint was due before step 100


@pytest.mark.slow
def test_ctrl_c_mid_epoch_keeps_the_partial_epoch_as_sigterm_does(store, tmp_path):
    """Ctrl-C reaches the whole foreground group: it saves where the run stands, as SIGTERM does."""
    argv = folder_student(tmp_path)
    run_id, code, stderr = interrupt_at_checkpoint(argv, tmp_path, signal.SIGINT, 3, group=True)
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    run = mlflow.get_run(run_id)
    assert run.info.status == "KILLED" and "SIGINT" in run.data.tags["cinv.error"]
    assert checkpoint_step(run_id) == 3  # resumed from here as after SIGTERM (test_a_kill_at_a_random_step_...)


@pytest.mark.slow
def test_ctrl_c_in_main_marks_the_child_in_progress_killed_with_its_reason(store, tmp_path):
    student_id, code, stderr = interrupt_at_checkpoint(MAIN, tmp_path, signal.SIGINT, 1, child="student train ·", trainer="student")
    assert code == 130, stderr[-2000:]
    student = mlflow.get_run(student_id)
    assert student.info.status == "KILLED" and "SIGINT" in student.data.tags["cinv.error"]
    parent = mlflow.get_run(student.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED" and "SIGINT" in parent.data.tags["cinv.error"]


def per_seed_table(run_id: str) -> pd.DataFrame:
    """The main run's per-seed rows, as written (not listed for the UI's Evaluation view)."""
    return pd.read_json(io.StringIO(mlflow.artifacts.load_text(f"runs:/{run_id}/results_per_seed.json")), orient="split")


@pytest.mark.slow
def test_main_stopped_by_sigterm_during_the_student_then_resumed_gives_the_uninterrupted_table(store, tmp_path):
    sig = signal.SIGTERM
    assert run_cli(MAIN, cwd=tmp_path).returncode == 0
    (reference,) = [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                    if "mlflow.parentRunId" not in r.data.tags]
    expected = per_seed_table(reference.info.run_id)
    before = {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}

    stop_after = random.Random().randint(1, 12)  # 2 epochs of 7 student steps, a checkpoint after each
    student_id, code, stderr = interrupt_at_checkpoint(MAIN, tmp_path, sig, stop_after, child="student train ·", exclude=before,
                                                   trainer="student")
    assert code == 143, stderr[-2000:]
    student = mlflow.get_run(student_id)
    parent_id = student.data.tags["mlflow.parentRunId"]
    assert student.info.status == "KILLED" and student.data.tags["cinv.error"]  # the child says why, too
    assert mlflow.get_run(parent_id).info.status == "KILLED" and mlflow.get_run(parent_id).data.tags["cinv.error"]
    finished = {r.info.run_name: r.info.run_id for r in children_of(parent_id) if r.info.status == "FINISHED"}
    assert finished  # the teacher's probes ran before the student

    resumed = run_cli([*MAIN, "--resume_run_id", parent_id], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    children = children_of(parent_id)
    names = [r.info.run_name for r in children]
    assert len(names) == len(set(names)) == 6, names  # nothing ran twice: 4 cells, 2 trainings
    assert all(r.info.status == "FINISHED" for r in children) and mlflow.get_run(parent_id).info.status == "FINISHED"
    ids = {r.info.run_name: r.info.run_id for r in children}
    assert all(ids[name] == run_id for name, run_id in finished.items())  # finished stages reused
    assert ids[student.info.run_name] == student_id  # the student continued in place from its checkpoint
    got = per_seed_table(parent_id)
    pd.testing.assert_frame_equal(got, expected)  # exactly the uninterrupted run's numbers
    registered = {v.run_id for v in MlflowClient().search_model_versions("name = 'cinv-student'")}
    assert ids["student train · random_mask(fraction=0.9) · seed 0"] in registered  # the resumed run registered its student


def test_a_table_is_overwritten_never_read_so_two_writers_cannot_double_or_break_it(store):
    """Two tune workers can both finish last and write the study's trials table at once. The one
    that finds the other's file half uploaded, not yet listed as a table, must neither read it
    (MLflow's ``log_table`` appends to what is there) nor leave the table unlisted."""
    from cinv.tracking.runs import replace_table

    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("tables")).info.run_id
    client.log_text(run_id, '{"columns": ["number", "val', "trials.json")  # the other worker, mid-upload
    table = pd.DataFrame({"number": [0, 1], "value": [12.5, 14.0]})
    replace_table(table, "trials.json", run_id)
    replace_table(table, "trials.json", run_id)  # and the second writer
    loaded = client.load_table(client.get_run(run_id).info.experiment_id, "trials.json", run_ids=[run_id])
    pd.testing.assert_frame_equal(loaded, table)
    assert client.get_run(run_id).data.tags["mlflow.loggedArtifacts"].count('"trials.json"') == 1


def test_workers_starting_together_survive_the_race_to_insert_a_dataset(store, monkeypatch):
    """Three tune workers log the same datasets at once; MLflow looks a dataset up, then inserts it,
    and the losers of that race get a unique-key error (a CI flake): it is tried again."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST, INVALID_PARAMETER_VALUE

    from cinv.data.datasets import load_splits
    from cinv.tracking import runs

    splits = load_splits("embedded", None, 32, 0.05, 0, limit_per_class=2)
    real, raced = mlflow.log_input, []

    def losing_once(dataset, context=None, **kwargs):
        if dataset.name not in raced:
            raced.append(dataset.name)
            real(dataset, context=context, **kwargs)  # the winner's insert...
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
                                  "datasets.name, datasets.digest", error_code=BAD_REQUEST)  # ...this process's, as MLflow says
        return real(dataset, context=context, **kwargs)

    monkeypatch.setattr(runs.mlflow, "log_input", losing_once)
    with mlflow.start_run() as run:
        runs.log_datasets(splits, "train", "test")
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert sorted(d.dataset.name for d in inputs) == ["embedded-test", "embedded-train"] and raced
    refused = MlflowException("the dataset is malformed", error_code=INVALID_PARAMETER_VALUE)
    monkeypatch.setattr(runs.mlflow, "log_input", lambda *a, **k: (_ for _ in ()).throw(refused))
    with mlflow.start_run(), pytest.raises(MlflowException, match="malformed"):
        runs.log_datasets(splits, "val")  # anything else is not retried as a race


def test_a_stopped_command_that_cannot_resume_prints_no_resume_hint(store, tmp_path, capsys, monkeypatch):
    """tune, probe, promote, embed and evaluate cannot continue a run: their stop line says to start again."""
    from cinv import cli
    from cinv.commands import COMMANDS

    assert {n for n, c in COMMANDS.items() if c.resumable} == {"main", "student", "baseline", "experiment", "benchmark"}
    monkeypatch.chdir(tmp_path)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    import dataclasses

    monkeypatch.setitem(COMMANDS, "probe", dataclasses.replace(COMMANDS["probe"], run=interrupt))
    assert cli.run("probe", ["--limit_per_class", "2", "--image_size", "32"]) == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "marked KILLED" in line and "resume_run_id" not in line and "start it again" in line


def _resume_once(uri: str, run_id: str, barrier, results) -> None:
    """A forked process: resume ``run_id`` at the barrier's instant; report whether it got the run."""
    from cinv.errors import ResumeError
    from cinv.tracking.resume import resume_run

    mlflow.set_tracking_uri(uri)
    barrier.wait()
    try:
        resume_run("student", run_id)
        results.put(("won", os.getpid()))
        mlflow.end_run(status="KILLED")
    except ResumeError as exc:
        results.put(("lost", str(exc)))


def test_two_resumes_at_the_same_instant_exactly_one_continues_the_run(store):
    """20 pairs of processes released together on a stopped run: each time one resumes it, the other
    is refused in one line naming the winner (the claim is a compare-and-set on a numbered param)."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    client = MlflowClient()
    experiment = mlflow.set_experiment("pairs").experiment_id
    for pair in range(20):
        run_id = client.create_run(experiment, tags={"cinv.command": "student"}).info.run_id
        client.set_terminated(run_id, "KILLED")
        barrier, results = fork.Barrier(2), fork.Queue()
        workers = [fork.Process(target=_resume_once, args=(store, run_id, barrier, results)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        outcomes = sorted(results.get(timeout=10) for _ in workers)
        assert [o[0] for o in outcomes] == ["lost", "won"], (pair, outcomes)
        assert "was just resumed by another process" in outcomes[0][1]
        assert mlflow.get_run(run_id).data.tags["cinv.resumed"] == "1"


def test_latest_finds_a_resumable_run_behind_more_than_50_unfinished_ones(store):
    from cinv.tracking.resume import latest_resumable

    client = MlflowClient()
    experiment = mlflow.set_experiment("cinv").experiment_id
    old = client.create_run(experiment, start_time=1_000, tags={"cinv.command": "student", "cinv.checkpoint_step": "7"})
    client.set_terminated(old.info.run_id, "KILLED")
    for i in range(60):  # newer, unfinished, nothing to resume from (no checkpoint, no finished stages)
        client.create_run(experiment, start_time=2_000 + i, tags={"cinv.command": "student"})
    assert latest_resumable("student") == old.info.run_id


def test_a_heartbeat_from_a_clock_an_hour_ahead_does_not_block_a_resume_for_an_hour(store, monkeypatch):
    import threading

    from cinv.tracking import lease

    monkeypatch.setattr(lease, "HEARTBEAT_S", 0.4)  # watched for 1.5 renewal periods
    client = MlflowClient()
    experiment = mlflow.set_experiment("skew").experiment_id
    future = f"{time.time() + 3600:.0f}"
    run = client.create_run(experiment, tags={"cinv.lease.owner": "elsewhere:123:456", "cinv.lease.heartbeat": future})
    assert lease.still_alive(client.get_run(run.info.run_id)) is None  # not renewed: its process is gone

    stop = threading.Event()

    def renew():  # a live owner on that host keeps renewing, an hour ahead
        while not stop.wait(0.1):
            client.set_tag(run.info.run_id, "cinv.lease.heartbeat", f"{time.time() + 3600:.3f}")

    beating = threading.Thread(target=renew)
    beating.start()
    try:
        assert "still renewing" in lease.still_alive(client.get_run(run.info.run_id))
    finally:
        stop.set()
        beating.join()


@pytest.mark.slow
def test_a_tracking_server_that_dies_mid_run_ends_the_run_in_bounded_time_and_sigterm_within_seconds(tmp_path):
    """The server goes away while the student trains: the student retries for the stated budget
    ($CINV_STORE_RETRY_S, 120 s by default; 8 s here), one line per round, then fails in one line;
    a SIGTERM while it waits on the dead server ends it within 10 s."""
    import socket

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def start_server(port: int) -> subprocess.Popen:
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path}/s.db",
                                   "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port",
                                   str(port), "--workers", "1"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return server
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the tracking server did not start")

    results = {}
    for case in ("bounded", "sigterm"):
        port = free_port()
        server = start_server(port)
        pause = tmp_path / f"pause-{case}"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_EXPERIMENT_")}, "TQDM_DISABLE": "1",
               "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}", "CINV_STORE_RETRY_S": "8", "CINV_PAUSE_AFTER_STEP": "1",
               "CINV_PAUSE_FILE": str(pause), "PYTHONWARNINGS": "ignore"}
        student = subprocess.Popen([sys.executable, *STUDENT, "--system_metrics", "false"], cwd=tmp_path, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        reached, deadline = Path(f"{pause}.reached"), time.time() + 300
        while not reached.exists() and student.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert reached.exists(), student.communicate()[1][-3000:]
        os.killpg(server.pid, signal.SIGKILL)  # the server is gone
        server.wait()
        pause.touch()  # training goes on, and its next write finds no server
        lines, started = [], time.monotonic()
        for line in student.stderr:  # a deterministic trigger: the first round's line
            lines.append(line)
            if "the MLflow store did not answer" in line:
                break
        if case == "sigterm":
            student.send_signal(signal.SIGTERM)
            started = time.monotonic()
        rest = student.communicate(timeout=300)[1]
        results[case] = (student.returncode, time.monotonic() - started, "".join(lines) + rest)
    code, took, err = results["bounded"]
    assert code == 2 and took < 60, (code, took, err[-3000:])
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "retried for 8 s" in errors[0], err[-3000:]
    rounds = [line for line in err.splitlines() if "did not answer" in line]
    assert 1 <= len(rounds) <= 8 and "Retrying (Retry(" not in err  # one line per round, not urllib3's
    code, took, err = results["sigterm"]
    assert code == 143 and took < 10, (code, took, err[-3000:])
