import math

import pytest
import torch
from torch import nn

from cinv import corruption as distortions
from cinv.data.datasets import TensorImages
from cinv.data.stream import BatchStream
from cinv.encoders import Classifier
from cinv.errors import NonFiniteLossError
from cinv.evaluation.metrics import evaluate
from cinv.probe import extract_features, fit_head
from cinv.training.loop import Optim, Trainer, fit


def colour_dataset(n_per_class=16, classes=4, size=8):
    """Each image is a flat grey level that encodes its class: trivially separable."""
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    images = (labels.float() * 60 + 20).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, size, size).contiguous()
    return TensorImages(images, labels)


def make_stream(dataset, corruption="none", train=True, batch_size=8, seed=0):
    return BatchStream(dataset, corruption=distortions.from_spec(corruption), batch_size=batch_size, image_size=8,
                       device=torch.device("cpu"), train=train, augment_on_batch=True, seed=seed)


class MeanPixel(nn.Module):
    """A fixed 'encoder': per-channel mean intensity (flip-invariant, deterministic)."""

    embed_dim = 3

    def forward(self, x):
        return x.mean(dim=(2, 3))


class Recorder:
    def __init__(self):
        self.rows = []

    def __call__(self, epoch, metrics):
        self.rows.append((epoch, metrics))


def test_the_trainer_is_resume_step_and_end_of_epoch():
    """``fit`` is a small trainer: its parts, driven by hand, train exactly what ``run`` trains."""

    def trained(by_hand: bool) -> dict:
        torch.manual_seed(0)
        model = Classifier(MeanPixel(), 4, 3)
        stream = make_stream(colour_dataset())
        trainer = Trainer(model, lambda v: nn.functional.cross_entropy(model(v.corrupted), v.labels), stream,
                          Optim(epochs=2, lr=0.1, weight_decay=1e-3))
        if not by_hand:
            trainer.run()
            return model.state_dict()
        trainer.resume()  # nothing to resume from: a no-op
        for epoch in range(2):
            trainer.current = stream.epoch(epoch)
            trainer.running, trainer.batches = 0.0, 0
            for views in trainer.current:
                trainer.step(views, epoch)
            trainer.end_epoch(epoch)
        assert trainer.history.steps == 2 * len(stream) and len(trainer.history.epoch_loss) == 2
        return model.state_dict()

    for (key, a), b in zip(trained(False).items(), trained(True).values(), strict=True):
        assert torch.equal(a, b), key


def test_cosine_schedule_is_counted_and_stepped_in_optimizer_steps():
    data = colour_dataset()
    model = Classifier(MeanPixel(), 4, 3)
    stream = make_stream(data)
    log = Recorder()
    history = fit(model, lambda v: nn.functional.cross_entropy(model(v.corrupted), v.labels), stream,
                  Optim(epochs=4, lr=0.1, weight_decay=0.0), on_epoch=log)
    steps_per_epoch = len(stream)
    assert history.steps == 4 * steps_per_epoch
    # After epoch e the LR is the cosine at step (e+1)*steps_per_epoch of 4*steps_per_epoch: it reaches 0.
    expected = [0.05 * (1 + math.cos(math.pi * (e + 1) / 4)) for e in range(4)]
    assert history.lr == pytest.approx(expected, abs=1e-9)
    assert [m["lr"] for _, m in log.rows] == pytest.approx(expected, abs=1e-9)


def test_weight_decay_is_honoured():
    def trained(weight_decay):
        torch.manual_seed(0)
        model = Classifier(MeanPixel(), 4, 3)
        fit(model, lambda v: nn.functional.cross_entropy(model(v.corrupted), v.labels), make_stream(colour_dataset()),
            Optim(epochs=2, lr=0.01, weight_decay=weight_decay))
        return model.head.weight.detach().clone()

    plain, decayed = trained(0.0), trained(0.5)
    assert not torch.allclose(plain, decayed)
    assert decayed.norm() < plain.norm()


def test_non_finite_loss_stops_training():
    model = Classifier(MeanPixel(), 4, 3)
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        fit(model, lambda v: model(v.corrupted).sum() * float("nan"), make_stream(colour_dataset()),
            Optim(epochs=1, lr=0.1, weight_decay=0.0))


