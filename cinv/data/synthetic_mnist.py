"""Synthetic MNIST of the FCL paper (seed 002, section 4.1) and its noisy test sets.

A scaled-down random digit pasted in a random corner of an MNIST image. Digits 0-4 with a
corner digit become classes 10-14 and are rare in training (about 1/100 of classes 0-9); digits
5-9 keep their label whatever their corner holds. The corner pixels are therefore informative
only in one context, which is what FCL's contextual utility is meant to find.

Choices the paper leaves open (it gives no figure for them):

- corner digit: any training digit, uniformly drawn, scaled by ``scale`` = 0.4 (MNIST's 20-px
  digit box becomes 8 px), cropped to its ink and pushed against the corner at ``margin`` = 1 px
  from both edges, combined with the image by a pixel-wise max so neither digit erases the other;
- digits 5-9 all carry a corner digit in training (``high_corner_fraction`` = 1): the paper says
  the corner digits "are going to be completely uninformative 100 out of 101 times they appear"
  with about 5,000 images per class 0-9 and about 50 per class 10-14, which holds only if (nearly)
  every 5-9 image has one;
- rare classes: ``rare_fraction`` = 1% of each digit 0-4 ("a ratio of approximately 1/100");
- the balanced sets (validation, test) use every selected 0-4 image twice, plain and with a
  corner digit: 15 classes of n images from 10,000 MNIST test digits, as the paper's "roughly
  15k" balanced test set requires; n is the smallest digit count, so classes are exactly equal.

Images are uint8 [N, 1, 28, 28]; every draw comes from a ``torch.Generator`` seeded by the caller.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cinv.data.datasets import DATASETS, EMBEDDED, Splits, TensorImages, checked, load_splits, stratified_indices
from cinv.data.mnist import load_mnist, mnist_source
from cinv.errors import DatasetError
from cinv.runtime import derive_seed, uniform

__all__ = [
    "CLASSES", "corner_digits", "synthetic_mnist", "balanced_synthetic_mnist",
    "noise_mask", "pixel_noise", "std_weights", "ZERO_STD", "CornerDigits", "noisy_sets", "load_synthetic_mnist",
    "synthetic_splits", "fcl_test_sets", "stacked", "NOISE_FRACTION",
]

CLASSES = [str(d) for d in range(10)] + [f"{d}+corner" for d in range(5)]
NOISE_FRACTION = 0.15  # section 4.1: "we replace 15% of the pixels, with a uniformly chosen random gray level"
RARE_DIGITS = range(5)  # digits whose label changes (d -> d + 10) with a corner digit


def _as_images(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or x.dtype != torch.uint8:
        raise ValueError(f"digits must be uint8 [N, H, W] or [N, 1, H, W]; got {tuple(x.shape)} {x.dtype}")
    return x


def corner_digits(x, has_corner: torch.Tensor, generator: torch.Generator, *, scale: float = 0.4,
                  margin: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste a scaled-down random digit of ``x`` in a random corner of the images where
    ``has_corner``: returns uint8 [N, 1, H, W], the corner of each (-1 none; 0 top-left,
    1 top-right, 2 bottom-left, 3 bottom-right) and the corner digit's own pixels, bool
    [N, 1, H, W]: where it has ink and the centre digit none (what only the corner digit explains)."""
    x = _as_images(x)
    n, h, w = x.shape
    has_corner = torch.as_tensor(has_corner, dtype=torch.bool)
    if has_corner.shape != (n,):
        raise ValueError(f"has_corner must be a bool vector of length {n}; got {tuple(has_corner.shape)}")
    size = max(1, round(max(h, w) * scale))
    if not 0 < scale < 1 or margin < 0 or size + margin > min(h, w):
        raise ValueError(f"corner digit: need 0 < scale < 1 and a {size}-px digit plus margin {margin} to fit in {h}x{w}")
    # Draw for every image (so the draws do not depend on which images get one), use where asked.
    source = (uniform((n,), generator, x.device) * n).long().clamp_(max=n - 1)
    corner = (uniform((n,), generator, x.device) * 4).long().clamp_(max=3)
    idx = has_corner.nonzero().flatten()
    out = x.clone()
    own = torch.zeros_like(x, dtype=torch.bool)
    if len(idx):
        small = F.interpolate(x[source[idx]].float()[:, None], size=(size, size), mode="bilinear",
                              antialias=True, align_corners=False)[:, 0].round().clamp(0, 255)
        # The ink's bounding box in each small digit, then an integer shift that puts it in the corner.
        rows, cols = (small > 0).any(2), (small > 0).any(1)
        top, left = rows.float().argmax(1), cols.float().argmax(1)
        bottom = size - 1 - rows.flip(1).float().argmax(1)
        right = size - 1 - cols.flip(1).float().argmax(1)
        c = corner[idx]
        dy = torch.where(c >= 2, (h - 1 - margin) - bottom, margin - top)
        dx = torch.where(c % 2 == 1, (w - 1 - margin) - right, margin - left)
        rr = torch.arange(h, device=x.device)[None, :, None] - dy[:, None, None]
        cc = torch.arange(w, device=x.device)[None, None, :] - dx[:, None, None]
        inside = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
        batch = torch.arange(len(idx), device=x.device)[:, None, None]
        canvas = small[batch, rr.clamp(0, size - 1), cc.clamp(0, size - 1)] * inside
        out[idx] = torch.maximum(out[idx], canvas.to(torch.uint8))
        own[idx] = (canvas > 0) & (x[idx] == 0)
    return out[:, None], torch.where(has_corner, corner, -1), own[:, None]


