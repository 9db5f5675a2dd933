"""Speed of cinv's library paths against the reference protocol, side by side in one run.

One command, one machine, the same data and the same model for both sides. Each section runs in
a fresh process of this script (so none inherits another's allocator state or worker processes)
and times, side by side in that process, cinv's real code path and a faithful in-script
implementation of the reference protocol (per-image NumPy/OpenCV corruption inside DataLoader
workers, fp32, a probe that re-runs the frozen encoder every epoch), interleaved in ABBA rounds,
warm-up excluded:

1. corruption throughput: per-image NumPy corruption in 2 DataLoader workers vs cinv's batched
   tensor corruption through ``BatchStream`` (on the device), at 224 px (batch 256) and at the
   embedded 48 px; also the bare operation (per-image loop in one process vs one batched call);
2. student training images/s: per-image corruption in workers + fp32 student step with the teacher
   forward run under autograd (frozen weights, eval mode) vs cinv's ``fit`` with
   ``inversion_objective`` on a ``BatchStream`` (EfficientNet-Lite0 teacher and student, same batch
   and image size), with a per-phase breakdown of both and, when cinv misses 2x, a torch.profiler
   table of its step;
3. linear probe (10 epochs) + 10 evaluation draws: the reference re-runs the frozen encoder on
   freshly corrupted images every probe epoch; cinv caches features (``probe.train_probe``) and
   evaluates with ``evaluation.evaluate``; wall times, their ratio, top-1 of both (mean over the
   10 draws) and, paired on the same draws, the difference caching makes;
4. CUDA only (``--quick`` runs it on a CPU as a smoke run): open_clip RN101 (random weights), 224 px,
   bf16 autocast, channels_last: images/s model-only (synthetic input) and end to end on the real data
   path (``--gpu-images``: a folder of JPEGs decoded in DataLoader workers; corruption on the GPU).

Writes benchmarks/results/throughput.json (machine, torch version, every figure and ratio, the
command). The machine may be shared: the load average before and after is recorded.

    python benchmarks/throughput.py              # all sections (about 6 min on 2 idle CPU cores)
    python benchmarks/throughput.py --rounds 6 --train-steps 3 --feature-draws 1 3 10   # as in README
    python benchmarks/throughput.py --quick      # smaller sizes, a smoke run
    python benchmarks/throughput.py --sections 1 2 --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
import torch.nn.functional as F
from harness import fresh_process, interleave, machine, median, rnd
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from cinv import corruption as distortions
from cinv import encoders, losses
from cinv.config.options import EvalOptions, ProbeOptions
from cinv.data.datasets import TensorImages, load_splits, stratified_indices
from cinv.data.stream import BatchStream
from cinv.encoders.heads import Classifier
from cinv.evaluation.metrics import evaluate
from cinv.methods.student import inversion_objective
from cinv.probe import FEATURE_BATCH, train_probe
from cinv.runtime import derive_seed, native_bf16, resolve_precision
from cinv.training.context import Setup
from cinv.training.loop import Optim, fit

try:
    import cv2
except ImportError:  # SciPy does the blur instead
    cv2 = None

SEED = 0
CORRUPTIONS = {
    "random_mask": ("random_mask", {"fraction": 0.9}),
    "gaussian_noise": ("gaussian_noise", {"std": 0.3}),
    "gaussian_blur": ("gaussian_blur", {"kernel_size": 21, "sigma": 5.0}),
}


# ---- the reference protocol ---------------------------------------------------------------


class NumpyCorruption:
    """One image at a time, [C, H, W] float32 NumPy in [0, 1], drawn from the global np.random."""

    def __init__(self, name: str, params: dict):
        self.name, self.params = name, params

    def __call__(self, x: np.ndarray) -> np.ndarray:
        c, h, w = x.shape
        if self.name == "random_mask":
            k = round(self.params["fraction"] * h * w)
            idx = np.random.choice(h * w, k, replace=False)
            out = x.copy()
            out.reshape(c, -1)[:, idx] = 0
            return out
        if self.name == "gaussian_noise":
            return x + np.random.normal(0.0, self.params["std"], x.shape).astype(np.float32)
        if self.name == "gaussian_blur":
            ks, sigma = self.params["kernel_size"], self.params["sigma"]
            if cv2 is not None:  # BORDER_REFLECT_101 is torch's "reflect" padding
                hwc = cv2.GaussianBlur(np.ascontiguousarray(x.transpose(1, 2, 0)), (ks, ks), sigma,
                                       borderType=cv2.BORDER_REFLECT_101)
                return np.ascontiguousarray(hwc.reshape(h, w, c).transpose(2, 0, 1))
            from scipy import ndimage

            return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma), truncate=(ks // 2) / sigma, mode="mirror")
        raise ValueError(self.name)


class PerImageViews(Dataset):
    """The reference's dataset: resize, flip and corrupt each image in the worker, with NumPy."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: int, corrupt: NumpyCorruption, flip: bool):
        self.images, self.labels, self.size, self.corrupt, self.flip = images, labels, size, corrupt, flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i].numpy().transpose(1, 2, 0).astype(np.float32) / 255  # HWC
        if x.shape[0] != self.size:
            x = cv2.resize(x, (self.size, self.size), interpolation=cv2.INTER_LINEAR) if cv2 is not None else \
                F.interpolate(torch.from_numpy(x).permute(2, 0, 1)[None], size=(self.size,) * 2, mode="bilinear",
                              antialias=True)[0].permute(1, 2, 0).numpy()
        if self.flip and np.random.rand() < 0.5:
            x = x[:, ::-1]
        x = np.ascontiguousarray(x.transpose(2, 0, 1))
        return torch.from_numpy(x), torch.from_numpy(self.corrupt(x)), int(self.labels[i])


