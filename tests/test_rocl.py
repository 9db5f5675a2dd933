"""RoCL pieces (seed 003): augmentations, the instance-wise attack, the evaluation attacks through
ART, the RoCL loss, transformation-smoothed inference and one training step through fit()."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from cinv.corruption.pixel import Identity
from cinv.data.augment import SimCLRAugment, augment, simclr_augment, simclr_views
from cinv.data.datasets import TensorImages, load_embedded
from cinv.data.stream import BatchStream
from cinv.encoders import Classifier
from cinv.encoders.heads import Projector
from cinv.evaluation.robustness import (
    attack,
    autoattack,
    classwise_pgd,
    robust_accuracy,
    smoothed_predict,
)
from cinv.losses import get as get_loss
from cinv.losses.rocl import RoCLLoss
from cinv.methods.rocl import instance_wise_pgd, rocl_objective
from cinv.training.loop import Optim, fit


@pytest.fixture(scope="module")
def cifar():
    """16 real CIFAR-10 test images in [0, 1] and their labels."""
    test = load_embedded().test
    return test.images[:16].float() / 255, test.labels[:16]


def tiny_encoder(seed=0):
    """A small conv net with BatchNorm (so eval mode and running statistics matter), sensitive
    enough to pixels that 8/255 perturbations move its features the way a trained network's do."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 8 * 8, 16))


def rocl_model(images, seed=0):
    """Encoder + projector whose BatchNorm running statistics come from ``images``: in eval mode the
    embeddings are then spread out, as a trained model's are, rather than all alike."""
    model = nn.Sequential(tiny_encoder(seed), Projector(16, hidden=32, out_dim=8, batch_norm=True)).train()
    with torch.no_grad():
        for _ in range(20):
            model(images)
    return model


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- augmentations


def test_augment_shape_range_and_per_image_draws(cifar):
    images, _ = cifar
    v1, v2 = simclr_views(images, gen())
    assert v1.shape == v2.shape == images.shape and v1.dtype == images.dtype
    assert v1.min() >= 0 and v1.max() <= 1
    assert not torch.equal(v1, v2)
    same = augment(images[:1].expand(8, -1, -1, -1), gen(1))  # one image, eight independent draws
    assert all(not torch.allclose(same[0], same[i]) for i in range(1, 8))


def test_augment_reproducible_and_global_rng_untouched(cifar):
    images, _ = cifar
    state, np_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    a = simclr_views(images, gen(7))
    b = simclr_views(images, gen(7))
    c = simclr_views(images, gen(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])
    g = gen(7)
    first, second = augment(images, g), augment(images, g)  # the generator advances between calls
    assert not torch.equal(first, second)


def test_augment_without_colour_or_crop_is_a_flip():
    aug = SimCLRAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), jitter_p=0.0, grayscale_p=0.0, flip_p=1.0)
    x = torch.rand(4, 3, 32, 32, generator=gen())
    assert torch.allclose(aug(x, gen()), x.flip(-1), atol=1e-5)
    with pytest.raises(ValueError, match="B, C, H, W"):
        aug(torch.rand(3, 32, 32), gen())


def test_grey_digits_get_crops_alone_one_channel_and_no_flip():
    digits = torch.zeros(6, 1, 28, 28)
    digits[:, :, 4:24, 8:12] = 1.0  # a left-leaning bar: a flip would move it to the right half
    family = simclr_augment(channels=1, flip=False)
    assert (family.flip_p, family.jitter_p, family.grayscale_p) == (0.0, 0.0, 0.0)
    out = family(digits, gen())
    assert out.shape == digits.shape and not torch.equal(out, digits)  # cropped, so changed
    uncropped = SimCLRAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), jitter_p=0.0, grayscale_p=0.0, flip_p=0.0)
    assert torch.allclose(uncropped(digits, gen()), digits, atol=1e-5)  # no flip, no colour step on one channel
    assert simclr_augment(3, True) is simclr_augment()
    with pytest.raises(ValueError, match="B, 3, H, W"):
        simclr_augment(3, True)(digits, gen())  # colour jitter needs colour images


# ---------------------------------------------------------------------------- instance-wise attack


def contrastive(model, x, other, tau=0.5):
    model.eval()
    with torch.no_grad():
        return get_loss("nt_xent", temperature=tau)(model(x), model(other)).item()