def _check_fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a fraction in [0, 1]; got {value!r}")
    return float(value)


def synthetic_mnist(x, y, seed: int, *, rare_fraction: float = 0.01, high_corner_fraction: float = 1.0,
                    scale: float = 0.4, margin: int = 1, return_corners: bool = False):
    """The training distribution: image i comes from ``x[i]``. Exactly round(rare_fraction * n_d)
    (at least one) images of each digit d in 0-4 get a corner digit and label d + 10; each 5-9
    image gets one with probability ``high_corner_fraction``. Returns (images uint8
    [N, 1, 28, 28], labels 0-14), plus the corner of each image and the corner digit's own
    pixels (see [corner_digits][]) with ``return_corners``."""
    x, y = _as_images(x), torch.as_tensor(y, dtype=torch.int64)
    rare_fraction = _check_fraction("rare_fraction", rare_fraction)
    high_corner_fraction = _check_fraction("high_corner_fraction", high_corner_fraction)
    generator = torch.Generator().manual_seed(derive_seed(seed, "synthetic_mnist"))
    keys = uniform((len(y),), generator, torch.device("cpu"))
    has_corner = (y >= 5) & (keys < high_corner_fraction)
    for d in RARE_DIGITS:  # ten classes at most: no loop over images
        idx = (y == d).nonzero().flatten()
        if len(idx):
            chosen = idx[keys[idx].argsort()[: max(1, round(rare_fraction * len(idx)))]]
            has_corner[chosen] = True
    images, corner, own = corner_digits(x, has_corner, generator, scale=scale, margin=margin)
    labels = torch.where(has_corner & (y < 5), y + 10, y)
    return (images, labels, corner, own) if return_corners else (images, labels)


def balanced_synthetic_mnist(x, y, seed: int, *, per_class: int | None = None, high_corner_fraction: float = 1.0,
                             scale: float = 0.4, margin: int = 1, return_corners: bool = False):
    """The balanced sets (the paper's BAL, and its validation set): ``per_class`` images (default:
    the smallest digit count) in each of the 15 classes; each chosen 0-4 image appears plain
    (class d) and with a corner digit (class d + 10); ``return_corners`` as [synthetic_mnist][]."""
    x, y = _as_images(x), torch.as_tensor(y, dtype=torch.int64)
    high_corner_fraction = _check_fraction("high_corner_fraction", high_corner_fraction)
    counts = torch.bincount(y, minlength=10)
    n = int(counts.min()) if per_class is None else per_class
    if n < 1 or n > counts.min():
        raise DatasetError(f"balanced synthetic MNIST: per_class must be in [1, {int(counts.min())}] "
                           f"(the smallest digit count); got {per_class}")
    generator = torch.Generator().manual_seed(derive_seed(seed, "balanced_synthetic_mnist"))
    keys = uniform((len(y),), generator, torch.device("cpu"))
    picks = [(y == d).nonzero().flatten()[keys[y == d].argsort()[:n]] for d in range(10)]
    source = torch.cat(picks[:5] + picks[:5] + picks[5:])
    has_corner = torch.cat([torch.zeros(5 * n, dtype=torch.bool), torch.ones(5 * n, dtype=torch.bool),
                            uniform((5 * n,), generator, torch.device("cpu")) < high_corner_fraction])
    images, corner, own = corner_digits(x[source], has_corner, generator, scale=scale, margin=margin)
    labels = torch.where(has_corner & (y[source] < 5), y[source] + 10, y[source])
    return (images, labels, corner, own) if return_corners else (images, labels)


