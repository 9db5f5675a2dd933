"""A(x): the corruptions cinv trains and evaluates under, and the pixel-space restorers.

``base`` holds the [Distortion][] class and the corruption registry; ``pixel`` (mask,
noise, blur, Patch Gaussian) and ``imagenet_c`` (ImageNet-C's 19 corruptions) register theirs
when this package is imported; ``restoration`` holds the restorers of the pixel-space baselines.
"""

from cinv.corruption import imagenet_c, pixel, restoration
from cinv.corruption.base import REGISTRY, Distortion, from_spec, get, names

__all__ = ["REGISTRY", "Distortion", "from_spec", "get", "names", "pixel", "imagenet_c", "restoration"]
