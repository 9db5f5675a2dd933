"""Pixel-space corruptions of the paper (random mask, Gaussian noise, Gaussian blur, random blur
and noise) and Patch Gaussian (FCL's baseline), batched and seeded (see ``corruption.base``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cinv.corruption.base import REGISTRY, Distortion, Severity, per_image, severity_range
from cinv.runtime import normal, uniform

__all__ = ["Identity", "RandomMask", "GaussianNoise", "GaussianBlur", "RandomBlurNoise", "PatchGaussian", "separable_blur",
           "gaussian_kernel"]


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
        self.low, self.high = severity_range(self.name, "fraction", fraction, 0.0, 1.0)

    def keep_mask(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The bool [B, 1, H, W] mask of kept pixels that ``apply`` draws with the same generator
        state: inpainting baselines fill exactly the pixels that were removed."""
        b, _, h, w = images.shape
        n = h * w
        fraction = per_image(self.low, self.high, b, generator, images.device)
        k = torch.round(fraction * n).long()
        # The k smallest of n uniform keys per image are masked: a selection, not a full argsort
        # (about 2x faster on CPU). float64 keys: ties, which would break "exactly k", are ~1e-7 likely.
        keys = uniform((b, n), generator, images.device, torch.float64)
        if self.low == self.high:
            kk = int(k[0])
            if kk == 0:
                return torch.ones(b, 1, h, w, dtype=torch.bool, device=images.device)
            threshold = keys.kthvalue(kk, dim=1, keepdim=True).values
        else:  # a k per image: sort and read each image's k-th key
            threshold = keys.sort(dim=1).values.gather(1, (k - 1).clamp(min=0)[:, None])
            threshold = torch.where(k[:, None] > 0, threshold, -1.0)
        return (keys > threshold).view(b, 1, h, w)

    def apply(self, images, generator):
        return images * self.keep_mask(images, generator).to(images.dtype)


@REGISTRY.register("gaussian_noise")
class GaussianNoise(Distortion):
    """Additive N(0, std^2) per channel and pixel; not clamped, as in the paper."""

    name = "gaussian_noise"

    def __init__(self, std: Severity):
        super().__init__(std=std)
        self.low, self.high = severity_range(self.name, "std", std, 0.0, None)

    def apply(self, images, generator):
        std = per_image(self.low, self.high, images.shape[0], generator, images.device)
        noise = normal(tuple(images.shape), generator, images.device).to(images.dtype)
        return noise.mul_(std.view(-1, 1, 1, 1).to(images.dtype)).add_(images)  # in place: one buffer, not three


MAX_KERNEL = 2047  # a kernel wider than twice the largest image (1024 px) never applies


