"""Student training over several processes (torchrun + DistributedDataParallel).

Every process trains on its share of each global batch. Contrastive negatives come from all
processes through a differentiable all-gather, so every process computes the loss of the whole
global batch; the all-gather's backward sums each process's gradient contributions and DDP
averages them, which gives exactly the single-process gradient of that loss. Only rank 0 talks to
MLflow: it logs, writes checkpoints and, on resume, hands its checkpoint to the others.

BatchNorm layers in training mode use per-process batch statistics (PyTorch's SyncBatchNorm is
GPU-only, and a BatchNorm-free encoder gives the single-process loss exactly: tests/test_distributed.py).
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["World", "world", "launched", "init", "is_main", "gather", "Gathered", "wrap", "from_main", "launch", "shutdown"]


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0


def world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def launched() -> bool:
    """True inside a process that torchrun started (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "auto") -> World:
    """Join the process group torchrun set up: NCCL for CUDA, gloo for CPU."""
    if launched() and not dist.is_initialized():
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return world()


def device_for(device: torch.device) -> torch.device:
    """Each process on a node gets its own GPU."""
    if device.type == "cuda" and world().size > 1:
        return torch.device("cuda", world().local_rank)
    return device


def is_main() -> bool:
    return world().rank == 0


def gather(x: torch.Tensor) -> torch.Tensor:
    """All processes' rows, concatenated in rank order; gradients flow back to their owners."""
    if world().size == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)


class Gathered(nn.Module):
    """A pairwise loss over the global batch: ``Gathered(loss)(student, teacher)``."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return self.loss(gather(student), gather(teacher.detach()))


def wrap(model: nn.Module) -> nn.Module:
    """DDP around ``model`` when there are several processes; the model itself otherwise."""
    w = world()
    if w.size == 1:
        return model
    device = next(model.parameters()).device
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def from_main(obj):
    """Rank 0's ``obj`` on every process (e.g. the checkpoint only rank 0 read)."""
    if world().size == 1:
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def launch(nproc: int, command: str, argv: list[str]) -> int:
    """Re-run ``cinv <command> argv`` in ``nproc`` processes on this machine, as
    ``torchrun --standalone --nproc-per-node`` would (its Python API: arguments are never re-parsed)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5)
    print(f"cinv {command}: starting {nproc} processes", file=sys.stderr, flush=True)
    try:
        elastic_launch(config, sys.executable)("-m", "cinv.cli", command, *argv)
    except ChildFailedError as exc:
        return max((f.exitcode for f in exc.failures.values()), default=1) or 1
    return 0


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