def test_probe_keeps_features_and_labels_aligned_across_shuffled_draws():
    """Each cached draw is shuffled differently; a misaligned cache would score near chance."""
    data = colour_dataset()
    cache = extract_features(MeanPixel(), make_stream(data, "gaussian_noise(std=0.01)"), draws=3)
    assert len(cache.features) == 3 and all(len(f) == len(data) for f in cache.features)
    assert not torch.equal(cache.labels[0], cache.labels[1])  # different orders
    model = Classifier(MeanPixel(), 4, 3, normalize=False)
    losses = fit_head(model, cache, epochs=60, lr=0.1, batch_size=16, seed=0)
    assert losses[-1] < losses[0]
    result = evaluate(model, make_stream(data, "gaussian_noise(std=0.01)", train=False), draws=3)
    assert result.mean("top1") == 100.0


def test_evaluation_draws_are_independent_and_repeatable():
    data = colour_dataset(n_per_class=32)
    model = Classifier(MeanPixel(), 4, 3)
    with torch.no_grad():  # an informative but imperfect head
        model.head.weight.copy_(torch.tensor([[-3.0] * 3, [-1.0] * 3, [1.0] * 3, [3.0] * 3]))
        model.head.bias.copy_(torch.tensor([1.5, 0.9, -0.9, -3.0]))
    noisy = make_stream(data, "gaussian_noise(std=0.3)", train=False, batch_size=32)
    first = evaluate(model, noisy, draws=10)
    again = evaluate(model, make_stream(data, "gaussian_noise(std=0.3)", train=False, batch_size=32), draws=10)
    assert len(first.draws) == 10 and first.draws == again.draws
    assert len({d["top1"] for d in first.draws}) > 1 and first.se("top1") > 0
    assert first.summary()["top1_mean"] == pytest.approx(sum(d["top1"] for d in first.draws) / 10)
    deterministic = evaluate(model, make_stream(data, "none", train=False), draws=10)
    assert len(deterministic.draws) == 1 and deterministic.se("top1") == 0.0


def test_binary_tasks_report_roc_auc():
    data = colour_dataset(n_per_class=20, classes=2)
    model = Classifier(MeanPixel(), 2, 3)
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[-1.0] * 3, [1.0] * 3]))
        model.head.bias.zero_()
    result = evaluate(model, make_stream(data, "gaussian_noise(std=0.5)", train=False), draws=3)
    assert "auc" in result.draws[0] and 50 < result.mean("auc") <= 100
    assert "top5" in result.draws[0]  # top-k is capped at the number of classes


def test_schedules_warm_up_then_cosine_and_decay_per_epoch():
    from cinv.training.loop import Optim, make_schedule

    def lrs(name, warmup, total=10, per_epoch=2, **more):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        schedule = make_schedule(opt, Optim(epochs=total // per_epoch, lr=1.0, schedule=name, decay=0.5,
                                            warmup_epochs=warmup // per_epoch, **more), per_epoch)
        out = []
        for _ in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            schedule.step()
        return out

    warm = lrs("cosine", warmup=4)
    assert warm[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0]) and warm[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(warm[3:], warm[4:], strict=False)) and warm[-1] < 0.1
    assert lrs("exponential", warmup=0) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625])
    # RoCL's linear evaluation: lr / 10 after epochs 30, 50 and 100 (src/linear_eval.py adjust_lr, run after each epoch)
    assert lrs("multistep", warmup=0, total=8, per_epoch=1, milestones=(2, 5)) == pytest.approx([1, 1, 1, .1, .1, .1, .01, .01])
    with pytest.raises(ValueError, match="schedule must be one of"):
        lrs("step", warmup=0)


def test_gradual_warmup_is_the_released_rocl_schedule_from_lr_to_15_lr_then_cosine():
    from cinv.training.loop import Optim, gradual_warmup, make_schedule

    # GradualWarmupScheduler(multiplier=15, total_epoch=10), stepped before each epoch: 0.1 -> 1.5 (src/rocl_train.py:116, 126)
    factors = [gradual_warmup(e, 15, 10, 1000) for e in range(12)]
    assert [0.1 * f for f in factors[:10]] == pytest.approx([0.1 * (1 + 14 * (e + 1) / 10) for e in range(10)])
    assert 0.1 * factors[9] == pytest.approx(1.5) and factors[10] < factors[9] and factors[10] == pytest.approx(15, rel=1e-4)
    assert gradual_warmup(999, 15, 10, 1000) == pytest.approx(15 * 0.5 * (1 + math.cos(math.pi * 990 / 1000)))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = make_schedule(opt, Optim(epochs=20, lr=0.1, schedule="gradual_warmup", warmup_epochs=10,
                                        warmup_multiplier=15), steps_per_epoch=3)
    seen = []
    for _ in range(3 * 12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert seen[0] == seen[2] == pytest.approx(0.24) and seen[27] == pytest.approx(1.5)  # per epoch, not per step
