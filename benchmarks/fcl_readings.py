"""FCL's open reading, settled by measurement: the FCL term summed or averaged over the batch, each
with its lambda tuned on the validation split, then 10 seeds each against XE on the full synthetic MNIST.

The paper's Algorithm 1 adds lambda * FCL to the loss with FCL = sum_i l_i and never says whether the
cross-entropy beside it is a batch sum or a batch mean. cinv's ``reduction`` option reads it both
ways: ``sum`` (lambda * sum_i l_i beside the batch-mean cross-entropy; at batch 128 the FCL term
weighs 128 times what it weighs under ``mean``) and ``mean`` (both batch means). Section 4.1:
"k = 256, lambda = 0.001, tau = 0.1 and sigma = 0.5 ... were determined empirically using the
validation set", so for each reading:

1. ``cinv tune`` searches lambda alone (log-uniform over a range that holds 1e-3 and the value
   equivalent to the other reading: sum 1e-6..1e-2, mean 1e-4..1), the paper's 20-epoch schedule
   per trial, scored on the validation split by ``objective=val_noise_mean``: the mean top-1 over the
   validation images clean, with uniform and with non-uniform pixel noise (BAL, BAL+UN and BAL+NUN
   built on the validation digits); 12 trials, median pruning at epochs 5, 10 and 15 after 4 trials.
2. ``cinv fcl`` (preset paper, the full MNIST) with the tuned lambda, seeds 0-9; XE, which does
   not depend on the reading, once per seed. A seed draws the synthetic data and initialises the
   network, so XE and each FCL of one seed are paired.

Every run goes into one MLflow store (``--store``, kept between invocations) and the results file
is rewritten after each, so an interrupted measurement continues where it stopped:

    nice python benchmarks/fcl_readings.py                 # about 10 hours on 2 CPU cores
    python benchmarks/fcl_readings.py --status             # what is done, each study's trials included

A trial whose process was killed is marked FAIL by the next invocation and does not count: the
study runs until it has ``--trials`` complete or pruned ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from harness import RESULTS, ROOT, latest_run, machine_line, mlflow_run, write_result

NAME = "fcl_readings"
SETS = {"BAL": "bal", "BAL+UN": "bal_un", "BAL+NUN": "bal_nun", "rare": "bal_rare"}
EXTRA = {"corner share, centre 0-4": "corner_utility_share_0_4", "corner share, centre 5-9": "corner_utility_share_5_9",
         "NUN pixels on ink": "nun_ink_share"}
SPACE = {"sum": (1e-6, 1e-2), "mean": (1e-4, 1.0)}  # each holds 1e-3 and the other reading's 1e-3 (x or / 128)
OBJECTIVE = "val_noise_mean"
SCHEDULE = {"fcl_epochs": 20, "fcl_warmup_start": 2, "fcl_warmup_epochs": 2, "proxy_epochs": 20}


def paired(fcl: list[float], xe: list[float]) -> dict:
    """FCL - XE paired by seed: mean, s.d. and s.e. of the per-seed differences."""
    gains = [round(f - x, 2) for f, x in zip(fcl, xe, strict=False)]
    sd = statistics.stdev(gains) if len(gains) > 1 else float("nan")
    return {"per_seed": gains, "mean": round(statistics.fmean(gains), 2) if gains else None, "sd": round(sd, 2),
            "se": round(sd / len(gains) ** 0.5, 2) if gains else None, "positive": sum(g > 0 for g in gains)}


def empty() -> dict:
    return {"command": {}, "machine": machine_line(), "wall_s": 0.0, "objective": OBJECTIVE, "epochs": 20,
            "xe": {"seeds": [], "per_seed": {k: [] for k in [*SETS, *EXTRA]}, "wall_s": []},
            "readings": {r: {"lambda": None, "space": list(SPACE[r]), "objective": OBJECTIVE, "study": None, "seeds": [],
                             "fcl_runs": {"seeds": [], **{k: [] for k in [*SETS, *EXTRA]}}, "per_seed": {},
                             "wall_s": [], "fcl_minus_xe": {}}
                         for r in SPACE}}


def load() -> dict:
    path = RESULTS / f"{NAME}.json"
    return json.loads(path.read_text()) if path.is_file() else empty()


def save(out: dict) -> None:
    """The file as the docs read it: per reading, ``seeds`` where both XE and FCL ran, ``per_seed``
    XE and FCL on those seeds (in that order), and FCL - XE paired by seed."""
    for reading in out["readings"].values():
        runs = reading["fcl_runs"]
        seeds = [s for s in runs["seeds"] if s in out["xe"]["seeds"]]
        xe = {k: [out["xe"]["per_seed"][k][out["xe"]["seeds"].index(s)] for s in seeds] for k in out["xe"]["per_seed"]}
        fcl = {k: [runs[k][runs["seeds"].index(s)] for s in seeds] for k in runs if k != "seeds"}
        reading.update(seeds=seeds, per_seed={"xe": xe, "fcl": fcl},
                       fcl_minus_xe={k: paired(fcl[k], xe[k]) for k in SETS} if seeds else {})
    write_result(NAME, out)


def scores(metrics: dict) -> dict:
    return {**{k: round(metrics[f"{v}_top1_mean"], 2) for k, v in SETS.items()},
            **{k: round(metrics[v], 4) for k, v in EXTRA.items()}}


def tune(out: dict, reading: str, args, env: dict) -> None:
    """Run (or finish) the reading's lambda study; record its trials and the best lambda."""
    import optuna

    study_name = f"fcl-lambda-{reading}"
    storage_path = Path(args.store) / "optuna.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage_path)))

    def finished() -> int:
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:
            return 0
        return sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)

    low, high = SPACE[reading]
    params = {"method": "fcl", "dataset": f"synthetic_mnist(path={Path(args.mnist).resolve()})", "val_fraction": 1 / 6,
              "corruption": "none", "fcl_reduction": reading, "search": "lam", "space": f"lam=({low:g}, {high:g})",
              "objective": OBJECTIVE, "study_name": study_name, "storage": str(storage_path), "reports": 4,
              "pruner_startup_trials": 4, **SCHEDULE}
    while (left := args.trials - finished()) > 0:
        command, wall = mlflow_run("tune", {**params, "n_trials": left}, env)
        out["command"]["tune"] = (command.replace(str(Path(args.mnist).resolve()), "../shared/data/mnist.npz")
                                  .replace(str(storage_path), "<store>/optuna.journal")
                                  .replace(f"fcl_reduction={reading}", "fcl_reduction=<sum|mean>")
                                  .replace(f"study_name={study_name}", "study_name=fcl-lambda-<reading>")
                                  .replace(f"space=lam=({low:g}, {high:g})", "space=lam=(<low>, <high>)")
                                  .replace(f"n_trials={left}", f"n_trials={args.trials}"))
    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = [{"number": t.number, "lam": t.params.get("lam"), "state": t.state.name,
               "value": None if t.value is None else round(t.value, 3),
               "val": {k: round(v, 2) for k, v in sorted(t.intermediate_values.items())},
               "duration_s": round(t.duration.total_seconds(), 1) if t.duration else None} for t in study.trials]
    best = study.best_trial
    out["readings"][reading]["lambda"] = float(f"{best.params['lam']:.3g}")
    out["readings"][reading]["study"] = {"name": study_name, "storage": "Optuna journal beside the MLflow store",
                                         "best_trial": best.number, "best_value": round(best.value, 3),
                                         "trials": trials, "mlflow_run": study.user_attrs.get("cinv.mlflow_run_id")}
    save(out)


