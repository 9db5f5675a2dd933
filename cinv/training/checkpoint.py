"""Training checkpoints as MLflow artifacts of the run: enough to continue bit for bit.

A checkpoint holds the trained model's weights (never the frozen teacher), the optimiser and
scheduler states, the position inside the epoch with that epoch's generator states, the running
loss and the global RNG states; no paths. Two slots are written in turn
(``checkpoints/train-a.pt``, ``checkpoints/train-b.pt``), so a crash while one is being written
leaves the other, and the store never holds more than two. Files load with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import torch
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from cinv.errors import one_line
from cinv.tracking import schema
from cinv.tracking.store import with_retries

log = logging.getLogger(__name__)

FOLDER = "checkpoints"
SLOTS = ("a", "b")
FORMAT = 1


class Checkpointer:
    """Saves to and loads from one MLflow run; ``every_steps`` adds saves inside epochs."""

    def __init__(self, run_id: str, every_steps: int = 0):
        self.run_id, self.every_steps = run_id, every_steps
        self.saves = 0

    def due(self, step: int) -> bool:
        return self.every_steps > 0 and step % self.every_steps == 0

    def save(self, state: dict) -> None:
        slot = SLOTS[self.saves % len(SLOTS)]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"train-{slot}.pt"
            torch.save({"format": FORMAT, **state}, path)
            client = mlflow.MlflowClient()
            with_retries(client.log_artifact, "saving a checkpoint")(self.run_id, str(path), FOLDER)
            with_retries(client.set_tag, "saving a checkpoint")(self.run_id, schema.CHECKPOINT_STEP, str(state["step"]))
        self.saves += 1

    def latest(self) -> dict | None:
        """The newest readable checkpoint of the run, or None when it has none."""
        client = mlflow.MlflowClient()
        names = {a.path for a in client.list_artifacts(self.run_id, FOLDER)}
        found, problems = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for slot in SLOTS:
                name = f"{FOLDER}/train-{slot}.pt"
                if name not in names:
                    continue
                try:
                    local = mlflow.artifacts.download_artifacts(run_id=self.run_id, artifact_path=name, dst_path=tmp)
                except Exception as exc:
                    problems.append(f"{name}: cannot be downloaded ({one_line(exc)[:200]})")
                    continue
                try:
                    state = torch.load(local, map_location="cpu", weights_only=True)
                except Exception:  # a slot cut short by the crash: the other one is older but whole
                    # torch's own message suggests weights_only=False, which would run code from the file
                    problems.append(f"{name}: corrupt, not a readable checkpoint file ({Path(local).stat().st_size:,} bytes)")
                    continue
                if isinstance(state, dict) and state.get("format") == FORMAT:
                    found.append((slot, state))
                else:
                    problems.append(f"{name}: not a cinv checkpoint of format {FORMAT}")
        if not found:
            saved = client.get_run(self.run_id).data.tags.get(schema.CHECKPOINT_STEP)
            if problems or saved:
                self.lost(problems or [f"the run saved step {saved}, but {FOLDER}/ holds no checkpoint"])
            return None
        slot, newest = max(found, key=lambda item: item[1]["step"])
        self.saves = SLOTS.index(slot) + 1  # the next save goes to the other slot
        return newest

    def lost(self, problems: list[str]) -> None:
        """No checkpoint to continue from, though the run had saved some: said in one line and in
        a tag on the run, never a silent restart from step 0."""
        reason = "no readable checkpoint, training restarts from step 0: " + "; ".join(problems)
        log.warning("run %s: %s", self.run_id, reason)
        with_retries(mlflow.MlflowClient().set_tag, "tagging the run")(self.run_id, schema.CHECKPOINT_LOST, reason[:5000])


def for_active_run(opts) -> Checkpointer:
    """Checkpoints of a method's training in the active run: at every epoch end, and every
    ``checkpoint_every_steps`` steps for a method that has the option; a reopened run continues
    from its latest one."""
    return Checkpointer(mlflow.active_run().info.run_id, getattr(opts, "checkpoint_every_steps", 0))


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def remove_checkpoints(run_id: str) -> int:
    """Delete the checkpoint artifacts of a FINISHED run and of its child runs, which nothing will
    resume any more (they are most of a store's bytes); the number of runs cleaned."""
    client = mlflow.MlflowClient()
    runs = [client.get_run(run_id)]
    cleaned, seen = 0, set()
    while runs:
        run = runs.pop()
        if run.info.run_id in seen:
            continue
        seen.add(run.info.run_id)
        runs += client.search_runs([run.info.experiment_id], filter_string=f"tags.`{schema.PARENT}` = '{run.info.run_id}'")
        if client.list_artifacts(run.info.run_id, FOLDER):
            with_retries(get_artifact_repository(run.info.artifact_uri).delete_artifacts, "removing checkpoints")(FOLDER)
            with_retries(client.delete_tag, "removing checkpoints")(run.info.run_id, schema.CHECKPOINT_STEP)
            cleaned += 1
    return cleaned
