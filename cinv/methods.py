"""The other robust-training methods (FCL, RoCL) on cinv's own loop, tracking and evaluation.

Each method is a trainer in :data:`METHODS` that returns a classifier; the command wrappers
(`fcl`, `rocl`) add their own evaluation suites and log everything to the active MLflow run.
"""

from __future__ import annotations

import dataclasses

import mlflow
import pandas as pd
import torch

from cinv import distortions, encoders, tracking
from cinv.config import FCLConfig, FCLOptions
from cinv.data.datasets import EMBEDDED, Splits, TensorImages, dataset_targets, load_splits, stratified_indices
from cinv.encoders import Classifier
from cinv.evaluation import Evaluation
from cinv.pipeline import Setup, evaluate_model, log_classifier
from cinv.registry import Registry
from cinv.runtime import derive_seed, resolve_device, resolve_precision
from cinv.training import fit

METHODS: Registry = Registry("method")


# ---- FCL (seed 002) ----------------------------------------------------------------------------


def fcl_corruption(opts: FCLOptions) -> str:
    """What the stream hands the objective as ``views.corrupted``."""
    if opts.method in ("xe_gaussian", "cl_gaussian"):
        return f"gaussian_noise(std={opts.sigma})"
    if opts.method.startswith("patch_gaussian"):  # the patch's own sigma; FCL's (opts.sigma) perturbs its views
        return f"patch_gaussian(patch_size={opts.patch_size}, sigma={opts.patch_sigma})"
    return "none"


@METHODS.register("fcl")
def train_fcl(s: Setup, opts: FCLOptions) -> Classifier:
    """FCL or one of its baselines, by ``opts.method``; CE on the (augmented) training images."""
    from cinv import fcl

    channels = s.splits.train[0][0].shape[0]
    name = opts.encoder
    encoder = (fcl.mnist_cnn(opts.encoder_weights) if name == "mnist_cnn" and channels == 1
               else encoders.get(name, opts.encoder_weights))
    model = Classifier(encoder, s.splits.num_classes, encoder.embed_dim).to(s.device)
    stream = s.stream("train", batch_size=opts.batch_size, purpose="train", corruption=distortions.from_spec(fcl_corruption(opts)))
    loss = fcl_loss(opts)

    def weight(epoch: float) -> float:
        return fcl.fcl_weight(epoch, opts.warmup_start, opts.warmup_epochs, opts.lam)

    if opts.method in ("fcl", "patch_gaussian_fcl"):
        objective = fcl.fcl_objective(model, loss, opts.k, opts.sigma, weight,
                                      generator=torch.Generator(s.device).manual_seed(derive_seed(s.seed, "fcl views")))
    elif opts.method == "cl_gaussian":
        objective = fcl.cl_gaussian_objective(model, loss, weight)
    elif opts.method == "xe_gaussian":
        objective = fcl.xe_gaussian_objective(model)
    else:  # xe, patch_gaussian: plain cross-entropy on the stream's images
        from cinv.training import supervised_objective

        objective = supervised_objective(model)

    def on_step(step: int, total: int) -> None:
        if hasattr(objective, "set_epoch"):
            objective.set_epoch(step / len(stream))

    fit(model, objective, stream, epochs=opts.epochs, lr=opts.lr, weight_decay=opts.weight_decay,
        on_epoch=tracking.log_epoch_metrics, on_step=on_step, schedule="exponential", decay=opts.decay, desc=opts.method,
        precision=s.precision)
    return model.eval()


def fcl_loss(opts: FCLOptions):
    """The FCL term as configured: ``xe`` or ``margin``, summed over the batch by default (the
    paper's FCL = sum_i l_i beside the batch-mean cross-entropy, so lam = 1e-3 is the paper's)."""
    from cinv import fcl

    params = {"temperature": opts.temperature} if opts.loss == "xe" else {"gamma": opts.gamma}
    return fcl.LOSSES.get(opts.loss, reduction=opts.reduction, **params)


def _stack(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(dataset, TensorImages):
        return dataset.images, dataset.labels
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items])


