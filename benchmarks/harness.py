"""What every benchmark shares: the machine it ran on, a fresh process per measurement, ABBA rounds
for side-by-side timings, a throwaway MLflow store, and the results file.

Benchmarks use cinv's public API only (no ``_private`` names), through the checkout's own package.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the checkout's own cinv


def machine(device: str = "cpu") -> dict:
    """CPU model, cores, memory, platform and library versions, and the GPU when there is one."""
    import numpy as np
    import torch

    def first(path: str, key: str):
        if not Path(path).exists():
            return None
        return next((line.split(":", 1)[1].strip() for line in Path(path).read_text().splitlines() if line.startswith(key)), None)

    memory = first("/proc/meminfo", "MemTotal")
    cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    return {
        "cpu": first("/proc/cpuinfo", "model name") or platform.processor(), "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "memory_mib": int(memory.split()[0]) // 1024 if memory else None,
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "device": str(device), "gpu": torch.cuda.get_device_name(device) if cuda else None,
    }


def machine_line(device: str = "cpu") -> str:
    """One line for a results file: architecture, cores, torch, GPU."""
    import torch

    gpu = f"CUDA {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {gpu}"


def interleave(runs: dict[str, Callable[[int], float]], rounds: int) -> dict[str, list[float]]:
    """ABBA: even rounds in the given order, odd rounds reversed, so a drifting load weighs on every
    side alike; each run takes the round number and returns a rate."""
    names = list(runs)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            out[n].append(runs[n](r))
    return out


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def rnd(x: float, digits: int = 1) -> float:
    return round(float(x), digits)


def fresh_process(script: str | Path, *args: str, env: dict | None = None, cwd: str | Path | None = None,
                  timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python script args...`` in a new process: no allocator state, threads or workers inherited."""
    return subprocess.run([sys.executable, str(script), *args], env={**os.environ, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def temporary_store() -> Iterator[tuple[str, dict]]:
    """A fresh SQLite MLflow store in a temporary folder (also the working directory inside):
    yields its URI and the environment a subprocess needs to use it."""
    import mlflow

    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)  # the store's default artifact folder goes here, not into the checkout
        try:
            mlflow.set_tracking_uri(uri)
            mlflow.MlflowClient().search_experiments()
            yield uri, {**os.environ, "MLFLOW_TRACKING_URI": uri, "TQDM_DISABLE": "1"}
        finally:
            os.chdir(previous)


def measured_at() -> str:
    """The checkout's commit, with "+ uncommitted changes" when the code differs from it (results
    files, which a benchmark rewrites as it goes, do not count), so a results file says which code
    produced it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
    return commit + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){RESULTS.relative_to(ROOT)}") else "")


def write_result(name: str, result: dict) -> Path:
    """``benchmarks/results/<name>.json``, with the commit it was measured at."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**result, "measured_at": result.get("measured_at") or measured_at()}, indent=1) + "\n")
    return path


def mlflow_run(entry: str, params: dict, env: dict) -> tuple[str, float]:
    """``mlflow run . -e entry -P k=v ...`` from the repository root, as a user types it; returns
    the command line (for the results file) and its wall time. Stops with the tail of its output
    when it fails."""
    import time

    args = ["mlflow", "run", ".", "--env-manager", "local", "-e", entry]
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return " ".join(args), wall


def latest_run(tags: dict[str, str]):
    """The newest run (any experiment) with these tags (keys from ``cinv.tracking.schema``)."""
    import mlflow

    where = " AND ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    return mlflow.search_runs(search_all_experiments=True, filter_string=where, order_by=["attributes.start_time DESC"],
                              max_results=1, output_format="list")[0]


def across_seeds(values: list[float]) -> str:
    """mean ± standard error across independent seeds, as the README prints it."""
    n = len(values)
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / n**0.5 if n > 1 else float("nan")
    return f"{mean:.2f} ± {se:.2f}"
