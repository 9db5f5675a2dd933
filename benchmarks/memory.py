"""Peak memory of the embedded main job, of one 224-px student step, and of evaluation by draws.

Each figure comes from a fresh Python process (this script re-runs itself with ``--worker``), so
no measurement inherits another's high-water mark; this parent process imports nothing heavy.

- CPU: peak resident set size. ``resource.getrusage`` (``ru_maxrss``) gives each process's
  lifetime peak; for one phase inside a process (the training step, the evaluation) the kernel's
  high-water mark is reset at the start of the phase (``/proc/self/clear_refs``) and read back
  from ``VmHWM`` at its end, so the phase's own peak is separated from loading the model and data.
- CUDA (when available): ``torch.cuda.max_memory_allocated`` over the same phase.

Measured: (a) the embedded main job, ``entrypoints/main.py`` run as ``__main__`` with its defaults
(optionally ``--limit_per_class``) against a temporary SQLite MLflow store, TQDM_DISABLE=1;
(b) one student training step at 224 px through cinv's ``fit`` at the student command's default
batch size (256), after a batch of 32: a larger batch runs only when its peak, extrapolated from
the smaller ones, fits in the memory available (else it is recorded as skipped, with the
prediction); (c) ``evaluation.evaluate`` with 1 and with 10 draws: the peak must not grow with
the number of draws (the resident size at the start of every draw is recorded too).
Writes benchmarks/results/memory.json.

    python benchmarks/memory.py                             # full main job: about 10 min on 2 idle CPU cores
    python benchmarks/memory.py --limit-per-class 100       # a shorter main job
    python benchmarks/memory.py --skip-main-job --step-batch 64 256 --eval-test-per-class 50
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, fresh_process, machine

MIB = 1024  # ru_maxrss and VmHWM are in KiB on Linux


# ---- measuring, inside a worker -------------------------------------------------------------


def status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def lifetime_peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Phase:
    """Peak RSS (and CUDA allocation) of one phase of this process, from a reset high-water mark."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def __enter__(self) -> Phase:
        import torch

        self.lifetime_before = lifetime_peak_kib()
        self.rss_before = status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.reset = True
        except OSError:
            self.reset = False
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.cuda_before = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        self.peak = status_kib("VmHWM") if self.reset else lifetime_peak_kib()
        self.lifetime = max(self.lifetime_before, lifetime_peak_kib(), self.peak or 0)
        if self.cuda:
            torch.cuda.synchronize()
            self.cuda_peak = torch.cuda.max_memory_allocated()

    def result(self) -> dict:
        out = {
            "rss_before_mib": round(self.rss_before / MIB, 1),
            "peak_rss_mib": round(self.peak / MIB, 1),
            "peak_rss_growth_mib": round((self.peak - self.rss_before) / MIB, 1),
            "process_lifetime_peak_rss_mib": round(self.lifetime / MIB, 1),
            "phase_peak_method": "VmHWM after /proc/self/clear_refs reset" if self.reset else "ru_maxrss (no reset possible)",
        }
        if self.cuda:
            out["cuda_allocated_before_mib"] = round(self.cuda_before / 2**20, 1)
            out["cuda_max_allocated_mib"] = round(self.cuda_peak / 2**20, 1)
        return out


def worker_info(_: dict) -> dict:
    import torch

    import cinv.cli  # noqa: F401  (the floor: interpreter + torch + every cinv command)

    return {**machine("cuda" if torch.cuda.is_available() else "cpu"),
            "import_torch_and_cinv_peak_rss_mib": round(lifetime_peak_kib() / MIB, 1)}


