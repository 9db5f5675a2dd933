"""One FCL epoch on the full synthetic MNIST: an old commit against this checkout, side by side.

The old commit is checked out in a temporary git worktree; each measurement is a fresh process
that builds the paper's data (``mnist.npz``, about 50,000 training digits, 390 steps of 128) and
trains one epoch of the ``paper`` preset with the FCL term on from the first step (the 18 of 20
epochs that cost most), timing the steps alone. Old and new alternate (ABBA), so a drifting load
weighs on both alike; the epoch's mean loss of each side is recorded, and must be equal: the
speed-up may not change a number. Writes ``benchmarks/results/fcl_speed.json``.

    python benchmarks/fcl_speed.py                   # old = 176239e, 2 rounds (about 6 min)
    python benchmarks/fcl_speed.py --old HEAD~3 --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch
from cinv.context import Setup
from cinv.corruption import get as get_corruption
from cinv.data.datasets import DataFacts
from cinv.data.synthetic_mnist import fcl_test_sets
from cinv.methods import METHODS
from cinv.runtime import resolve_precision
from cinv.training.loop import Trainer

splits, _ = fcl_test_sets("synthetic_mnist", sys.argv[2], None, None, 0.15, 0)
device = torch.device("cpu")
s = Setup(splits, get_corruption("none"), device, 0, 0, resolve_precision(device, "auto"))
method = METHODS.get("fcl")
opts = method.configure("paper", DataFacts("synthetic_mnist", 28, 1), warmup_start=0, warmup_epochs=0, epochs=1)
torch.manual_seed(0)
model = method.build(s, opts)
stream = method.stream(s, opts)
trainer = Trainer(model, method.objective(model, s, opts, stream), stream, method.optim(opts), precision=s.precision)
trainer.current = stream.epoch(0, None)
model.train()
started = time.perf_counter()
for views in trainer.current:
    loss = trainer.step(views, 0)
print(json.dumps({"epoch_s": time.perf_counter() - started, "steps": trainer.history.steps, "loss": loss,
                  "train_images": len(splits.train)}))
"""


def epoch(tree: Path, mnist: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", WORKER, str(tree), str(mnist)], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), env={**os.environ, "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: the timing process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from harness import ROOT, interleave, machine, median, rnd, write_result

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="176239e", help="the commit to compare with (default: main before the speed-up)")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds (each times old and new once)")
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"), help="MNIST .npz")
    args = parser.parse_args()
    old = subprocess.run(["git", "rev-parse", "--short", args.old], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), old], cwd=ROOT, check=True, capture_output=True)
        try:
            details: dict[str, list[dict]] = {"old": [], "new": []}

            def timed(side: str, where: Path):
                def run(_round: int) -> float:
                    result = epoch(where, Path(args.mnist))
                    details[side].append(result)
                    print(f"{side}: {result['epoch_s']:.1f} s, loss {result['loss']:.6f}", flush=True)
                    return result["epoch_s"]
                return run

            started = time.perf_counter()
            times = interleave({"old": timed("old", tree), "new": timed("new", ROOT)}, args.rounds)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    losses = {side: sorted({d["loss"] for d in runs}) for side, runs in details.items()}
    before, after = median(times["old"]), median(times["new"])
    result = {
        "command": "python benchmarks/fcl_speed.py " + " ".join(sys.argv[1:]), "machine": machine(),
        "old_commit": old, "train_images": details["new"][0]["train_images"], "steps": details["new"][0]["steps"],
        "epoch_s_before": rnd(before), "epoch_s_after": rnd(after), "speedup": rnd(before / after, 2),
        "epoch_s": {side: [rnd(t) for t in values] for side, values in times.items()},
        "epoch_loss": losses, "same_losses": losses["old"] == losses["new"], "wall_s": rnd(time.perf_counter() - started),
    }
    write_result("fcl_speed", result)
    print(f"one FCL epoch ({result['steps']} steps): {before:.1f} s at {old}, {after:.1f} s now: {before / after:.2f}x; "
          f"same losses: {result['same_losses']}")


if __name__ == "__main__":
    main()
