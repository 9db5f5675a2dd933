"""Datasets as train / val / test splits of uint8 images with integer labels.

Datasets are named by spec wherever cinv takes one (``dataset=``, transfer ``targets=``):
``embedded`` (the CIFAR-10 subset shipped in the package, decoded once into memory), a folder
path or ``folder(root=..., class_list=..., preprocessing=...)`` (ImageFolder trees, e.g.
ImageNet-100 from a local ImageNet copy with a class list), and ``cifar10(root=...)``,
``cifar100(root=...)``, ``stl10(root=...)`` (torchvision's local files, never downloaded; kept
at their native 32 / 96 px unless told otherwise), and ``mnist(path=...)`` (``cinv.data.mnist``). Every split yields ``(uint8 tensor [3, h, w],
label)``; cropping happens here, corruption never does: it is applied to whole batches in the
loops (see ``cinv.data.stream``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import tarfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from cinv.errors import DatasetError
from cinv.registry import Registry, parse_spec
from cinv.runtime import progress

EMBEDDED = "embedded"
EMBEDDED_ARCHIVE = "cifar10_subset.tar.gz"
EMBEDDED_IMAGE_SIZE = 48  # chosen so the embedded main job fits in minutes on 2 CPU cores
FOLDER_IMAGE_SIZE = 224  # the paper's input size
PACKAGED_LISTS = ("imagenet100", "imagenet100b")
ROOTED = ("folder", "cifar10", "cifar100", "stl10")  # datasets read from a folder given as root=


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    image_size: int
    name: str
    # In-memory images are resized and flipped per batch on the device; folder images arrive
    # cropped and flipped by the loader workers.
    augment_on_batch: bool = False
    # How evaluation images reach image_size: "resize" the whole image, or "center_crop".
    resize: str = "center_crop"
    flip: bool = True  # random horizontal flips when training (not for digits)
    channels: int = 3
    skipped: list[str] = field(default_factory=list)  # unreadable files left out on request
    source: str = ""  # where the images come from: an archive, a folder, torchvision's files (logged as the dataset source)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class TensorImages(Dataset):
    """Decoded uint8 images held in memory; the transform is applied per batch, not per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()


