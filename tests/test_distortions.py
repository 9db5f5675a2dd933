import pytest
import torch

from cinv import corruption as distortions


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def masked_positions(original, corrupted):
    """[B, H, W] bool: positions zeroed in every channel that were not already zero."""
    return (corrupted == 0).all(dim=1) & (original != 0).any(dim=1)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.75, 0.9, 0.99, 1.0])
def test_random_mask_sets_exactly_round_fraction_positions_in_all_channels(fraction):
    x = torch.rand(6, 3, 17, 13) + 0.01  # no pixel is 0 before masking
    y = distortions.get("random_mask", fraction=fraction)(x, gen())
    zeroed = masked_positions(x, y)
    expected = round(fraction * 17 * 13)
    assert zeroed.flatten(1).sum(1).tolist() == [expected] * 6
    # Masked positions are zero in all channels; every other value is untouched.
    assert torch.equal(y, x * (~zeroed)[:, None].float())


def test_random_mask_positions_are_independent_per_image():
    x = torch.rand(8, 3, 16, 16) + 0.01
    zeroed = masked_positions(x, distortions.get("random_mask", fraction=0.5)(x, gen()))
    patterns = {tuple(z.flatten().tolist()) for z in zeroed}
    assert len(patterns) == 8


def test_random_mask_range_draws_a_fraction_per_image():
    x = torch.rand(64, 3, 20, 20) + 0.01
    counts = masked_positions(x, distortions.get("random_mask", fraction=(0.5, 0.95))(x, gen())).flatten(1).sum(1)
    assert counts.min() >= round(0.5 * 400) and counts.max() <= round(0.95 * 400)
    assert len(set(counts.tolist())) > 20  # not one fraction for the whole batch
    # Uniform on [0.5, 0.95]: mean near 0.725 * 400 = 290.
    assert abs(counts.float().mean().item() - 290) < 20


def test_gaussian_noise_statistics_and_no_clamping():
    x = torch.full((16, 3, 32, 32), 0.5)
    y = distortions.get("gaussian_noise", std=0.3)(x, gen())
    noise = y - x
    assert abs(noise.mean().item()) < 0.01
    assert abs(noise.std().item() - 0.3) < 0.005
    assert y.min() < 0 and y.max() > 1  # not clamped to [0, 1]


def test_gaussian_noise_range_draws_a_std_per_image():
    x = torch.zeros(200, 3, 24, 24)
    per_image = distortions.get("gaussian_noise", std=(0.1, 0.3))(x, gen()).flatten(1).std(dim=1)
    assert per_image.min() > 0.09 and per_image.max() < 0.31
    assert per_image.std() > 0.04  # spread across the range, not a single value


def test_gaussian_noise_channels_and_pixels_independent():
    x = torch.zeros(4, 3, 32, 32)
    noise = distortions.get("gaussian_noise", std=1.0)(x, gen())
    corr = torch.corrcoef(noise.permute(1, 0, 2, 3).reshape(3, -1))
    assert (corr - torch.eye(3)).abs().max() < 0.05


def test_gaussian_blur_matches_torchvision_and_is_deterministic():
    from torchvision.transforms import GaussianBlur

    x = torch.rand(3, 3, 64, 64)
    blur = distortions.get("gaussian_blur", kernel_size=21, sigma=5)
    assert not blur.stochastic
    y = blur(x, gen(1))
    assert torch.equal(y, blur(x, gen(2)))
    assert torch.allclose(y, GaussianBlur(21, sigma=5.0)(x), atol=1e-6)
    assert y.std() < x.std() / 3  # it smooths


@pytest.mark.parametrize("name,params", [
    ("random_mask", {"fraction": 0.5}),
    ("random_mask", {"fraction": (0.5, 0.95)}),
    ("gaussian_noise", {"std": 0.1}),
    ("gaussian_noise", {"std": (0.1, 0.3)}),
])
def test_same_seed_same_output_other_seed_other_output(name, params):
    x = torch.rand(5, 3, 16, 16)
    f = distortions.get(name, **params)
    assert torch.equal(f(x, gen(7)), f(x, gen(7)))
    assert not torch.equal(f(x, gen(7)), f(x, gen(8)))