def _weights_2d(weights, h: int, w: int, device) -> torch.Tensor:
    weights = torch.as_tensor(weights, dtype=torch.float32, device=device)
    if weights.shape != (h, w) or not torch.isfinite(weights).all() or (weights < 0).any() or not (weights > 0).any():
        raise ValueError(f"placement weights must be finite, non-negative, not all zero, shape {(h, w)}; "
                         f"got {tuple(weights.shape)}")
    return weights


def noise_mask(shape: tuple[int, ...], fraction: float, weights=None, generator: torch.Generator | None = None,
               device=None) -> torch.Tensor:
    """bool [N, 1, H, W]: exactly round(fraction * H * W) pixels per image, uniformly placed or,
    with ``weights`` [H, W], drawn one after another without replacement with probability
    proportional to the weights of the pixels left (Gumbel top-k: one batched draw)."""
    n, _, h, w = shape
    fraction = _check_fraction("fraction", fraction)
    device = torch.device(device or "cpu")
    k = round(fraction * h * w)
    u = uniform((n, h * w), generator, device)
    if weights is None:
        keys = u
    else:
        # log w + Gumbel noise; its top k are a weighted sample without replacement.
        keys = _weights_2d(weights, h, w, device).flatten().log()[None] - (-u.clamp_min(1e-20).log()).log()
    chosen = keys.topk(k, dim=1).indices
    mask = torch.zeros(n, h * w, dtype=torch.bool, device=device).scatter_(1, chosen, True)
    return mask.view(n, 1, h, w)


