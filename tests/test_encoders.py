import json

import numpy as np
import pytest
import torch
from PIL import Image

from cinv import encoders, losses
from cinv.data.stream import Views
from cinv.encoders import weights, zoo
from cinv.errors import WeightsUnavailableError
from cinv.methods.student import inversion_objective


def test_efficientnet_lite0_real_weights_classify_imagenet_samples(shared):
    """The embedded teacher's packaged ImageNet weights: the source reports 17/20 top-1, 20/20 top-5."""
    model = zoo.efficientnet_lite0_classifier().eval()
    files = sorted((shared / "imagenet-samples").glob("*.jpg"))
    assert len(files) == 20
    images = torch.stack([
        torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR))).permute(2, 0, 1)
        for f in files
    ]).float() / 255
    labels = torch.tensor([int(f.stem.split("_")[-1]) for f in files])
    with torch.no_grad():
        logits = model((images * 255 - 127) / 128)
    top1 = (logits.argmax(1) == labels).sum().item()
    top5 = (logits.topk(5).indices == labels[:, None]).any(1).sum().item()
    assert top1 >= 15 and top5 >= 19, (top1, top5)
    # The encoder applies the same input scaling itself and returns the pooled 1280-d features.
    encoder = encoders.get("efficientnet_lite0").eval()
    with torch.no_grad():
        features = encoder(images)
        assert features.shape == (20, 1280)
        assert torch.allclose(model.classifier(features), logits, atol=1e-3)


def test_teacher_stays_frozen_while_the_student_trains():
    torch.manual_seed(0)
    teacher = encoders.freeze(encoders.get("efficientnet_lite0"))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = encoders.student_from(teacher)
    for key, value in teacher.encoder.state_dict().items():
        assert torch.equal(student.state_dict()[key], value)  # the student starts as an exact copy
    teacher.train()  # the reference code's bug: a training loop switching everything to train mode
    assert not teacher.training and not any(m.training for m in teacher.modules())
    objective = inversion_objective(student, teacher, losses.get("student_teacher"))
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    for _ in range(2):
        clean = torch.rand(4, 3, 48, 48)
        loss = objective(Views(clean, clean * (torch.rand_like(clean) > 0.5), torch.zeros(4)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = teacher.state_dict()
    assert set(after) == set(before)
    for key, value in before.items():
        assert torch.equal(value, after[key]), f"teacher {key} changed"
    assert not any(p.requires_grad for p in teacher.parameters())
    running = [k for k in student.state_dict() if k.endswith("running_mean")]
    assert any(not torch.equal(before[f"encoder.{k}"], student.state_dict()[k]) for k in running)  # the student's BN did adapt


def test_open_clip_tower_from_a_checkpoint_file(tmp_path):
    """The real open_clip loading path, with a tiny open_clip model and a checkpoint the test writes."""
    import open_clip

    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16, "patch_size": None},
        "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "cinv-tiny-rn.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path)
    reference = open_clip.create_model("cinv-tiny-rn", pretrained=None).eval()
    checkpoint = tmp_path / "tiny.pt"
    torch.save({"state_dict": reference.state_dict()}, checkpoint)

    encoder = encoders.get("open_clip:cinv-tiny-rn", weights=str(checkpoint)).eval()
    assert encoder.embed_dim == 32 and encoder.input_size == 32
    images = torch.rand(3, 3, 32, 32)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(encoder(images), reference.encode_image((images - mean) / std), atol=1e-5)


def test_open_clip_rn101_is_the_paper_architecture():
    encoder = encoders.get("open_clip:RN101", weights="none").eval()
    with torch.no_grad():
        assert encoder(torch.rand(1, 3, 224, 224)).shape == (1, 512)


def test_missing_pretrained_weights_offline_give_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "host_reachable", lambda host: False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailableError, match="openai.*cannot be downloaded.*local checkpoint"):
        encoders.get("open_clip:RN50", weights="openai")
    with pytest.raises(WeightsUnavailableError, match="resnet18.*cannot be downloaded.*state-dict path"):
        encoders.get("torchvision:resnet18")
    with pytest.raises(WeightsUnavailableError, match="not found"):
        encoders.get("torchvision:resnet18", weights=str(tmp_path / "missing.pth"))


def test_torchvision_backbone_from_a_local_state_dict(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18().eval()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    encoder = encoders.get("torchvision:resnet18", weights=str(path)).eval()
    assert encoder.embed_dim == 512
    images = torch.rand(2, 3, 64, 64)
    mean = torch.tensor(zoo.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(zoo.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.nn.Sequential(*list(reference.children())[:-1])((images - mean) / std).flatten(1)
        assert torch.allclose(encoder(images), expected, atol=1e-5)
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "other.pth")
    with pytest.raises(WeightsUnavailableError, match="does not match torchvision resnet18"):
        encoders.get("torchvision:resnet18", weights=str(tmp_path / "other.pth"))


class Payload:
    """Any pickled object that is not a tensor container."""


def test_weight_files_load_with_weights_only(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, path)
    with pytest.raises(WeightsUnavailableError, match="cannot load weights"):
        encoders.get("torchvision:resnet18", weights=str(path))


@pytest.mark.parametrize("name,needle", [
    ("nope", "unknown encoder 'nope'"),
    ("open_clip:NotAModel", "unknown open_clip architecture"),
    ("torchvision:not_a_model", "unknown torchvision model"),
    ("open_clip:", "needs a variant"),
])
def test_unknown_encoder_names(name, needle):
    with pytest.raises(ValueError, match=needle):
        encoders.get(name)


def test_unknown_pretrained_tag_lists_the_known_ones():
    with pytest.raises(ValueError, match="openai"):
        encoders.get("open_clip:RN101", weights="laion-nope")


def test_a_probe_on_a_frozen_encoder_exports_and_reloads_and_can_pass_input_gradients(store):
    import mlflow

    import cinv
    from cinv.encoders import Classifier
    from cinv.tracking import models as tracking

    encoder = encoders.get("efficientnet_lite0")
    probe = Classifier(encoders.freeze(encoder), 4, encoder.embed_dim)
    with mlflow.start_run():
        info = tracking.log_model(probe, "classifier", examples=torch.rand(2, 3, 32, 32), metadata={"kind": "classifier"})
    images = torch.rand(2, 3, 32, 32)
    assert torch.allclose(cinv.load_encoder(info.model_uri)(images), probe(images), atol=1e-4)
    assert probe(images.requires_grad_()).grad_fn is not None  # the head still trains
    attackable = probe.with_encoder(encoders.freeze(encoder, input_gradients=True))
    attackable(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())  # weights stay frozen


def test_grey_images_enter_a_colour_encoder_as_three_equal_channels():
    encoder = encoders.get("efficientnet_lite0", "none").eval()
    grey = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(encoder(grey), encoder(grey.expand(-1, 3, -1, -1)))


def test_a_model_put_in_channels_last_under_inference_mode_can_still_be_attacked():
    from cinv.runtime import channels_last

    encoder = encoders.get("mnist_cnn", "none")  # one-channel normalisation buffers, [1, 1, 1, 1]
    with torch.inference_mode():
        channels_last(encoder)  # as feature extraction does
    images = torch.rand(2, 1, 28, 28, requires_grad=True)
    encoder(images).sum().backward()  # raised "Inference tensors cannot be saved for backward"
    assert images.grad is not None