def test_instance_wise_attack_raises_loss_in_ball_and_is_reproducible(cifar):
    images, _ = cifar
    view, other = simclr_views(images, gen())
    model = rocl_model(torch.cat([view, other]))
    running = [b.clone() for b in model.buffers()]
    modes = [m.training for m in model.modules()]
    eps = 8 / 255

    adv = instance_wise_pgd(model, view, other, eps=eps, alpha=0.007, steps=7, generator=gen(3))
    assert not adv.requires_grad
    assert (adv - view).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert all(torch.equal(a, b) for a, b in zip(running, model.buffers(), strict=True))  # BN stats unchanged
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())

    start = instance_wise_pgd(model, view, other, eps=eps, steps=0, generator=gen(3))  # the random start alone
    assert (start - view).abs().max() <= eps + 1e-6 and not torch.equal(start, view)
    clean, random_start, attacked = (contrastive(model, x, other) for x in (view, start, adv))
    assert attacked > random_start + 1e-3 and attacked > clean + 1e-3
    model.train()

    again = instance_wise_pgd(model, view, other, eps=eps, alpha=0.007, steps=7, generator=gen(3))
    assert torch.equal(adv, again)
    other_seed = instance_wise_pgd(model, view, other, eps=eps, alpha=0.007, steps=7, generator=gen(4))
    assert not torch.equal(adv, other_seed)


def test_instance_wise_attack_keeps_eval_model_in_eval_and_respects_clamp():
    model = rocl_model(torch.rand(16, 3, 32, 32, generator=gen())).eval()
    x = torch.zeros(4, 3, 32, 32)  # at the lower clamp: the ball is cut at 0
    adv = instance_wise_pgd(model, x, torch.rand(4, 3, 32, 32, generator=gen()), steps=3, generator=gen())
    assert not any(m.training for m in model.modules())
    assert adv.min() >= 0 and adv.max() <= 8 / 255 + 1e-6


# ---------------------------------------------------------------------------- evaluation attacks (ART)


def binary_linear(dim=3 * 8 * 8, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(dim, 2))


def margins(model, x, y):
    with torch.no_grad():
        logits = model(x)
    idx = torch.arange(len(y))
    return logits[idx, y] - logits[idx, 1 - y]


@pytest.mark.parametrize(("norm", "eps", "dual", "random_start"), [
    ("inf", 8 / 255, 1, True),   # worst case: eps * ||w_y - w_j||_1
    ("inf", 16 / 255, 1, False),
    ("2", 0.5, 2, False),        # eps * ||w_y - w_j||_2
    ("1", 0.25, math.inf, False),  # eps * ||w_y - w_j||_inf
])
def test_pgd_on_linear_model_matches_closed_form(norm, eps, dual, random_start):
    model = binary_linear()
    x = 0.3 + 0.4 * torch.rand(6, 3, 8, 8, generator=gen())  # away from the [0, 1] clamp
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    w = model[1].weight.detach()
    drop = eps * torch.linalg.vector_norm(w[0] - w[1], ord=dual)
    adv = attack(model, x, y, norm=norm, eps=eps, steps=20, random_start=random_start, seed=0)
    assert torch.allclose(margins(model, x, y) - margins(model, adv, y), drop.expand(6), rtol=1e-3, atol=1e-4)
    delta = (adv - x).flatten(1)
    p = {"inf": math.inf, "2": 2, "1": 1}[norm]
    assert torch.linalg.vector_norm(delta, ord=p, dim=1).max() <= eps * (1 + 1e-4)


def test_pgd_l2_random_start_stays_in_ball_and_never_beats_the_bound():
    model = binary_linear()
    x = 0.3 + 0.4 * torch.rand(6, 3, 8, 8, generator=gen())
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    w = model[1].weight.detach()
    adv = attack(model, x, y, norm="2", eps=0.25, seed=1)
    assert (adv - x).flatten(1).norm(dim=1).max() <= 0.25 * (1 + 1e-4)
    drop = margins(model, x, y) - margins(model, adv, y)
    bound = 0.25 * (w[0] - w[1]).norm()
    assert (drop <= bound + 1e-4).all() and (drop >= 0.9 * bound).all()


def test_autoattack_stays_in_ball_and_is_at_least_as_strong_as_pgd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    x = 0.3 + 0.4 * torch.rand(8, 3, 8, 8, generator=gen())
    with torch.no_grad():
        y = model(x).argmax(1)
    options = {"restarts": 1, "iterations": 20, "square_queries": 20}
    adv = autoattack(model, x, y, norm="inf", eps=4 / 255, **options)
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    pgd = robust_accuracy(model, x, y, norm="inf", eps=4 / 255)
    aa = robust_accuracy(model, x, y, norm="inf", eps=4 / 255, method="autoattack", **options)
    assert aa <= pgd < 100.0