def run_fcl(out: dict, method: str, seed: int, extra: dict, args, env: dict) -> tuple[dict, float]:
    params = {"preset": "paper", "mnist": str(Path(args.mnist).resolve()), "method": method, "seed": seed, **extra}
    command, wall = mlflow_run("fcl", params, env)
    from cinv.tracking import schema

    out["command"]["fcl"] = (command.replace(params["mnist"], "../shared/data/mnist.npz").replace(f"seed={seed}", "seed=<seed>")
                             .replace(f"method={method}", "method=<xe|fcl>"))
    for key, value in extra.items():
        out["command"]["fcl"] = out["command"]["fcl"].replace(f"{key}={value}", f"{key}=<{key}>")
    return scores(latest_run({schema.STAGE: "fcl"}).data.metrics), wall


def print_studies(journal: Path) -> None:
    """Each lambda study's trials as the store holds them, finished or not (the results file gets a
    study only once it has its trials)."""
    if not journal.is_file():
        print(f"no study yet ({journal} does not exist)")
        return
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
        print(f"{summary.study_name}: {done} finished trial(s)")
        for t in study.trials:
            last = max(t.intermediate_values) if t.intermediate_values else None
            value = t.value if t.value is not None else (t.intermediate_values[last] if last is not None else None)
            shown = "" if value is None else f" {value:.2f}" + ("" if t.value is not None else f" (report {last})")
            print(f"  trial {t.number}: lambda {t.params.get('lam', float('nan')):.3g} {t.state.name}{shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9", help="independent training seeds (the paper: 10 runs)")
    parser.add_argument("--trials", type=int, default=12, help="finished (complete or pruned) trials per study")
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"), help="the full MNIST (.npz)")
    parser.add_argument("--store", default=str(ROOT / "benchmarks" / ".fcl_readings_store"),
                        help="the MLflow store and Optuna journal, kept between invocations")
    parser.add_argument("--status", action="store_true", help="print what the results file holds and stop")
    args = parser.parse_args()
    out = load()
    if args.status:
        for name, reading in out["readings"].items():
            print(f"{name}: lambda {reading['lambda']}, FCL seeds {reading['fcl_runs']['seeds']}")
        print(f"XE seeds {out['xe']['seeds']}")
        print_studies(Path(args.store) / "optuna.journal")
        return
    store = Path(args.store)
    store.mkdir(parents=True, exist_ok=True)
    import os

    import mlflow

    uri = f"sqlite:///{store.resolve()}/mlflow.db"
    os.chdir(store)
    mlflow.set_tracking_uri(uri)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TQDM_DISABLE": "1"}
    started = time.perf_counter() - out.get("wall_s", 0.0)
    out["machine"] = machine_line()
    for reading in SPACE:
        if out["readings"][reading]["lambda"] is None:
            tune(out, reading, args, env)
            out["wall_s"] = round(time.perf_counter() - started, 1)
            save(out)
            print(f"{reading}: lambda {out['readings'][reading]['lambda']}", flush=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        if seed not in out["xe"]["seeds"]:
            values, wall = run_fcl(out, "xe", seed, {}, args, env)
            for k, v in values.items():
                out["xe"]["per_seed"][k].append(v)
            out["xe"]["seeds"].append(seed)
            out["xe"]["wall_s"].append(round(wall, 1))
            out["wall_s"] = round(time.perf_counter() - started, 1)
            save(out)
            print(f"seed {seed} xe: {values}", flush=True)
        for name, reading in out["readings"].items():
            runs = reading["fcl_runs"]
            if seed in runs["seeds"]:
                continue
            values, wall = run_fcl(out, "fcl", seed, {"lam": reading["lambda"], "reduction": name}, args, env)
            for k, v in values.items():
                runs[k].append(v)
            runs["seeds"].append(seed)
            reading["wall_s"].append(round(wall, 1))
            out["wall_s"] = round(time.perf_counter() - started, 1)
            save(out)
            print(f"seed {seed} fcl ({name}, lambda {reading['lambda']}): {values}", flush=True)


if __name__ == "__main__":
    main()