def worker_main_job(params: dict) -> dict:
    """``python entrypoints/main.py [args]``, executed as ``__main__`` in this fresh process."""
    import runpy

    script = ROOT / "entrypoints" / "main.py"
    sys.argv = [str(script), *params["args"]]
    started = time.perf_counter()
    code = 0
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    wall = time.perf_counter() - started
    out = {"exit_code": code, "wall_s": round(wall, 1),
           "peak_rss_mib": round(lifetime_peak_kib() / MIB, 1),
           "children_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / MIB, 1)}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        out["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def worker_student_step(params: dict) -> dict:
    """One optimiser step of cinv's student training (fit + inversion_objective) at 224 px."""
    from torch.utils.data import Subset

    from cinv import corruption, encoders, losses
    from cinv.data.datasets import load_splits
    from cinv.methods import METHODS
    from cinv.methods.student import inversion_objective
    from cinv.runtime import native_bf16, resolve_device, resolve_precision
    from cinv.training.context import Setup
    from cinv.training.loop import Optim, fit

    batch, size = params["batch"], params["image_size"]
    device = resolve_device("auto")
    opts = METHODS.get("student").configure("paper")
    splits = load_splits("embedded", None, size, 0.05, 0)
    s = Setup(splits, corruption.get("random_mask", fraction=0.9), device, 0, 0, resolve_precision(device))
    teacher = encoders.freeze(encoders.get(params["teacher"])).to(device)
    student = encoders.student_from(teacher)
    loss = losses.get(opts.loss, temperature=opts.temperature)
    stream = s.stream("train", batch_size=batch, purpose="train", dataset=Subset(splits.train, list(range(batch))))
    assert len(stream) == 1
    with Phase(device.type == "cuda") as phase:
        history = fit(student, inversion_objective(student, teacher, loss, s.precision), stream,
                      Optim(epochs=1, lr=opts.lr, weight_decay=opts.weight_decay), desc="student", precision=s.precision)
    assert history.steps == 1
    return {"image_size": size, "batch_size": batch, "teacher": params["teacher"], "device": str(device),
            "precision": "bf16 autocast" if device.type == "cuda" else
            "student fp32, frozen teacher " + ("bf16" if native_bf16(device) else "fp32"), **phase.result()}


def worker_evaluate(params: dict) -> dict:
    """evaluation.evaluate of a probe (frozen teacher + linear head) with ``draws`` draws."""
    import torch

    from cinv import corruption, encoders
    from cinv.config.options import EvalOptions
    from cinv.data.datasets import TensorImages, load_splits, stratified_indices
    from cinv.encoders import Classifier
    from cinv.evaluation.metrics import evaluate
    from cinv.runtime import resolve_device, resolve_precision
    from cinv.training.context import Setup

    device = resolve_device("auto")
    splits = load_splits("embedded", None, params["image_size"], 0.05, 0)
    if params["test_per_class"]:
        picks = stratified_indices(splits.test.targets, per_class=params["test_per_class"], seed=0)
        splits.test = TensorImages(splits.test.images[picks], splits.test.labels[picks])
    s = Setup(splits, corruption.get("random_mask", fraction=0.9), device, 0, 0, resolve_precision(device))
    teacher = encoders.freeze(encoders.get(params["teacher"])).to(device)
    model = Classifier(teacher, splits.num_classes, teacher.embed_dim)
    model = model.reset_head(torch.Generator().manual_seed(0)).to(device).eval()
    opts = EvalOptions()
    stream = s.stream("test", batch_size=opts.batch_size, purpose="eval", seed=opts.draw_seed)
    per_draw_rss = []
    epoch = stream.epoch

    def recording_epoch(index, state=None):  # evaluate starts each draw with stream.epoch(draw)
        per_draw_rss.append(round(status_kib("VmRSS") / MIB, 1))
        return epoch(index, state)

    stream.epoch = recording_epoch
    started = time.perf_counter()
    with Phase(device.type == "cuda") as phase:
        result = evaluate(model, stream, params["draws"], precision=s.precision)
    return {"draws": len(result.draws), "test_images": len(splits.test), "image_size": splits.image_size,
            "batch_size": opts.batch_size, "device": str(device), "wall_s": round(time.perf_counter() - started, 1),
            "rss_at_start_of_each_draw_mib": per_draw_rss, **phase.result()}


WORKERS = {"info": worker_info, "main_job": worker_main_job, "student_step": worker_student_step,
           "evaluate": worker_evaluate}


# ---- the parent: one fresh process per measurement -----------------------------------------


def measure(task: str, params: dict, env: dict, cwd: str) -> dict:
    proc = fresh_process(Path(__file__).resolve(), "--worker", task, json.dumps(params), env=env, cwd=cwd)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{task} {params} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1])
    print(f"{task} {params}: {out}", flush=True)
    return out


def mem_available_mib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def student_steps(args, env: dict, tmp: str) -> list[dict]:
    """Smallest batch first; a larger one runs only when its peak, extrapolated linearly from the
    batches already measured, fits in the memory available now (a shared machine has no swap)."""
    rows: list[dict] = []
    for batch in sorted(set(args.step_batch)):
        predicted = None
        if rows:
            (b0, m0), (b1, m1) = ((r["batch_size"], r["peak_rss_mib"]) for r in (rows[0], rows[-1]))
            per_image = (m1 - m0) / (b1 - b0) if b1 != b0 else (m0 - rows[0]["rss_before_mib"]) / b0
            predicted = round(m1 + per_image * (batch - b1), 1)
            available = mem_available_mib()
            if available is not None and predicted * 1.15 + 1024 > available:
                rows.append({"batch_size": batch, "image_size": args.step_size, "skipped": True,
                             "predicted_peak_rss_mib": predicted, "available_mib": round(available, 1),
                             "reason": "predicted peak (linear in the batch, from the measured batches) does not fit "
                                       "in the available memory with a 15% + 1 GiB margin"})
                print(f"student_step batch {batch}: skipped, predicted {predicted:.0f} MiB, available {available:.0f} MiB")
                continue
        row = measure("student_step", {"batch": batch, "image_size": args.step_size, "teacher": args.teacher}, env, tmp)
        if predicted is not None:
            row["predicted_peak_rss_mib"] = predicted
        rows.append(row)
    return rows


