"""Distributed student training: the loss and gradients over 2 gloo processes equal 1 process's on
the same global batch; batches split without overlap; a 2-process `student` run logs from rank 0 only."""

import json
import os
import subprocess
import sys
import textwrap

import mlflow
import pytest
import torch

from cinv import losses
from cinv.commands.student import StudentConfig
from cinv.config import ConfigError
from cinv.corruption import from_spec
from cinv.data.stream import BatchStream
from cinv.settings import build
from conftest import ROOT, run_cli

# Runs under torchrun (2 processes) and as a plain script (1 process): each process takes its rows of a
# fixed global batch, and the gathered loss and DDP gradients are written by rank 0.
WORKER = textwrap.dedent('''
    import json, sys
    import torch
    from torch import nn
    from cinv import losses
    from cinv import distributed
    from cinv.data.stream import Views
    from cinv.runtime import FP32
    from cinv.methods.student import inversion_objective

    distributed.init("cpu")
    world = distributed.world()
    torch.manual_seed(0)
    images = torch.rand(8, 3, 12, 12)
    teacher = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(600, 16)).eval()
    rows = images.chunk(world.size)[world.rank]
    out = {}
    for name in losses.names():
        torch.manual_seed(1)  # the same student on every process (DDP also broadcasts rank 0's)
        student = nn.Sequential(nn.Conv2d(3, 6, 3), nn.GELU(), nn.Flatten(), nn.Linear(600, 16))
        # fp32 teacher: the comparison is of gathering and DDP, to 1e-5, not of bf16 kernels per batch size.
        objective = inversion_objective(distributed.wrap(student), teacher,
                                        distributed.Gathered(losses.get(name, temperature=0.2)), precision=FP32)
        loss = objective(Views(rows, rows * (rows > 0.3), torch.zeros(len(rows), dtype=torch.long)))
        loss.backward()
        out[name] = {"loss": loss.item(), "grads": [p.grad.flatten().tolist() for p in student.parameters()]}
    if distributed.is_main():
        with open(sys.argv[1], "w") as f:
            json.dump({"world": world.size, **out}, f)
    distributed.shutdown()
''')


def _run_worker(tmp_path, nproc: int) -> dict:
    script, out = tmp_path / "worker.py", tmp_path / f"out{nproc}.json"
    script.write_text(WORKER)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd = [*(launcher if nproc > 1 else [sys.executable]), str(script), str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_processes_give_the_single_process_loss_and_gradients(tmp_path):
    one, two = _run_worker(tmp_path, 1), _run_worker(tmp_path, 2)
    assert (one["world"], two["world"]) == (1, 2)
    for name in losses.names():
        assert two[name]["loss"] == pytest.approx(one[name]["loss"], abs=1e-5), name
        for g1, g2 in zip(one[name]["grads"], two[name]["grads"], strict=True):
            assert torch.allclose(torch.tensor(g2), torch.tensor(g1), atol=1e-5), name
        assert any(abs(g) > 1e-4 for g in one[name]["grads"][0]), name  # gradients are not trivially zero


def test_processes_split_each_global_batch_without_overlap():
    dataset = torch.utils.data.TensorDataset(torch.zeros(50, 3, 8, 8, dtype=torch.uint8), torch.zeros(50, dtype=torch.long))

    def stream(rank):
        return BatchStream(dataset, corruption=from_spec("random_mask(fraction=0.5)"), batch_size=8, image_size=8,
                           device=torch.device("cpu"), train=True, augment_on_batch=True, seed=3, rank=rank, world_size=2)

    ranks = [stream(0), stream(1)]
    assert [len(s) for s in ranks] == [50 // 8] * 2
    keys = [s.batch_keys(0) for s in ranks]
    seen = set()
    for b in range(len(ranks[0])):
        a, c = keys[0][b], keys[1][b]
        assert len(a) == len(c) == 4 and not set(a) & set(c) and not (set(a) | set(c)) & seen
        seen |= set(a) | set(c)
    assert keys[0] != ranks[0].batch_keys(1)  # reshuffled every epoch
    # each process draws its own corruptions
    draws = [s.epoch(0).draws.initial_seed() for s in ranks]
    assert draws[0] != draws[1]
    with pytest.raises(ValueError, match="evenly"):
        BatchStream(dataset, corruption=from_spec("none"), batch_size=9, image_size=8, device=torch.device("cpu"),
                    train=True, augment_on_batch=True, seed=0, world_size=2)


@pytest.mark.slow
def test_student_on_two_processes_logs_one_run_from_rank_zero(tmp_path, store):
    proc = run_cli(["entrypoints/student.py", "--nproc", "2", "--device", "cpu", "--limit_per_class", "8",
                    "--epochs", "2", "--batch_size", "16", "--corruption", "random_mask(fraction=0.5)"],
                   cwd=ROOT, env_extra={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1, [r.data.tags.get("cinv.command") for r in runs]  # the other process logged nothing
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["cinv.processes"] == "2"
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "train_loss_epoch")
    assert len(history) == 2 and history[0].step < history[1].step
    assert not client.list_artifacts(run.info.run_id, "checkpoints")  # written while training, removed once FINISHED
    assert mlflow.search_logged_models(output_format="list")


def test_nproc_must_split_the_batch():
    assert build(StudentConfig, {"nproc": "4", "batch_size": "16"}).nproc == 4
    with pytest.raises(ConfigError, match="split evenly"):
        build(StudentConfig, {"nproc": "3", "batch_size": "16"})
