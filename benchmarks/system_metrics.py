"""What MLflow's system metrics cost: the monitor's own CPU time, and the main job's wall time.

1. The monitor alone: a fresh process holds a run open for ``--idle`` seconds with
   ``log_system_metrics`` on (sampling every ``--interval`` seconds, cinv's default), another with
   it off, in turn (ABBA); the difference of their CPU
   times is what the monitor's thread takes, and its share of this machine's CPU capacity is
   what it can cost a job that keeps every core busy (the main job).
2. With ``--main-rounds N``: the Quickstart's job with ``system_metrics=true`` and ``=false``, in
   turn (ABBA), each in a fresh store: wall times and the overhead in per cent (noisy: a job's
   wall time varies by a few per cent from run to run on a shared machine).

Writes ``benchmarks/results/system_metrics.json``.

    python benchmarks/system_metrics.py                      # about 5 minutes
    python benchmarks/system_metrics.py --main-rounds 2      # and about 17 minutes more
"""

from __future__ import annotations

import argparse
import json
import os

from harness import fresh_process, interleave, machine, median, mlflow_run, rnd, temporary_store, write_result

from cinv.cli import SAMPLING, SAMPLING_S

IDLE = r"""
import json, resource, sys, time
import mlflow
on, seconds = sys.argv[1] == "on", float(sys.argv[2])
mlflow.set_tracking_uri(sys.argv[3])
with mlflow.start_run(log_system_metrics=on) as run:
    time.sleep(1)  # the monitor starts
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before = usage.ru_utime + usage.ru_stime
    time.sleep(seconds)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before
points = sum(len(mlflow.MlflowClient().get_metric_history(run.info.run_id, k))
             for k in mlflow.get_run(run.info.run_id).data.metrics if k.startswith("system/"))
print(json.dumps({"cpu_s": cpu, "points": points}))
"""


def main() -> None:
    import mlflow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=60, help="seconds each monitor process holds its run open")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds of the monitor measurement")
    parser.add_argument("--main-rounds", type=int, default=0, help="ABBA rounds of the main job (0: skip)")
    parser.add_argument("--interval", type=float, default=float(SAMPLING_S),
                        help=f"the monitor's sampling interval in seconds (cinv's default {SAMPLING_S}; MLflow's 10)")
    args = parser.parse_args()
    points: dict[str, int] = {}
    cpus = len(os.sched_getaffinity(0))

    def monitor(on: bool):
        def run(_round: int) -> float:
            with temporary_store() as (uri, env):
                proc = fresh_process("-c", IDLE, "on" if on else "off", str(args.idle), uri,
                                     env={**env, SAMPLING: f"{args.interval:g}"})
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            points["monitor_on" if on else "monitor_off"] = out["points"]
            return out["cpu_s"]
        return run

    cpu = interleave({"off": monitor(False), "on": monitor(True)}, args.rounds)
    monitor_cpu_s = median(cpu["on"]) - median(cpu["off"])
    result = {"command": f"python benchmarks/system_metrics.py --idle {args.idle:g} --rounds {args.rounds} "
                         f"--main-rounds {args.main_rounds} --interval {args.interval:g}", "machine": machine(),
              "sampling_interval_s": args.interval,
              "monitor_cpu_s": {k: [rnd(v, 3) for v in vs] for k, vs in cpu.items()}, "monitor_seconds": args.idle,
              "monitor_cpu_s_per_minute": rnd(60 * monitor_cpu_s / args.idle, 3),
              "monitor_share_of_cpu_percent": rnd(100 * monitor_cpu_s / (args.idle * cpus), 3),
              "monitor_points": points.get("monitor_on", 0)}
    if not args.main_rounds:
        write_result("system_metrics", result)
        return

    def job(on: bool):
        def run(_round: int) -> float:
            with temporary_store() as (_, env):
                _, wall = mlflow_run("main", {"system_metrics": str(on).lower()}, env)
                parent = next(r for r in mlflow.search_runs(output_format="list") if "mlflow.parentRunId" not in r.data.tags)
                points["on" if on else "off"] = sum(len(mlflow.MlflowClient().get_metric_history(parent.info.run_id, k))
                                                    for k in parent.data.metrics if k.startswith("system/"))
            return wall
        return run

    walls = interleave({"off": job(False), "on": job(True)}, args.main_rounds)
    off, on = median(walls["off"]), median(walls["on"])
    write_result("system_metrics", {
        **result, "main_wall_s": {k: [rnd(v) for v in vs] for k, vs in walls.items()}, "main_wall_s_off": rnd(off),
        "main_wall_s_on": rnd(on), "main_overhead_percent": rnd(100 * (on - off) / off, 2),
        "main_system_metric_points_on": points.get("on", 0), "main_system_metric_points_off": points.get("off", 0)})


if __name__ == "__main__":
    main()
