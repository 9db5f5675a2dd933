"""Wall time and best value of a 20-trial student study with and without pruning, side by side.

Both studies run in this one process, one after the other, on the same data with the same
sampler seed, through the real `tune` command (MLflow store and Optuna journal in a temporary
folder). The figure to read is the ratio of wall times and the two best validation scores.

    python benchmarks/tune_pruning.py            # about 15 minutes on 2 CPU cores
    python benchmarks/tune_pruning.py --trials 6 --limit-per-class 30   # a quick look
"""

from __future__ import annotations

import argparse
import os
import time

from harness import machine_line, temporary_store, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--limit-per-class", type=int, default=150, help="images per class and split (embedded data)")
    args = parser.parse_args()

    os.environ.setdefault("TQDM_DISABLE", "1")
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from cinv import cli

    common = ["--limit_per_class", str(args.limit_per_class), "--proxy_epochs", "1", "--reports", "4",
              "--val_draws", "2", "--n_trials", str(args.trials), "--seed", "0"]
    rows = []
    with temporary_store() as (uri, env):
        os.environ["MLFLOW_TRACKING_URI"] = uri
        tmp = os.getcwd()
        # Warm-up (imports, data decoding, first-call costs) so neither measured study pays for it.
        if cli.run("tune", [*common[:-4], "--n_trials", "1", "--seed", "0", "--study_name", "warm-up"]) != 0:
            raise SystemExit("warm-up study failed")
        for pruner in ("none", "median"):
            started = time.perf_counter()
            code = cli.run("tune", [*common, "--pruner", pruner, "--study_name", f"bench-{pruner}"])
            wall = time.perf_counter() - started
            if code != 0:
                raise SystemExit(f"tune with pruner={pruner} failed ({code})")
            storage = optuna.storages.JournalStorage(JournalFileBackend(f"{tmp}/optuna.journal"))
            study = optuna.load_study(study_name=f"bench-{pruner}", storage=storage)
            states = [t.state.name for t in study.trials]
            trial_s = sum(t.duration.total_seconds() for t in study.trials if t.duration is not None)
            rows.append({"pruner": pruner, "wall_s": round(wall, 1), "trials_s": round(trial_s, 1),
                         "best_val_top1": round(study.best_value, 2),
                         "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"), "failed": states.count("FAIL"),
                         "best_params": study.best_params})
    result = {
        "command": "python benchmarks/tune_pruning.py " + f"--trials {args.trials} --limit-per-class {args.limit_per_class}",
        "machine": machine_line(),
        "rows": rows,
        "wall_time_ratio_median_over_none": round(rows[1]["wall_s"] / rows[0]["wall_s"], 3),
    }
    write_result("tune_pruning", result)
    print("| pruner | wall time (s) | time in trials (s) | best validation top-1 | complete | pruned | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pruner']} | {r['wall_s']} | {r['trials_s']} | {r['best_val_top1']} | {r['complete']} | {r['pruned']} | {r['failed']} |")
    print(f"wall-time ratio median/none: {result['wall_time_ratio_median_over_none']}  ({result['machine']})")


if __name__ == "__main__":
    main()
