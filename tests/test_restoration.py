import pytest
import torch

from cinv import corruption as distortions
from cinv.corruption import restoration


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def mse(a, b):
    return ((a - b) ** 2).mean().item()


@pytest.fixture(scope="module")
def clean():
    """Four real CIFAR-10 test images (the embedded subset), floats in [0, 1]."""
    from cinv.data.datasets import load_embedded

    return load_embedded().test.images[::500][:4].float() / 255


@pytest.fixture(scope="module")
def masked(clean):
    """Half the pixels removed, and the exact keep mask that removed them (cloned generator state)."""
    corruption = distortions.get("random_mask", fraction=0.5)
    g = gen(0)
    twin = torch.Generator()
    twin.set_state(g.get_state())
    keep = corruption.keep_mask(clean, twin)
    corrupted = corruption(clean, g)
    return corrupted, keep


def test_names_and_needs_mask():
    assert restoration.names() == ["deep_decoder", "inpaint_biharmonic", "nl_means", "none"]
    assert not restoration.get("none").needs_mask and not restoration.get("nl_means").needs_mask
    assert restoration.get("inpaint_biharmonic").needs_mask and restoration.get("deep_decoder").needs_mask


def test_none_is_the_identity_even_out_of_range():
    x = torch.randn(2, 3, 8, 8)  # unclamped noise stays unclamped: "none" is the reference row
    assert torch.equal(restoration.get("none")(x), x)


def test_keep_mask_is_exactly_the_pixels_apply_kept(clean, masked):
    corrupted, keep = masked
    assert keep.dtype == torch.bool and keep.shape == (4, 1, 32, 32)
    assert torch.equal(corrupted, clean * keep)
    assert (~keep).flatten(1).sum(1).tolist() == [512] * 4
    # Every removed position that was not already black is zero in all channels of the output.
    visible = (clean != 0).any(dim=1, keepdim=True)
    assert torch.equal((corrupted == 0).all(dim=1, keepdim=True) & visible, ~keep & visible)


@pytest.mark.parametrize("std", [0.1, 0.2])
def test_nl_means_lowers_mse_on_noisy_images(clean, std):
    noisy = distortions.get("gaussian_noise", std=std)(clean, gen(1))
    restored = restoration.get("nl_means")(noisy)
    assert restored.shape == clean.shape and restored.dtype == clean.dtype
    assert restored.min() >= 0 and restored.max() <= 1
    # Measured: 0.1 -> about 3x lower, 0.2 -> about 4x lower than the clamped noisy input.
    assert mse(restored, clean) < 0.5 * mse(noisy.clamp(0, 1), clean)


def test_nl_means_fixed_h_and_flat_images():
    flat = torch.full((2, 3, 16, 16), 0.25, dtype=torch.float64)
    assert torch.equal(restoration.get("nl_means")(flat), flat)  # no noise estimated: untouched
    noisy = flat + 0.1 * torch.randn(flat.shape, generator=gen(2), dtype=torch.float64)
    restored = restoration.get("nl_means", h=0.08, patch_size=3, patch_distance=4)(noisy)
    assert restored.dtype == torch.float64
    assert mse(restored, flat) < 0.5 * mse(noisy.clamp(0, 1), flat)


@pytest.mark.parametrize("spec", ["inpaint_biharmonic", "deep_decoder(steps=40)"])
def test_inpainting_fills_removed_pixels_and_keeps_the_rest(clean, masked, spec):
    corrupted, keep = masked
    restored = restoration.from_spec(spec)(corrupted, keep)
    assert restored.shape == clean.shape and restored.dtype == clean.dtype
    assert restored.min() >= 0 and restored.max() <= 1
    kept = keep.expand_as(clean)
    assert torch.equal(restored[kept], corrupted[kept])
    # Much better than the masked image, and better than filling with each image's mean colour.
    mean_fill = (corrupted.sum(dim=(2, 3), keepdim=True) / keep.sum(dim=(2, 3), keepdim=True)).expand_as(clean)
    assert mse(restored, clean) < 0.1 * mse(corrupted, clean)
    assert mse(restored, clean) < 0.5 * mse(torch.where(kept, corrupted, mean_fill), clean)


def test_deep_decoder_is_reproducible_and_images_are_independent():
    x = torch.rand(2, 3, 16, 16, generator=gen(3))
    keep = torch.rand(2, 1, 16, 16, generator=gen(4)) > 0.5
    dd = restoration.get("deep_decoder", steps=5, channels=8, layers=2, seed=7)
    first = dd(x, keep)
    assert torch.equal(first, dd(x, keep))
    assert not torch.equal(first, restoration.get("deep_decoder", steps=5, channels=8, layers=2, seed=8)(x, keep))
    # Changing image 1 leaves image 0's fit alone: one decoder per image, no shared gradient.
    other = x.clone()
    other[1] = 1 - other[1]
    assert torch.allclose(dd(other, keep)[0], first[0], atol=1e-6)