def independence(evals: list[dict]) -> dict:
    """Peak memory independent of the number of draws: the peaks with few and many draws differ by
    less than 10% of one evaluation's own working set, and the resident size at the start of the
    draws shows no upward trend (second half vs first half of the draws, within 16 MiB)."""
    low, high = evals[0], evals[-1]
    growth = high["peak_rss_mib"] - low["peak_rss_mib"]
    per_draw = high["rss_at_start_of_each_draw_mib"][1:]  # after the first draw's allocations
    half = len(per_draw) // 2
    trend = (sum(per_draw[half:]) / len(per_draw[half:]) - sum(per_draw[:half]) / half) if half else 0.0
    out = {
        "draws": [low["draws"], high["draws"]], "peak_rss_mib": [low["peak_rss_mib"], high["peak_rss_mib"]],
        "difference_mib": round(growth, 1), "one_evaluation_working_set_mib": low["peak_rss_growth_mib"],
        "rss_trend_over_draws_mib": round(trend, 1),
        "independent": growth <= 0.1 * low["peak_rss_growth_mib"] and trend <= 16,
    }
    if "cuda_max_allocated_mib" in low:  # CUDA: the allocator's peak, same 10% rule
        cuda = [low["cuda_max_allocated_mib"], high["cuda_max_allocated_mib"]]
        working = low["cuda_max_allocated_mib"] - low["cuda_allocated_before_mib"]
        out["cuda_max_allocated_mib"] = cuda
        out["independent"] = out["independent"] and cuda[1] - cuda[0] <= max(0.1 * working, 1.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit-per-class", type=int, default=None, help="(a) the main job's --limit_per_class (default: all)")
    parser.add_argument("--skip-main-job", action="store_true", help="leave out (a)")
    parser.add_argument("--step-batch", type=int, nargs="+", default=[32, 256],
                        help="(b) batch sizes of the 224-px step (256: the student default); the smallest runs first and "
                             "a larger one only if its extrapolated peak fits in the available memory")
    parser.add_argument("--step-size", type=int, default=224, help="(b) image size")
    parser.add_argument("--draws", type=int, nargs="+", default=[1, 10], help="(c) numbers of evaluation draws")
    parser.add_argument("--eval-test-per-class", type=int, default=None, help="(c) test images per class (default: all 200)")
    parser.add_argument("--teacher", default="efficientnet_lite0")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "memory.json")
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "PARAMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        task, params = args.worker
        print(json.dumps(WORKERS[task](json.loads(params))), flush=True)
        return

    started = time.perf_counter()
    result: dict = {"command": "python benchmarks/memory.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:]),
                    "method": "each figure from a fresh process; CPU: peak RSS (getrusage ru_maxrss for a whole "
                              "process, VmHWM after a clear_refs reset for one phase); CUDA: max_memory_allocated"}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "TQDM_DISABLE": "1"}
        result["machine"] = measure("info", {}, env, tmp)
        result["load_average_before"] = [round(v, 2) for v in os.getloadavg()]
        if not args.skip_main_job:
            main_args = [] if args.limit_per_class is None else ["--limit_per_class", str(args.limit_per_class)]
            result["main_job"] = {"command": "python entrypoints/main.py" + "".join(f" {a}" for a in main_args)
                                  + "  (run as __main__ in a fresh process; MLFLOW_TRACKING_URI=sqlite:///<tmp>/mlflow.db)",
                                  **measure("main_job", {"args": main_args}, env, tmp)}
            if result["main_job"]["exit_code"] != 0:
                raise SystemExit(f"the main job failed: {result['main_job']}")
        result["student_step_224px"] = student_steps(args, env, tmp)
        evals = [measure("evaluate", {"draws": d, "image_size": 48, "test_per_class": args.eval_test_per_class,
                                      "teacher": args.teacher}, env, tmp) for d in args.draws]
        result["evaluation_by_draws"] = evals
        result["evaluation_memory_independent_of_draws"] = independence(evals)
        result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
