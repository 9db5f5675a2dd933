"""Use a logged encoder anywhere: load it by model URI with its preprocessing, embed images.

``load_encoder("models:/cinv-student@champion")`` works for ``models:/name@alias``,
``models:/name/version``, ``models:/<model id>`` and ``runs:/<run id>/encoder`` URIs. Models
are pt2 graphs, so loading runs no pickled code; a model saved with pickle is refused unless the
caller opts in (``allow_pickle=True``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch
from PIL import Image
from torch import nn

from cinv.data.datasets import decode_image
from cinv.errors import CinvError, DatasetError, ModelLoadError
from cinv.secrets import redact

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@contextmanager
def quiet_pt2():
    """Loading or saving a pt2 archive without torch's "No complete tensor found in the group!"
    warning: torch gives it for weights that share one storage (tied or sliced parameters) and
    warns that it "may cause issues when your weights are not on CPU"; cinv's are always on the
    CPU when exported (``models.log_model`` moves a copy) and when loaded (``map_location="cpu"``)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No complete tensor found in the group", category=UserWarning)
        yield


@dataclass(frozen=True)
class Preprocessing:
    """What the model saw at evaluation time: images in [0, 1], ``size`` x ``size`` pixels.

    ``resize``: ``"resize"`` scales the whole image (the embedded CIFAR data), ``"center_crop"``
    resizes the shorter side to size*256/224 and crops the centre (ImageNet-style folders).
    Normalisation is inside the model graph.
    """

    size: int
    resize: str = "center_crop"
    channels: int = 3  # 1: grey images (MNIST)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        from torchvision.transforms import v2

        steps = [v2.Resize((self.size, self.size), antialias=True)] if self.resize == "resize" else [
            v2.Resize(round(self.size * 256 / 224), antialias=True), v2.CenterCrop(self.size)]
        image = image.convert("L" if self.channels == 1 else "RGB")
        return v2.Compose([*steps, v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])(image)


class LoadedEncoder(nn.Module):
    """A logged encoder (or classifier): a fixed pt2 graph in inference mode, with its metadata.

    Call it on [N, channels, size, size] images in [0, 1]; ``preprocessing`` turns PIL images into those.
    ``train()`` is a no-op: the graph was exported in eval mode and is never trained further.
    """

    def __init__(self, model_uri: str, module: nn.Module, metadata: dict):
        super().__init__()
        self.module, self.model_uri, self.metadata = module, model_uri, metadata
        self.preprocessing = Preprocessing(int(metadata["image_size"]), metadata.get("resize", "center_crop"),
                                           int(metadata.get("channels", 3)))
        self.embed_dim = metadata.get("embed_dim")
        self.input_size = self.preprocessing.size

    def train(self, mode: bool = True) -> LoadedEncoder:
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size, channels = self.preprocessing.size, self.preprocessing.channels
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (channels, size, size):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"{self.model_uri} expects images [N, {channels}, {size}, {size}] in [0, 1]; got {shape}")
        # The graph was exported in float32 and asserts its dtypes: autocast (bf16 evaluation) must not reach it.
        with torch.autocast(images.device.type, enabled=False):
            return self.module(images.float())

    def predict_classes(self, images: torch.Tensor) -> list[str]:
        """A logged classifier's predictions as class names (its metadata holds them)."""
        classes = self.metadata.get("classes")
        if classes is None:
            raise ModelLoadError(f"{self.model_uri} is an encoder, not a classifier: it has no class names")
        return [classes[i] for i in self(images).argmax(dim=1).tolist()]

    def embed_files(self, paths: Iterable[Path], batch_size: int = 256, corruption=None, generator=None,
                    skipped: list[Path] | None = None) -> torch.Tensor:
        """Embeddings of image files, optionally corrupted first (in [0, 1] pixel space). An
        unreadable file stops it with the file's name, unless a ``skipped`` list is given: the
        file is then left out and appended to it (the rows follow the readable files' order)."""
        device = next(self.module.parameters()).device
        paths, out = list(paths), []
        for start in range(0, len(paths), batch_size):
            images = []
            for p in paths[start:start + batch_size]:
                try:
                    images.append(self.preprocessing(decode_image(p, str(p))))
                except DatasetError:
                    if skipped is None:
                        raise
                    skipped.append(p)
            if not images:
                continue
            batch = torch.stack(images).to(device)
            if corruption is not None:
                batch = corruption(batch, generator)
            out.append(self(batch).float().cpu())
        if not out:
            raise DatasetError(f"none of the {len(paths)} image files could be read")
        return torch.cat(out)


PICKLE_REFUSED = "Deserializing model using pickle is disallowed"  # MLflow's words when it refuses


def load_encoder(model_uri: str, device: str | torch.device = "cpu", *, allow_pickle: bool = False) -> LoadedEncoder:
    """Load a cinv model logged to MLflow, with one clear error when that is not possible.

    Only what loads without unpickling code: cinv's pt2 graphs, checked by MLflow to hold no
    pickle payload. A model saved with pickle (which runs code of the file's choosing while
    loading) is refused unless ``allow_pickle=True`` says its store is trusted."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    try:
        info = get_model_info(model_uri)
        metadata = (info.metadata or {}).get("cinv")
        if not metadata or "image_size" not in metadata:
            raise ModelLoadError(f"{model_uri} is not a cinv model (no cinv metadata)")
        with _pickle_allowed(allow_pickle), quiet_pt2():
            module = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    except ModelLoadError:
        raise
    except MlflowException as exc:
        if PICKLE_REFUSED in exc.message:
            raise ModelLoadError(f"refusing to load {model_uri}: it is saved with pickle, which runs code while loading; "
                                 "cinv loads pt2 graphs only (load_encoder(..., allow_pickle=True) for a model you trust)") from None
        raise ModelLoadError(f"cannot load {model_uri}: {exc.message.splitlines()[0]}") from None
    except Exception as exc:  # the store itself: unreadable file, unreachable server
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot read the MLflow store {redact(mlflow.get_tracking_uri())} for {model_uri}: {first}") from None
    return LoadedEncoder(model_uri, module, metadata).to(device)


@contextmanager
def _pickle_allowed(allowed: bool):
    """MLflow's switch for unpickling models (on by default in MLflow 3), set for one load."""
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    before = os.environ.get(key)
    os.environ[key] = "true" if allowed else "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def image_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CinvError(f"image folder {folder} not found")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise CinvError(f"{folder}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return files