def test_deep_decoder_odd_sizes_dtype_and_inference_mode():
    x = torch.rand(3, 3, 17, 13, generator=gen(5), dtype=torch.float64)
    keep = torch.rand(3, 1, 17, 13, generator=gen(6)) > 0.3
    with torch.inference_mode():
        restored = restoration.get("deep_decoder", steps=3, channels=8, layers=3)(x, keep)
    assert restored.shape == x.shape and restored.dtype == torch.float64
    assert torch.equal(restored[keep.expand_as(x)], x[keep.expand_as(x)])


@pytest.mark.parametrize("name", ["inpaint_biharmonic", "deep_decoder"])
def test_inpainting_needs_a_right_mask(name):
    x = torch.rand(2, 3, 8, 8)
    restorer = restoration.get(name)
    with pytest.raises(ValueError, match="needs the keep mask"):
        restorer(x)
    for bad in (torch.ones(2, 3, 8, 8, dtype=torch.bool), torch.ones(2, 8, 8, dtype=torch.bool), torch.ones(2, 1, 8, 8)):
        with pytest.raises(ValueError, match=r"keep must be a bool tensor \[B, 1, H, W\]"):
            restorer(x, bad)


def test_denoisers_ignore_the_mask():
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(restoration.get("none")(x, torch.ones(1, 1, 8, 8, dtype=torch.bool)), x)


def test_bad_names_params_and_images():
    with pytest.raises(ValueError, match="unknown restorer 'deep_prior'"):
        restoration.get("deep_prior")
    with pytest.raises(ValueError, match="unknown parameter.*iterations"):
        restoration.get("deep_decoder", iterations=10)
    with pytest.raises(ValueError, match="unknown parameter.*h"):
        restoration.from_spec("inpaint_biharmonic(h=0.1)")
    with pytest.raises(ValueError, match="h must be a positive float"):
        restoration.get("nl_means", h=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        restoration.get("deep_decoder", steps=-1)
    with pytest.raises(ValueError, match="layers must be an integer >= 1"):
        restoration.get("deep_decoder", layers=0)
    with pytest.raises(ValueError, match=r"images must be a float tensor \[B, C, H, W\]"):
        restoration.get("nl_means")(torch.zeros(3, 8, 8))


def test_spec_round_trips():
    dd = restoration.from_spec("deep_decoder(steps=10, seed=3)")
    assert dd.spec == ("deep_decoder(steps=10, channels=64, layers=4, lr=0.01, seed=3, flat_blocks=0, reg_noise=0.0, "
                       "find_best=False, keep_observed=True)")
    assert restoration.from_spec(dd.spec).params == dd.params
    assert restoration.get("none").spec == "none"


def test_the_authors_deep_decoder_returns_its_whole_output_and_its_best_fit():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    keep = torch.rand(2, 1, 32, 32) > 0.5
    released = restoration.from_spec(restoration.DeepDecoder.RELEASED.replace("steps=5000", "steps=12")
                                     .replace("channels=256", "channels=8"))
    whole = released(x, keep)
    assert not torch.equal(torch.where(keep, whole, 0), torch.where(keep, x, 0))  # kept pixels are the network's too
    fitted = restoration.get("deep_decoder", steps=12, channels=8, layers=5, flat_blocks=1, lr=0.0025, reg_noise=0.005,
                             find_best=True)(x, keep)
    assert torch.equal(torch.where(keep, fitted, 0), torch.where(keep, x, 0))  # keep_observed: kept pixels stay

    # find_best (fit.py line 132): per image, the weights after some earlier step, not the last one's.
    wild = {"channels": 8, "layers": 2, "lr": 2.0, "keep_observed": False}
    best = restoration.get("deep_decoder", steps=12, find_best=True, **wild)(x, keep)
    plain = [restoration.get("deep_decoder", steps=k, **wild)(x, keep) for k in range(1, 13)]
    for i in range(2):
        matches = [k + 1 for k, out in enumerate(plain) if torch.allclose(out[i], best[i])]
        assert matches and matches[0] < 12
    with pytest.raises(ValueError, match="reg_noise"):
        restoration.get("deep_decoder", reg_noise=-1.0)


def test_the_authors_non_local_means_denoises_the_unclipped_image():
    torch.manual_seed(0)
    noisy = torch.rand(1, 3, 24, 24) + 0.3 * torch.randn(1, 3, 24, 24)
    released = restoration.from_spec(restoration.NLMeans.RELEASED)
    assert (released.h, released.patch_size, released.patch_distance, released.clamp) == (0.1, 7, 11, False)
    assert not torch.equal(released(noisy), restoration.from_spec("nl_means(h=0.1, patch_size=7, patch_distance=11)")(noisy))