def decode_image(data: bytes | Path, name: str) -> Image.Image:
    """Open fully (PIL is lazy), so a truncated file fails here with its name."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            im.load()
            return to_rgb(im, name)
    except DatasetError:
        raise
    except Exception as exc:  # PIL raises several unrelated types for bad files
        raise DatasetError(f"cannot read image {name}: {exc}") from None


def to_rgb(im: Image.Image, name: str) -> Image.Image:
    """8-bit RGB. 16-bit grey images (medical and microscopy folders: PIL mode ``I;16``, or ``I``
    with values above 255) are scaled 65535 -> 255: PIL's own conversion clips them, and a whole
    16-bit folder would read as white. Floating-point images have no agreed range: refused."""
    if im.mode.startswith("I;16") or im.mode == "I":
        values = np.asarray(im).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DatasetError(f"cannot read image {name}: {im.mode} values {values.min()}..{values.max()} are outside "
                               "0..65535; convert the folder to 8- or 16-bit images")
        if im.mode != "I" or (values.size and values.max() > 255):
            values = (values * 255 + 32767) // 65535  # rounded to nearest
        return Image.fromarray(values.astype(np.uint8), "L").convert("RGB")
    if im.mode == "F":
        raise DatasetError(f"cannot read image {name}: floating-point pixels (mode F) have no agreed range; convert "
                           "the folder to 8- or 16-bit images")
    return im.convert("RGB")


def load_embedded() -> Splits:
    """The shipped CIFAR-10 subset: 600/100/200 images per class for train/val/test."""
    archive = resources.files("cinv.data").joinpath("embedded", EMBEDDED_ARCHIVE)
    per_split: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "val": [], "test": []}
    with archive.open("rb") as fh, tarfile.open(fileobj=fh, mode="r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            split, cls, fname = member.name.split("/")
            image = decode_image(tar.extractfile(member).read(), f"{EMBEDDED_ARCHIVE}:{member.name}")
            per_split[split].append((cls, np.asarray(image)))
    classes = sorted({cls for cls, _ in per_split["train"]})
    index = {c: i for i, c in enumerate(classes)}

    def tensors(items):
        images = torch.from_numpy(np.stack([a for _, a in items])).permute(0, 3, 1, 2).contiguous()
        return TensorImages(images, torch.tensor([index[c] for c, _ in items]))

    return Splits(
        train=tensors(per_split["train"]),
        val=tensors(per_split["val"]),
        test=tensors(per_split["test"]),
        classes=classes,
        image_size=32,
        name=EMBEDDED,
        augment_on_batch=True,
        resize="resize",
        source=str(archive),
    )


def read_class_list(spec: str | Path) -> list[str]:
    """A packaged list name (``imagenet100``, ``imagenet100b``) or a text file, one class per line."""
    if str(spec) in PACKAGED_LISTS:
        text = resources.files("cinv.data").joinpath("lists", f"{spec}.txt").read_text()
    else:
        path = Path(spec)
        if not path.is_file():
            raise DatasetError(
                f"class list {spec} not found; give a file with one class folder name per line "
                f"or one of: {', '.join(PACKAGED_LISTS)}"
            )
        text = path.read_text()
    classes = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not classes:
        raise DatasetError(f"class list {spec} is empty")
    if len(set(classes)) != len(classes):
        raise DatasetError(f"class list {spec} repeats a class")
    return classes


class FolderImages(Dataset):
    """ImageFolder layout ``root/<class>/<image>``, restricted to ``classes`` in that order."""

    EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

    def __init__(self, root: Path, classes: list[str], transform=None, plain=None):
        root = Path(root)
        missing = [c for c in classes if not (root / c).is_dir()]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise DatasetError(f"{root}: class folder(s) not found: {shown}")
        self.root, self.classes, self.transform = root, classes, transform
        self.plain = plain if plain is not None else transform  # the transform without random augmentation
        self.samples = [
            (path, label)
            for label, cls in enumerate(classes)
            for path in sorted((root / cls).iterdir())
            if path.suffix.lower() in self.EXTENSIONS
        ]
        if not self.samples:
            raise DatasetError(f"{root}: no images found (extensions {', '.join(self.EXTENSIONS)})")

    def __len__(self) -> int:
        return len(self.samples)

    def with_transform(self, transform) -> FolderImages:
        """The same files (same indices) seen through another transform."""
        other = copy.copy(self)
        other.transform = transform
        return other

    def drop_unreadable(self) -> list[Path]:
        """Decode every file once and forget those that fail (opt-in: this reads the whole folder)."""

        bad = []
        for path, _ in progress(self.samples, desc=f"checking {self.root}", leave=False):
            try:
                decode_image(path, str(path))
            except DatasetError:
                bad.append(path)
        if bad:
            self.samples = [(p, label) for p, label in self.samples if p not in set(bad)]
        if not self.samples:
            raise DatasetError(f"{self.root}: no readable images")
        return bad

    def __getitem__(self, i):
        path, label = self.samples[i]
        image = decode_image(path, str(path))
        return self.transform(image) if self.transform else image, label

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]


PREPROCESSING = ("crop", "resize")


def folder_transforms(image_size: int, preprocessing: str = "crop"):
    """``crop``, the paper's: RandomResizedCrop+flip to train, Resize(256/224)+CenterCrop to eval.
    ``resize``: the whole image resized to ``image_size`` (+ flip to train), for small images such
    as a CIFAR folder at 32 px, which a Resize(37)+CenterCrop(32) would cut."""
    from torchvision.transforms import v2

    if preprocessing not in PREPROCESSING:
        raise DatasetError(f"folder preprocessing must be one of {', '.join(PREPROCESSING)}; got {preprocessing!r}")
    to_uint8 = [v2.PILToTensor()]
    if preprocessing == "resize":
        whole = v2.Resize((image_size, image_size), antialias=True)
        return v2.Compose([whole, v2.RandomHorizontalFlip(), *to_uint8]), v2.Compose([whole, *to_uint8])
    train = v2.Compose([v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip(), *to_uint8])
    resize = round(image_size * 256 / 224)
    evaluate = v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(image_size), *to_uint8])
    return train, evaluate


def unaugmented(dataset: Dataset) -> Dataset:
    """The same items without random crops (a method that makes its own views, as RoCL does):
    folder images through their evaluation transform. In-memory images are augmented per batch,
    which ``BatchStream(augment=False)`` turns off."""
    if isinstance(dataset, Subset):
        return Subset(unaugmented(dataset.dataset), dataset.indices)
    if isinstance(dataset, Relabeled):
        return Relabeled(unaugmented(dataset.dataset), dataset.mapping)
    if isinstance(dataset, FolderImages):
        return dataset.with_transform(dataset.plain)
    return dataset


def load_folder(root: str | Path, class_list: str | None, image_size: int, val_fraction: float, seed: int,
                skip_bad_images: bool = False, preprocessing: str = "crop") -> Splits:
    """``root/train`` and ``root/val`` (reported) from an ImageNet-style tree.

    The validation split for model selection is carved out of ``root/train`` (class-stratified,
    seeded), so the reported split is never used to choose anything. ``root/test``, when
    present, is reported instead of ``root/val`` and ``root/val`` becomes the validation split.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} not found")
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DatasetError(f"{root}: expected an ImageFolder tree with {root}/train/<class>/... and {root}/val/<class>/...")
    classes = read_class_list(class_list) if class_list else sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{train_dir}: no class folders")
    train_tf, eval_tf = folder_transforms(image_size, preprocessing)

    def folder(path: Path, transform) -> FolderImages:
        images = FolderImages(path, classes, transform, plain=eval_tf)
        skipped.extend(images.drop_unreadable() if skip_bad_images else [])
        return images

    skipped: list[Path] = []
    if (root / "test").is_dir():
        train = folder(train_dir, train_tf)
        val = folder(root / "val", eval_tf)
        test = folder(root / "test", eval_tf)
    else:
        if not (root / "val").is_dir():
            raise DatasetError(f"{root}: no val/ (or test/) folder to report on")
        full = folder(train_dir, train_tf)
        held_out = set(stratified_indices(full.targets, fraction=val_fraction, seed=seed).tolist()) if val_fraction else set()
        train = Subset(full, [i for i in range(len(full)) if i not in held_out])
        val = Subset(full.with_transform(eval_tf), sorted(held_out))
        test = folder(root / "val", eval_tf)
    return Splits(train=train, val=val, test=test, classes=classes, image_size=image_size, name=str(root),
                  resize="resize" if preprocessing == "resize" else "center_crop", skipped=[str(p) for p in skipped],
                  source=str(root.resolve()))


