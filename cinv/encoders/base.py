"""The encoder contract: [0, 1] images in, embeddings out, normalisation inside.

An [Encoder][] normalises its own input, so corruptions always act in pixel space and a
logged model carries its preprocessing. [FrozenEncoder][] is the teacher's wrapper (no
gradients, eval mode forever). Encoders register by name in [REGISTRY][] where they are
defined (``zoo``), as timm and open_clip register models; ``get(name, weights)`` builds one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cinv.registry import Registry

__all__ = ["Encoder", "FrozenEncoder", "TrainModeBatchNorm", "REGISTRY", "get", "names", "freeze", "student_from"]


class Encoder(nn.Module):
    """[0, 1] images -> embeddings; carries the normalisation and native input size."""

    def __init__(self, backbone: nn.Module, *, embed_dim: int, mean, std, input_size: int, name: str):
        super().__init__()
        self.backbone = backbone
        self.embed_dim, self.input_size, self.name = embed_dim, input_size, name
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1 and self.mean.shape[1] == 3:
            images = images.expand(-1, 3, -1, -1)  # grey digits into a colour network: the grey level in every channel
        return self.backbone((images - self.mean) / self.std)

    @property
    def preprocessing(self) -> dict:
        return {
            "input_range": [0.0, 1.0],
            "mean": [round(v, 8) for v in self.mean.flatten().tolist()],
            "std": [round(v, 8) for v in self.std.flatten().tolist()],
            "native_input_size": self.input_size,
        }


class FrozenEncoder(nn.Module):
    """The teacher: no gradients and eval mode forever, whatever ``.train()`` is called with.

    The public reference code let the training loop put the teacher in train mode, so its
    BatchNorm used batch statistics and its running statistics drifted.
    """

    def __init__(self, encoder: Encoder, input_gradients: bool = False):
        super().__init__()
        self.encoder = encoder.eval()
        self.input_gradients = input_gradients  # attacks differentiate through it w.r.t. the images
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_gradients:
            return self.encoder(images)
        # torch.no_grad exactly (not set_grad_enabled): exported pt2 graphs of probes must reload.
        with torch.no_grad():
            return self.encoder(images)

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def input_size(self) -> int:
        return self.encoder.input_size

    @property
    def preprocessing(self) -> dict:
        return self.encoder.preprocessing


BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class TrainModeBatchNorm(FrozenEncoder):
    """The released code's "frozen" teacher (Sriram-Ravula/Contrastive-Inversion
    noisy_clip_dataparallel.py lines 155-157: ``eval()`` once, then Lightning's ``model.train()``
    puts it back in train mode): weights frozen, BatchNorm on each batch's statistics, its running
    statistics updated every step. A copy, so the run's own teacher (its probes) stays untouched."""

    def __init__(self, teacher: FrozenEncoder):
        super().__init__(copy.deepcopy(teacher.encoder))
        self._batchnorm_train()

    def _batchnorm_train(self) -> None:
        for module in self.encoder.modules():
            if isinstance(module, BATCHNORMS):
                module.train()

    def train(self, mode: bool = True) -> TrainModeBatchNorm:
        super().train(mode)
        self._batchnorm_train()
        return self


def freeze(encoder: Encoder, input_gradients: bool = False) -> FrozenEncoder:
    """Frozen weights in eval mode; ``input_gradients`` keeps d(output)/d(images) for attacks."""
    inner = encoder.encoder if isinstance(encoder, FrozenEncoder) else encoder
    return FrozenEncoder(inner, input_gradients)


def student_from(teacher: Encoder) -> Encoder:
    """The student starts as an exact, trainable copy of the teacher."""
    student = copy.deepcopy(teacher.encoder if isinstance(teacher, FrozenEncoder) else teacher)
    for p in student.parameters():
        p.requires_grad_(True)
    return student.train()


REGISTRY: Registry[Encoder] = Registry("encoder")
"""Every encoder by name (``get("efficientnet_lite0")``, ``get("open_clip:RN101")``)."""


def get(name: str, weights: str | None = None) -> Encoder:
    """``get("open_clip:RN101", weights="openai")``; ``weights=None`` means the name's default."""
    return REGISTRY.get(name, weights=weights)


def names() -> list[str]:
    return REGISTRY.names()


def default_weights(name: str) -> str | None:
    """The weights ``name`` loads when none are given, as a tag that names them again (``openai``,
    ``IMAGENET1K_V1``, ``imagenet``, ``none``): what a run records as the weights it used. A factory
    declares them as its ``default_weights`` attribute (a string, or a function of the variant);
    None for a model URI or a factory that declares nothing."""
    if ":/" in name:
        return None
    factory, args = REGISTRY.factory(name)
    declared = getattr(factory, "default_weights", None)
    return declared(*args) if callable(declared) else declared


