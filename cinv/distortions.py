"""Forward operators A(x): batched corruptions on [B, C, H, W] float tensors in [0, 1].

Every draw comes from an explicit ``torch.Generator`` (or the global torch RNG when none is
given), so the same seed gives the same corruption on any device, and data-loader workers never
share random state: corruptions run on whole batches in the training loop, not in the workers.
Each image gets its own draw; nothing loops over images in Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cinv.registry import Registry, format_spec

__all__ = ["Distortion", "REGISTRY", "get", "from_spec", "names"]

Severity = float | Sequence[float]


class Distortion:
    """A named, parameterised corruption; ``stochastic`` says whether draws differ."""

    name: str = ""
    stochastic: bool = True

    def __init__(self, **params):
        self.params = params

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(
                f"{self.name}: images must be a float tensor [B, C, H, W]; got {tuple(images.shape)} {images.dtype}"
            )
        return self.apply(images, generator)

    def apply(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    @property
    def spec(self) -> str:
        return format_spec(self.name, self.params)

    def __repr__(self) -> str:
        return self.spec


REGISTRY: Registry[Distortion] = Registry("corruption")


def get(name: str, **params) -> Distortion:
    """``get("random_mask", fraction=0.9)`` -> callable ``f(images, generator=None)``."""
    return REGISTRY.get(name, **params)


def from_spec(spec: str) -> Distortion:
    """``from_spec("gaussian_noise(std=(0.1, 0.3))")``: the command-line form of :func:`get`."""
    return REGISTRY.from_spec(spec)


def names() -> list[str]:
    return REGISTRY.names()


def _severity(op: str, param: str, value: Severity, low: float, high: float | None) -> tuple[float, float]:
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


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """U[0, 1) on the generator's device (a CPU generator still serves CUDA images)."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def _per_image(lo: float, hi: float, n: int, generator, device) -> Tensor:
    if lo == hi:
        return torch.full((n,), lo, device=device)
    return lo + (hi - lo) * _uniform((n,), generator, device)


@REGISTRY.register("none")
class Identity(Distortion):
    """Clean images: the reference condition (probe on clean images, clean evaluation)."""

    name = "none"
    stochastic = False

    def __init__(self):
        super().__init__()

    def apply(self, images, generator):
        return images


@REGISTRY.register("random_mask")
class RandomMask(Distortion):
    """Exactly round(fraction*H*W) pixel positions per image set to 0 in every channel."""

    name = "random_mask"

    def __init__(self, fraction: Severity):
        super().__init__(fraction=fraction)
        self.low, self.high = _severity(self.name, "fraction", fraction, 0.0, 1.0)

    def apply(self, images, generator):
        b, _, h, w = images.shape
        n = h * w
        fraction = _per_image(self.low, self.high, b, generator, images.device)
        k = torch.round(fraction * n).long()
        # A random permutation per image; the k first positions of each are masked.
        order = _uniform((b, n), generator, images.device).argsort(dim=1)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=images.device).expand(b, n))
        keep = (rank >= k[:, None]).view(b, 1, h, w)
        return images * keep.to(images.dtype)


@REGISTRY.register("gaussian_noise")
class GaussianNoise(Distortion):
    """Additive N(0, std^2) per channel and pixel; not clamped, as in the paper."""

    name = "gaussian_noise"

    def __init__(self, std: Severity):
        super().__init__(std=std)
        self.low, self.high = _severity(self.name, "std", std, 0.0, None)

    def apply(self, images, generator):
        std = _per_image(self.low, self.high, images.shape[0], generator, images.device)
        noise = _normal(tuple(images.shape), generator, images.device)
        return images + std.view(-1, 1, 1, 1).to(images.dtype) * noise.to(images.dtype)


@REGISTRY.register("gaussian_blur")
class GaussianBlur(Distortion):
    """Isotropic Gaussian blur (torchvision's kernel, reflect padding); deterministic."""

    name = "gaussian_blur"
    stochastic = False

    def __init__(self, kernel_size: int, sigma: float):
        super().__init__(kernel_size=kernel_size, sigma=sigma)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"gaussian_blur: kernel_size must be a positive odd integer (e.g. 21, 37); got {kernel_size!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"gaussian_blur: sigma must be a positive float; got {sigma!r}")
        self.kernel_size, self.sigma = kernel_size, float(sigma)

    def apply(self, images, generator):
        from torchvision.transforms.v2 import functional as TF

        pad = self.kernel_size // 2
        if pad >= min(images.shape[-2:]):
            raise ValueError(
                f"gaussian_blur: kernel_size {self.kernel_size} needs images larger than {pad} px "
                f"per side; got {tuple(images.shape[-2:])}"
            )
        return TF.gaussian_blur(images, kernel_size=[self.kernel_size] * 2, sigma=[self.sigma] * 2)