def test_spec_round_trip():
    f = distortions.from_spec("gaussian_noise(std=(0.1, 0.3))")
    assert f.spec == "gaussian_noise(std=(0.1, 0.3))"
    assert distortions.from_spec(f.spec).spec == f.spec
    assert distortions.from_spec("none").spec == "none"


@pytest.mark.parametrize("name,params,needle", [
    ("random_mask", {"fraction": 1.5}, "fraction"),
    ("random_mask", {"fraction": -0.1}, "fraction"),
    ("random_mask", {"fraction": (0.9, 0.5)}, "fraction"),
    ("random_mask", {"fraction": "half"}, "fraction"),
    ("gaussian_noise", {"std": -0.1}, "std"),
    ("gaussian_noise", {"std": float("nan")}, "std"),
    ("gaussian_blur", {"kernel_size": 4, "sigma": 1.0}, "kernel_size"),
    ("gaussian_blur", {"kernel_size": 0, "sigma": 1.0}, "kernel_size"),
    ("gaussian_blur", {"kernel_size": -3, "sigma": 1.0}, "kernel_size"),
    ("gaussian_blur", {"kernel_size": 5, "sigma": 0}, "sigma"),
    ("random_mask", {"frac": 0.5}, "frac"),
    ("random_mask", {}, "fraction"),
    ("speckle", {}, "speckle"),
])
def test_bad_parameters_raise_value_error_naming_them(name, params, needle):
    with pytest.raises(ValueError, match=needle) as info:
        distortions.get(name, **params)
    message = str(info.value)
    assert "allowed" in message or "must be" in message or "needs" in message


def test_unknown_name_lists_the_allowed_names():
    with pytest.raises(ValueError, match="allowed: gaussian_blur, gaussian_noise, imagenet_c, none, patch_gaussian, random_blur_noise, random_mask$"):
        distortions.get("speckle")


def test_blur_kernel_larger_than_image_is_a_clear_error():
    with pytest.raises(ValueError, match="kernel_size 37"):
        distortions.get("gaussian_blur", kernel_size=37, sigma=9)(torch.rand(1, 3, 16, 16))


def test_rejects_non_float_or_non_batched_input():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        distortions.get("random_mask", fraction=0.5)(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="float"):
        distortions.get("random_mask", fraction=0.5)(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_random_blur_noise_matches_torchvision_per_image_and_p_switches_it_off():
    from torchvision.transforms.v2 import functional as TF

    images = torch.rand(4, 3, 24, 24)
    blur_only = distortions.get("random_blur_noise", blur_sigma=2.0, noise_std=0.0, p=1.0)  # the released 23-px kernel
    assert torch.allclose(blur_only(images), TF.gaussian_blur(images, kernel_size=[23, 23], sigma=[2.0, 2.0]), atol=1e-5)
    three_sigma = distortions.get("random_blur_noise", blur_sigma=2.0, noise_std=0.0, p=1.0, kernel_size=0)
    assert torch.allclose(three_sigma(images), TF.gaussian_blur(images, kernel_size=[13, 13], sigma=[2.0, 2.0]), atol=1e-5)
    assert torch.equal(distortions.get("random_blur_noise", p=0.0)(images), images)
    mixed = distortions.get("random_blur_noise", blur_sigma=(1, 5), noise_std=(0.05, 0.5), p=0.8)
    a, b = mixed(images, torch.Generator().manual_seed(1)), mixed(images, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, mixed(images, torch.Generator().manual_seed(2)))
    with pytest.raises(ValueError, match="p must be a probability"):
        distortions.get("random_blur_noise", p=1.5)
