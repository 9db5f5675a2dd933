"""Device, precision and seeding: the few decisions every loop shares."""

from __future__ import annotations

import contextlib

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device=cpu or auto")
    return device


def autocast(device: torch.device):
    """bf16 autocast on CUDA (the paper ran CLIP in 16-bit); plain fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """NHWC on CUDA, where convolutions in bf16 run on tensor cores; the default layout elsewhere."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def for_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model, in place, in the device's preferred memory layout."""
    return model.to(memory_format=memory_format(device))


def derive_seed(*keys: int | str) -> int:
    """A well-mixed 63-bit seed from a tuple of keys, e.g. (seed, "corrupt", epoch)."""
    ints = [k if isinstance(k, int) else int.from_bytes(k.encode(), "little") % (2**32) for k in keys]
    return int(np.random.SeedSequence(ints).generate_state(1, np.uint64)[0] >> 1)


def generator(device: torch.device | str, *keys: int | str) -> torch.Generator:
    """An explicit generator per purpose and epoch/draw: no RNG state is shared or copied."""
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))
