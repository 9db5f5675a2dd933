"""cinv's CUDA path, checked in one call on a GPU machine (issue 40); writes benchmarks/results/gpu.json.

Each check runs in its own process with its own time limit, so one that hangs or fails leaves the
others' figures, and the file is rewritten after each:

- ``tests``: ``pytest -m gpu tests/test_gpu.py`` (bf16 and fp32 training, no TF32 in fp32, the
  corruptions on the device with the CPU's statistics, ``student_compile``), its counts;
- ``main_job``: ``cinv main --device cuda`` on the embedded default, its table and wall time;
- ``throughput``: ``benchmarks/throughput.py`` section 4 on a folder of ImageNet-sized JPEGs (the 20
  photos of ../shared/data/imagenet-samples re-encoded at 500x375 and repeated, 10,240 of them,
  made once for every check): open_clip RN101 in
  bf16, images/s end to end and model only (target: >= 3,000 img/s end to end on one H100 and
  >= 80% of model only);
- ``train``: the student at paper scale (RN101 student and frozen RN101 teacher, random weights,
  224 px, bf16, batch 256) through the Trainer, images/s on the real data path vs the same step on
  synthetic input, without and with ``compile`` (goal: >= 80%), and the step's peak GPU memory;
- ``paper_step``: the paper preset's student step (``preset=paper``) for 50 steps on the real data
  path: the loss finite and falling, images/s, peak memory.

On a machine without CUDA, ``--smoke`` runs every check's code on the CPU at toy sizes (a small
encoder, 64 px, batch 8, a few steps) and writes nothing to benchmarks/results; the figures then
say nothing about speed:

    bash benchmarks/gpu_check.sh                         # on the GPU machine (it installs what it needs)
    python benchmarks/gpu_check.py --smoke --out /tmp/gpu_smoke.json   # here, before spending GPU time
    python benchmarks/gpu_check.py --only train paper_step             # some checks; the file keeps the others
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from harness import RESULTS, ROOT, machine_line, measured_at, rnd

SAMPLES = ROOT.parent / "shared" / "data" / "imagenet-samples"
PER_CLASS = 1024  # 10,240 training JPEGs: 40 batches of 256 an epoch, so a timed run does not cross an epoch's end
LIMITS_S = {"tests": 150, "main_job": 150, "throughput": 110, "train": 240, "paper_step": 90}  # torch.compile of RN101 takes minutes


def jpeg_folder(source: Path, root: Path, per_class: int, size: tuple[int, int] = (500, 375), classes: int = 10) -> Path:
    """A folder dataset of ImageNet-sized JPEGs (train/ and val/, ``classes`` classes): the sample
    photos resized to ``size`` and saved again (quality 90) under new names until each class holds
    ``per_class``: what a decode costs on ImageNet, without ImageNet."""
    from PIL import Image

    photos = sorted(source.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no JPEG in {source}: give --samples (../shared/data/imagenet-samples)")
    encoded = []
    for path in photos:
        tmp = root / "src" / path.name
        tmp.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").resize(size).save(tmp, quality=90)
        encoded.append(tmp.read_bytes())
    for split, n in (("train", per_class), ("val", max(2, per_class // 10))):
        for c in range(classes):
            folder = root / split / f"c{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (folder / f"{i:05d}.jpg").write_bytes(encoded[(c * 7 + i) % len(encoded)])
    return root


# ---- the checks (each in its own process) ------------------------------------------------


def check_tests(args, work: Path) -> dict:
    report = work / "gpu_tests.xml"
    env = {**os.environ, **({"CINV_GPU_TEST_DEVICE": "cpu"} if args.smoke else {})}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "tests/test_gpu.py", "-p", "no:cacheprovider",
                           "-n", "0", "-q", f"--junitxml={report}"], cwd=ROOT, env=env, capture_output=True, text=True)
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None
              or case.find("error") is not None]
    return {"command": "python -m pytest -m gpu tests/test_gpu.py -n 0", "passed": counts["tests"] - counts["failures"]
            - counts["errors"] - counts["skipped"], "failed": counts["failures"] + counts["errors"],
            "skipped": counts["skipped"], "failed_tests": failed, "output_tail": proc.stdout[-1500:]}


def check_main_job(args, work: Path) -> dict:
    import mlflow

    store = f"sqlite:///{work / 'mlflow.db'}"
    command = [sys.executable, "-m", "cinv.cli", "main", "--device", args.device]
    if args.smoke:
        command += ["--limit_per_class", "4", "--image_size", "32", "--student_epochs", "1", "--baseline_epochs", "1",
                    "--probe_epochs", "1", "--eval_draws", "1"]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=work, env={**os.environ, "MLFLOW_TRACKING_URI": store}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return {"command": shlex.join(command[1:]), "returncode": proc.returncode, "stderr_tail": proc.stderr[-3000:]}
    mlflow.set_tracking_uri(store)
    parent = next(r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                  if "mlflow.parentRunId" not in r.data.tags)
    return {"command": "cinv " + shlex.join(command[3:]), "wall_s": rnd(wall), "run_tags_autocast": parent.data.tags.get("cinv.autocast"),
            "table": mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/results.md")}


def check_throughput(args, work: Path) -> dict:
    out = work / "throughput.json"
    folder = args.jpegs
    extra = (["--quick", "--gpu-batch", "8", "--gpu-iters", "2", "--rounds", "1", "--gpu-model", "efficientnet_lite0",
              "--gpu-workers", "2"] if args.smoke else ["--rounds", "2", "--gpu-workers", str(args.workers)])
    command = [sys.executable, "benchmarks/throughput.py", "--sections", "4", "--device", args.device,
               "--gpu-images", str(folder), "--out", str(out), *extra]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"returncode": proc.returncode, "stderr_tail": proc.stderr[-3000:]}
    section = json.loads(out.read_text())["sections"]["gpu_open_clip_rn101"]
    shown = shlex.join(["python", *command[1:]]).replace(str(folder), "<jpegs>").replace(str(out), "<out>")
    return {"command": shown, **section}


def student_setup(args):
    """The run context of the student at paper scale: the JPEG folder at 224 px (64 px on --smoke),
    the frozen teacher (open_clip RN101, random weights; efficientnet_lite0 on --smoke), bf16."""
    import torch

    from cinv import corruption, encoders
    from cinv.context import Setup
    from cinv.data.datasets import load_splits
    from cinv.runtime import use_precision

    device = torch.device(args.device)
    splits = load_splits(str(args.jpegs), None, 64 if args.smoke else 224, 0.0, 0)
    teacher = encoders.freeze(encoders.get("efficientnet_lite0" if args.smoke else "open_clip:RN101", "none")).to(device)
    return Setup(splits, corruption.from_spec("random_mask(fraction=0.9)"), device, 0, 2 if args.smoke else args.workers,
                 use_precision(device, "auto"), teacher)


def steps_per_s(trainer, batches, steps: int, warmup: int) -> tuple[float, list[float]]:
    """Optimiser steps a second over ``steps`` steps after ``warmup`` untimed ones, and every loss."""
    import torch

    device = next(trainer.model.parameters()).device
    losses = []
    for i, views in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        if i == warmup + steps:
            break
        trainer.running, trainer.batches = 0.0, 0
        losses.append(trainer.step(views, 0))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps / (time.perf_counter() - t0), losses


def student_trainer(s, opts):
    from cinv.methods import METHODS
    from cinv.training.loop import Trainer

    method = METHODS.get("student")
    model = method.build(s, opts)
    stream = method.stream(s, opts)
    trainer = Trainer(model, method.objective(model, s, opts, stream), stream, method.optim(opts), precision=s.precision,
                      announce=False)
    trainer.current = stream.epoch(0)
    return trainer, stream


def peak_mib(device) -> float | None:
    import torch

    return rnd(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None


def check_train(args, work: Path) -> dict:
    import itertools

    import torch

    from cinv.methods import METHODS

    batch, steps, warmup = (8, 2, 1) if args.smoke else (256, 12, 4)
    s = student_setup(args)
    out = {"student": "the teacher's copy, trained; teacher frozen", "batch_size": batch, "timed_steps": steps,
           "warmup_steps": warmup, "precision": s.precision.describe(), "image_size": s.splits.image_size, "runs": {}}
    for compiled in (False, True):
        opts = METHODS.get("student").configure("paper", batch_size=batch, compile=compiled, registered_model_name="")
        if s.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(s.device)
        trainer, stream = student_trainer(s, opts)
        real = itertools.chain.from_iterable(stream.epoch(e) for e in itertools.count())
        rate, _ = steps_per_s(trainer, real, steps, warmup)
        fixed = next(iter(stream.epoch(99)))  # one batch already on the device, again and again: no data path
        synthetic, _ = steps_per_s(trainer, itertools.repeat(fixed), steps, warmup)
        key = "compiled" if compiled else "eager"
        out["runs"][key] = {"real_img_s": rnd(rate * batch), "synthetic_img_s": rnd(synthetic * batch),
                            "fraction_of_synthetic": rnd(rate / synthetic, 3), "peak_memory_mib": peak_mib(s.device)}
        print(f"[train] {key}: {rate * batch:.0f} img/s real, {synthetic * batch:.0f} synthetic", flush=True)
    return out


def check_paper_step(args, work: Path) -> dict:
    import itertools
    import math

    import torch

    from cinv.methods import METHODS

    steps = 6 if args.smoke else 50
    s = student_setup(args)
    opts = METHODS.get("student").configure("paper", registered_model_name="", **({"batch_size": 8} if args.smoke else {}))
    if s.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(s.device)
    trainer, stream = student_trainer(s, opts)
    real = itertools.chain.from_iterable(stream.epoch(e) for e in itertools.count())
    rate, losses = steps_per_s(trainer, real, steps - 5 if not args.smoke else steps - 2, 5 if not args.smoke else 2)
    k = max(1, len(losses) // 5)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    return {"options": opts.model_dump(mode="json"), "steps": len(losses), "img_s": rnd(rate * opts.batch_size),
            "peak_memory_mib": peak_mib(s.device), "loss_first": rnd(first, 4), "loss_last": rnd(last, 4),
            "finite": all(math.isfinite(v) for v in losses), "falling": last < first,
            "losses": [rnd(v, 4) for v in losses]}


CHECKS = {"tests": check_tests, "main_job": check_main_job, "throughput": check_throughput, "train": check_train,
          "paper_step": check_paper_step}


# ---- the file -----------------------------------------------------------------------------


def summary(checks: dict) -> dict:
    """The headline keys issue 40 asks for, from the checks' own results (None where a check did not run)."""
    get = lambda name, *keys: _dig(checks.get(name), keys)
    eager = get("train", "runs", "eager") or {}
    compiled = get("train", "runs", "compiled") or {}
    return {"end_to_end_img_s": get("throughput", "images_per_s", "end_to_end"),
            "model_only_img_s": get("throughput", "images_per_s", "model_only"),
            "fraction_of_model_only": get("throughput", "end_to_end_over_model_only"),
            "train_img_s": eager.get("real_img_s"), "train_fraction_of_synthetic": eager.get("fraction_of_synthetic"),
            "train_compiled_img_s": compiled.get("real_img_s"),
            "train_compiled_fraction_of_synthetic": compiled.get("fraction_of_synthetic"),
            "peak_memory_mib": eager.get("peak_memory_mib"), "paper_step_img_s": get("paper_step", "img_s"),
            "paper_step_peak_mib": get("paper_step", "peak_memory_mib"),
            "gpu_tests": {k: get("tests", k) for k in ("passed", "failed", "skipped")}}


