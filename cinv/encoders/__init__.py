"""Encoders: the contract (``base``), the model zoo registered by name (``zoo``: EfficientNet-Lite0,
open_clip, torchvision, 32-px ResNets, FCL's MNIST CNN), weights loaded without pickled code
(``weights``) and heads (``heads``: the linear classifier, RoCL's projector)."""

from cinv.encoders import zoo  # noqa: F401  (registers the encoders)
from cinv.encoders.base import REGISTRY, Encoder, FrozenEncoder, default_weights, freeze, get, names, student_from
from cinv.encoders.heads import Classifier, Projector
from cinv.encoders.weights import RANDOM_INIT

__all__ = ["REGISTRY", "Encoder", "FrozenEncoder", "Classifier", "Projector", "RANDOM_INIT", "default_weights", "freeze", "get", "names",
           "student_from"]