def pixel_noise(images: torch.Tensor, fraction: float = 0.15, weights=None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's UN / NUN noise: a fraction of the pixels of each image replaced by a uniform
    random gray level (the same level in every channel, so a pixel turns gray). uint8 images get
    levels 0-255, float images levels in [0, 1). The mask is drawn first, so [noise_mask][]
    with the same generator state gives the positions."""
    if images.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W]; got {tuple(images.shape)}")
    mask = noise_mask(tuple(images.shape), fraction, weights, generator, images.device)
    level = uniform((images.shape[0], 1, *images.shape[2:]), generator, images.device)
    if images.dtype == torch.uint8:
        level = (level * 256).floor().clamp_(max=255).to(torch.uint8)
    else:
        level = level.to(images.dtype)
    return torch.where(mask, level, images)


ZERO_STD = ("exclude", "floor")  # NUN's handling of pixels that never vary in training (see std_weights)


def std_weights(train_images, eps: float = 1 / 255, chunk: int = 4096, zero_std: str = "exclude") -> torch.Tensor:
    """[H, W] NUN placement weights: 1 / (per-pixel std over the training images, channels
    averaged), images read as [0, 1].

    The paper's rule ("inversely proportional to its sample standard deviation") gives no
    probability where the std is 0. ``zero_std="exclude"`` (default) applies it where it is
    defined: a pixel that never varies in training gets weight 0. ``"floor"`` reads its std as
    ``eps`` (one gray level): cinv's earlier handling, which put about 44% of the noise mass on
    synthetic MNIST's never-varying border pixels (and more the smaller eps: a free parameter)."""
    if zero_std not in ZERO_STD:
        raise ValueError(f"zero_std must be one of {', '.join(ZERO_STD)}; got {zero_std!r}")
    images = torch.as_tensor(train_images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"training images must be [N, C, H, W] with N >= 2; got {tuple(images.shape)}")
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for part in images.split(chunk):  # float64 sums in chunks: CIFAR-size sets stay small in memory
        part = part.double() / 255 if part.dtype == torch.uint8 else part.double()
        total += part.sum(0)
        squares += part.square().sum(0)
    n = len(images)
    var = ((squares - total.square() / n) / (n - 1)).clamp_min(0)
    std = var.sqrt().mean(0)
    # float64 sums leave ~1e-9 of rounding where a pixel is constant: below a hundredth of a gray level is 0
    constant = std < 1e-2 / 255
    if zero_std == "floor":
        return (1 / std.clamp_min(eps)).float()
    if constant.all():
        raise ValueError("NUN placement: no pixel varies over the training images")
    return torch.where(constant, torch.zeros_like(std), 1 / std.clamp_min(1e-12)).float()


class CornerDigits(TensorImages):
    """Synthetic MNIST images that know their corner digit: ``corner_pixels`` bool [N, 1, H, W]
    (the pasted digit's own pixels, see [corner_digits][])."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, corner_pixels: torch.Tensor):
        super().__init__(images, labels)
        self.corner_pixels = corner_pixels

    def subset(self, index) -> CornerDigits:
        index = torch.as_tensor(index)
        return CornerDigits(self.images[index], self.labels[index], self.corner_pixels[index])


def noisy_sets(images: torch.Tensor, labels: torch.Tensor, train_images, fraction: float, generator: torch.Generator,
               zero_std: str = "exclude") -> tuple[dict[str, TensorImages], dict[str, float]]:
    """The paper's two noisy versions of an evaluation set: ``un`` (uniformly placed gray pixels)
    and ``nun`` (placed by [std_weights][] of the training images), and where the NUN pixels
    land: ``nun_ink_share``, the share on pixels with ink (> 0 in any channel), beside
    ``ink_share``, the share of the images' pixels that have ink (what uniform placement gives)."""
    weights = std_weights(train_images, zero_std=zero_std)
    un = pixel_noise(images, fraction, None, generator)
    state = generator.get_state()
    nun = pixel_noise(images, fraction, weights, generator)
    mask = noise_mask(tuple(images.shape), fraction, weights, torch.Generator().set_state(state), images.device)
    ink = (images > 0).any(1, keepdim=True)
    stats = {"nun_ink_share": ((mask & ink).sum() / mask.sum().clamp_min(1)).item(), "ink_share": ink.float().mean().item()}
    return {"un": TensorImages(un, labels), "nun": TensorImages(nun, labels)}, stats


def load_synthetic_mnist(path: str | Path | None, seed: int = 0, *, val_fraction: float = 1 / 6,
                         noise_fraction: float = NOISE_FRACTION, rare_fraction: float = 0.01,
                         high_corner_fraction: float = 1.0, scale: float = 0.4,
                         margin: int = 1, zero_std: str = "exclude") -> tuple[Splits, dict[str, TensorImages]]:
    """Train (imbalanced), val and test (BAL, balanced, [CornerDigits][]) splits, and the
    noisy test sets ``bal_un`` and ``bal_nun`` (names MLflow accepts as metric keys; "+" is not
    allowed there).

    Validation digits are a class-stratified ``val_fraction`` of MNIST's training digits (10,000
    of 60,000: the paper's ~50k train / ~15k val / ~15k test). NUN weights come from the
    synthetic training images, as the paper's "standard deviation (over training images)".
    """
    splits = synthetic_splits(path, seed, val_fraction=val_fraction, rare_fraction=rare_fraction,
                              high_corner_fraction=high_corner_fraction, scale=scale, margin=margin)
    sets, _ = _test_noise(splits, noise_fraction, seed, zero_std)
    return splits, sets


def _test_noise(splits: Splits, fraction: float, seed: int, zero_std: str) -> tuple[dict[str, TensorImages], dict[str, float]]:
    """BAL+UN and BAL+NUN of a synthetic MNIST test split, with where the NUN pixels land."""
    noise = torch.Generator().manual_seed(derive_seed(seed, "test_noise"))
    sets, stats = noisy_sets(splits.test.images, splits.test.labels, splits.train.images, fraction, noise, zero_std)
    return {f"bal_{name}": dataset for name, dataset in sets.items()}, stats


def synthetic_splits(path: str | Path | None, seed: int = 0, *, val_fraction: float = 1 / 6, rare_fraction: float = 0.01,
                     high_corner_fraction: float = 1.0, scale: float = 0.4, margin: int = 1) -> Splits:
    """The three splits of [load_synthetic_mnist][], without the noisy sets."""
    if not 0 < val_fraction < 1:
        raise DatasetError(f"synthetic_mnist: val_fraction must be in (0, 1) (its validation set is balanced from held-out "
                           f"digits); got {val_fraction}")
    mnist = load_mnist(path)
    held_out = stratified_indices(mnist.y_train.tolist(), fraction=val_fraction, seed=seed)
    keep = torch.ones(len(mnist.y_train), dtype=torch.bool)
    keep[held_out] = False
    options = {"high_corner_fraction": high_corner_fraction, "scale": scale, "margin": margin}
    train = TensorImages(*synthetic_mnist(mnist.x_train[keep], mnist.y_train[keep], derive_seed(seed, "train"),
                                          rare_fraction=rare_fraction, **options))
    val = CornerDigits(*_without_corner(balanced_synthetic_mnist(
        mnist.x_train[held_out], mnist.y_train[held_out], derive_seed(seed, "val"), return_corners=True, **options)))
    test = CornerDigits(*_without_corner(balanced_synthetic_mnist(
        mnist.x_test, mnist.y_test, derive_seed(seed, "test"), return_corners=True, **options)))
    return Splits(train=train, val=val, test=test, classes=list(CLASSES), image_size=28, name="synthetic_mnist",
                  augment_on_batch=True, resize="resize", flip=False, channels=1, source=mnist_source(path))


def _without_corner(parts):
    images, labels, _, own = parts
    return images, labels, own


@DATASETS.register("synthetic_mnist")
def _synthetic_mnist_dataset(image_size: int | None, val_fraction: float, seed: int, skip_bad_images: bool = False,
                             path: str | None = None) -> Splits:
    """FCL's synthetic MNIST (section 4.1) as a dataset any command can use:
    ``synthetic_mnist(path=/data/mnist.npz)``; 28 px unless told otherwise."""
    splits = synthetic_splits(path or None, seed, val_fraction=val_fraction)
    splits.image_size = image_size or 28
    return splits


# ---- FCL's test sets: balanced, uniform noise (UN), non-uniform noise (NUN) ----


def stacked(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of a dataset as two tensors (a TensorImages as it is)."""
    if isinstance(dataset, TensorImages):
        return dataset.images, dataset.labels
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items])


def fcl_test_sets(dataset: str, mnist: str | None, image_size: int | None, limit_per_class: int | None,
                  noise_fraction: float, seed: int,
                  zero_std: str = "exclude") -> tuple[Splits, dict[str, TensorImages], dict[str, float]]:
    """The splits and the noisy test sets: UN (uniformly placed gray pixels) and NUN (placed
    inversely to each pixel's standard deviation over the training images, ``zero_std`` for
    pixels that never vary); for synthetic MNIST also ``bal_rare``, the BAL images of the rare
    classes 10-14 (their mean recall: whether the model kept its sensitivity to the corner digits
    where they matter). Last, where the NUN pixels landed ([noisy_sets][]), before any limit."""
    if dataset == "synthetic_mnist":
        splits = synthetic_splits(mnist, seed)
        noisy, stats = _test_noise(splits, noise_fraction, seed, zero_std)
        names = {"test": "bal", "bal_un": "bal_un", "bal_nun": "bal_nun"}
    else:
        splits = load_splits(EMBEDDED, None, image_size or 32, 0.05, seed, None)
        images, labels = stacked(splits.test)
        generator = torch.Generator().manual_seed(derive_seed(seed, "test_noise"))
        noisy, stats = noisy_sets(images, labels, stacked(splits.train)[0], noise_fraction, generator, zero_std)
        names = {"test": "clean", "un": "un", "nun": "nun"}
    if image_size:
        splits.image_size = image_size
    if limit_per_class:
        test = splits.test
        splits = checked(splits, limit_per_class, seed)
        if isinstance(test, CornerDigits):  # keep the corner pixels of the images kept
            splits.test = test.subset(stratified_indices(test.labels.tolist(), per_class=limit_per_class, seed=seed))
        noisy = {k: _limited(v, limit_per_class, seed) for k, v in noisy.items()}
    sets = {names["test"]: splits.test, **{names[k]: v for k, v in noisy.items()}}
    if dataset == "synthetic_mnist":
        rare = splits.test.labels >= len(CLASSES) - len(RARE_DIGITS)
        sets["bal_rare"] = splits.test.subset(rare.nonzero().flatten())
    return splits, sets, stats


def _limited(dataset: TensorImages, per_class: int, seed: int) -> TensorImages:
    picks = stratified_indices(dataset.labels.tolist(), per_class=per_class, seed=seed)
    return TensorImages(dataset.images[picks], dataset.labels[picks])
