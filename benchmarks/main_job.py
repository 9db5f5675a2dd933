"""The README Quickstart's main job, verbatim, timed, with its comparison table.

Runs `mlflow run . --env-manager local` from the repository root against a fresh temporary
MLflow store, then reads the parent run: wall time, the four rows (mean ± s.e. over 10 draws),
and whether the student clearly beats the teacher's original representations (by more than
5 standard errors of the difference and 5 points). Writes benchmarks/results/main_job.json.
With ``--seeds 0,1,2`` it runs `-P seeds=0,1,2` instead (independent trainings, s.e. across
seeds) and writes benchmarks/results/main_seeds.json with each seed's top-1 per model.

    python benchmarks/main_job.py                  # about 5 minutes on 2 CPU cores
    python benchmarks/main_job.py --seeds 0,1,2    # about 15 minutes
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from harness import ROOT, machine_line, temporary_store, write_result


def main() -> None:
    import mlflow
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="", help="independent training seeds, e.g. 0,1,2 (writes main_seeds.json)")
    args = parser.parse_args()
    command = ["mlflow", "run", ".", "--env-manager", "local"] + (["-P", f"seeds={args.seeds}"] if args.seeds else [])
    with temporary_store() as (_, env):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        parent = next(r for r in mlflow.search_runs(output_format="list") if "mlflow.parentRunId" not in r.data.tags)
        table = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/results.md")
        per_seed = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{parent.info.run_id}/results_per_seed.csv"))
        m = parent.data.metrics
    gain = m["student_top1_mean"] - m["teacher_corrupted_top1_mean"]
    gain_se = (m["student_top1_se"] ** 2 + m["teacher_corrupted_top1_se"] ** 2) ** 0.5
    machine = machine_line()
    if args.seeds:
        names = {"Student (contrastive inversion)": "student", "Teacher's original representations": "original",
                 "Supervised baseline (end to end)": "baseline", "Teacher, clean images (reference)": "teacher_clean"}
        seeds = sorted(per_seed["seed"].unique().tolist())
        out = {"command": " ".join(command), "machine": machine, "wall_s": round(wall, 1), "seeds": seeds,
               **{names[model]: [round(v, 4) for v in part.sort_values("seed")["top1_mean"]]
                  for model, part in per_seed.groupby("model")},
               "metrics": {k: round(v, 4) for k, v in m.items() if k.endswith(("_top1_mean", "_top1_se"))}, "table": table}
        write_result("main_seeds", out)
        print(table)
        print(f"wall time {wall / 60:.1f} min; {machine}")
        return
    result = {
        "command": " ".join(command),
        "machine": machine,
        "wall_time_s": round(wall, 1),
        "metrics": {k: round(v, 4) for k, v in m.items() if k.endswith(("_top1_mean", "_top1_se"))},
        "student_gain_over_original_representations": round(gain, 2),
        "clearly_beats": gain > max(5 * gain_se, 5.0),
        "table": table,
    }
    write_result("main_job", result)
    print(table)
    print(f"wall time {wall / 60:.1f} min; student - original = {gain:+.2f} (s.e. {gain_se:.2f}); {result['machine']}")
    if not result["clearly_beats"]:
        raise SystemExit("the student does not clearly beat the teacher's original representations")


if __name__ == "__main__":
    main()