def test_attack_restores_model_rng_and_is_reproducible(cifar):
    images, labels = cifar
    torch.manual_seed(0)
    classifier = Classifier(tiny_encoder(), 10, 16)
    classifier.train()
    before = [b.clone() for b in classifier.buffers()]
    params = [p.clone() for p in classifier.parameters()]
    state, np_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    a = attack(classifier, images, labels, norm="inf", eps=8 / 255, steps=3, seed=5)
    b = attack(classifier, images, labels, norm="inf", eps=8 / 255, steps=3, seed=5)
    assert torch.equal(a, b)
    assert not torch.equal(a, attack(classifier, images, labels, norm="inf", eps=8 / 255, steps=3, seed=6))
    assert classifier.training and all(m.training for m in classifier.modules())
    assert all(torch.equal(x, y) for x, y in zip(before, classifier.buffers(), strict=True))
    assert all(torch.equal(x, y) for x, y in zip(params, classifier.parameters(), strict=True))
    assert all(p.grad is None and p.requires_grad for p in classifier.parameters())
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])
    assert (a - images).abs().max() <= 8 / 255 + 1e-6 and a.min() >= 0 and a.max() <= 1


def test_classwise_pgd_and_robust_accuracy(cifar):
    images, labels = cifar
    torch.manual_seed(0)
    classifier = Classifier(tiny_encoder(), 10, 16).eval()
    with torch.no_grad():
        clean_pred = classifier(images).argmax(1)
    adv = classwise_pgd(classifier, images, clean_pred, steps=5, generator=gen())
    assert (adv - images).abs().max() <= 8 / 255 + 1e-6
    assert robust_accuracy(classifier, images, clean_pred, eps=0.0) == 100.0
    robust = robust_accuracy(classifier, images, clean_pred, norm="inf", eps=16 / 255, steps=5, batch_size=8)
    assert 0.0 <= robust < 100.0
    with pytest.raises(ValueError, match="unknown norm"):
        attack(classifier, images, labels, norm="3")


# ---------------------------------------------------------------------------- RoCL loss


def nt_terms(z, anchor, positives, tau):
    """-log(sum_p exp(s_ap) / sum_{k != a} exp(s_ak)) for each p, by hand."""
    unit = [[c / math.sqrt(sum(c * c for c in v)) for c in v] for v in z]
    sim = [[sum(a * b for a, b in zip(u, v, strict=True)) / tau for v in unit] for u in unit]
    denom = sum(math.exp(sim[anchor][k]) for k in range(len(z)) if k != anchor)
    return [-math.log(math.exp(sim[anchor][p]) / denom) for p in positives]


def test_rocl_loss_matches_hand_computation():
    tau, lam = 0.5, 0.25
    zv = [[1.0, 0.0, 0.5], [0.0, 2.0, 0.0]]
    zo = [[0.8, 0.2, 0.4], [0.1, 1.0, -0.3]]
    za = [[0.5, 0.5, 0.0], [-0.2, 1.5, 0.3]]
    z, n = zv + zo + za, 2
    main = sum(sum(nt_terms(z, a, [(a + n) % 6, (a + 2 * n) % 6], tau)) for a in range(6)) / 6
    pair = za + zo  # NT-Xent(x_adv, t'(x)): 2N anchors, one positive each
    reg = sum(nt_terms(pair, a, [(a + n) % 4], tau)[0] for a in range(4)) / 4
    loss = RoCLLoss(temperature=tau, lam=lam)(*(torch.tensor(t) for t in (zv, zo, za)))
    assert loss.item() == pytest.approx(main + lam * reg, abs=1e-5)

    pooled_main = 0.0
    for a in range(6):
        s = [math.exp(-t) for t in nt_terms(z, a, [(a + n) % 6, (a + 2 * n) % 6], tau)]
        pooled_main += -math.log(sum(s))
    pooled = RoCLLoss(temperature=tau, lam=lam, pooled=True)(*(torch.tensor(t) for t in (zv, zo, za)))
    assert pooled.item() == pytest.approx(pooled_main / 6 + lam * reg, abs=1e-5)

    without = RoCLLoss(temperature=tau, lam=0.0)(*(torch.tensor(t) for t in (zv, zo, za)))
    assert without.item() == pytest.approx(main, abs=1e-5)
    assert loss.item() - without.item() == pytest.approx(lam * reg, abs=1e-5)


