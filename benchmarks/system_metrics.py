"""What MLflow's system metrics cost the main job: the Quickstart's job with ``system_metrics=true``
and ``=false``, in turn (ABBA), each in a fresh store. Writes ``benchmarks/results/system_metrics.json``
with both wall times, the overhead in per cent, and how many system-metric points the "on" run logged.

    python benchmarks/system_metrics.py              # 2 rounds, about 15 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse

from harness import interleave, machine, median, mlflow_run, rnd, temporary_store, write_result


def main() -> None:
    import mlflow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    points: dict[str, int] = {}

    def job(on: bool):
        def run(_round: int) -> float:
            with temporary_store() as (_, env):
                _, wall = mlflow_run("main", {"system_metrics": str(on).lower()}, env)
                parent = next(r for r in mlflow.search_runs(output_format="list") if "mlflow.parentRunId" not in r.data.tags)
                points["on" if on else "off"] = sum(len(mlflow.MlflowClient().get_metric_history(parent.info.run_id, k))
                                                    for k in parent.data.metrics if k.startswith("system/"))
            return wall
        return run

    walls = interleave({"off": job(False), "on": job(True)}, args.rounds)
    off, on = median(walls["off"]), median(walls["on"])
    write_result("system_metrics", {
        "command": f"python benchmarks/system_metrics.py --rounds {args.rounds}", "machine": machine(),
        "wall_s": {k: [rnd(v) for v in vs] for k, vs in walls.items()}, "wall_s_off": rnd(off), "wall_s_on": rnd(on),
        "overhead_percent": rnd(100 * (on - off) / off, 2), "system_metric_points_on": points.get("on", 0),
        "system_metric_points_off": points.get("off", 0)})


if __name__ == "__main__":
    main()
