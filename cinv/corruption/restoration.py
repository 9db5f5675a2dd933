"""Pixel-space restorers: the "restore, then classify with a clean classifier" baselines.

The paper (Tables 7/8) compares contrastive inversion against restoring the corrupted image first:
non-local means for Gaussian noise, and inpainting for random pixel masks. Inpainting restorers take
the exact bool [B, 1, H, W] mask of KEPT pixels that removed the others (``RandomMask.keep_mask``
with a cloned generator state): fitting any other mask, as the public reference code did, measures
a different problem. Kept pixels are returned unchanged, so a restorer only fills what was removed.

The scikit-image restorers run per image on the CPU (numpy): fine for a baseline, not for training.
The Deep Decoder fits one independent network per image for the whole batch at once, on the
images' device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cinv.corruption.base import Distortion
from cinv.registry import Named, Registry

__all__ = ["Restorer", "REGISTRY", "get", "from_spec", "names", "Restored"]


class Restorer(Named):
    """A named, parameterised restorer; ``needs_mask`` says whether ``keep`` is required."""

    name: str = ""
    needs_mask: bool = False

    def __call__(self, images: Tensor, keep: Tensor | None = None) -> Tensor:
        if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
            got = f"{tuple(images.shape)} {images.dtype}" if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"{self.name}: images must be a float tensor [B, C, H, W]; got {got}")
        if self.needs_mask:
            keep = _check_keep(self.name, images, keep)
        return self.restore(images, keep)

    def restore(self, images: Tensor, keep: Tensor | None) -> Tensor:
        raise NotImplementedError


REGISTRY: Registry[Restorer] = Registry("restorer")


def get(name: str, **params) -> Restorer:
    """``get("nl_means", h=0.08)`` -> callable ``f(images, keep=None)``."""
    return REGISTRY.get(name, **params)


def from_spec(spec: str) -> Restorer:
    """``from_spec("deep_decoder(steps=200)")``: the command-line form of [get][]."""
    return REGISTRY.from_spec(spec)


def names() -> list[str]:
    return REGISTRY.names()


def _check_keep(name: str, images: Tensor, keep: Tensor | None) -> Tensor:
    b, _, h, w = images.shape
    expected = f"a bool tensor [B, 1, H, W] = {(b, 1, h, w)} of kept pixels (RandomMask.keep_mask)"
    if keep is None:
        raise ValueError(f"{name}: needs the keep mask, {expected}; got none")
    if not isinstance(keep, Tensor) or keep.dtype != torch.bool or tuple(keep.shape) != (b, 1, h, w):
        got = f"{tuple(keep.shape)} {keep.dtype}" if isinstance(keep, Tensor) else type(keep).__name__
        raise ValueError(f"{name}: keep must be {expected}; got {got}")
    return keep.to(images.device)


def _positive_int(op: str, param: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{op}: {param} must be an integer >= {minimum}; got {value!r}")
    return value


def _positive_float(op: str, param: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{op}: {param} must be a positive float; got {value!r}")
    return float(value)


def _flag(op: str, param: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{op}: {param} must be True or False; got {value!r}")
    return value


def _to_numpy(images: Tensor) -> np.ndarray:
    """[B, C, H, W] tensor -> [B, H, W, C] float64, the channel-last layout scikit-image wants."""
    return images.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()


def _from_numpy(array: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).to(like.device, like.dtype)


@REGISTRY.register("none")
class Identity(Restorer):
    """No restoration: the reference row. Returns the input as is (unclamped, like cinv's noise),
    so "none + classifier" equals classifying the corrupted images directly."""

    name = "none"

    def __init__(self):
        super().__init__()

    def restore(self, images, keep):
        return images


@REGISTRY.register("nl_means")
class NLMeans(Restorer):
    """Non-local means (scikit-image, fast mode), per image, told each image's estimated noise
    sigma. ``h=None`` uses h = 0.8 * sigma, as scikit-image's documentation recommends; ``clamp``
    first clips the noisy image to [0, 1] (a camera's range).

    ``RELEASED`` is what the authors' ``denoising_baselines.py`` ran (lines 56 and 59:
    ``denoise_nl_means(img, sigma=sigma_est, fast_mode=True, multichannel=True)``, so scikit-image's
    defaults h = 0.1, patch_size 7, patch_distance 11, on the unclipped noisy image)."""

    name = "nl_means"
    RELEASED = "nl_means(h=0.1, patch_size=7, patch_distance=11, clamp=False)"

    def __init__(self, h: float | None = None, patch_size: int = 5, patch_distance: int = 6, clamp: bool = True):
        super().__init__(h=h, patch_size=patch_size, patch_distance=patch_distance, clamp=clamp)
        self.h = None if h is None else _positive_float(self.name, "h", h)
        self.patch_size = _positive_int(self.name, "patch_size", patch_size)
        self.patch_distance = _positive_int(self.name, "patch_distance", patch_distance)
        self.clamp = _flag(self.name, "clamp", clamp)

    def restore(self, images, keep):
        from skimage.restoration import denoise_nl_means, estimate_sigma

        # cinv's Gaussian noise is unclamped; a camera (and the classifier's input range) is not.
        batch = _to_numpy(images.clamp(0, 1) if self.clamp else images)
        out = np.empty_like(batch)
        for i, image in enumerate(batch):
            sigma = float(estimate_sigma(image, channel_axis=-1, average_sigmas=True))
            h = 0.8 * sigma if self.h is None else self.h
            if h <= 1e-8:  # no noise found (e.g. a flat image): nothing to denoise, and h=0 divides by 0
                out[i] = image
                continue
            out[i] = denoise_nl_means(
                image,
                h=h,
                sigma=sigma,
                patch_size=self.patch_size,
                patch_distance=self.patch_distance,
                fast_mode=True,
                channel_axis=-1,
            )
        return _from_numpy(out, images).clamp(0, 1)


@REGISTRY.register("inpaint_biharmonic")
class InpaintBiharmonic(Restorer):
    """Biharmonic inpainting of the removed pixels (scikit-image), per image: the documented,
    maintained stand-in for the paper's Deep Decoder."""

    name = "inpaint_biharmonic"
    needs_mask = True

    def __init__(self):
        super().__init__()

    def restore(self, images, keep):
        from skimage.restoration import inpaint_biharmonic

        clean = images.clamp(0, 1)
        batch = _to_numpy(clean)
        removed = (~keep[:, 0]).cpu().numpy()
        out = batch.copy()
        for i, (image, mask) in enumerate(zip(batch, removed, strict=True)):
            # All kept: nothing to fill. None kept: nothing to fill from (scikit-image raises).
            if mask.any() and not mask.all():
                out[i] = inpaint_biharmonic(image, mask, channel_axis=-1)
        restored = _from_numpy(out, images).clamp(0, 1)
        return torch.where(keep, clean, restored)


@REGISTRY.register("deep_decoder")
class DeepDecoder(Restorer):
    """Deep Decoder (Heckel & Hand, 2019), fitted to the kept pixels of each image.

    An untrained, underparameterised generator: a fixed random tensor [channels, H/2^layers,
    W/2^layers] goes through ``layers`` blocks of 1x1 conv -> bilinear x2 -> ReLU -> channel norm
    (BatchNorm on a batch of one image), ``flat_blocks`` more without the upsampling, then a 1x1
    conv and a sigmoid. Adam fits it to the MSE on kept pixels only. ``reg_noise``: Gaussian noise
    of that std added to the input at every step, times 0.7 every 500 steps; ``find_best``: the
    weights after the step whose loss first beat the best by 0.5% (both as the authors' fit.py);
    ``keep_observed``: kept pixels stay as they were and the output fills the removed ones (false:
    the whole image is the network's output, as the authors' script returns it).

    Each image has its own weights (batched matrix products), so the batch is fitted in one loop
    on the images' device. Sizes that are not multiples of 2^layers start from ceil(H/2^layers) and
    each upsample goes to the exact size of the next level. Parameters, input and its noise are
    drawn on the CPU from ``seed``, so a seed gives the same fit on any device.

    ``RELEASED`` is what the authors' ``inpainting_test.py`` ran (lines 91-94, 119 and 124-133):
    ``num_channels = [256]*5`` through ``decodernw(upsample_first=True)`` (5 upsampling blocks and
    one more at full size), ``fit(num_iter=5000, LR=0.0025, reg_noise_std=0.005,
    reg_noise_decayevery=500, find_best=True)``, the output taken whole (line 136). The paper
    (section 5.3) says "default parameters and 5000 optimization steps"; the script decides.
    """

    name = "deep_decoder"
    needs_mask = True
    RELEASED = ("deep_decoder(steps=5000, channels=256, layers=5, flat_blocks=1, lr=0.0025, reg_noise=0.005, "
                "find_best=True, keep_observed=False)")
    NOISE_DECAY, NOISE_EVERY, BEST_MARGIN = 0.7, 500, 1.005  # fit.py lines 91-93 and 132

    def __init__(self, steps: int = 500, channels: int = 64, layers: int = 4, lr: float = 0.01, seed: int = 0,
                 flat_blocks: int = 0, reg_noise: float = 0.0, find_best: bool = False, keep_observed: bool = True):
        super().__init__(steps=steps, channels=channels, layers=layers, lr=lr, seed=seed, flat_blocks=flat_blocks,
                         reg_noise=reg_noise, find_best=find_best, keep_observed=keep_observed)
        self.steps = _positive_int(self.name, "steps", steps, minimum=0)
        self.channels = _positive_int(self.name, "channels", channels)
        self.layers = _positive_int(self.name, "layers", layers)
        self.flat_blocks = _positive_int(self.name, "flat_blocks", flat_blocks, minimum=0)
        self.lr = _positive_float(self.name, "lr", lr)
        if isinstance(reg_noise, bool) or not isinstance(reg_noise, (int, float)) or not 0 <= reg_noise < math.inf:
            raise ValueError(f"{self.name}: reg_noise must be a float >= 0; got {reg_noise!r}")
        self.reg_noise = float(reg_noise)
        self.find_best = _flag(self.name, "find_best", find_best)
        self.keep_observed = _flag(self.name, "keep_observed", keep_observed)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"{self.name}: seed must be an integer; got {seed!r}")
        self.seed = seed

    def restore(self, images, keep):
        clean = images.clamp(0, 1)
        # Evaluation code often runs under inference_mode/no_grad; fitting needs autograd.
        with torch.inference_mode(False), torch.enable_grad():
            fitted = self._fit(clean.detach().float().clone(), keep.clone())
        fitted = fitted.to(images.dtype).clamp(0, 1)
        return torch.where(keep, clean, fitted) if self.keep_observed else fitted

    def _fit(self, target: Tensor, keep: Tensor) -> Tensor:
        b, c, h, w = target.shape
        k, n, device = self.channels, self.layers, target.device
        sizes = [(math.ceil(h / 2 ** (n - i)), math.ceil(w / 2 ** (n - i))) for i in range(n + 1)]
        sizes += [sizes[-1]] * self.flat_blocks
        g = torch.Generator().manual_seed(self.seed)
        noise = (torch.rand((b, k, *sizes[0]), generator=g) / 10).to(device)  # U[0, 0.1), as in the paper's code

        def uniform(*shape: int) -> Tensor:  # PyTorch's default init for a 1x1 conv with k inputs
            bound = 1 / math.sqrt(k)
            return ((torch.rand(shape, generator=g) * 2 - 1) * bound).to(device).requires_grad_()

        blocks = n + self.flat_blocks
        weights = [uniform(b, k, k) for _ in range(blocks)]
        last = uniform(b, c, k)
        gains = torch.ones(blocks, b, k, 1, 1, device=device, requires_grad=True)
        shifts = torch.zeros(blocks, b, k, 1, 1, device=device, requires_grad=True)
        params = [*weights, last, gains, shifts]

        def forward(a: Tensor, p: list[Tensor]) -> Tensor:
            *ws, out, gain, shift = p
            for i in range(blocks):
                a = torch.einsum("boc,bchw->bohw", ws[i], a)
                if i < n:
                    a = F.interpolate(a, size=sizes[i + 1], mode="bilinear", align_corners=False)
                a = a.relu()
                mean = a.mean(dim=(2, 3), keepdim=True)
                var = a.var(dim=(2, 3), unbiased=False, keepdim=True)
                a = (a - mean) / torch.sqrt(var + 1e-5) * gain[i] + shift[i]
            return torch.einsum("boc,bchw->bohw", out, a).sigmoid()

        weight = keep.to(target.dtype)
        # Per-image mean over kept values, summed over images: each image's gradient ignores the others.
        count = (weight.sum(dim=(1, 2, 3)) * c).clamp_min(1)
        optimizer = torch.optim.Adam(params, lr=self.lr)
        best = [p.detach().clone() for p in params] if self.find_best else None
        best_loss = torch.full((b,), math.inf, device=device)
        std = self.reg_noise
        for step in range(self.steps):
            a = noise
            if std > 0:
                if step % self.NOISE_EVERY == 0:
                    std *= self.NOISE_DECAY
                a = noise + torch.randn(noise.shape, generator=g).to(device) * std
            optimizer.zero_grad(set_to_none=True)
            losses = ((forward(a, params) - target) ** 2 * weight).sum(dim=(1, 2, 3)) / count
            losses.sum().backward()
            optimizer.step()
            if best is not None:  # fit.py: the net after the step whose loss beat the best by 0.5%
                better = best_loss > self.BEST_MARGIN * losses.detach()
                best_loss = torch.where(better, losses.detach(), best_loss)
                for kept, p in zip(best, params, strict=True):
                    batch_dim = 1 if kept.ndim == 5 else 0  # gains and shifts are [blocks, b, ...]
                    mask = better.view(*([1] * batch_dim), b, *([1] * (kept.ndim - batch_dim - 1)))
                    kept.copy_(torch.where(mask, p.detach(), kept))
        with torch.no_grad():
            return forward(noise, best if best is not None and self.steps else params)


class Restored(Distortion):
    """A corruption followed by a pixel-space restorer that knows exactly which pixels were removed:
    the "restore, then classify" condition of the paper's Tables 7/8, reported as the corruption."""

    def __init__(self, corruption: Distortion, restorer: Restorer):
        super().__init__(**corruption.params)
        self.corruption, self.restorer = corruption, restorer
        self.name, self.stochastic = corruption.name, corruption.stochastic

    @property
    def spec(self) -> str:
        return f"{self.corruption.spec} -> {self.restorer.spec}"

    def apply(self, images, generator):
        keep = None
        if self.restorer.needs_mask:
            if generator is None:
                generator = torch.Generator(images.device).manual_seed(int(torch.randint(2**62, ()).item()))
            state = generator.get_state()
            keep = self.corruption.keep_mask(images, generator)
            generator.set_state(state)  # the corruption below draws the very same mask
        return self.restorer(self.corruption(images, generator), keep)