def test_rocl_loss_without_the_adversarial_view_is_simclrs_nt_xent():
    tau = 0.5
    zv = [[1.0, 0.0, 0.5], [0.0, 2.0, 0.0], [0.3, -1.0, 0.2]]
    zo = [[0.8, 0.2, 0.4], [0.1, 1.0, -0.3], [0.0, -0.7, 0.9]]
    z, n = zv + zo, 3
    expected = sum(nt_terms(z, a, [(a + n) % 6], tau)[0] for a in range(6)) / 6  # 2N anchors, one positive each
    loss = RoCLLoss(temperature=tau, lam=0.5)(torch.tensor(zv), torch.tensor(zo))
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_rocl_loss_gradients_reach_all_three_inputs_and_nothing_else():
    zs = [torch.randn(4, 8, generator=gen(i), requires_grad=True) for i in range(3)]
    loss_fn = RoCLLoss()
    assert list(loss_fn.parameters()) == []
    loss_fn(*zs).backward()
    assert all(z.grad is not None and z.grad.abs().sum() > 0 for z in zs)
    # The lam term alone reaches only x_adv and t'(x), both sides trained (no teacher detach).
    zs2 = [z.detach().clone().requires_grad_(True) for z in zs]
    (RoCLLoss(lam=1.0)(*zs2) - RoCLLoss(lam=0.0)(*zs2)).backward()
    assert zs2[0].grad.abs().max() < 1e-6
    assert zs2[1].grad.abs().sum() > 0 and zs2[2].grad.abs().sum() > 0


def test_rocl_loss_validates():
    with pytest.raises(ValueError, match="temperature"):
        RoCLLoss(temperature=0.0)
    with pytest.raises(ValueError, match="lam"):
        RoCLLoss(lam=-1.0)
    with pytest.raises(ValueError, match="at least 2"):
        RoCLLoss()(torch.randn(1, 4), torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="one shape"):
        RoCLLoss()(torch.randn(2, 4), torch.randn(2, 4), torch.randn(3, 4))


def test_projector_shapes():
    proj = Projector(512)
    assert proj(torch.randn(4, 512)).shape == (4, 128)
    assert [type(m) for m in proj.net] == [nn.Linear, nn.ReLU, nn.Linear]
    assert [type(m) for m in Projector(16, 32, 8, batch_norm=True).net] == [nn.Linear, nn.BatchNorm1d, nn.ReLU,
                                                                              nn.Linear]


# ---------------------------------------------------------------------------- smoothed inference


def test_smoothed_predict_shapes_determinism_and_averaging(cifar):
    images, _ = cifar
    torch.manual_seed(0)
    classifier = Classifier(tiny_encoder(), 10, 16).train()
    with torch.no_grad():
        one = smoothed_predict(classifier, images, samples=1, generator=gen(2))
        many = smoothed_predict(classifier, images, samples=6, generator=gen(2))
        again = smoothed_predict(classifier, images, samples=6, generator=gen(2))
        classifier.eval()
        by_hand = classifier(augment(images, gen(2)))
    assert one.shape == many.shape == (16, 10)
    assert torch.equal(many, again) and not torch.allclose(one, many)
    assert torch.allclose(one, by_hand, atol=1e-5)  # samples=1: one augmentation, eval mode
    classifier.train()
    smoothed_predict(classifier, images, samples=1, generator=gen(2))
    assert classifier.training
    with pytest.raises(ValueError, match="samples"):
        smoothed_predict(classifier, images, samples=0)


# ---------------------------------------------------------------------------- training through fit()