@REGISTRY.register("gaussian_blur")
class GaussianBlur(Distortion):
    """Isotropic Gaussian blur (torchvision's kernel, reflect padding); deterministic."""

    name = "gaussian_blur"
    stochastic = False

    def __init__(self, kernel_size: int, sigma: float):
        super().__init__(kernel_size=kernel_size, sigma=sigma)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size <= 0 or kernel_size % 2 == 0 \
                or kernel_size > MAX_KERNEL:
            raise ValueError(f"gaussian_blur: kernel_size must be a positive odd integer up to {MAX_KERNEL} (e.g. 21, 37); "
                             f"got {kernel_size!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"gaussian_blur: sigma must be a positive float; got {sigma!r}")
        self.kernel_size, self.sigma = kernel_size, float(sigma)

    def apply(self, images, generator):
        pad = self.kernel_size // 2
        if pad >= min(images.shape[-2:]):
            raise ValueError(
                f"gaussian_blur: kernel_size {self.kernel_size} needs images larger than {pad} px "
                f"per side; got {tuple(images.shape[-2:])}"
            )
        return separable_blur(images, gaussian_kernel(self.kernel_size, torch.tensor([self.sigma]), images))


def gaussian_kernel(size: int, sigma: Tensor, like: Tensor) -> Tensor:
    """[len(sigma), size] normalised 1-D Gaussians, torchvision's kernel for each sigma."""
    offsets = torch.linspace(-(size // 2), size // 2, size, device=like.device, dtype=like.dtype)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma[:, None].to(like)) ** 2)
    return kernel / kernel.sum(dim=1, keepdim=True)


def _blur_matrix(kernel: Tensor, n: int) -> Tensor:
    """[G, n, n]: ``x @ M`` convolves the last axis of x with each kernel, reflect padding folded in."""
    g, size = kernel.shape
    radius = size // 2
    out = torch.arange(n, device=kernel.device)[:, None]
    src = out + torch.arange(size, device=kernel.device)[None] - radius  # [n, size]: the taps of each output
    src = src.abs()  # reflect (without repeating the edge) below 0 ...
    src = torch.where(src > n - 1, 2 * (n - 1) - src, src)  # ... and past n - 1
    matrix = torch.zeros(g, n * n, device=kernel.device, dtype=kernel.dtype)
    matrix.scatter_add_(1, (src * n + out).flatten().expand(g, -1), kernel.repeat(1, n))
    return matrix.view(g, n, n)


def separable_blur(images: Tensor, kernel: Tensor) -> Tensor:
    """Rows, then columns, each as one matrix product with a banded matrix: on CPU several times
    faster than a depthwise convolution (benchmarks/throughput.py). ``kernel``: [1, K] for every
    image or [B, K] one per image, K odd and K // 2 < the image's sides."""
    h, w = images.shape[-2:]
    across, down = _blur_matrix(kernel, w), _blur_matrix(kernel, h)
    if kernel.shape[0] == 1:
        return torch.einsum("bchw,hk->bckw", images @ across[0], down[0])
    return torch.einsum("bchw,bhk->bckw", torch.einsum("bchw,bwv->bchv", images, across), down)


@REGISTRY.register("random_blur_noise")
class RandomBlurNoise(Distortion):
    """Blur with a per-image sigma, then additive noise, each applied with probability ``p``.

    The training corruption of the paper's ImageNet-100-C student (appendix D.8): sigma in [1, 5],
    noise std in [0.05, 0.5], each independently with probability 0.8. The paper gives no kernel
    size; ``kernel_size`` = 23 is the released code's (Sriram-Ravula/Contrastive-Inversion utils.py
    line 825: ``transforms.GaussianBlur(kernel_size=23, sigma=[1, 5])``), 0 gives 3 sigma each side.
    """

    name = "random_blur_noise"

    def __init__(self, blur_sigma: Severity = (1.0, 5.0), noise_std: Severity = (0.05, 0.5), p: float = 0.8,
                 kernel_size: int = 23):
        super().__init__(blur_sigma=blur_sigma, noise_std=noise_std, p=p, kernel_size=kernel_size)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 0 or (
                kernel_size and kernel_size % 2 == 0) or kernel_size > MAX_KERNEL:
            raise ValueError(f"{self.name}: kernel_size must be an odd number of pixels up to {MAX_KERNEL}, or 0 for 3 "
                             f"sigma; got {kernel_size!r}")
        self.kernel_size = kernel_size
        self.sigma = severity_range(self.name, "blur_sigma", blur_sigma, 1e-3, None)
        self.std = severity_range(self.name, "noise_std", noise_std, 0.0, None)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"{self.name}: p must be a probability in [0, 1]; got {p!r}")
        self.p = float(p)

    def apply(self, images, generator):
        b, c, h, w = images.shape
        device = images.device
        blur = uniform((b,), generator, device) < self.p
        sigma = per_image(*self.sigma, b, generator, device)
        noisy = uniform((b,), generator, device) < self.p
        std = per_image(*self.std, b, generator, device) * noisy
        noise = normal(tuple(images.shape), generator, device)
        # One Gaussian kernel per image (the identity where this image is not blurred).
        radius = min(self.kernel_size // 2 if self.kernel_size else math.ceil(3 * self.sigma[1]), min(h, w) - 1)
        kernel = gaussian_kernel(2 * radius + 1, sigma, images)
        identity = (torch.arange(2 * radius + 1, device=device) == radius).to(images.dtype)
        kernel = torch.where(blur[:, None], kernel, identity)
        noise = noise.to(images.dtype).mul_(std.view(-1, 1, 1, 1).to(images.dtype))
        return separable_blur(images, kernel).add_(noise)


@REGISTRY.register("patch_gaussian")
class PatchGaussian(Distortion):
    """Lopes et al. (2019): N(0, sigma^2) noise inside one W x W square per image, centred on a
    uniformly drawn pixel (the square may be cut by the border), then clipped to [0, 1] as in
    their code. ``patch_size`` and ``sigma`` are fixed or a (low, high) range drawn uniformly per
    image, e.g. ``patch_size=(1, 250), sigma=(0.0, 1.0)`` for their "up to" sampling; the FCL
    paper's CIFAR-10 setting is patch_size=25, sigma=0.1."""

    name = "patch_gaussian"

    def __init__(self, patch_size: int | tuple[int, int] = 25, sigma: Severity = 0.1):
        super().__init__(patch_size=patch_size, sigma=sigma)
        sizes = patch_size if isinstance(patch_size, (tuple, list)) else (patch_size, patch_size)
        if len(sizes) != 2 or any(isinstance(s, bool) or not isinstance(s, int) for s in sizes) or not 1 <= sizes[0] <= sizes[1]:
            raise ValueError(f"{self.name}: patch_size must be a positive int or a (low, high) pair of ints; got {patch_size!r}")
        self.sizes = (int(sizes[0]), int(sizes[1]))
        self.sigma = severity_range(self.name, "sigma", sigma, 0.0, None)

    def mask(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """bool [B, 1, H, W]: the patch of each image, drawn as ``apply`` draws it."""
        b, _, h, w = images.shape
        device = images.device
        lo, hi = self.sizes
        size = (lo + (uniform((b,), generator, device) * (hi - lo + 1)).long()).clamp_(max=hi)
        cy = (uniform((b,), generator, device) * h).long().clamp_(max=h - 1)
        cx = (uniform((b,), generator, device) * w).long().clamp_(max=w - 1)
        top, left = cy - size // 2, cx - size // 2
        rows = torch.arange(h, device=device)[None]
        cols = torch.arange(w, device=device)[None]
        inside_r = (rows >= top[:, None]) & (rows < (top + size)[:, None])
        inside_c = (cols >= left[:, None]) & (cols < (left + size)[:, None])
        return (inside_r[:, :, None] & inside_c[:, None, :])[:, None]

    def apply(self, images, generator):
        mask = self.mask(images, generator)
        sigma = per_image(*self.sigma, images.shape[0], generator, images.device).view(-1, 1, 1, 1)
        noise = normal(tuple(images.shape), generator, images.device)
        noisy = (images + sigma.to(images.dtype) * noise.to(images.dtype)).clamp(0, 1)
        return torch.where(mask, noisy, images)

