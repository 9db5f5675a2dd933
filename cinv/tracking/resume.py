"""Finding and reopening a run to resume: an explicit run id or ``latest``, checked (the same
command, not finished, no live process on it, the same parameters) before anything is reopened."""

from __future__ import annotations

import os
import time
import uuid

import mlflow
from mlflow.exceptions import MlflowException

from cinv.errors import ResumeError
from cinv.secrets import redact
from cinv.tracking import schema
from cinv.tracking.lease import STALE_S, first_writer, owner, owner_alive, still_alive
from cinv.tracking.runs import target_experiment

__all__ = ["resume_run", "latest_resumable", "experiment_of_new_runs", "check_same_config"]


def resume_run(command: str, run_id: str, experiment_name: str | None = None, same_config=None):
    """Reopen a FAILED, KILLED or abandoned (still RUNNING) run of ``command``; 'latest' finds one.
    ``same_config(run)``: raises ResumeError when the run's parameters differ; checked before
    the run is touched, so a refused resume leaves it as it was."""
    client = mlflow.MlflowClient()
    if run_id == "latest":
        run_id = latest_resumable(command, experiment_name)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ResumeError(f"resume_run_id: {exc.message}") from None
    if run.info.status == "FINISHED":
        raise ResumeError(f"resume_run_id: run {run_id} already FINISHED; nothing to resume")
    if run.data.tags.get(schema.COMMAND) != command:
        raise ResumeError(f"resume_run_id: run {run_id} is a {run.data.tags.get(schema.COMMAND, 'non-cinv')} run, not {command}")
    if reason := still_alive(run):
        raise ResumeError(f"resume_run_id: run {run_id} is still RUNNING: {reason}; stop that process first")
    if same_config is not None:
        same_config(run)
    claim(run)
    launched = os.environ.get("MLFLOW_RUN_ID")  # `mlflow run` made a run of its own for this invocation
    if launched and launched != run_id:
        client.set_tag(launched, schema.RESUMED_INTO, run_id)
    mlflow.set_experiment(experiment_id=run.info.experiment_id)  # children and tables go where the run is
    active = mlflow.start_run(run_id=run_id)
    mlflow.set_tag(schema.RESUMED, str(int(run.data.tags.get(schema.RESUMED, "0")) + 1))
    return active


CLAIM = schema.RESUME_CLAIM


def claim(run) -> None:
    """Take the run for this process, atomically: two resumes started at the same instant both
    find no live owner, so the check alone lets both train. MLflow refuses to change a param once
    written (the store's unique key decides between simultaneous writers), so the next numbered
    claim param is a compare-and-set that exactly one process wins; a process that reads the run
    after another's claim finds that claim's process alive and stops too. The loser says so in one line."""
    client = mlflow.MlflowClient()
    now = client.get_run(run.info.run_id)
    params = now.data.params
    taken = sorted(int(k[len(CLAIM):]) for k in params if k.startswith(CLAIM) and k[len(CLAIM):].isdigit())
    if taken:
        holder, _, claimed_at = params[f"{CLAIM}{taken[-1]}"].partition(" ")
        claimed_at = claimed_at.split(" ")[0]
        recent = now.info.status == "RUNNING" or time.time() - float(claimed_at or 0) < STALE_S
        if recent and owner_alive(holder, claimed_at):  # a process that has let the run go may still be alive
            raise ResumeError(f"resume_run_id: run {run.info.run_id} was just resumed by another process ({holder}); "
                              "only one may continue it")
    key, mine = f"{CLAIM}{(taken[-1] if taken else 0) + 1}", f"{owner()} {time.time():.0f} {uuid.uuid4().hex[:8]}"
    won = first_writer(run.info.run_id, key, mine)
    if won != mine:
        raise ResumeError(f"resume_run_id: run {run.info.run_id} was just resumed by another process "
                          f"({(won or '?').split(' ')[0]}); only one may continue it")


def experiment_of_new_runs(name: str | None) -> str | None:
    """The id of the experiment new runs go to (``experiment_name``, $MLFLOW_EXPERIMENT_ID / _NAME
    or cinv's default), without creating it."""
    name, experiment_id = target_experiment(name)
    if experiment_id is not None:
        return experiment_id
    experiment = mlflow.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else None


def latest_resumable(command: str, experiment_name: str | None = None) -> str:
    """The newest unfinished run of ``command`` in the experiment new runs go to that has something
    to resume from (a checkpoint, or finished child runs) and no process still running it."""
    experiment = experiment_of_new_runs(experiment_name)
    if experiment is None:
        raise ResumeError(f"resume_run_id: no experiment {experiment_name or schema.DEFAULT_EXPERIMENT!r}; nothing to resume")
    for run in unfinished_runs(experiment, command):
        if still_alive(run):
            continue
        if schema.CHECKPOINT_STEP in run.data.tags or mlflow.search_runs(
                [experiment], filter_string=f"tags.`{schema.PARENT}` = '{run.info.run_id}'", output_format="list", max_results=1):
            return run.info.run_id
    raise ResumeError(f"resume_run_id: no {command} run in experiment {experiment} to resume (unfinished, with a checkpoint "
                      "or finished stages, and not still running)")


def unfinished_runs(experiment: str, command: str, page: int = 50):
    """Every unfinished run of ``command`` in ``experiment``, newest first, a page at a time: the
    search stops at the first resumable one, however many dead or live runs come before it."""
    client, token = mlflow.MlflowClient(), None
    while True:
        runs = client.search_runs([experiment], filter_string=f"tags.`{schema.COMMAND}` = '{command}' and "
                                  "attributes.status != 'FINISHED'", order_by=["attributes.start_time DESC"],
                                  max_results=page, page_token=token)
        yield from runs
        token = runs.token
        if not token:
            return


def check_same_config(run, settings: dict) -> None:
    """A resumed run continues with the parameters it started with: ``settings`` (flat, runtime
    knobs left out) against the params the run logged when it started; the refusal names each
    parameter that differs and both values."""
    logged = run.data.params
    differ = []
    for key, value in settings.items():
        now = None if value in (None, "") else redact(str(value))
        if _plain(logged.get(key)) != _plain(now):
            differ.append(f"{key}={now if now is not None else '(unset)'} (the run has {logged.get(key, '(unset)')})")
    if differ:
        raise ResumeError(f"resume_run_id: run {run.info.run_id} started with other parameters: {'; '.join(differ)}; "
                          "resume with the same ones")


def _plain(text: str | None):
    """A param as logged by cinv or by ``mlflow run`` (its own text: '' for unset, 3.0 for 3), compared by value."""
    if text in (None, "", "None"):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text)
    except ValueError:
        return text
