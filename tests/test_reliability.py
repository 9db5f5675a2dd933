"""Checkpoints, resume after a crash, non-finite training, and store failures."""

import os
import random
import signal
import subprocess
import sys
import time

import mlflow
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from cinv import corruption as distortions
from cinv.data.datasets import TensorImages
from cinv.data.stream import BatchStream
from cinv.errors import NonFiniteLossError
from cinv.training.checkpoint import Checkpointer
from cinv.training.loop import fit
from conftest import ROOT, run_cli

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
        fit(model, supervised(model), tiny_stream(), epochs=3, lr=0.01, weight_decay=1e-4,
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
            fit(model, supervised(model), tiny_stream(), epochs=3, lr=0.01, weight_decay=1e-4, on_step=crash,
                checkpointer=Checkpointer(crashed.info.run_id, every_steps=2))
        saved = Checkpointer(crashed.info.run_id).latest()
        # 6 steps per epoch, saves every 2 steps: the newest is mid-epoch 2, after 2 of its batches.
        assert (saved["step"], saved["epoch"], saved["epoch_state"]["position"]) == (8, 1, 2)
        assert set(saved["model"]) == set(expected)  # the trained model only: nothing else rides along
        model = make_model()  # a fresh process would start from scratch too
        history = fit(model, supervised(model), tiny_stream(), epochs=3, lr=0.01, weight_decay=1e-4,
                      checkpointer=Checkpointer(crashed.info.run_id, every_steps=2))
    assert history.steps == 18
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(store):
    with mlflow.start_run() as run:
        model = make_model()
        step = {"n": 0}

        def objective(views):
            step["n"] += 1
            loss = supervised(model)(views)
            return loss * float("nan") if step["n"] == 5 else loss

        with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 1, step 5"):
            fit(model, objective, tiny_stream(), epochs=2, lr=0.01, weight_decay=0.0,
                checkpointer=Checkpointer(run.info.run_id, every_steps=2))
        saved = Checkpointer(run.info.run_id).latest()
    assert saved["step"] == 4
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_non_finite_gradient_stops_training():
    model = make_model()
    model[1].weight.register_hook(lambda grad: grad * float("inf"))  # a finite loss with an infinite gradient
    with pytest.raises(NonFiniteLossError, match="gradient norm became"):
        fit(model, supervised(model), tiny_stream(), epochs=1, lr=0.01, weight_decay=0.0)
    assert torch.isfinite(model[1].weight).all()  # the step was not taken


def checkpoint_step(run_id):
    tag = MlflowClient().get_run(run_id).data.tags.get("cinv.checkpoint_step")
    return int(tag) if tag else -1


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_matches_an_uninterrupted_run(store, tmp_path):
    uninterrupted = run_cli(STUDENT, cwd=tmp_path)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    reference = mlflow.search_runs(output_format="list")[0]

    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    victim = subprocess.Popen([sys.executable, *STUDENT], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    kill_after = random.Random().randint(3, 50)  # 60 steps in all; checkpoints every 3 and at epoch ends
    run_id, deadline = None, time.time() + 300
    while time.time() < deadline and victim.poll() is None:
        runs = [r for r in mlflow.search_runs(output_format="list") if r.info.run_id != reference.info.run_id]
        if runs:
            run_id = runs[0].info.run_id
            if checkpoint_step(run_id) >= kill_after:
                victim.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, f"the run ended before step {kill_after}: {victim.stderr.read()[-2000:]}"
    assert mlflow.get_run(run_id).info.status == "RUNNING"  # SIGKILL leaves no chance to clean up

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