def seed_worker(_: int) -> None:
    # Fresh NumPy draws per worker and per epoch (the reference copied one NumPy state into every
    # worker, so its masks repeated; that bug is not reproduced here), one OpenCV thread per worker.
    np.random.seed(torch.initial_seed() % 2**32)
    if cv2 is not None:
        cv2.setNumThreads(1)


class Batches:
    """A batch sampler whose batches can be swapped between passes of a persistent loader."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def reference_loader(ds: Dataset, workers: int, device: torch.device, **kw) -> DataLoader:
    return DataLoader(ds, num_workers=workers, worker_init_fn=seed_worker, pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(SEED), **kw)


# ---- helpers ------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def embedded(size: int):
    return load_splits("embedded", None, size, 0.05, SEED)


def resized_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


# ---- 1. corruption throughput -------------------------------------------------------------


def section_corruption(args, device: torch.device) -> dict:
    splits = embedded(48)
    results = []
    for size, n_batches in ((224, args.batches_224), (48, args.batches_48)):
        if n_batches <= 0:
            continue
        bs = args.corrupt_batch
        n = bs * n_batches
        images = resized_uint8(splits.train.images[:n], size)
        labels = splits.train.labels[:n]
        for key in args.corruptions:
            name, params = CORRUPTIONS[key]
            ours = distortions.get(name, **params)
            ref = NumpyCorruption(name, params)
            batches = Batches([list(range(bs))])  # warm-up pass: one batch
            loader = reference_loader(PerImageViews(images, labels, size, ref, flip=False), args.workers, device,
                                      batch_sampler=batches, persistent_workers=True)
            for _ in loader:
                pass
            stream = BatchStream(TensorImages(images, labels), corruption=ours, batch_size=bs, image_size=size,
                                 device=device, train=False, augment_on_batch=True, seed=SEED)
            next(iter(stream.epoch(10_000)))  # warm-up
            timed = [list(range(i, i + bs)) for i in range(0, n, bs)]

            def run_reference(r, loader=loader, batches=batches, timed=timed, n=n):
                batches.batches = timed
                sync(device)
                t0 = time.perf_counter()
                for clean, corrupted, _ in loader:
                    clean, corrupted = clean.to(device, non_blocking=True), corrupted.to(device, non_blocking=True)
                sync(device)
                return n / (time.perf_counter() - t0)

            def run_cinv(r, stream=stream, n=n):
                sync(device)
                t0 = time.perf_counter()
                for _views in stream.epoch(r):
                    pass
                sync(device)
                return n / (time.perf_counter() - t0)

            path = interleave({"reference": run_reference, "cinv": run_cinv}, args.corrupt_rounds)
            del loader  # stops the persistent workers

            # The bare operation: a per-image loop in this process vs one batched call on the device.
            n_op = min(bs, args.op_images_224 if size == 224 else bs)
            batch = images[:bs].to(device).float().div_(255)
            arrays = images[:n_op].float().div_(255).numpy()
            gen = torch.Generator(device=device).manual_seed(SEED)
            np.random.seed(SEED)
            ref(arrays[0])
            ours(batch, generator=gen)
            sync(device)

            def op_reference(r, arrays=arrays, ref=ref):
                t0 = time.perf_counter()
                for a in arrays:
                    ref(a)
                return len(arrays) / (time.perf_counter() - t0)

            def op_cinv(r, batch=batch, ours=ours, gen=gen):
                sync(device)
                t0 = time.perf_counter()
                ours(batch, generator=gen)
                sync(device)
                return len(batch) / (time.perf_counter() - t0)

            op = interleave({"reference": op_reference, "cinv": op_cinv}, args.corrupt_rounds)
            check = same_corruption(name, params, ref, ours, batch[:4], device)
            row = {
                "corruption": ours.spec, "image_size": size, "batch_size": bs, "images_per_pass": n,
                "data_path_images_per_s": {"reference": rnd(median(path["reference"])), "cinv": rnd(median(path["cinv"]))},
                "data_path_ratio": rnd(median(path["cinv"]) / median(path["reference"]), 2),
                "op_images_per_s": {"reference": rnd(median(op["reference"])), "cinv": rnd(median(op["cinv"]))},
                "op_ratio": rnd(median(op["cinv"]) / median(op["reference"]), 2),
                "rounds": {"data_path": {k: [rnd(v) for v in vs] for k, vs in path.items()},
                           "op": {k: [rnd(v) for v in vs] for k, vs in op.items()}},
                "same_corruption": check,
            }
            print(f"[1] {ours.spec:42s} {size:3d}px  data path: ref {row['data_path_images_per_s']['reference']:8.1f}"
                  f"  cinv {row['data_path_images_per_s']['cinv']:8.1f} img/s  x{row['data_path_ratio']:.2f}   "
                  f"op: ref {row['op_images_per_s']['reference']:8.1f}  cinv {row['op_images_per_s']['cinv']:8.1f}"
                  f"  x{row['op_ratio']:.2f}", flush=True)
            results.append(row)
    return {
        "reference": f"per-image NumPy ({'OpenCV' if cv2 is not None else 'SciPy'} for blur) in a DataLoader with "
                     f"{args.workers} workers (persistent, warmed up), float32 clean + corrupted views, "
                     f"then to the device",
        "cinv": "BatchStream (uint8 batch to the device, one batched corruption from a seeded generator)",
        "op": "reference: per-image loop in this process; cinv: one batched call on the device",
        "rows": results,
    }


def same_corruption(name, params, ref: NumpyCorruption, ours, batch: torch.Tensor, device) -> dict:
    """Both sides apply the same corruption: masked share, noise std, blur difference."""
    a = batch.cpu().numpy()
    out_ref = np.stack([ref(x) for x in a])
    out_ours = ours(batch, generator=torch.Generator(device=device).manual_seed(SEED)).cpu().numpy()
    if name == "random_mask":
        ones = np.ones_like(a)
        return {"masked_fraction": {"reference": float((np.stack([ref(x) for x in ones]) == 0).mean()),
                                    "cinv": float((ours(torch.ones_like(batch)) == 0).float().mean())},
                "expected": round(params["fraction"] * a.shape[2] * a.shape[3]) / (a.shape[2] * a.shape[3])}
    if name == "gaussian_noise":
        return {"noise_std": {"reference": round(float((out_ref - a).std()), 4), "cinv": round(float((out_ours - a).std()), 4)},
                "expected": params["std"]}
    return {"max_abs_difference": float(np.abs(out_ref - out_ours).max())}


# ---- 2. student training ------------------------------------------------------------------


class Timed(nn.Module):
    """Calls a module and records the wall time of each call (phase breakdown)."""

    def __init__(self, module: nn.Module, log: list[float], device: torch.device):
        super().__init__()
        self.module, self.log, self.device = module, log, device

    def forward(self, x):
        t0 = time.perf_counter()
        y = self.module(x)
        sync(self.device)
        self.log.append(time.perf_counter() - t0)
        return y


def section_training(args, device: torch.device) -> dict:

    splits = embedded(args.train_size)
    steps, warm, bs = args.train_steps, args.train_warmup, args.train_batch
    n = (steps + warm) * bs
    pick = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(SEED))[:n].tolist()
    subset = Subset(splits.train, pick)
    name, params = CORRUPTIONS["random_mask"]
    corruption = distortions.get(name, **params)
    s = Setup(splits, corruption, device, SEED, args.workers, resolve_precision(device))
    teacher = encoders.freeze(encoders.get(args.teacher)).to(device)
    loss = losses.get("student_teacher", temperature=0.1)
    lr, wd = 2e-3, 1e-4
    phases: dict[str, list[dict]] = {"reference": [], "cinv": []}

    def run_cinv(r: int) -> float:
        student = encoders.student_from(teacher)
        log: dict[str, list[float]] = {"teacher": [], "student": []}
        marks: dict[str, list[float]] = {"objective": [], "objective_end": [], "opt_pre": [], "opt_post": [], "step": []}
        base = inversion_objective(Timed(student, log["student"], device), Timed(teacher, log["teacher"], device), loss, s.precision)

        def objective(views):
            marks["objective"].append(time.perf_counter())
            out = base(views)
            marks["objective_end"].append(time.perf_counter())
            return out

        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
        pre = register_optimizer_step_pre_hook(lambda *a: marks["opt_pre"].append(time.perf_counter()))
        post = register_optimizer_step_post_hook(lambda *a: marks["opt_post"].append(time.perf_counter()))
        stream = s.stream("train", batch_size=bs, purpose="train", dataset=subset, seed=SEED + r)
        try:
            t_start = time.perf_counter()
            fit(student, objective, stream, Optim(epochs=1, lr=lr, weight_decay=wd), precision=s.precision,
                on_step=lambda step, total: marks["step"].append(time.perf_counter()), desc="student")
        finally:
            pre.remove()
            post.remove()
        ends = [t_start, *marks["step"]]
        timed = range(warm, warm + steps)
        phases["cinv"].append({
            "data_and_corruption": sum(marks["objective"][i] - ends[i] for i in timed) / steps,
            "teacher_forward": sum(log["teacher"][i] for i in timed) / steps,
            "student_forward_and_loss": sum(marks["objective_end"][i] - marks["objective"][i] - log["teacher"][i]
                                            for i in timed) / steps,
            "backward": sum(marks["opt_pre"][i] - marks["objective_end"][i] for i in timed) / steps,
            "optimizer": sum(marks["opt_post"][i] - marks["opt_pre"][i] for i in timed) / steps,
            "other": sum(ends[i + 1] - marks["opt_post"][i] for i in timed) / steps,
        })
        return steps * bs / (ends[warm + steps] - ends[warm])

    def run_reference(r: int) -> float:
        student = encoders.student_from(teacher)
        ref_teacher = copy.deepcopy(teacher.encoder).eval().requires_grad_(False)  # frozen, but no no_grad/inference mode
        ds = PerImageViews(splits.train.images[pick], splits.train.labels[pick], args.train_size,
                           NumpyCorruption(name, params), flip=True)
        loader = reference_loader(ds, args.workers, device, batch_size=bs, shuffle=True, drop_last=True)
        loader.generator.manual_seed(SEED + r)
        opt = torch.optim.Adam(student.parameters(), lr=lr, weight_decay=wd)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps + warm)
        ends, acc = [time.perf_counter()], {k: 0.0 for k in ("data_and_corruption", "teacher_forward",
                                                              "student_forward_and_loss", "backward", "optimizer", "other")}
        for i, (clean, corrupted, _) in enumerate(loader):
            t0 = time.perf_counter()
            clean, corrupted = clean.to(device, non_blocking=True), corrupted.to(device, non_blocking=True)
            target = ref_teacher(clean)
            sync(device)
            t1 = time.perf_counter()
            value = loss(student(corrupted), target)
            sync(device)
            t2 = time.perf_counter()
            opt.zero_grad()
            value.backward()
            sync(device)
            t3 = time.perf_counter()
            opt.step()
            sync(device)
            t4 = time.perf_counter()
            sched.step()
            value.item()
            ends.append(time.perf_counter())
            if i >= warm:
                for k, v in zip(acc, (t0 - ends[-2], t1 - t0, t2 - t1, t3 - t2, t4 - t3, ends[-1] - t4), strict=True):
                    acc[k] += v / steps
        phases["reference"].append(acc)
        return steps * bs / (ends[warm + steps] - ends[warm])

    rates = interleave({"reference": run_reference, "cinv": run_cinv}, args.rounds)
    ratio = median(rates["cinv"]) / median(rates["reference"])
    out = {
        "teacher": args.teacher, "student": f"copy of {args.teacher}", "image_size": args.train_size, "batch_size": bs,
        "corruption": corruption.spec, "loss": "student_teacher (tau 0.1)", "optimizer": f"Adam lr {lr} wd {wd}, cosine",
        "timed_steps_per_run": steps, "warmup_steps_per_run": warm,
        "reference": f"per-image NumPy mask + cv2 resize + flip in {args.workers} DataLoader workers; fp32 student step; "
                     "teacher frozen (requires_grad False, eval mode) run under autograd",
        "cinv": "training.context.Setup.stream (BatchStream) + training.loop.fit + methods.inversion.inversion_objective"
                + (" (bf16 autocast on CUDA)" if device.type == "cuda" else
                   " (student fp32 on CPU, frozen teacher " + ("bf16" if native_bf16(device) else "fp32") + ")"),
        "images_per_s": {k: rnd(median(v), 2) for k, v in rates.items()},
        "ratio": rnd(ratio, 3),
        "rounds": {k: [rnd(v, 2) for v in vs] for k, vs in rates.items()},
        "seconds_per_step_by_phase": {k: {p: round(statistics.median(d[p] for d in v), 4) for p in v[0]}
                                      for k, v in phases.items()},
    }
    print(f"[2] student training {args.train_size}px batch {bs}: ref {out['images_per_s']['reference']:.2f}  "
          f"cinv {out['images_per_s']['cinv']:.2f} img/s  x{ratio:.2f}", flush=True)
    for k, v in out["seconds_per_step_by_phase"].items():
        print(f"    {k:9s} " + "  ".join(f"{p} {s:.3f}s" for p, s in v.items()), flush=True)
    if args.profile or ratio < 2.0:
        out["profile"] = profile_cinv_step(s, teacher, loss, subset, bs, lr, wd, device)
    return out


def profile_cinv_step(s, teacher, loss, subset, bs: int, lr: float, wd: float, device: torch.device) -> dict:
    """torch.profiler over two steps of cinv's fit (after one warm-up step): the top operators."""
    from torch.profiler import ProfilerActivity, profile, schedule


    student = encoders.student_from(teacher)
    stream = s.stream("train", batch_size=bs, purpose="train", dataset=Subset(subset, list(range(3 * bs))), seed=SEED)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    traces = []
    with profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=2, repeat=1),
                 on_trace_ready=lambda p: traces.append(p.key_averages())) as prof:
        fit(student, inversion_objective(student, teacher, loss, s.precision), stream, Optim(epochs=1, lr=lr, weight_decay=wd),
            precision=s.precision, on_step=lambda step, total: prof.step(), desc="student")
    events = traces[0] if traces else prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    table = [{"op": e.key, "calls": e.count, "self_cpu_s": round(e.self_cpu_time_total / 1e6 / 2, 4),
              "share": round(e.self_cpu_time_total / total, 3)} for e in rows]
    groups = {"convolution (forward + backward)": ("conv", "mkldnn"), "batch norm": ("batch_norm", "native_batch_norm"),
              "corruption (sort/scatter/rand)": ("sort", "scatter", "uniform", "rand", "normal"),
              "elementwise (activations, and Adam's per-parameter updates)":
                  ("add", "mul", "hardtanh", "clamp", "div", "sub", "relu", "threshold", "lerp", "sqrt", "_foreach")}
    shares = {g: 0.0 for g in groups}
    for e in events:
        name = e.key.lower()
        for g, keys in groups.items():
            if any(k in name for k in keys):
                shares[g] += e.self_cpu_time_total / total
                break
    print("    profile (cinv step, self CPU):", ", ".join(f"{r['op']} {r['share']:.0%}" for r in table[:6]), flush=True)
    # Record-function totals: the whole optimiser step and the autograd nodes (the backward pass).
    optimizer_s = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step#")) / 1e6 / 2
    backward_s = sum(e.cpu_time_total for e in events if e.key.startswith("autograd::engine::evaluate_function")) / 1e6 / 2
    return {"steps": 2, "top_ops_per_step": table, "share_by_group": {g: round(v, 3) for g, v in shares.items()},
            "per_step_s": {"all_ops": round(total / 1e6 / 2, 3), "backward": round(backward_s, 3),
                           "optimizer_step": round(optimizer_s, 3)}}


