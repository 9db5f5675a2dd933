"""Losses, one small module per family with one docstring template: the five contrastive-inversion
losses by name (``inversion``; [REGISTRY][] is where a plug-in adds its own), RoCL's
(``rocl``) and FCL's terms (``fcl``), and the helpers they share (``functional``)."""

from cinv.losses import fcl, rocl
from cinv.losses.inversion import REGISTRY, InversionLoss, get, names

__all__ = ["REGISTRY", "InversionLoss", "get", "names", "fcl", "rocl"]
