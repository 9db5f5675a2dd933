"""The CUDA path on a GPU (``pytest -m gpu``; every test skips on a machine without CUDA, as CI is).

``benchmarks/gpu_check.sh`` runs these on a lent GPU machine and records the counts in
``benchmarks/results/gpu.json``: the training loop under bf16 and under fp32 (fp32 really fp32:
no TF32), the corruptions on the device with the CPU's statistics and deterministic for a seed,
and a compiled student. ``CINV_GPU_TEST_DEVICE=cpu`` runs the same code on the CPU (no statement
about CUDA then: a check of the tests themselves before GPU time is spent on them)."""

import os

import pytest
import torch

from cinv import corruption, encoders
from cinv.context import Setup
from cinv.data.datasets import EMBEDDED, load_splits
from cinv.methods import METHODS
from cinv.runtime import resolve_precision, use_precision
from cinv.training.loop import Trainer

DEVICE = os.environ.get("CINV_GPU_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs CUDA")]


def device_setup(precision: str) -> Setup:
    device = torch.device(DEVICE)
    splits = load_splits(EMBEDDED, None, 32, 0.05, 0, 8)
    teacher = encoders.freeze(encoders.get("efficientnet_lite0", "imagenet")).to(device)
    return Setup(splits, corruption.from_spec("random_mask(fraction=0.9)"), device, 0, 0,
                 use_precision(device, precision), teacher)


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_the_student_trains_on_the_gpu_and_its_loss_falls(precision):
    s = device_setup(precision)
    method = METHODS.get("student")
    opts = method.configure("cpu", epochs=4, batch_size=16, lr=1e-3, registered_model_name="")
    model = method.build(s, opts)
    trainer = Trainer(model, method.objective(model, s, opts, stream := method.stream(s, opts)), stream, method.optim(opts),
                      precision=s.precision)
    history = trainer.run()
    assert all(torch.isfinite(torch.tensor(history.epoch_loss)))
    assert history.epoch_loss[-1] < history.epoch_loss[0], history.epoch_loss
    assert next(model.parameters()).device.type == DEVICE
    if DEVICE == "cuda":  # auto: bf16 autocast for every role on a GPU; fp32: none anywhere
        assert s.precision.describe() == ("train=bf16, frozen=bf16, eval=bf16" if precision == "auto" else
                                          "train=fp32, frozen=fp32, eval=fp32")


def test_fp32_means_fp32_no_tf32():
    use_precision(torch.device(DEVICE), "fp32")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert resolve_precision(torch.device(DEVICE), "fp32").describe() == "train=fp32, frozen=fp32, eval=fp32"
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=g), torch.randn(512, 512, generator=g)
    exact = a.double() @ b.double()
    error = ((a.to(DEVICE) @ b.to(DEVICE)).cpu().double() - exact).abs().max().item()
    assert error < 1e-3, f"a float32 matmul off by {error}: TF32 (10-bit mantissa) is on"


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_random_mask_on_the_gpu_masks_exactly_what_the_cpu_masks(fraction):
    images = torch.rand(64, 3, 224, 224, generator=torch.Generator().manual_seed(0)) + 0.01  # no pixel is 0 before
    mask = corruption.get("random_mask", fraction=fraction)
    for device in ("cpu", DEVICE):
        out = mask(images.to(device), generator=torch.Generator(device).manual_seed(1))
        masked = (out == 0).all(dim=1).flatten(1).sum(1)
        assert (masked == round(fraction * 224 * 224)).all(), (device, masked[:4])
        again = mask(images.to(device), generator=torch.Generator(device).manual_seed(1))
        assert torch.equal(out, again), f"{device}: the same seed gave another mask"


def test_gaussian_noise_on_the_gpu_has_the_cpu_statistics_and_is_deterministic():
    images = torch.full((32, 3, 224, 224), 0.5)
    noise = corruption.get("gaussian_noise", std=0.1)
    stds = {}
    for device in ("cpu", DEVICE):
        out = noise(images.to(device), generator=torch.Generator(device).manual_seed(2))
        stds[device] = (out - images.to(device)).float().std().item()
        assert torch.equal(out, noise(images.to(device), generator=torch.Generator(device).manual_seed(2)))
        assert abs((out - images.to(device)).mean().item()) < 1e-3
    assert stds["cpu"] == pytest.approx(0.1, rel=0.01) and stds[DEVICE] == pytest.approx(0.1, rel=0.01), stds


def test_student_compile_gives_the_eager_loss_and_gradients():
    s = device_setup("fp32")
    method = METHODS.get("student")
    stream = s.stream("train", batch_size=16, purpose="train")
    views = next(iter(stream.epoch(0)))
    losses = {}
    for compiled in (False, True):  # student_compile=true: the method's own torch.compile of the student
        opts = method.configure("cpu", batch_size=16, compile=compiled, registered_model_name="")
        model = method.build(s, opts)  # an exact copy of the teacher each time
        loss = method.objective(model, s, opts, stream)(views)
        loss.backward()
        losses[compiled] = loss.item()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    assert losses[True] == pytest.approx(losses[False], rel=1e-3), losses