# ---- 3. probe + evaluation ----------------------------------------------------------------


def section_probe(args, device: torch.device) -> dict:

    splits = embedded(48)
    for split, per_class in (("train", args.probe_train_per_class), ("test", args.probe_test_per_class)):
        data = getattr(splits, split)
        picks = stratified_indices(data.targets, per_class=per_class, seed=SEED)
        setattr(splits, split, TensorImages(data.images[picks], data.labels[picks]))
    name, params = CORRUPTIONS["random_mask"]
    corruption = distortions.get(name, **params)
    s = Setup(splits, corruption, device, SEED, args.workers, resolve_precision(device))
    teacher = encoders.freeze(encoders.get(args.teacher)).to(device)
    eval_opts = EvalOptions()
    variants = {k: ProbeOptions(feature_draws=k) for k in dict.fromkeys(args.feature_draws)}
    probe_opts = ProbeOptions()
    draws, epochs = eval_opts.draws, probe_opts.epochs
    ref_encoder = copy.deepcopy(teacher.encoder).eval().requires_grad_(False)
    ref_corrupt = NumpyCorruption(name, params)

    # The reference is split around cinv (A B A), so a drifting load on a shared machine weighs on
    # both sides alike: probe epochs 1-5, cinv's probe(s), epochs 6-10; draws 1-5, cinv's evaluation(s), draws 6-10.
    ref_model = Classifier(ref_encoder, splits.num_classes, teacher.embed_dim)
    ref_model = ref_model.reset_head(torch.Generator().manual_seed(derive_seed(SEED, "probe head"))).to(device)
    opt = torch.optim.Adam(ref_model.head.parameters(), lr=probe_opts.lr)
    criterion = nn.CrossEntropyLoss()
    train_loader = reference_loader(PerImageViews(splits.train.images, splits.train.labels, splits.image_size, ref_corrupt,
                                                  flip=True), args.workers, device, batch_size=probe_opts.batch_size,
                                    shuffle=True)
    test_loader = reference_loader(PerImageViews(splits.test.images, splits.test.labels, splits.image_size, ref_corrupt,
                                                 flip=False), args.workers, device, batch_size=eval_opts.batch_size)
    timings = {"reference_probe_s": 0.0, "reference_evaluation_s": 0.0}
    models: dict[int, nn.Module] = {}
    ours: dict[int, dict] = {k: {} for k in variants}

    def reference_epochs(n: int) -> None:
        """Every probe epoch re-runs the encoder on freshly corrupted train images."""
        t0 = time.perf_counter()
        ref_model.train()
        ref_encoder.eval()  # the frozen encoder stays in eval mode (the reference's train-mode bug is not reproduced)
        for _ in range(n):
            for _clean, corrupted, labels in train_loader:
                logits = ref_model(corrupted.to(device))  # autograd on, frozen encoder: as in the reference
                value = criterion(logits, labels.to(device))
                opt.zero_grad()
                value.backward()
                opt.step()
                value.item()
        sync(device)
        timings["reference_probe_s"] += time.perf_counter() - t0

    ref_top1: list[float] = []
    paired: dict[int, list[float]] = {k: [] for k in variants}

    def reference_draws(n: int) -> None:
        """Draws of per-image corruption in workers. cinv's heads are scored on the very same features
        too (one extra 1280x10 matmul per head and batch): the paired effect of caching."""
        t0 = time.perf_counter()
        ref_model.eval()
        with torch.no_grad():
            for _ in range(n):
                hits, total = 0, 0
                hits_ours = dict.fromkeys(variants, 0)
                for _clean, corrupted, labels in test_loader:
                    features = ref_encoder(corrupted.to(device))
                    labels = labels.to(device)
                    hits += (ref_model.classify(features).argmax(1) == labels).sum().item()
                    for k, m in models.items():
                        hits_ours[k] += (m.classify(features).argmax(1) == labels).sum().item()
                    total += len(labels)
                ref_top1.append(100 * hits / total)
                for k in variants:
                    paired[k].append(100 * hits_ours[k] / total)
        sync(device)
        timings["reference_evaluation_s"] += time.perf_counter() - t0

    reference_epochs(epochs // 2)
    for k, opts in variants.items():  # cinv: features of `feature_draws` draws cached, the head trained on the cache
        t0 = time.perf_counter()
        models[k] = train_probe(s, teacher, opts, log=False)
        sync(device)
        ours[k]["probe_s"] = time.perf_counter() - t0
    reference_epochs(epochs - epochs // 2)
    reference_draws(draws // 2)
    for k in variants:
        t0 = time.perf_counter()
        result = evaluate(models[k], s.stream("test", batch_size=eval_opts.batch_size, purpose="eval", seed=eval_opts.draw_seed),
                          draws)
        sync(device)
        ours[k]["evaluation_s"] = time.perf_counter() - t0
        ours[k]["evaluation"] = result
    reference_draws(draws - draws // 2)

    ref_total = timings["reference_probe_s"] + timings["reference_evaluation_s"]
    ref_mean = statistics.mean(ref_top1)
    rows = []
    for k in variants:
        total = ours[k]["probe_s"] + ours[k]["evaluation_s"]
        result = ours[k]["evaluation"]
        diff = [b - a for a, b in zip(ref_top1, paired[k], strict=True)]
        rows.append({
            "feature_draws": k, "default": k == probe_opts.feature_draws,
            "wall_s": {"probe": rnd(ours[k]["probe_s"]), "evaluation": rnd(ours[k]["evaluation_s"]), "total": rnd(total)},
            "ratio": rnd(ref_total / total, 2),
            "encoder_images": k * len(splits.train) + draws * len(splits.test),
            "top1_mean": rnd(result.mean("top1"), 2), "top1_se": rnd(result.se("top1"), 2),
            "top1_difference_cinv_minus_reference": rnd(result.mean("top1") - ref_mean, 2),
            "paired_on_reference_draws": {"cinv_head_top1_mean": rnd(statistics.mean(paired[k]), 2),
                                          "difference_mean": rnd(statistics.mean(diff), 2),
                                          "difference_se": rnd(statistics.stdev(diff) / len(diff) ** 0.5, 2)},
        })
        print(f"[3] probe + {draws} draws, feature_draws={k}: ref {ref_total:.1f}s  cinv {total:.1f}s  "
              f"x{rows[-1]['ratio']:.2f}   top-1 ref {ref_mean:.2f} cinv {rows[-1]['top1_mean']:.2f} (paired diff "
              f"{rows[-1]['paired_on_reference_draws']['difference_mean']:+.2f} "
              f"± {rows[-1]['paired_on_reference_draws']['difference_se']:.2f})", flush=True)
    return {
        "encoder": f"{args.teacher} (frozen teacher)", "corruption": corruption.spec, "image_size": splits.image_size,
        "train_images": len(splits.train), "test_images": len(splits.test), "probe_epochs": epochs, "draws": draws,
        "probe_batch_size": probe_opts.batch_size, "feature_batch_size": FEATURE_BATCH,
        "evaluation_batch_size": eval_opts.batch_size,
        "reference": f"encoder re-run on fresh per-image NumPy corruptions every probe epoch ({args.workers} workers), "
                     "then 10 evaluation draws, fp32",
        "cinv_path": "probe.train_probe (probe.extract_features + probe.fit_head) with ProbeOptions(feature_draws=k) "
                f"+ evaluation.metrics.evaluate; feature_draws={ProbeOptions().feature_draws} is the default",
        "cinv_inference": "channels_last (precision=auto); probe features in " + ("bf16 autocast" if native_bf16(device)
                          else "fp32") + ", evaluation in " + ("bf16 autocast" if device.type == "cuda" else "fp32"),
        "order": "reference epochs 1-5, cinv probe(s), reference epochs 6-10, reference draws 1-5, cinv evaluation(s), "
                 "reference draws 6-10",
        "reference_wall_s": {"probe": rnd(timings["reference_probe_s"]), "evaluation": rnd(timings["reference_evaluation_s"]),
                             "total": rnd(ref_total)},
        "reference_encoder_images": epochs * len(splits.train) + draws * len(splits.test),
        "reference_top1_mean": rnd(ref_mean, 2),
        "reference_top1_se": rnd(statistics.stdev(ref_top1) / len(ref_top1) ** 0.5, 2),
        "cinv": rows,
    }


# ---- 4. GPU: open_clip RN101 ----------------------------------------------------------------


def section_gpu(args, device: torch.device) -> dict:
    """open_clip RN101 (random weights) at 224 px in bf16: images/s of the model alone on synthetic
    input, end to end on the real data path, and the data path alone. ``--gpu-images FOLDER``: the
    data path of a folder dataset (JPEGs decoded in ``--gpu-workers`` DataLoader workers, pinned
    batches moved to the device, resized, flipped and corrupted there), else the embedded images.
    When the end-to-end rate falls below 80% of the model's, where the data path spends its time:
    decoding alone (the DataLoader on the CPU), and the path without the corruption."""
    bs, iters, warm = args.gpu_batch, args.gpu_iters, 2 if args.quick else 5
    name, params = CORRUPTIONS["random_mask"]
    corruption = distortions.get(name, **params)
    if args.gpu_images:
        splits = load_splits(args.gpu_images, None, 224, 0.0, SEED)
        source = (f"{len(splits.train)} JPEGs of a folder dataset, decoded and cropped in {args.gpu_workers} DataLoader "
                  "workers, pinned batches to the device")
    else:
        splits = embedded(224)
        source = "the embedded images (uint8 tensors, 32 px stored)"
    model = encoders.get(args.gpu_model, weights="none").to(device).eval().to(memory_format=torch.channels_last)
    amp = dict(device_type=device.type, dtype=torch.bfloat16)

    def stream_of(distortion) -> BatchStream:
        s = Setup(splits, distortion, device, SEED, args.gpu_workers)
        return s.stream("train", batch_size=bs, purpose="train")

    streams = {"corrupted": stream_of(corruption), "clean": stream_of(distortions.get("none"))}
    per_epoch = len(streams["corrupted"])

    def batches(key: str, r: int):
        while True:
            yield from streams[key].epoch(r)
            r += 1000

    synthetic = torch.rand(bs, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(**amp):
        for _ in range(warm):
            model(synthetic)
        for _, views in zip(range(warm), batches("corrupted", 10_000), strict=False):
            model(views.corrupted.contiguous(memory_format=torch.channels_last))
    sync(device)

    def timed(body) -> float:
        sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(**amp):
            body()
        sync(device)
        return iters * bs / (time.perf_counter() - t0)

    def model_only(r):
        return timed(lambda: [model(synthetic) for _ in range(iters)])

    def end_to_end(r):
        return timed(lambda: [model(v.corrupted.contiguous(memory_format=torch.channels_last))
                              for _, v in zip(range(iters), batches("corrupted", r), strict=False)])

    def data_only(r, key="corrupted"):
        return timed(lambda: [v.corrupted.contiguous(memory_format=torch.channels_last)
                              for _, v in zip(range(iters), batches(key, r + 500), strict=False)])

    rates = interleave({"model_only": model_only, "end_to_end": end_to_end, "data_path_only": data_only}, args.rounds)
    med = {k: median(v) for k, v in rates.items()}
    fraction = med["end_to_end"] / med["model_only"]
    if fraction < 0.8:  # where the data path's time goes
        loader = DataLoader(splits.train, batch_size=bs, shuffle=True, num_workers=args.gpu_workers, drop_last=True,
                            persistent_workers=args.gpu_workers > 0)

        def decode_only(r):
            t0, n = time.perf_counter(), 0
            for _, (images, _) in zip(range(iters), (b for _ in range(1000) for b in loader), strict=False):
                n += len(images)
            return n / (time.perf_counter() - t0)

        med["data_path_without_corruption"] = median([data_only(r, "clean") for r in range(args.rounds)])
        med["decode_only"] = median([decode_only(r) for r in range(args.rounds)])
    out = {
        "model": f"{args.gpu_model} image tower, random weights", "image_size": 224, "batch_size": bs,
        "device": str(device), "precision": "bf16 autocast, channels_last, inference_mode", "iterations_per_run": iters,
        "end_to_end": f"{source} ({per_epoch} batches per epoch), resize to 224, flip, {corruption.spec} on the device, model",
        "images_per_s": {k: rnd(v) for k, v in med.items()},
        "end_to_end_over_model_only": rnd(fraction, 3),
        "data_path_cost_fraction": rnd(1 - fraction, 3),
        "rounds": {k: [rnd(v) for v in vs] for k, vs in rates.items()},
        "peak_gpu_memory_mib": rnd(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None,
    }
    print(f"[4] {args.gpu_model} bf16 224px on {device}: model only {med['model_only']:.0f}  end to end "
          f"{med['end_to_end']:.0f} img/s ({out['end_to_end_over_model_only']:.0%})", flush=True)
    return out


# ---- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", type=int, default=[1, 2, 3, 4], choices=[1, 2, 3, 4])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--rounds", type=int, default=2, help="[2, 4] ABBA rounds per comparison (each side runs this often)")
    parser.add_argument("--corrupt-rounds", type=int, default=4, help="[1] ABBA rounds per comparison")
    parser.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--teacher", default="efficientnet_lite0", help="encoder of sections 2 and 3")
    parser.add_argument("--corruptions", nargs="+", default=list(CORRUPTIONS), choices=list(CORRUPTIONS))
    parser.add_argument("--corrupt-batch", type=int, default=256, help="[1] batch size")
    parser.add_argument("--batches-224", type=int, default=2, help="[1] timed batches per pass at 224 px (0 skips)")
    parser.add_argument("--batches-48", type=int, default=8, help="[1] timed batches per pass at 48 px (0 skips)")
    parser.add_argument("--op-images-224", type=int, default=64, help="[1] images in the per-image op loop at 224 px")
    parser.add_argument("--train-size", type=int, default=48, help="[2] image size (the embedded main job's)")
    parser.add_argument("--train-batch", type=int, default=128, help="[2] batch size (the embedded main job's)")
    parser.add_argument("--train-steps", type=int, default=5, help="[2] timed steps per run")
    parser.add_argument("--train-warmup", type=int, default=1, help="[2] untimed first steps per run")
    parser.add_argument("--profile", action="store_true", help="[2] profile cinv's step even when it reaches 2x")
    parser.add_argument("--probe-train-per-class", type=int, default=600, help="[3] train images per class (600: all)")
    parser.add_argument("--probe-test-per-class", type=int, default=200, help="[3] test images per class (200: all)")
    parser.add_argument("--feature-draws", type=int, nargs="+", default=[1],
                        help="[3] cinv probe settings to time (ProbeOptions.feature_draws; 1 is the default)")
    parser.add_argument("--gpu-batch", type=int, default=256, help="[4] batch size")
    parser.add_argument("--gpu-iters", type=int, default=40, help="[4] timed batches per run")
    parser.add_argument("--gpu-images", help="[4] a folder dataset (train/<class>/*.jpg, val/...): the real data path; "
                        "default the embedded images")
    parser.add_argument("--gpu-workers", type=int, default=8, help="[4] DataLoader workers decoding --gpu-images")
    parser.add_argument("--gpu-model", default="open_clip:RN101", help="[4] the encoder (random weights)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "throughput.json")
    parser.add_argument("--section-worker", nargs=2, metavar=("SECTION", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.batches_224, args.batches_48, args.op_images_224 = 1, 2, 16
        args.train_steps, args.probe_train_per_class, args.probe_test_per_class = 2, 30, 20
        args.gpu_iters, args.corrupt_rounds = 10, 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else torch.device(args.device)
    torch.manual_seed(SEED)
    if cv2 is not None:
        cv2.setNumThreads(1)

    started = time.perf_counter()
    load_before = os.getloadavg()
    result = {
        "command": "python benchmarks/throughput.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:]),
        "machine": machine(device),
        "torch": torch.__version__,
        "timing": "wall clock; each section in a fresh process, reference and cinv side by side in it, ABBA-interleaved "
                  "rounds (section 3: A B A), the median per side; warm-up passes/steps excluded",
        "sections": {},
    }
    sections = {1: ("corruption", section_corruption), 2: ("student_training", section_training),
                3: ("probe_and_evaluation", section_probe), 4: ("gpu_open_clip_rn101", section_gpu)}
    if args.section_worker is not None:  # one section, inside this (fresh) process
        number, path = args.section_worker
        key, fn = sections[int(number)]
        t0 = time.perf_counter()
        out = fn(args, device)
        out["section_wall_s"] = rnd(time.perf_counter() - t0)
        Path(path).write_text(json.dumps(out))
        return
    for number in sorted(set(args.sections)):
        key, fn = sections[number]
        if number == 4 and device.type != "cuda" and not args.quick:  # --quick on a CPU: the code path, as a smoke run
            result["sections"][key] = "skipped: no GPU"
            print("[4] skipped: no GPU", flush=True)
            continue
        # Each section in a fresh process (reference and cinv side by side inside it), so that no
        # section inherits another's allocator state, worker processes or threads.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "section.json"
            proc = fresh_process(Path(__file__).resolve(), *sys.argv[1:], "--section-worker", str(number), str(path))
            print(proc.stdout, end="", flush=True)
            code = proc.returncode
            if code != 0:
                raise SystemExit(f"section {number} failed ({code})")
            result["sections"][key] = json.loads(path.read_text())
    result["ratios"], result["targets"] = summary(result["sections"])
    result["load_average_1_5_15"] = {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in os.getloadavg()]}
    result["wall_s"] = rnd(time.perf_counter() - started)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"ratios": result["ratios"], "targets": result["targets"]}, indent=1))
    print(f"wrote {args.out} ({result['wall_s']:.0f} s)")


def summary(sections: dict) -> tuple[dict, dict]:
    ratios, targets = {}, {}
    c = sections.get("corruption")
    if isinstance(c, dict):
        for row in c["rows"]:
            key = f"{row['corruption']}@{row['image_size']}px"
            ratios[f"corruption_data_path {key}"] = row["data_path_ratio"]
            ratios[f"corruption_op {key}"] = row["op_ratio"]
        at224 = [row["data_path_ratio"] for row in c["rows"] if row["image_size"] == 224]
        if at224:
            targets["1_corruption_at_least_20x"] = {"worst_224px_data_path_ratio": min(at224), "met": min(at224) >= 20}
    t = sections.get("student_training")
    if isinstance(t, dict):
        ratios["student_training_images_per_s"] = t["ratio"]
        targets["2_student_training_at_least_2x"] = {"ratio": t["ratio"], "met": t["ratio"] >= 2}
    p = sections.get("probe_and_evaluation")
    if isinstance(p, dict):
        met = {}
        for row in p["cinv"]:  # one row per feature_draws setting
            ratios[f"probe_and_evaluation_wall_time feature_draws={row['feature_draws']}"] = row["ratio"]
            drop = -row["paired_on_reference_draws"]["difference_mean"]
            met[f"feature_draws={row['feature_draws']}"] = {
                "ratio": row["ratio"], "paired_top1_drop": rnd(drop, 2),
                "unpaired_top1_drop": rnd(-row["top1_difference_cinv_minus_reference"], 2),
                "met": row["ratio"] >= 5 and drop <= 0.3}
        targets["3_probe_eval_at_least_5x_top1_drop_at_most_0.3"] = met
    g = sections.get("gpu_open_clip_rn101")
    if isinstance(g, dict):
        ratios["gpu_end_to_end_over_model_only"] = g["end_to_end_over_model_only"]
        targets["4_gpu_3000_images_per_s_and_80pct_of_model_only"] = {
            "end_to_end_images_per_s": g["images_per_s"]["end_to_end"], "share": g["end_to_end_over_model_only"],
            "met": g["images_per_s"]["end_to_end"] >= 3000 and g["end_to_end_over_model_only"] >= 0.8}
    elif g is not None:
        targets["4_gpu_3000_images_per_s_and_80pct_of_model_only"] = g
    return ratios, targets


if __name__ == "__main__":
    main()
