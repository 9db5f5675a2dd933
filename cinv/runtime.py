"""Device, precision and seeding: the few decisions every loop shares."""

from __future__ import annotations

import contextlib
from typing import Literal

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device=cpu or auto")
    return device


Precision = Literal["auto", "fp32"]


def native_bf16(device: torch.device) -> bool:
    """CUDA, or a CPU with bf16 dot-product instructions (AVX512-BF16, AMX): elsewhere bf16 is emulated and slower."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def autocast(device: torch.device, *, frozen: bool = False, precision: Precision = "auto"):
    """bf16 autocast on CUDA (the paper ran CLIP in 16-bit). On a CPU with native bf16, only for a
    frozen encoder feeding training (teacher targets, probe features): about 3x faster, and top-1
    holds (benchmarks/throughput.py). CPU training and evaluation stay fp32, so a logged (fp32)
    model re-evaluated later gives the run's own numbers. ``fp32`` turns bf16 off everywhere."""
    if precision == "fp32" or not native_bf16(device) or (device.type == "cpu" and not frozen):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """The model, in place, in NHWC (the layout BatchStream's batches come in): tensor-core
    convolutions on CUDA and oneDNN's on CPU both run fastest in it (EfficientNet-Lite0 inference
    on a 2-core CPU: 1.6x)."""
    return model.to(memory_format=torch.channels_last)


def derive_seed(*keys: int | str) -> int:
    """A well-mixed 63-bit seed from a tuple of keys, e.g. (seed, "corrupt", epoch)."""
    ints = [k if isinstance(k, int) else int.from_bytes(k.encode(), "little") % (2**32) for k in keys]
    return int(np.random.SeedSequence(ints).generate_state(1, np.uint64)[0] >> 1)


def generator(device: torch.device | str, *keys: int | str) -> torch.Generator:
    """An explicit generator per purpose and epoch/draw: no RNG state is shared or copied."""
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))
