"""SimCLR's augmentation family T on whole batches: the two views of contrastive training (RoCL)
and the random transformations of transformation-smoothed inference.

Each image gets its own crop, flip, colour jitter and greyscale draw, in one batched call on the
images' device through kornia.augmentation (crops by one batched affine warp, not per-image
slicing). kornia draws its parameters from torch's global CPU generator; every call here runs in
a forked RNG seeded from the caller's ``torch.Generator``, so the same generator state gives the
same views on any device and the global RNG is left exactly as it was.

As in RoCL's CIFAR setting (colour-jitter strength 0.5): crop scale (0.08, 1), ratio (3/4, 4/3),
flip p=0.5, jitter (0.4, 0.4, 0.4, 0.1) with p=0.8, greyscale p=0.2; images stay in [0, 1] and
are not normalised (the encoders normalise). Grey digits get the crops alone
([simclr_augment][]). One difference from torchvision: kornia draws the
order of the four jitter steps once per batch, not once per image.
"""

from __future__ import annotations

import torch
from kornia import augmentation as K
from torch import Tensor, nn

__all__ = ["SimCLRAugment", "simclr_augment", "simclr_views", "augment", "ORDERS"]

# The order of the four steps: SimCLR's (crop, flip, colour jitter, grey) or RoCL's released code's
# (colour jitter, grey, flip, crop: src/data_loader.py lines 17-23); the paper names the steps, not their order.
ORDERS = ("simclr", "released")


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
        order: str = "simclr",
    ):
        if order not in ORDERS:
            raise ValueError(f"augment: order must be one of {', '.join(ORDERS)}; got {order!r}")
        self.scale, self.ratio, self.jitter = tuple(scale), tuple(ratio), tuple(jitter)
        self.jitter_p, self.grayscale_p, self.flip_p, self.order = jitter_p, grayscale_p, flip_p, order
        self._pipelines: dict[tuple[int, int], nn.Module] = {}

    def _pipeline(self, size: tuple[int, int]) -> nn.Module:
        # Never moved to the images' device: kornia then samples on the CPU, which the forked,
        # seeded CPU RNG in __call__ covers whatever device the images are on.
        if size not in self._pipelines:
            b, c, s, h = self.jitter
            steps = [K.RandomResizedCrop(size, scale=self.scale, ratio=self.ratio, cropping_mode="resample"),
                     K.RandomHorizontalFlip(p=self.flip_p), K.ColorJitter(b, c, s, h, p=self.jitter_p),
                     K.RandomGrayscale(p=self.grayscale_p)]
            if self.order == "released":  # RoCL's src/data_loader.py lines 17-23: jitter, grey, flip, crop
                steps = steps[2:] + steps[1::-1]
            # A step that never applies is left out: kornia would still check its input (colour jitter: RGB).
            self._pipelines[size] = nn.Sequential(*[step for step in steps if getattr(step, "p", 1.0) > 0])
        return self._pipelines[size]

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        colour = self.jitter_p > 0 or self.grayscale_p > 0
        if images.ndim != 4 or (colour and images.shape[1] != 3) or not images.is_floating_point():
            raise ValueError(f"augment: images must be a float tensor [B, {3 if colour else 'C'}, H, W]; got "
                             f"{tuple(images.shape)} {images.dtype}")
        seed = _seed_from(generator)
        pipeline = self._pipeline(tuple(images.shape[-2:]))
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            out = pipeline(images.float())
        return out.clamp_(0, 1).to(images.dtype)

    def __repr__(self) -> str:
        return (f"SimCLRAugment(scale={self.scale}, ratio={self.ratio}, jitter={self.jitter}, "
                f"jitter_p={self.jitter_p}, grayscale_p={self.grayscale_p}, flip_p={self.flip_p}, order={self.order!r})")


    def views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Two independent views t(x), t'(x) of every image."""
        return self(images, generator), self(images, generator)


_DEFAULT = SimCLRAugment()
# Grey digits: nothing to jitter or turn grey, and a mirrored digit is another symbol (or none).
_GREY = SimCLRAugment(jitter_p=0.0, grayscale_p=0.0, flip_p=0.0)


def simclr_augment(channels: int = 3, flip: bool = True, order: str = "simclr") -> SimCLRAugment:
    """SimCLR's family T for a dataset's images (``Splits.channels``, ``Splits.flip``): RoCL's
    CIFAR setting for colour images; crops alone for grey, unflippable ones such as MNIST.
    ``order``: simclr (crop, flip, jitter, grey) or released (RoCL's code: jitter, grey, flip, crop)."""
    if channels == 3 and flip and order == "simclr":
        return _DEFAULT
    if channels == 1 and not flip and order == "simclr":
        return _GREY
    return SimCLRAugment(jitter_p=0.8 if channels == 3 else 0.0, grayscale_p=0.2 if channels == 3 else 0.0,
                         flip_p=0.5 if flip else 0.0, order=order)


def augment(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One random t ~ T (the colour family) per image."""
    return _DEFAULT(images, generator)


def simclr_views(images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two independent views t(x), t'(x) of every colour image."""
    return _DEFAULT.views(images, generator)
