"""Batches of paired views: the clean image and its corruption, on the training device.

Corruption happens here, after crop/flip and before normalisation (which lives inside the
encoders), on the whole batch at once, with the same crop/flip for both views. Every epoch or
evaluation draw gets its own generators derived from (seed, purpose, index), and per-image
augmentations in loader workers are seeded by (seed, purpose, epoch, image), so the same seed
gives the same shuffling, crops, flips and corruptions whatever the number of workers, and an
epoch can be resumed from any batch with the same result. The purpose (``train``, ``probe``,
``eval``) is part of every key: evaluation draw d never repeats the corruptions of training
epoch d or of probe draw d, even when the seeds are equal.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cinv.corruption.base import Distortion
from cinv.runtime import derive_seed, generator, uniform


class Views(NamedTuple):
    """One batch as a method sees it: the clean images, their corrupted views (draws x batch), the labels."""

    clean: torch.Tensor
    corrupted: torch.Tensor
    labels: torch.Tensor


class SeededItems(Dataset):
    """Items keyed by (index, seed): a worker's random crop then depends on the key alone."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class Epoch:
    """One resumable pass over a stream: ``state()`` after any batch restores the rest exactly."""

    def __init__(self, stream: BatchStream, index: int, state: dict | None = None):
        self.stream, self.index = stream, index
        # Each process of a distributed run draws its own crops and corruptions.
        rank = ("rank", stream.rank) if stream.world_size > 1 else ()
        self.flips = generator(stream.device, stream.seed, stream.purpose, "flip", index, *rank)
        self.draws = generator(stream.device, stream.seed, stream.purpose, "corrupt", index, *rank)
        self.position = 0  # batches handed out so far
        if state is not None:
            if state["index"] != index:
                raise ValueError(f"checkpoint is for epoch {state['index']}, not {index}")
            self.position = state["position"]
            self.flips.set_state(state["flips"])
            self.draws.set_state(state["draws"])

    def __len__(self) -> int:
        return len(self.stream) - self.position

    def state(self) -> dict:
        return {"index": self.index, "position": self.position, "flips": self.flips.get_state(),
                "draws": self.draws.get_state()}

    def __iter__(self) -> Iterator[Views]:
        s = self.stream
        batches = s.batch_keys(self.index)[self.position:]
        if not batches:
            return
        # (a ctypes value of 0 is falsy: test s.num_workers, never the flag itself)
        stopping = multiprocessing.Value("b", 0, lock=False) if s.num_workers else None
        loader = DataLoader(
            SeededItems(s.dataset) if s.seeded_items else s.dataset,
            batch_sampler=batches,
            num_workers=s.num_workers,
            pin_memory=s.device.type == "cuda",
            worker_init_fn=functools.partial(leave_signals_to_the_main_process, stopping=stopping) if s.num_workers else None,
            # Its own generator, so creating a loader never draws from the global RNG.
            generator=torch.Generator().manual_seed(derive_seed(s.seed, s.purpose, "workers", self.index, self.position)),
        )
        before = set(multiprocessing.active_children()) if s.num_workers else set()
        batches = iter(loader)  # starts the workers
        crew = Crew([p for p in multiprocessing.active_children() if p not in before], stopping)
        try:
            for images, labels in batches:
                clean = s.prepare(images, self.flips)
                views = Views(clean, s.corruption(clean, self.draws), labels.to(s.device, non_blocking=True))
                self.position += 1
                yield views
        except BaseException:  # an error, a signal, or the loop leaving the epoch early: its workers end now
            crew.end()
            raise
        finally:
            CREWS.discard(crew)


def leave_signals_to_the_main_process(worker_id: int, stopping=None) -> None:
    """Loader workers ignore SIGTERM and Ctrl-C: ``timeout``, Slurm and Kubernetes signal the whole
    process group, and a worker that died first would fail the batch in flight, where the main
    process checkpoints and stops cleanly. Once the main process has set ``stopping``, a SIGTERM
    ends the worker (cleanly, exit status 0: the loader takes no failure from it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0) if stopping is not None and stopping.value else None)


class Crew:
    """One loader's worker processes and its ``stopping`` flag, until the epoch ends."""

    def __init__(self, workers: list, stopping):
        self.workers, self.stopping = workers, stopping
        if workers:
            CREWS.add(self)

    def end(self) -> None:
        """Set ``stopping`` and SIGTERM the workers, which then exit; kill any that has not within 5 s."""
        CREWS.discard(self)
        if self.stopping is None:
            return
        self.stopping.value = 1
        for worker in self.workers:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            worker.join(5)
            if worker.is_alive():
                worker.kill()


