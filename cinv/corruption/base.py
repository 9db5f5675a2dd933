"""Forward operators A(x): the base class and registry of batched corruptions.

A corruption takes [B, C, H, W] float tensors in [0, 1]. Every draw comes from an explicit
``torch.Generator`` (or the global torch RNG when none is given), so the same seed gives the same
corruption on any device, and data-loader workers never share random state: corruptions run on
whole batches in the training loop, not in the workers. Each image gets its own draw; nothing
loops over images in Python. Corruptions register by name in [REGISTRY][] where they are
defined (``pixel``, ``imagenet_c``), and plug-ins add their own the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cinv.registry import Named, Registry
from cinv.runtime import uniform

__all__ = ["Distortion", "REGISTRY", "get", "from_spec", "names", "severity_range", "per_image"]

Severity = float | Sequence[float]


class Distortion(Named):
    """A named, parameterised corruption; ``stochastic`` says whether draws differ."""

    name: str = ""
    stochastic: bool = True

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(
                f"{self.name}: images must be a float tensor [B, C, H, W]; got {tuple(images.shape)} {images.dtype}"
            )
        return self.apply(images, generator)

    def apply(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError


REGISTRY: Registry[Distortion] = Registry("corruption")
"""Every corruption by name (``get("random_mask(fraction=0.9)")`` parses a spec against it)."""


def get(name: str, **params) -> Distortion:
    """``get("random_mask", fraction=0.9)`` -> callable ``f(images, generator=None)``."""
    return REGISTRY.get(name, **params)


def from_spec(spec: str) -> Distortion:
    """``from_spec("gaussian_noise(std=(0.1, 0.3))")``: the command-line form of [get][]."""
    return REGISTRY.from_spec(spec)


def names() -> list[str]:
    return REGISTRY.names()


def severity_range(op: str, param: str, value: Severity, low: float, high: float | None) -> tuple[float, float]:
    """A fixed value or a (low, high) range, checked against the allowed interval."""
    bounds = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
    allowed = f"a float {bounds} or a (low, high) pair within it"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo = hi = float(value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ValueError(f"{op}: {param} must be {allowed}; got {value!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < low or (high is not None and hi > high) or lo > hi:
        raise ValueError(f"{op}: {param} must be {allowed} with low <= high; got {value!r}")
    return lo, hi


def per_image(lo: float, hi: float, n: int, generator, device) -> Tensor:
    if lo == hi:
        return torch.full((n,), lo, device=device)
    return lo + (hi - lo) * uniform((n,), generator, device)