def fcl_data(cfg: FCLConfig) -> tuple[Splits, dict[str, TensorImages]]:
    """The splits and the noisy test sets: UN (uniformly placed gray pixels) and NUN (placed
    inversely to each pixel's standard deviation over the training images)."""
    from cinv.data import synthetic_mnist as sm

    if cfg.dataset == "synthetic_mnist":
        splits, noisy = sm.load_synthetic_mnist(cfg.mnist, cfg.seed, noise_fraction=cfg.noise_fraction)
        splits.flip, splits.channels = False, 1  # digits are grey and not mirror-symmetric
        names = {"test": "bal", "bal_un": "bal_un", "bal_nun": "bal_nun"}
    else:
        splits = load_splits(EMBEDDED, None, cfg.image_size or 32, 0.05, cfg.seed, None)
        images, labels = _stack(splits.test)
        generator = torch.Generator().manual_seed(derive_seed(cfg.seed, "test_noise"))
        noisy = {"un": TensorImages(sm.pixel_noise(images, cfg.noise_fraction, None, generator), labels),
                 "nun": TensorImages(sm.pixel_noise(images, cfg.noise_fraction, sm.std_weights(_stack(splits.train)[0]), generator),
                                     labels)}
        names = {"test": "clean", "un": "un", "nun": "nun"}
    if cfg.image_size:
        splits.image_size = cfg.image_size
    if cfg.limit_per_class:
        from cinv.data.datasets import checked

        splits = checked(splits, cfg.limit_per_class, cfg.seed)
        noisy = {k: _limited(v, cfg.limit_per_class, cfg.seed) for k, v in noisy.items()}
    return splits, {names["test"]: splits.test, **{names[k]: v for k, v in noisy.items()}}


def _limited(dataset: TensorImages, per_class: int, seed: int) -> TensorImages:
    from cinv.data.datasets import stratified_indices

    picks = stratified_indices(dataset.labels.tolist(), per_class=per_class, seed=seed)
    return TensorImages(dataset.images[picks], dataset.labels[picks])


def run_fcl(cfg: FCLConfig) -> pd.DataFrame:
    splits, test_sets = fcl_data(cfg)
    device = resolve_device(cfg.device)
    s = Setup(splits, distortions.get("none"), device, cfg.seed, 0, resolve_precision(device, cfg.precision))
    torch.manual_seed(cfg.seed)
    mlflow.set_tags({"cinv.stage": "fcl", "cinv.method": cfg.train.method})
    model = train_fcl(s, cfg.train)
    rows = []
    for name, dataset in test_sets.items():
        result: Evaluation = evaluate_model(dataclasses.replace(s, splits=dataclasses.replace(splits, test=dataset)), model,
                                            _eval(cfg.eval_batch_size), split="test", prefix=name)
        rows.append({"method": cfg.train.method, "test set": name, "images": len(dataset),
                     "top1": round(result.mean("top1"), 2)})
    table = pd.DataFrame(rows)
    tracking.log_table(table, "fcl_results")
    info = log_classifier(s, model, s.corruption, method=cfg.train.method)
    if cfg.train.registered_model_name:
        from cinv.pipeline import register

        register(info, cfg.train.registered_model_name)
    return table




# ---- RoCL (seed 003) ---------------------------------------------------------------------------


@METHODS.register("rocl")
def train_rocl(s: Setup, opts) -> encoders.Encoder:
    """Contrastive learning against instance-wise adversaries, on clean training images."""
    from torch import nn

    from cinv import rocl

    encoder = encoders.get(opts.encoder, opts.encoder_weights).to(s.device)
    projector = rocl.Projector(encoder.embed_dim, opts.projector_hidden, opts.projector_dim).to(s.device)
    objective = rocl.rocl_objective(encoder, projector, rocl.RoCLLoss(opts.temperature, opts.lam), eps=opts.eps,
                                    alpha=opts.alpha, steps=opts.instance_steps,
                                    generator=torch.Generator(s.device).manual_seed(derive_seed(s.seed, "rocl")))
    fit(nn.ModuleList([encoder, projector]), objective, rocl_stream(s, opts.batch_size),
        epochs=opts.epochs, lr=opts.lr, weight_decay=opts.weight_decay, on_epoch=tracking.log_epoch_metrics,
        optimizer=opts.optimizer, momentum=opts.momentum, warmup_epochs=opts.warmup_epochs, desc="rocl",
        precision=s.precision)
    return encoder.eval()


def rocl_stream(s: Setup, batch_size: int):
    """RoCL makes its own SimCLR views of the clean images: the stream hands them over uncropped
    and unflipped (a folder's evaluation transform, no per-batch flip), so no second random crop
    sits under the views."""
    return s.stream("train", batch_size=batch_size, purpose="train", augment=False)