CREWS: set[Crew] = set()  # the loaders whose epoch has not ended


def end_loader_workers() -> None:
    """End every loader's workers still running: a command calls it as it returns. A failed run's
    epoch can stay suspended, its loader alive in the traceback's reference cycle, and its
    workers, which ignore SIGTERM, would keep the loader's own shutdown (and multiprocessing's at
    interpreter exit) waiting on them for seconds, or forever."""
    for crew in list(CREWS):
        crew.end()


class BatchStream:
    """Iterate a dataset split as [Views][], one pass per ``epoch(index)``.

    ``train``: shuffle, and augment in-memory images (flip) unless ``augment`` is False (a method
    that makes its own views, as RoCL does). ``purpose``: the random stream's name (default
    ``train`` or ``eval``). ``drop_last``: leave out a last partial batch (default: when training
    on more than one batch, since contrastive losses need two items; feature passes keep every
    image).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        corruption: Distortion,
        batch_size: int,
        image_size: int,
        device: torch.device,
        train: bool,
        augment_on_batch: bool,
        seed: int,
        num_workers: int = 0,
        flip: bool = True,
        rank: int = 0,
        world_size: int = 1,
        purpose: str | None = None,
        drop_last: bool | None = None,
        augment: bool = True,
    ):
        if len(dataset) == 0:
            raise ValueError("cannot iterate an empty dataset")
        if world_size > 1 and (not train or batch_size % world_size):
            raise ValueError(f"a distributed stream trains and splits batch_size={batch_size} evenly over "
                             f"{world_size} processes")
        self.dataset, self.corruption = dataset, corruption
        self.batch_size, self.image_size, self.device = batch_size, image_size, device
        self.train, self.augment_on_batch, self.seed = train, augment_on_batch, seed
        self.num_workers, self.flip = num_workers, flip
        self.rank, self.world_size = rank, world_size
        self.purpose = purpose or ("train" if train else "eval")
        self.augment = augment
        self.drop_last = train and len(dataset) > batch_size if drop_last is None else drop_last
        # Folder images are cropped and flipped in loader workers: seed each image's transform.
        self.seeded_items = train and not augment_on_batch

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.world_size > 1:  # whole global batches only
            return n // self.batch_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, index: int, state: dict | None = None) -> Epoch:
        return Epoch(self, index, state)

    def batch_keys(self, index: int) -> list[list]:
        """The epoch's batches of dataset keys: shuffled by (seed, epoch) when training."""
        batches = [b.tolist() for b in self._order(index).split(self.batch_size // self.world_size)][: len(self)]
        if self.seeded_items:
            batches = [[(i, derive_seed(self.seed, self.purpose, "item", index, i)) for i in batch] for batch in batches]
        return batches

    def _order(self, index: int) -> torch.Tensor:
        n = len(self.dataset)
        if self.world_size > 1:
            # Global batch b is positions [bB, (b+1)B) of the epoch's permutation; DistributedSampler
            # hands this process every world_size-th of them, so it gets B / world_size of each.
            sampler = DistributedSampler(range(n), num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                         seed=derive_seed(self.seed, self.purpose, "order") % 2**31, drop_last=True)
            sampler.set_epoch(index)
            return torch.tensor(list(sampler))
        if self.train:
            return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(self.seed, self.purpose, "order", index)))
        return torch.arange(n)

    def prepare(self, images: torch.Tensor, flips: torch.Generator) -> torch.Tensor:
        # NHWC, as the models are kept (runtime.channels_last).
        x = images.to(self.device, non_blocking=True).float().div_(255).contiguous(memory_format=torch.channels_last)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
        if self.train and self.augment and self.augment_on_batch and self.flip:
            flip = uniform((x.shape[0],), flips, x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x
