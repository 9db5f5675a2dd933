"""The README Quickstart's main job, verbatim, timed, with its comparison table.

Runs `mlflow run . --env-manager local` from the repository root against a fresh temporary
MLflow store, then reads the parent run: wall time, the four rows (mean ± s.e. over 10 draws),
and whether the student clearly beats the teacher's original representations (by more than
5 standard errors of the difference and 5 points). Writes benchmarks/results/main_job.json.

    python benchmarks/main_job.py        # about 5 minutes on 2 CPU cores
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import mlflow
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)  # the store's default artifact folder goes here, not into the checkout
        mlflow.set_tracking_uri(uri)
        mlflow.MlflowClient().search_experiments()
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TQDM_DISABLE": "1"}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mlflow", "run", ".", "--env-manager", "local"], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        parent = next(r for r in mlflow.search_runs(output_format="list") if "mlflow.parentRunId" not in r.data.tags)
        table = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/results.md")
        m = parent.data.metrics
    gain = m["student_top1_mean"] - m["teacher_corrupted_top1_mean"]
    gain_se = (m["student_top1_se"] ** 2 + m["teacher_corrupted_top1_se"] ** 2) ** 0.5
    result = {
        "command": "mlflow run . --env-manager local",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}",
        "wall_time_s": round(wall, 1),
        "metrics": {k: round(v, 4) for k, v in m.items() if k.endswith(("_top1_mean", "_top1_se"))},
        "student_gain_over_original_representations": round(gain, 2),
        "clearly_beats": gain > max(5 * gain_se, 5.0),
        "table": table,
    }
    out = Path(__file__).with_name("results") / "main_job.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table)
    print(f"wall time {wall / 60:.1f} min; student - original = {gain:+.2f} (s.e. {gain_se:.2f}); {result['machine']}")
    if not result["clearly_beats"]:
        raise SystemExit("the student does not clearly beat the teacher's original representations")


if __name__ == "__main__":
    main()
