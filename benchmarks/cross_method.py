"""The cross-method `benchmark` with independent training seeds on the embedded default.

Runs `mlflow run . -e benchmark -P seeds=... -P limit_per_class=...` into a fresh MLflow store and
writes benchmarks/results/benchmark.json: the command, machine, wall time, seeds, every method's
top-1 (%) per corruption and per seed (each a mean over that seed's corruption draws), and the
table the run logged (mean ± s.e. across seeds).

    python benchmarks/cross_method.py                                  # the README's table: about 40 min on 2 CPU cores
    python benchmarks/cross_method.py --seeds 0,1 --limit_per_class 20 --attack_images 100   # a smoke run, about 8 min
"""

from __future__ import annotations

import argparse
import time

from harness import latest_run, machine_line, mlflow_run, temporary_store, write_result


def main() -> None:
    import mlflow

    from cinv.tracking import schema

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="independent training seeds")
    parser.add_argument("--limit_per_class", type=int, default=150)
    parser.add_argument("--attack_images", type=int, default=None, help="PGD sample size (the benchmark's default: 500)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    with temporary_store() as (_, env):
        params = {"seeds": args.seeds, "limit_per_class": args.limit_per_class}
        if args.attack_images:
            params["attack_images"] = args.attack_images
        command, wall = mlflow_run("benchmark", params, env)
        parent = latest_run({schema.STAGE: "experiment", schema.EXPERIMENT: "benchmark"})
        client = mlflow.MlflowClient()
        rows = client.load_table(parent.info.experiment_id, "benchmark_per_seed.json", run_ids=[parent.info.run_id])
        table = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/benchmark.md")
    per_method: dict = {}
    for (method, corruption), group in rows.groupby(["method", "corruption"], sort=False):
        per_method.setdefault(method, {})[corruption] = [round(float(v), 2) for v in group.sort_values("seed")["top1_mean"]]
    out = {"command": command, "machine": machine_line(), "wall_s": round(time.perf_counter() - started, 1),
           "seeds": seeds, "limit_per_class": args.limit_per_class, "top1": per_method, "table": table}
    write_result("benchmark", out)
    print(table)
    print(f"\nwall {wall / 60:.1f} min; {out['machine']}")


if __name__ == "__main__":
    main()
