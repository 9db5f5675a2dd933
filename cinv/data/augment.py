"""SimCLR's augmentation family T on whole batches: the two views of contrastive training (RoCL)
and the random transformations of transformation-smoothed inference.

Each image gets its own crop, flip, colour jitter and greyscale draw, in one batched call on the
images' device through kornia.augmentation (crops by one batched affine warp, not per-image
slicing). kornia draws its parameters from torch's global CPU generator; every call here runs in
a forked RNG seeded from the caller's ``torch.Generator``, so the same generator state gives the
same views on any device and the global RNG is left exactly as it was.

As in RoCL's CIFAR setting (colour-jitter strength 0.5): crop scale (0.08, 1), ratio (3/4, 4/3),
flip p=0.5, jitter (0.4, 0.4, 0.4, 0.1) with p=0.8, greyscale p=0.2; images stay in [0, 1] and
are not normalised (the encoders normalise). One difference from torchvision: kornia draws the
order of the four jitter steps once per batch, not once per image.
"""

from __future__ import annotations

import torch
from kornia import augmentation as K
from torch import Tensor, nn

__all__ = ["SimCLRAugment", "simclr_views", "augment"]


def _seed_from(generator: torch.Generator | None) -> int:
    """One draw from the caller's generator (advancing it), or from the global RNG without one."""
    if generator is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


class SimCLRAugment:
    """``aug(images, generator) -> augmented images`` of the same size, one draw per image."""

    def __init__(
        self,
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        flip_p: float = 0.5,
    ):
        self.scale, self.ratio, self.jitter = tuple(scale), tuple(ratio), tuple(jitter)
        self.jitter_p, self.grayscale_p, self.flip_p = jitter_p, grayscale_p, flip_p
        self._pipelines: dict[tuple[int, int], nn.Module] = {}

    def _pipeline(self, size: tuple[int, int]) -> nn.Module:
        # Never moved to the images' device: kornia then samples on the CPU, which the forked,
        # seeded CPU RNG in __call__ covers whatever device the images are on.
        if size not in self._pipelines:
            b, c, s, h = self.jitter
            self._pipelines[size] = nn.Sequential(
                K.RandomResizedCrop(size, scale=self.scale, ratio=self.ratio, cropping_mode="resample"),
                K.RandomHorizontalFlip(p=self.flip_p),
                K.ColorJitter(b, c, s, h, p=self.jitter_p),
                K.RandomGrayscale(p=self.grayscale_p),
            )
        return self._pipelines[size]

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"augment: images must be a float tensor [B, 3, H, W]; got {tuple(images.shape)} "
                             f"{images.dtype}")
        seed = _seed_from(generator)
        pipeline = self._pipeline(tuple(images.shape[-2:]))
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            out = pipeline(images.float())
        return out.clamp_(0, 1).to(images.dtype)

    def __repr__(self) -> str:
        return (f"SimCLRAugment(scale={self.scale}, ratio={self.ratio}, jitter={self.jitter}, "
                f"jitter_p={self.jitter_p}, grayscale_p={self.grayscale_p}, flip_p={self.flip_p})")


_DEFAULT = SimCLRAugment()


def augment(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One random t ~ T per image."""
    return _DEFAULT(images, generator)


def simclr_views(images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two independent views t(x), t'(x) of every image."""
    return _DEFAULT(images, generator), _DEFAULT(images, generator)
