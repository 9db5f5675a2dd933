"""The paper's fixed-corruption table, severity shift, loss ablation and label efficiency on the embedded default.

Runs each as `mlflow run . -e experiment -P name=...` into one fresh MLflow store (so a later
experiment reuses the students an earlier one trained with the same configuration), and writes
the tables and wall times to benchmarks/results/experiments.json. The embedded data are cut to
``--limit_per_class`` images per class and split so that this fits a 2-core CPU session.

    python benchmarks/experiments.py                       # about 25 minutes on 2 CPU cores
    python benchmarks/experiments.py --limit_per_class 600 # the whole embedded set
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pandas as pd
from harness import ROOT, machine_line, temporary_store, write_result

EXPERIMENTS = ["fixed_corruption", "severity_shift", "loss_ablation", "label_efficiency"]


def main() -> None:
    import mlflow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit_per_class", type=int, default=150)
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS))
    args = parser.parse_args()
    results = {"machine": machine_line(),
               "limit_per_class": args.limit_per_class, "experiments": {}}
    with temporary_store() as (_, env):
        for name in args.experiments.split(","):
            command = [sys.executable, "-m", "mlflow", "run", ".", "--env-manager", "local", "-e", "experiment",
                       "-P", f"name={name}", "-P", f"limit_per_class={args.limit_per_class}"]
            started = time.perf_counter()
            proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            run = mlflow.search_runs(filter_string=f"tags.`cinv.experiment` = '{name}' AND tags.`cinv.stage` = 'experiment'",
                                     output_format="list")[0]
            table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/{name}.csv"))
            shown = table.assign(top1=table["top1_mean"].map("{:.2f}".format) + " ± " + table["top1_se"].map("{:.2f}".format))
            shown = shown.drop(columns=[c for c in table.columns if c.endswith(("_mean", "_se"))])
            results["experiments"][name] = {
                "command": "mlflow run . --env-manager local -e experiment -P name=" + name
                           + f" -P limit_per_class={args.limit_per_class}",
                "wall_time_s": round(wall, 1), "rows": table.to_dict(orient="records"),
                "table": shown.to_markdown(index=False)}
            print(f"## {name} ({wall / 60:.1f} min)\n{shown.to_markdown(index=False)}\n", flush=True)
            write_result("experiments", results)  # after each, so a failure keeps the others


if __name__ == "__main__":
    main()