def stratified_indices(targets: list[int], *, fraction: float | None = None, per_class: int | None = None,
                       seed: int = 0) -> torch.Tensor:
    """Per class, round(fraction * n_c) (at least one) or at most ``per_class`` indices, seeded."""
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1]; got {fraction}")
    labels = torch.as_tensor(targets)
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for c in labels.unique(sorted=True).tolist():
        idx = (labels == c).nonzero().flatten()
        k = min(len(idx), per_class) if per_class is not None else max(1, round(fraction * len(idx)))
        picks.append(idx[torch.randperm(len(idx), generator=generator)[:k]])
    return torch.cat(picks).sort().values


def dataset_targets(dataset: Dataset) -> list[int]:
    if isinstance(dataset, Subset):
        parent = dataset_targets(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    return list(dataset.targets)


def label_subset(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """The labelled part for a probe: a class-balanced fraction of ``dataset``."""
    if fraction >= 1:
        return dataset
    return Subset(dataset, stratified_indices(dataset_targets(dataset), fraction=fraction, seed=seed).tolist())


def load_splits(dataset: str, class_list: str | None, image_size: int | None, val_fraction: float, seed: int,
                limit_per_class: int | None = None, skip_bad_images: bool = False) -> Splits:
    """A dataset by spec (see the module docstring); ``image_size`` None: the dataset's default."""
    name, params = dataset_spec(dataset, class_list)
    splits = DATASETS.get(name, image_size=image_size, val_fraction=val_fraction, seed=seed,
                          skip_bad_images=skip_bad_images, **params)
    return checked(splits, limit_per_class, seed)


def dataset_spec(dataset: str, class_list: str | None = None) -> tuple[str, dict]:
    """``embedded``, a folder path, or ``name(key=value, ...)`` (quotes around paths optional)."""
    if dataset == EMBEDDED:
        name, params = EMBEDDED, {}
    elif "(" in dataset:
        try:
            name, params = parse_spec(dataset, bare_strings=True)
        except ValueError as exc:
            raise DatasetError(f"dataset: {exc}") from None
    else:
        name, params = "folder", {"root": dataset}
    if class_list:
        if name != "folder":
            what = "the embedded CIFAR-10 subset" if name == EMBEDDED else name
            raise DatasetError(f"class_list applies to folder datasets, not to {what}")
        if params.get("class_list", class_list) != class_list:
            raise DatasetError(f"class_list given twice: {class_list!r} and {params['class_list']!r} in the dataset spec")
        params["class_list"] = class_list
    return name, params


@dataclass(frozen=True)
class DataFacts:
    """What presets and recipes need to know about a dataset before it is loaded."""

    kind: str  # embedded, folder, cifar10, cifar100, stl10, mnist, synthetic_mnist, or a plug-in's name
    image_size: int | None  # the model's input size in pixels as a run resolves it (None: a plug-in dataset's own)
    channels: int = 3
    class_list: str | None = None

    @property
    def stored_size(self) -> int | None:
        """The stored images' side in pixels (None: photos of their own sizes, or unknown)."""
        return STORED_SIZE.get(self.kind)


EMBEDDED_FACTS = DataFacts(EMBEDDED, EMBEDDED_IMAGE_SIZE)  # the default dataset, as presets and --help read it

# Each dataset's input size when none is given: the embedded subset's 48 px (minutes on a CPU), a
# folder's 224 (the paper's), the native size of torchvision's and MNIST's images.
NATIVE_SIZE = {EMBEDDED: EMBEDDED_IMAGE_SIZE, "folder": FOLDER_IMAGE_SIZE, "cifar10": 32, "cifar100": 32, "stl10": 96,
               "mnist": 28, "synthetic_mnist": 28}
GREY = frozenset({"mnist", "synthetic_mnist"})  # one-channel datasets
# The side of the stored images, where every image has one: a larger input size upsamples them.
STORED_SIZE = {EMBEDDED: 32, "cifar10": 32, "cifar100": 32, "stl10": 96, "mnist": 28, "synthetic_mnist": 28}
# The embedded split's validation images: 100 of the 700 training-split images per class, whatever val_fraction says.
EMBEDDED_VAL_FRACTION = 100 / 700


def facts(dataset: str, class_list: str | None = None, image_size: int | None = None, native: bool = False) -> DataFacts:
    """The facts of a dataset spec, resolved without loading it ([facts_of][])."""
    name, params = dataset_spec(dataset, class_list)
    return facts_of(name, image_size, native, params.get("class_list"))


def facts_of(kind: str, image_size: int | None = None, native: bool = False, class_list: str | None = None) -> DataFacts:
    """The facts of a dataset of this kind. The one image-size rule: the size given, else the
    stored images' own for a command that trains at its data's native resolution (``native``:
    RoCL's CIFAR-10 and FCL's MNIST run at 32 and 28 px), else the kind's default (NATIVE_SIZE:
    48 px for the embedded subset, 224 for a folder)."""
    size = image_size or (STORED_SIZE.get(kind) if native else None) or NATIVE_SIZE.get(kind)
    return DataFacts(kind, size, 1 if kind in GREY else 3, class_list)


def check_dataset(dataset: str, class_list: str | None = None) -> str:
    """Validate a dataset spec without loading it (configs call this)."""
    name, params = dataset_spec(dataset, class_list)
    DATASETS.check(name)
    root, path = params.get("root"), params.get("path")
    if name in ROOTED and (not isinstance(root, str) or not Path(root).expanduser().is_dir()):
        raise DatasetError(f"dataset folder {root} not found; give '{EMBEDDED}', an ImageFolder root with train/ and val/, "
                           "or cifar10(root=...), cifar100(root=...), stl10(root=...), folder(root=...), mnist(path=...)")
    if path and (not isinstance(path, str) or not Path(path).expanduser().is_file()):
        raise DatasetError(f"dataset file {path} not found")
    return dataset


def checked(splits: Splits, limit_per_class: int | None, seed: int) -> Splits:
    """No empty split (but val, empty with val_fraction=0) and at least two classes (with one, every
    top-1 is 100% and means nothing); each split cut to ``limit_per_class`` images per class when asked."""
    if splits.num_classes < 2:
        raise DatasetError(f"{splits.name}: {splits.num_classes} class ({', '.join(splits.classes)}); classification "
                           "needs at least two")
    for name in ("train", "val", "test"):
        split = getattr(splits, name)
        if len(split) == 0 and name == "val":
            continue
        if len(split) == 0:
            raise DatasetError(f"{splits.name}: the {name} split is empty")
        if limit_per_class:
            picks = stratified_indices(dataset_targets(split), per_class=limit_per_class, seed=seed)
            setattr(splits, name, Subset(split, picks.tolist()))
    return splits


class Relabeled(Dataset):
    """Some items of a dataset under new labels: ``mapping`` old label -> new label."""

    def __init__(self, dataset: Dataset, mapping: dict[int, int]):
        targets = dataset_targets(dataset)
        self.dataset, self.mapping = dataset, mapping
        self.indices = [i for i, t in enumerate(targets) if t in mapping]
        self._targets = [mapping[targets[i]] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        image, _ = self.dataset[self.indices[i]]
        return image, self._targets[i]

    @property
    def targets(self) -> list[int]:
        return self._targets


# Table 3 names the classes only; their wnids are the released README's (Sriram-Ravula/Contrastive-Inversion
# README.md lines 38-42 @7e998f7): cup is n07930864, the ILSVRC-2012 class (n03147509, the WordNet synset cinv had
# before, is no ILSVRC class, so ImageNet's val/ has no folder for it).
LABEL_SHIFT_TABLES = {"imagenet100": "label_shift_imagenet100.tsv", "cifar10": "label_shift_cifar10.tsv"}


def read_label_shift(spec: str | Path) -> list[tuple[str, str]]:
    """(source class, target class) pairs from a TSV with source_wnid and target_wnid columns."""
    import csv

    if str(spec) in LABEL_SHIFT_TABLES:
        text = resources.files("cinv.data").joinpath("lists", LABEL_SHIFT_TABLES[str(spec)]).read_text()
    elif Path(spec).is_file():
        text = Path(spec).read_text()
    else:
        raise DatasetError(f"label-shift table {spec} not found; give a TSV file or one of: {', '.join(LABEL_SHIFT_TABLES)}")
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
    if not rows or not {"source_wnid", "target_wnid"} <= set(rows[0]):
        raise DatasetError(f"label-shift table {spec} needs tab-separated columns source_wnid and target_wnid")
    return [(row["source_wnid"].strip(), row["target_wnid"].strip()) for row in rows]


def label_shift(splits: Splits, pairs: list[tuple[str, str]], root: str | Path | None = None) -> tuple[Splits, Dataset]:
    """Training splits without the unseen classes, and their images labelled as the seen targets.

    Unseen classes inside the dataset (the embedded CIFAR-10: cat -> dog) are removed from every
    split; classes outside it (ImageNet-100: classes of the full ImageNet) are read from
    ``root/val/<source>``, as in the paper's Table 3.
    """
    sources = [s for s, _ in pairs]
    kept = [c for c in splits.classes if c not in sources]
    missing = [t for _, t in pairs if t not in kept]
    if missing:
        raise DatasetError(f"label shift: target class(es) {', '.join(missing)} are not among the trained classes")
    new = {c: i for i, c in enumerate(kept)}
    inside = [s for s in sources if s in splits.classes]
    if inside and len(inside) != len(sources):
        raise DatasetError("label shift: the unseen classes must be all inside the dataset or all outside it")
    if inside:
        index = {c: i for i, c in enumerate(splits.classes)}
        seen = {index[c]: new[c] for c in kept}
        trained = dataclasses.replace(splits, classes=kept, **{k: Relabeled(getattr(splits, k), seen) for k in ("train", "val", "test")})
        shifted = Relabeled(splits.test, {index[s]: new[t] for s, t in pairs})
        return trained, shifted
    if root is None or not (Path(root) / "val").is_dir():
        raise DatasetError(f"label shift: classes {', '.join(sources)} are not in the dataset; give a folder dataset whose "
                           "val/ holds them (the full ImageNet validation set for the paper's table)")
    _, eval_tf = folder_transforms(splits.image_size, "resize" if splits.resize == "resize" else "crop")
    images = FolderImages(Path(root) / "val", sources, eval_tf)
    return splits, Relabeled(images, {i: new[t] for i, (_, t) in enumerate(pairs)})


# ---- datasets by spec, e.g. cifar10(root=/data), folder(root=..., class_list=...) ----


DATASETS: Registry[Splits] = Registry("dataset")
TARGETS = DATASETS  # transfer targets are datasets like any other


def holdout(train: Dataset, val_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(train, val): a class-stratified, seeded ``val_fraction`` of a training set held out (0: none, val empty)."""
    held = set(stratified_indices(dataset_targets(train), fraction=val_fraction, seed=seed).tolist()) if val_fraction else set()
    return Subset(train, [i for i in range(len(train)) if i not in held]), Subset(train, sorted(held))


@DATASETS.register(EMBEDDED)
def _embedded(image_size: int | None, val_fraction: float, seed: int, skip_bad_images: bool = False) -> Splits:
    """The shipped CIFAR-10 subset, resized to 48 px by default."""
    splits = load_embedded()
    splits.image_size = image_size or EMBEDDED_IMAGE_SIZE
    return splits


@DATASETS.register("folder")
def _folder(image_size: int | None, val_fraction: float, seed: int, skip_bad_images: bool = False, root: str = "",
            class_list: str | None = None, preprocessing: str = "crop") -> Splits:
    """An ImageFolder tree (train/ and val/), 224 px by default; a two-class one (the COVID X-ray
    set) is scored with ROC AUC too."""
    return load_folder(root, class_list, image_size or FOLDER_IMAGE_SIZE, val_fraction, seed, skip_bad_images, preprocessing)


def _torchvision(name: str, image_size: int | None, val_fraction: float, seed: int, skip_bad_images: bool = False,
                 root: str = "") -> Splits:
    """CIFAR-10/100 or STL-10 in torchvision's on-disk format under ``root``; cinv never downloads.
    In memory, at the native size unless told otherwise: the 32-px path of the RoCL and FCL papers
    (flips per batch, no crop, no resize)."""
    from torchvision import datasets as tvd

    try:
        if name == "stl10":
            parts = [tvd.STL10(root, split=split, download=False) for split in ("train", "test")]
            arrays = [(torch.from_numpy(d.data), torch.from_numpy(d.labels.astype(np.int64))) for d in parts]
        else:
            kind = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
            parts = [kind(root, train=train, download=False) for train in (True, False)]
            arrays = [(torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(d.targets)) for d in parts]
    except RuntimeError as exc:
        raise DatasetError(f"{name}: torchvision's files not found or corrupted under {root!r} ({exc.__class__.__name__}); "
                           "cinv never downloads: place the dataset's files there, as torchvision lays them out") from None
    train, val = holdout(TensorImages(*arrays[0]), val_fraction, seed)
    return Splits(train=train, val=val, test=TensorImages(*arrays[1]), classes=list(parts[0].classes),
                  image_size=image_size or int(arrays[0][0].shape[-1]), name=name, augment_on_batch=True, resize="resize",
                  source=str(Path(root).resolve()))


for _name in ("cifar10", "cifar100", "stl10"):
    DATASETS.register(_name)(functools.partial(_torchvision, _name))


def load_target(spec: str, image_size: int, val_fraction: float, seed: int, limit_per_class: int | None = None) -> Splits:
    """A transfer dataset by spec, at the source's ``image_size``, cut to ``limit_per_class`` like the source."""
    return load_splits(spec, None, image_size, val_fraction, seed, limit_per_class)