def robust_linear_probe(s: Setup, encoder, epochs: int, lr: float, batch_size: int) -> Classifier:
    """r-LE: the linear head trained on class-wise PGD examples (l_inf 8/255, 10 steps) of itself."""
    from torch import nn

    from cinv import attacks

    model = Classifier(encoders.freeze(encoder, input_gradients=True), s.splits.num_classes, encoder.embed_dim).to(s.device)
    model.reset_head(torch.Generator().manual_seed(derive_seed(s.seed, "rle head")))
    generator = torch.Generator(s.device).manual_seed(derive_seed(s.seed, "rle"))

    def objective(views):
        adversarial = attacks.classwise_pgd(model, views.clean, views.labels, generator=generator)
        return nn.functional.cross_entropy(model(adversarial).float(), views.labels)

    fit(model, objective, s.stream("train", batch_size=batch_size, purpose="probe"), epochs=epochs, lr=lr, weight_decay=0.0,
        desc="r-LE", precision=s.precision)
    return model.eval()


def run_rocl(cfg) -> pd.DataFrame:
    from cinv import attacks, rocl
    from cinv.config import parse_budgets
    from cinv.pipeline import log_encoder, register, setup, train_probe

    s = setup(cfg, "none")
    mlflow.set_tags({"cinv.stage": "rocl", "cinv.method": "rocl"})
    encoder = train_rocl(s, cfg.train)
    info = log_encoder(s, encoder, method="rocl", encoder_name=cfg.train.encoder)
    if cfg.train.registered_model_name:
        register(info, cfg.train.registered_model_name)

    attackable = encoders.freeze(encoder, input_gradients=True)
    probes = {"LE": train_probe(s, encoder, cfg.probe, log=False).with_encoder(attackable)}
    if cfg.attack.rle_epochs:
        probes["r-LE"] = robust_linear_probe(s, encoder, cfg.attack.rle_epochs, cfg.probe.lr, cfg.probe.batch_size)
    images, labels = attack_subset(s, cfg.attack.images, cfg.seed)
    rows = []
    for probe_name, model in probes.items():
        key = probe_name.lower().replace("-", "")
        clean = evaluate_model(s, model, _eval(cfg.attack.batch_size), prefix=f"{key}_clean")
        rows.append({"probe": probe_name, "attack": "none (clean test set)", "top1": round(clean.mean("top1"), 2)})
        for norm, eps in parse_budgets(cfg.attack.budgets):
            methods = ["pgd"] + (["autoattack"] if cfg.attack.autoattack and norm == "inf" else [])
            for method in methods:
                accuracy = attacks.robust_accuracy(model, images, labels, norm=norm, eps=eps, steps=cfg.attack.steps,
                                                   seed=derive_seed(cfg.seed, "eval attack"), method=method,
                                                   batch_size=cfg.attack.batch_size)
                label = f"{method} l_{norm} {eps:.4g}"
                mlflow.log_metric(f"{key}_{method}_l{norm}_{eps:.4g}".replace(".", "p"), accuracy)
                rows.append({"probe": probe_name, "attack": label, "top1": round(accuracy, 2)})
        if cfg.attack.smoothing_samples:
            generator = torch.Generator(s.device).manual_seed(derive_seed(cfg.seed, "smoothing"))
            with torch.no_grad():
                logits = torch.cat([rocl.smoothed_predict(model, chunk, samples=cfg.attack.smoothing_samples, generator=generator)
                                    for chunk in images.split(cfg.attack.batch_size)])
            accuracy = 100.0 * (logits.argmax(1) == labels).float().mean().item()
            mlflow.log_metric(f"{key}_smoothed_top1", accuracy)
            rows.append({"probe": probe_name, "attack": f"none, smoothed over {cfg.attack.smoothing_samples} augmentations",
                         "top1": round(accuracy, 2)})
    table = pd.DataFrame(rows)
    tracking.log_table(table, "rocl_results")
    return table


def attack_subset(s: Setup, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images every attack sees: a seeded, class-balanced sample of the test split
    (n // classes per class, the whole split when n is larger), as the model sees them. Logs
    ``attack_images`` and ``attack_images_per_class``."""
    targets = dataset_targets(s.splits.test)
    per_class = max(1, n // s.splits.num_classes)
    picks = stratified_indices(targets, per_class=per_class, seed=derive_seed(seed, "attack subset") % 2**63)
    subset = torch.utils.data.Subset(s.splits.test, picks.tolist())
    images, labels = [], []
    for views in s.stream("test", batch_size=256, purpose="eval", dataset=subset).epoch(0):
        images.append(views.clean)
        labels.append(views.labels)
    images, labels = torch.cat(images), torch.cat(labels)
    counts = torch.bincount(labels.cpu(), minlength=s.splits.num_classes)
    mlflow.log_metrics({"attack_images": len(labels), "attack_images_per_class": int(counts.min())})
    return images, labels


def _eval(batch_size: int):
    from cinv.config import EvalOptions

    return EvalOptions(draws=1, batch_size=batch_size)