def test_rocl_objective_trains_through_fit(cifar):
    images, labels = cifar
    encoder = tiny_encoder()
    projector = Projector(16, hidden=32, out_dim=8)
    model = nn.ModuleList([encoder, projector])
    data = TensorImages((images * 255).round().to(torch.uint8), labels)
    stream = BatchStream(data, corruption=Identity(), batch_size=8, image_size=32, device=torch.device("cpu"),
                         train=True, augment_on_batch=True, seed=0)
    objective = rocl_objective(encoder, projector, RoCLLoss(), eps=8 / 255, alpha=0.007, steps=2,
                               generator=gen())
    before = [p.clone() for p in model.parameters()]
    history = fit(model, objective, stream, Optim(epochs=1, lr=1e-3, weight_decay=0.0))
    assert history.steps == 2 and all(math.isfinite(v) for v in history.epoch_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_rocl_objective_with_the_attack_off_is_simclr(cifar):
    images, labels = cifar
    encoder, projector = tiny_encoder(), Projector(16, hidden=32, out_dim=8)
    views = BatchStream(TensorImages((images * 255).round().to(torch.uint8), labels), corruption=Identity(), batch_size=8,
                        image_size=32, device=torch.device("cpu"), train=False, augment_on_batch=True, seed=0)
    batch = next(iter(views.epoch(0)))
    loss = RoCLLoss(temperature=0.5)
    simclr = rocl_objective(encoder, projector, loss, adversarial=False, generator=gen(3))(batch)
    view, other = simclr_views(batch.clean, gen(3))  # the same draws: the objective's first use of gen(3)
    model = nn.Sequential(encoder, projector)
    assert simclr.item() == pytest.approx(loss(*model(torch.cat([view, other])).chunk(2)).item(), abs=1e-5)


# ---- the released code where the paper is silent ------------------------------------------------


def _released_nt_xent(outputs, temperature, views):
    """src/loss.py lines 54-83 (pairwise_similarity, then NT_xent), on the CPU, verbatim in form."""
    b = outputs.shape[0]
    outputs_norm = outputs / (outputs.norm(dim=1).view(b, 1) + 1e-8)
    similarity = (1.0 / temperature) * torch.mm(outputs_norm, outputs_norm.transpose(0, 1).detach())
    n2 = len(similarity)
    n = n2 // views
    exp = torch.exp(similarity) * (1 - torch.eye(n2, n2))
    loss = -torch.log(exp / (torch.sum(exp, dim=1).view(n2, 1) + 1e-8) + 1e-8)
    blocks = [(i, j) for i in range(views) for j in range(views) if i != j]
    return (1.0 / n2) * sum(torch.sum(torch.diag(loss[i * n:(i + 1) * n, j * n:(j + 1) * n])) for i, j in blocks)


def test_rocl_loss_with_detach_is_the_released_loss_in_value_and_gradient():
    torch.manual_seed(0)
    views = [torch.randn(6, 8, requires_grad=True) for _ in range(3)]
    ours = RoCLLoss(0.5, 1 / 256, detach=True)(*views)
    ours_grads = torch.autograd.grad(ours, views)
    z_view, z_other, z_adv = views
    released = (_released_nt_xent(torch.cat([z_view, z_other, z_adv]), 0.5, 3)
                + (1 / 256) * _released_nt_xent(torch.cat([z_adv, z_other]), 0.5, 2))
    released_grads = torch.autograd.grad(released, views)
    assert ours.item() == pytest.approx(released.item(), rel=1e-5)
    for a, b in zip(ours_grads, released_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # Without the detach the value is the same and the gradients are not (columns carry gradient too).
    textbook = RoCLLoss(0.5, 1 / 256, detach=False)(*views)
    assert textbook.item() == pytest.approx(ours.item(), rel=1e-6)
    assert not torch.allclose(torch.autograd.grad(textbook, views)[0], ours_grads[0])


def test_rocl_presets_follow_the_released_code_and_the_cpu_preset_says_where_it_does_not():
    from cinv.commands.rocl import RoCLConfig
    from cinv.methods import METHODS
    from cinv.settings import build, deviations

    paper = METHODS.get("rocl").configure("paper")
    assert (paper.batch_size, paper.warmup_multiplier, paper.detach_similarity) == (512, 15.0, True)
    optim = METHODS.get("rocl").optim(paper)
    assert (optim.schedule, optim.warmup_multiplier, optim.warmup_epochs) == ("gradual_warmup", 15.0, 10)
    cfg = build(RoCLConfig, {"preset": "paper"})
    probe, attack = cfg.probe, cfg.attack
    assert (probe.epochs, probe.batch_size, probe.lr, probe.optimizer, probe.momentum, probe.weight_decay) == (
        150, 1024, 0.1, "sgd", 0.9, 5e-4)
    assert (probe.milestone_list, probe.augment, probe.feature_draws) == ((30, 50, 100), False, 1)
    assert (attack.rle_epochs, attack.rle_alpha, attack.rle_steps, attack.steps) == (150, 0.007, 10, 20)
    assert attack.step_size(0.0314) == pytest.approx(0.00314)  # total_process.sh: --epsilon=0.0314 --alpha=0.00314
    assert cfg.data.val_fraction == 0.0
    cpu = deviations(build(RoCLConfig, {}))
    assert {"rocl_warmup_multiplier", "rocl_detach_similarity", "rocl_batch_size", "probe_optimizer", "probe_epochs",
            "attack_step_fraction", "attack_rle_alpha"} <= set(cpu)
    assert cpu["rocl_detach_similarity"] == {"value": False, "paper": True}
