"""ImageNet-C corruptions (Hendrycks & Dietterich, 2019), as in the paper's ImageNet-100-C.

Evaluation only: the ``imagecorruptions`` package is per-image numpy / OpenCV / scikit-image code,
so this loops over images in Python on the CPU, unlike the batched training corruptions in
[cinv.corruption.pixel][]. The package is imported on first use, so importing cinv stays light.

Randomness: the package draws from numpy's global RNG. Each image gets a seed drawn from the
torch generator (or the global torch RNG) and is corrupted with numpy's global state seeded with
it; the previous numpy state is restored afterwards, so the same seed gives the same corruption
and callers' numpy draws are unaffected (not thread-safe: numpy's global state is shared).

Images smaller than the package's 32 px minimum side are enlarged (bilinear) so that the shorter
side is 32 px, corrupted, and shrunk back (antialiased bilinear); larger images are used as they are.
Severities are calibrated for 224 px images: blur radii and textures are in pixels, so on small
images the same severity looks stronger.

``imagecorruptions`` requires ``opencv-python``, which needs the system's libGL; see the error
raised by [load_imagecorruptions][] for the headless alternative.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import threading
import types

import torch
import torch.nn.functional as F

from cinv.corruption.base import REGISTRY, Distortion
from cinv.runtime import patched

__all__ = ["CORRUPTIONS", "ImageNetC"]

# imagecorruptions.get_corruption_names("all"): 15 ImageNet-C corruptions, then the 4 extra ones.
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
)
DETERMINISTIC = frozenset({
    "defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression", "gaussian_blur", "saturate",
})
MIN_SIDE = 32  # imagecorruptions.corrupt rejects smaller images

_lock = threading.Lock()
_corrupt = None


class _Overlay(types.ModuleType):
    """A module with a few attributes replaced; the rest falls through to the wrapped module."""

    def __init__(self, wrapped: types.ModuleType, **overrides):
        super().__init__(wrapped.__name__)
        self.__dict__.update(overrides)
        self._wrapped = wrapped

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


def _resource_filename(package: str, resource: str) -> str:
    """pkg_resources.resource_filename for a module name: a path beside that module."""
    return os.path.join(os.path.dirname(sys.modules[package].__file__), resource)


def load_imagecorruptions():
    """Import imagecorruptions 1.1.2 and fit it to current numpy, SciPy and scikit-image.

    Every fix is scoped to the package's own module namespace; numpy, SciPy, scikit-image and
    ``sys.modules`` are left as they were:

    * ``from pkg_resources import resource_filename`` (import time): setuptools >= 81 no longer
      ships pkg_resources (ModuleNotFoundError), and older ones warn on import.
    * ``from scipy.ndimage.interpolation import map_coordinates`` (import time): deprecated since
      SciPy 1.8 (DeprecationWarning) and removed in SciPy 2.

      Both get stand-ins in ``sys.modules`` during the import only; what was there is put back.
    * ``np.float_`` in fog's plasma fractal: removed in numpy 2 (AttributeError). The module's ``np``
      becomes numpy with ``float_ = float64``.
    * ``gaussian(..., multichannel=True)`` in gaussian_blur and glass_blur: removed in
      scikit-image (deprecated in 0.19; TypeError in 0.26). The module's ``gaussian`` maps it to ``channel_axis=-1``.
    * ``sk.util.random_noise`` in impulse_noise: since scikit-image 0.19 it draws from a fresh
      ``default_rng()``, not numpy's global RNG, so the same seed gave different noise. The module's
      ``sk`` passes it a seed (``rng=``, ``seed=`` before 0.21) drawn from numpy's global RNG.
    """
    global _corrupt
    with _lock:
        if _corrupt is not None:
            return _corrupt
        import inspect

        import numpy as np
        import scipy.ndimage
        import skimage
        import skimage.filters
        import skimage.util

        stand_ins = {
            "pkg_resources": types.SimpleNamespace(resource_filename=_resource_filename),
            "scipy.ndimage.interpolation": types.SimpleNamespace(map_coordinates=scipy.ndimage.map_coordinates),
        }
        try:
            with patched(sys.modules, stand_ins):
                import imagecorruptions
                import imagecorruptions.corruptions as module
        except ImportError as error:
            if "libGL" in str(error):
                raise ImportError(
                    f"{error}: opencv-python needs the system's libGL (apt-get install libgl1 libglib2.0-0); "
                    "or use the headless build (both install cv2/, so reinstall it after removing the other): "
                    "pip uninstall -y opencv-python && pip install --force-reinstall --no-deps opencv-python-headless"
                ) from error
            raise

        if not hasattr(np, "float_"):
            module.np = _Overlay(np, float_=np.float64)
        gaussian = skimage.filters.gaussian
        if "multichannel" not in inspect.signature(gaussian).parameters:

            def gaussian_multichannel(image, *args, multichannel=None, **kwargs):
                if multichannel is not None:
                    kwargs.setdefault("channel_axis", -1 if multichannel else None)
                return gaussian(image, *args, **kwargs)

            module.gaussian = gaussian_multichannel
        random_noise = skimage.util.random_noise
        seed_keyword = next((k for k in ("rng", "seed") if k in inspect.signature(random_noise).parameters), None)
        if seed_keyword:

            def seeded_random_noise(image, *args, **kwargs):
                kwargs.setdefault(seed_keyword, np.random.randint(2**31))
                return random_noise(image, *args, **kwargs)

            module.sk = _Overlay(skimage, util=_Overlay(skimage.util, random_noise=seeded_random_noise))

        names = tuple(imagecorruptions.get_corruption_names("all"))
        if names != CORRUPTIONS:
            raise RuntimeError(f"imagecorruptions lists {names}; cinv expects {CORRUPTIONS}")
        _corrupt = imagecorruptions.corrupt
        return _corrupt


@REGISTRY.register("imagenet_c")
class ImageNetC(Distortion):
    """One ImageNet-C corruption at severity 1-5, per image on the CPU (evaluation only)."""

    name = "imagenet_c"

    def __init__(self, corruption: str, severity: int):
        if not isinstance(corruption, str) or corruption not in CORRUPTIONS:
            raise ValueError(f"imagenet_c: corruption must be one of {', '.join(CORRUPTIONS)}; got {corruption!r}")
        if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= severity <= 5:
            raise ValueError(f"imagenet_c: severity must be an integer in 1..5 (allowed: 1, 2, 3, 4, 5); got {severity!r}")
        super().__init__(corruption=corruption, severity=int(severity))
        self.corruption, self.severity = corruption, int(severity)
        self.stochastic = corruption not in DETERMINISTIC

    def apply(self, images, generator):
        import numpy as np

        b, c, h, w = images.shape
        if c not in (1, 3):
            raise ValueError(f"imagenet_c: images must have 1 or 3 channels; got {c}")
        corrupt = load_imagecorruptions()
        seeds = _seeds(b, generator)
        x = images.detach().to("cpu", torch.float32)
        small = min(h, w) < MIN_SIDE
        if small:
            scale = MIN_SIDE / min(h, w)
            x = F.interpolate(x, size=(math.ceil(h * scale), math.ceil(w * scale)), mode="bilinear", align_corners=False)
        pixels = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if c == 1:
            pixels = pixels[..., 0]  # the package makes it 3 identical channels
        out = np.empty((b, *x.shape[-2:], 3), dtype=np.uint8)
        state = np.random.get_state()
        try:
            for i in range(b):
                np.random.seed(seeds[i])
                result = corrupt(pixels[i], severity=self.severity, corruption_name=self.corruption)
                out[i] = _as_uint8_rgb(result, out.shape[1:3])
        finally:
            np.random.set_state(state)
        y = torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)
        if c == 1:  # luma, as PIL's convert("L")
            y = (y * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        if small:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
        return y.to(device=images.device, dtype=images.dtype)


def _seeds(n: int, generator: torch.Generator | None) -> list[int]:
    if generator is None:
        return torch.randint(0, 2**32, (n,), dtype=torch.int64).tolist()
    return torch.randint(0, 2**32, (n,), generator=generator, device=generator.device, dtype=torch.int64).tolist()


def _as_uint8_rgb(array, size: tuple[int, int]):
    """The package returns uint8 HxWx3 today; guard against float, grey or resized results."""
    import numpy as np
    from PIL import Image

    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = np.clip(np.round(array.astype(np.float64)), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.shape[:2] != size:
        array = np.asarray(Image.fromarray(array).resize((size[1], size[0]), Image.BILINEAR))
    return array