def _dig(value, keys):
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), help="run these checks; the file keeps the others'")
    parser.add_argument("--smoke", action="store_true", help="every check's code on the CPU at toy sizes (not a measurement)")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="the JPEGs the folder dataset is made of")
    parser.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1), help="DataLoader workers decoding JPEGs")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu.json")
    parser.add_argument("--jpegs", type=Path, help="the folder dataset of JPEGs (default: made from --samples in a temporary folder)")
    parser.add_argument("--check", help=argparse.SUPPRESS)  # one check, in this (fresh) process
    parser.add_argument("--check-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    args.device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if args.check:
        with tempfile.TemporaryDirectory() as work:
            args.check_out.write_text(json.dumps(CHECKS[args.check](args, Path(work)), default=str))
        return
    if args.device == "cpu" and not args.smoke:
        raise SystemExit("no CUDA device here: run on the GPU machine (benchmarks/gpu_check.sh), or --smoke to check the code")
    if args.smoke and args.out == RESULTS / "gpu.json":
        raise SystemExit("--smoke writes no result into benchmarks/results: give --out")
    with tempfile.TemporaryDirectory() as work:
        if args.jpegs is None:  # made once, read by every check
            args.jpegs = jpeg_folder(args.samples, Path(work) / "jpegs", 24 if args.smoke else PER_CLASS)
        run_checks(args, torch)


def run_checks(args, torch) -> None:
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result = {**previous, "gpu": torch.cuda.get_device_name() if args.device == "cuda" else "none (smoke run on the CPU)",
              "machine": machine_line(args.device), "smoke": args.smoke, "measured_at": measured_at(),
              "command": "bash benchmarks/gpu_check.sh" + ("" if not args.only else " --only " + " ".join(args.only)),
              "checks": dict(previous.get("checks", {}))}
    for name in args.only or CHECKS:
        started = time.perf_counter()
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            command = [sys.executable, __file__, "--check", name, "--check-out", tmp.name, "--jpegs", str(args.jpegs),
                       "--workers", str(args.workers), *(["--smoke"] if args.smoke else [])]
            try:
                proc = subprocess.run(command, capture_output=True, text=True, timeout=LIMITS_S[name] * (4 if args.smoke else 1))
                found = Path(tmp.name).read_text()
                checked = json.loads(found) if proc.returncode == 0 and found else {
                    "returncode": proc.returncode, "stderr_tail": proc.stderr[-3000:]}
            except subprocess.TimeoutExpired as stop:
                checked = {"timed_out_after_s": LIMITS_S[name], "stderr_tail": (stop.stderr or b"")[-3000:].decode(errors="replace")}
        checked["wall_s"] = rnd(time.perf_counter() - started)
        result["checks"][name] = checked
        result |= summary(result["checks"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        state = "ok" if "returncode" not in checked and "timed_out_after_s" not in checked else "FAILED"
        print(f"[{name}] {state} in {checked['wall_s']:.0f} s", flush=True)
    print(json.dumps({k: v for k, v in result.items() if k != "checks"}, indent=1))


if __name__ == "__main__":
    main()
