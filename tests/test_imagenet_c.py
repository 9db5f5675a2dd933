import subprocess
import sys

import numpy as np
import pytest
import torch

from cinv import corruption as distortions
from cinv.corruption.imagenet_c import CORRUPTIONS, DETERMINISTIC, load_imagecorruptions


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=2, h=32, w=32, c=3, seed=0):
    """Real-looking images: a smooth colour gradient per image plus fine random texture."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, h).view(h, 1) * 0.5 + torch.linspace(0, 1, w).view(1, w) * 0.5
    colour = 0.2 + 0.6 * torch.rand(n, c, 1, 1, generator=g)
    smooth = 0.15 + 0.6 * (colour * 0.5 + ramp * 0.5)
    return (smooth + 0.25 * torch.rand(n, c, h, w, generator=g)).clamp(0, 1)


def check_image(y, x):
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.equal(y, x)


def test_names_match_the_package_and_registry():
    load_imagecorruptions()  # imports the package with its compatibility fixes
    import imagecorruptions

    assert CORRUPTIONS == tuple(imagecorruptions.get_corruption_names("all"))
    assert len(CORRUPTIONS) == 19
    assert "imagenet_c" in distortions.names()


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_every_severity_runs_and_severity_5_is_stronger_than_1(corruption):
    x = images()
    diff = {}
    for severity in range(1, 6):
        y = distortions.get("imagenet_c", corruption=corruption, severity=severity)(x, gen())
        check_image(y, x)
        diff[severity] = (y - x).abs().mean().item()
    assert diff[5] > diff[1], diff


@pytest.mark.parametrize("severity", [1, 5])
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_seeded_draws_and_numpy_state_untouched(corruption, severity):
    x = images()
    f = distortions.get("imagenet_c", corruption=corruption, severity=severity)
    assert f.stochastic == (corruption not in DETERMINISTIC)
    np.random.seed(123)
    before = np.random.get_state()
    torch_before = torch.get_rng_state()
    y = f(x, gen(7))
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert torch.equal(torch.get_rng_state(), torch_before)  # an explicit generator leaves the global RNG alone
    check_image(y, x)
    assert torch.equal(f(x, gen(7)), y)
    if f.stochastic:
        assert not torch.equal(f(x, gen(8)), y)
    else:
        assert torch.equal(f(x, gen(8)), y)


def test_contrast_strengthens_with_every_severity():
    x = images()
    diffs = [(distortions.get("imagenet_c", corruption="contrast", severity=s)(x) - x).abs().mean().item()
             for s in range(1, 6)]
    assert diffs == sorted(diffs) and len(set(diffs)) == 5


@pytest.mark.parametrize("corruption,size", [
    ("gaussian_noise", (64, 64)),
    ("frost", (64, 64)),
    ("zoom_blur", (64, 64)),
    ("fog", (224, 224)),
    ("jpeg_compression", (224, 224)),
    ("glass_blur", (16, 16)),
    ("frost", (16, 16)),
    ("snow", (20, 48)),
    ("spatter", (40, 56)),
    ("elastic_transform", (48, 48)),
])
def test_other_sizes_keep_their_shape(corruption, size):
    x = images(2, *size)
    y = distortions.get("imagenet_c", corruption=corruption, severity=3)(x, gen())
    check_image(y, x)


def test_images_in_a_batch_get_their_own_draws():
    x = images(1).expand(3, -1, -1, -1).contiguous()
    y = distortions.get("imagenet_c", corruption="gaussian_noise", severity=3)(x, gen())
    assert not torch.equal(y[0], y[1]) and not torch.equal(y[1], y[2])


def test_global_torch_rng_when_no_generator():
    x = images()
    f = distortions.get("imagenet_c", corruption="shot_noise", severity=2)
    torch.manual_seed(5)
    y = f(x)
    torch.manual_seed(5)
    assert torch.equal(f(x), y)


def test_grey_images_and_float64_keep_channels_and_dtype():
    grey = images(2, c=1)
    check_image(distortions.get("imagenet_c", corruption="frost", severity=2)(grey, gen()), grey)
    x64 = images().double()
    check_image(distortions.get("imagenet_c", corruption="pixelate", severity=2)(x64, gen()), x64)
    with pytest.raises(ValueError, match="channels"):
        distortions.get("imagenet_c", corruption="fog", severity=1)(images(c=2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_images_come_back_on_cuda():
    x = images().cuda()
    y = distortions.get("imagenet_c", corruption="motion_blur", severity=3)(x, torch.Generator("cuda").manual_seed(0))
    check_image(y, x)


def test_spec_round_trip():
    f = distortions.from_spec("imagenet_c(corruption='fog', severity=3)")
    assert (f.corruption, f.severity) == ("fog", 3)
    assert distortions.from_spec(f.spec).spec == f.spec


@pytest.mark.parametrize("params,needle", [
    ({"corruption": "speckle", "severity": 3}, "corruption must be one of gaussian_noise, shot_noise"),
    ({"corruption": None, "severity": 3}, "corruption"),
    ({"corruption": "fog", "severity": 0}, "severity must be an integer in 1..5"),
    ({"corruption": "fog", "severity": 6}, "severity"),
    ({"corruption": "fog", "severity": 2.5}, "severity"),
    ({"corruption": "fog", "severity": True}, "severity"),
    ({"corruption": "fog"}, "severity"),
    ({"severity": 3}, "corruption"),
    ({"corruption": "fog", "severity": 3, "level": 2}, "level"),
])
def test_bad_parameters_raise_value_error_naming_them(params, needle):
    with pytest.raises(ValueError, match=needle):
        distortions.get("imagenet_c", **params)


def test_importing_distortions_does_not_import_the_package():
    code = "import sys, cinv.corruption; assert not {'imagecorruptions', 'cv2', 'skimage'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
