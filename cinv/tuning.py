"""Optuna search of the paper's hyper-parameters, one MLflow run per study, one child run per trial.

The paper picked learning rate, weight decay and temperature by a manual search judged on the
reported split after one epoch. Here each trial trains any registered method (its ``space`` says
what to search) for a proxy budget and is scored on the corrupted *validation* split, held out of
the training data: by a linear probe on an encoder, by its own head for a method that trains one.
The test split is touched only by the optional retraining with the best values. Intermediate
scores are reported during the budget so a pruner can stop poor trials early.

Storage: a journal file beside the MLflow store by default (Optuna's recommendation for several
processes on one machine without a database server: appends under a file lock), or any RDB URL
(PostgreSQL for several machines). Several workers may run on one study; the worker that
creates the study owns the study's MLflow run, the others attach to it.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
import uuid
import warnings
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import sqlalchemy.exc
import tenacity
import torch

from cinv.config.base import updated
from cinv.context import Setup
from cinv.data.synthetic_mnist import NOISE_FRACTION, CornerDigits, noisy_sets, stacked
from cinv.errors import ConfigError, NonFiniteLossError, one_line
from cinv.evaluation.metrics import evaluate
from cinv.evaluation.protocol import evaluate_model, link
from cinv.experiments.engine import register_trained, train_in_run
from cinv.methods import METHODS, Range
from cinv.probe import train_probe
from cinv.registry import parse_spec
from cinv.runtime import derive_seed
from cinv.tracking import schema
from cinv.tracking.lease import HEARTBEAT_S, first_writer, owner, owner_alive
from cinv.tracking.runs import log_datasets, log_figure, log_table

log = logging.getLogger(__name__)
PARENT_ATTR = schema.STUDY_RUN_ATTR
SPACE_ATTR = schema.STUDY_SPACE_ATTR


def parse_space(method: str, text: str, search: str = "") -> dict[str, Range]:
    """The method's own search space (``Method.space``), cut to the names in ``search`` ("lam" or
    "lr, lam"; empty: all), overridden by ``"lr=(1e-4, 1e-2), temperature=(0.1, 0.5)"``."""
    space = dict(METHODS.get(method).space)
    if not space:
        raise ValueError(f"method: {method} has nothing to tune (its space is empty)")
    if search.strip():
        names = [n.strip() for n in search.split(",") if n.strip()]
        if unknown := [n for n in names if n not in space]:
            raise ValueError(f"search: unknown parameter(s) {', '.join(unknown)} for {method}; tunable: {', '.join(space)}")
        space = {n: space[n] for n in names}
    if not text.strip():
        return space
    try:
        _, overrides = parse_spec(f"space({text})")
    except ValueError:
        raise ValueError(f"space: cannot parse {text!r}; write name=(low, high), ...") from None
    for name, value in overrides.items():
        if name not in space:
            raise ValueError(f"space: unknown parameter {name!r} for {method}; tunable: {', '.join(space)}"
                             + (" (those in search)" if search.strip() else ""))
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
            raise ValueError(f"space: {name} needs a (low, high) pair; got {value!r}")
        low, high = float(value[0]), float(value[1])
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ValueError(f"space: {name} range ({low:g}, {high:g}) is empty or inverted; need low < high")
        if space[name].log and low <= 0:
            raise ValueError(f"space: {name} is searched on a log scale and needs low > 0; got {low:g}")
        space[name] = Range(low, high, space[name].log)
    return space


def default_storage_path() -> Path:
    """``optuna.journal`` in the folder of a SQLite MLflow store, else the working directory."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent / "optuna.journal"
    if uri.startswith("file:") or "://" not in uri:
        return Path(uri.removeprefix("file://").removeprefix("file:")).expanduser().resolve().parent / "optuna.journal"
    return Path.cwd() / "optuna.journal"


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """A journal file (path) or an RDB storage (URL); unreachable storage is a one-line error."""
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    try:
        if url is None or "://" not in url:
            path = Path(url).expanduser() if url else default_storage_path()
            if not path.parent.is_dir():
                raise ConfigError(f"storage: folder {path.parent} does not exist")
            # The open(O_EXCL) lock works on network file systems too.
            return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
        if url.startswith("sqlite:"):
            warnings.warn("SQLite serialises writers; for several workers prefer the journal file or PostgreSQL", stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _rdb_storage(url)
    except ConfigError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"storage: cannot open Optuna storage {url or 'journal file'}: {first}") from None


@tenacity.retry(retry=tenacity.retry_if_exception_type(sqlalchemy.exc.IntegrityError), stop=tenacity.stop_after_attempt(3),
                wait=tenacity.wait_random(0.5, 2), reraise=True)
def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """Workers started together on a fresh database race to create Optuna's tables: the loser retries."""
    # Heartbeats let a study mark the trials of a crashed worker as failed.
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=60, grace_period=180)


def open_study(cfg, storage, run_id: str) -> tuple[optuna.Study, str, bool]:
    """Create the study (this run becomes its MLflow run) or join it (attach to its run).

    ``create_study`` without ``load_if_exists`` is atomic in the storage, so among workers that
    start together exactly one creates the study; the others wait for its run id.
    """
    space = {name: [r.low, r.high, r.log] for name, r in parse_space(cfg.method, cfg.space, cfg.search).items()}
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup_trials) if cfg.pruner == "median"
              else optuna.pruners.NopPruner())
    try:
        study = optuna.create_study(study_name=cfg.study, storage=storage, direction="maximize", pruner=pruner,
                                    sampler=optuna.samplers.TPESampler(seed=cfg.seed))
        study.set_user_attr(SPACE_ATTR, {"method": cfg.method, "space": space})
        study.set_user_attr(PARENT_ATTR, run_id)
        return study, run_id, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=cfg.study, storage=storage, pruner=pruner,
                              sampler=optuna.samplers.TPESampler(seed=derive_seed(cfg.seed, run_id) % 2**32))
    deadline = time.time() + 60
    while PARENT_ATTR not in study.user_attrs and time.time() < deadline:
        time.sleep(0.2)
    recorded = study.user_attrs.get(SPACE_ATTR)
    if recorded != {"method": cfg.method, "space": space}:
        raise ConfigError(f"study_name: study {cfg.study!r} was created with {recorded}, not "
                          f"{{'method': {cfg.method!r}, 'space': {space}}}; use a new study_name")
    if PARENT_ATTR not in study.user_attrs:
        raise ConfigError(f"study_name: study {cfg.study!r} has no MLflow run recorded; was it created by cinv?")
    return study, study.user_attrs[PARENT_ATTR], False


class Objective:
    """One trial: train the method for the proxy budget, report validation scores, maybe stop early."""

    def __init__(self, cfg, setup: Setup, parent_run_id: str, experiment_id: str):
        self.cfg, self.s = cfg, setup
        self.parent_run_id, self.experiment_id = parent_run_id, experiment_id
        self.method = METHODS.get(cfg.method)
        self.space = parse_space(cfg.method, cfg.space, cfg.search)
        self.sets = validation_sets(cfg.objective, setup)

    def __call__(self, trial: optuna.Trial) -> float:
        with TrialOwnership(trial):
            return self.run(trial)

    def run(self, trial: optuna.Trial) -> float:
        params = {name: trial.suggest_float(name, r.low, r.high, log=r.log) for name, r in self.space.items()}
        client = mlflow.MlflowClient()
        run = client.create_run(self.experiment_id, run_name=f"trial {trial.number}", tags={
            schema.PARENT: self.parent_run_id, schema.STAGE: "trial", schema.STUDY: self.cfg.study,
            "optuna.trial": str(trial.number)})
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        mlflow.start_run(run_id=run.info.run_id, nested=True)
        status = "FAILED"
        try:
            mlflow.log_params(params | {"method": self.cfg.method, "proxy_epochs": self.cfg.proxy_epochs})
            value = self.train_and_score(trial, params)
            mlflow.log_metric("objective", value)
            log.info("trial %d of %s: validation top-1 %.2f with %s", trial.number, self.cfg.study, value,
                     ", ".join(f"{k}={v:.4g}" for k, v in params.items()))
            mlflow.set_tag("optuna.state", "COMPLETE")
            status = "FINISHED"
            return value
        except optuna.TrialPruned as exc:
            log.info("trial %d of %s: %s", trial.number, self.cfg.study, exc)
            mlflow.set_tag("optuna.state", "PRUNED")  # a pruned trial is a finished run, not a failure
            status = "FINISHED"
            raise
        except Exception as exc:
            mlflow.set_tags({"optuna.state": "FAIL", schema.ERROR: one_line(exc)[:5000]})
            raise
        finally:
            mlflow.end_run(status=status)

    def scored(self, model):
        """What a validation score measures: the model's own head, or a linear probe on it."""
        return model if "classifier" in self.method.produces else train_probe(self.s, model, self.cfg.probe, log=False)

    def train_and_score(self, trial: optuna.Trial, params: dict[str, float]) -> float:
        cfg, s = self.cfg, self.s
        checkpoints: dict[int, int] = {}
        scores: list[float] = []

        def on_step(model, step: int, total: int) -> None:
            if not checkpoints:
                checkpoints.update({max(1, round(total * (k + 1) / cfg.reports)): k for k in range(cfg.reports)})
            if step not in checkpoints:
                return
            # Score a snapshot: probing freezes an encoder, and this one is still training.
            scored = self.scored(copy.deepcopy(model).eval())
            values = {}
            for name, dataset in self.sets.items():
                stream = s.stream("val", batch_size=cfg.eval.batch_size, purpose="eval", seed=cfg.eval.draw_seed, dataset=dataset)
                values[name] = evaluate(scored, stream, cfg.val_draws, desc=f"validation {name}", precision=s.precision).mean("top1")
            value = sum(values[name] for name in OBJECTIVES[cfg.objective]) / len(OBJECTIVES[cfg.objective])
            if len(values) > 1:
                mlflow.log_metrics({f"val_{name}_top1": v for name, v in values.items()}, step=checkpoints[step])
            scores.append(value)
            trial.report(value, checkpoints[step])
            mlflow.log_metric("val_top1", value, step=checkpoints[step])
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at report {checkpoints[step]} with validation top-1 {value:.2f}")

        opts = updated(cfg.options[self.method.name], lambda loc: f"{cfg.method}_{'.'.join(loc)}",
                       **params, epochs=cfg.proxy_epochs)
        self.method.train(s, opts, on_step=on_step)
        return scores[-1]


# What a trial's validation score is, by the ``objective`` option: the mean top-1 over these sets.
OBJECTIVES = {
    "val": ("val",),  # the validation split under the run's corruption
    # FCL's section 4.1 test conditions on the validation images: clean, uniform and non-uniform pixel noise
    # (``rare``, the classes 10-14 of synthetic MNIST, is logged beside them, not scored)
    "val_noise_mean": ("bal", "un", "nun"),
}


def validation_sets(objective: str, s: Setup) -> dict:
    """The datasets a trial is scored on (None: the validation split itself, under the run's corruption)."""
    if objective == "val":
        return {"val": None}
    images, labels = stacked(s.splits.val)
    generator = torch.Generator().manual_seed(derive_seed(s.seed, "val_noise"))
    noisy, stats = noisy_sets(images, labels, stacked(s.splits.train)[0], NOISE_FRACTION, generator)
    if mlflow.active_run():
        mlflow.log_metrics({f"val_{k}": v for k, v in stats.items()})
    sets = {"bal": None, "un": noisy["un"], "nun": noisy["nun"]}
    if isinstance(s.splits.val, CornerDigits):
        sets["rare"] = s.splits.val.subset((labels >= 10).nonzero().flatten())
    return sets


OWNER_ATTR, HEARTBEAT_ATTR, WORKER_RUN_ATTR = schema.TRIAL_OWNER, schema.TRIAL_HEARTBEAT, schema.TRIAL_WORKER_RUN


class TrialOwnership:
    """The worker running a trial, recorded on it (host:pid:start) and renewed every
    ``HEARTBEAT_S`` while it runs, so that another worker can tell a killed worker's trial from a
    live one ([fail_dead_trials][]). Optuna's own heartbeats cover RDB storages only:
    Optuna 5.1's JournalStorage has none (optuna/optuna#6615; its pull request was closed unmerged)."""

    def __init__(self, trial: optuna.Trial):
        self.trial, self.stop = trial, threading.Event()

    def beat(self) -> None:
        self.trial.storage.set_trial_system_attr(self.trial._trial_id, HEARTBEAT_ATTR, time.time())

    def renew(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                self.beat()
            except Exception as exc:  # the storage hiccuped: the next beat tries again
                log.debug("trial %d heartbeat failed: %s", self.trial.number, exc)

    def __enter__(self):
        self.trial.storage.set_trial_system_attr(self.trial._trial_id, OWNER_ATTR, owner())
        if mlflow.active_run():
            self.trial.storage.set_trial_system_attr(self.trial._trial_id, WORKER_RUN_ATTR, mlflow.active_run().info.run_id)
        self.beat()
        self.thread = threading.Thread(target=self.renew, name=f"cinv-trial-{self.trial.number}", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAILED the RUNNING trials whose worker is gone (killed, or its host lost), by Optuna's
    own heartbeats on an RDB storage and by the ownership cinv records on every storage, and end
    their MLflow runs: the trial's FAILED, the dead worker's KILLED, each with the reason. The
    numbers of the trials failed here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a no-op without heartbeats (journal storages)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        holder = trial.system_attrs.get(OWNER_ATTR)
        if holder is None or owner_alive(holder, str(trial.system_attrs.get(HEARTBEAT_ATTR, 0))):
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "failed_because", f"its worker {holder} is gone")
            study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it, or it finished after all
        failed.append(trial.number)
        end_if_running(trial.user_attrs.get("mlflow_run_id"), "FAILED", f"its worker {holder} is gone")
        end_if_running(trial.system_attrs.get(WORKER_RUN_ATTR), "KILLED",
                       f"this worker ({holder}) is gone; trial {trial.number} failed with it")
    if failed:
        log.warning("study %s: trial(s) %s failed: their worker is gone", study.study_name, ", ".join(map(str, failed)))
    return failed


def end_if_running(run_id: str | None, status: str, reason: str) -> None:
    """End a run another process left RUNNING, with the reason (a run that ended meanwhile stays as it is)."""
    if not run_id:
        return
    client = mlflow.MlflowClient()
    try:
        if client.get_run(run_id).info.status != "RUNNING":
            return
        client.set_tag(run_id, schema.ERROR, reason[:5000])
        client.set_terminated(run_id, status)
    except mlflow.exceptions.MlflowException as exc:  # deleted, or another store: nothing to end
        log.debug("cannot end run %s: %s", run_id, exc)


def summarize(study: optuna.Study, parent_run_id: str) -> pd.DataFrame:
    """Best value and parameters, history and importance plots, and every trial as a table, on the
    study's run; written by the worker that finishes last (the one that sees no trial still
    running; of two that finish together, the one that claims it first), so the study's run shows
    every worker's final states once.

    A claim is per number of trials (``cinv.summary_by.<n>``), and writing takes a while: a worker
    that summarised n trials and then finds a claim for more rewrites from the study as it is
    now, because the later table may have landed before its own (on a loaded machine it does)."""
    client = mlflow.MlflowClient()
    fail_dead_trials(study)  # a killed worker's trial must not keep the last live worker from writing the summary
    trials = trials_table(study)
    if still_running(study):
        return trials
    # Two workers that finish at the same instant both see no trial running: one of them writes
    # (MLflow's set_tag is a read-then-insert, and two at once collide on the server's database).
    mine = f"{owner()} {uuid.uuid4().hex[:8]}"
    writer = first_writer(parent_run_id, f"{schema.SUMMARY_BY}{len(study.trials)}", mine)
    if writer != mine:
        log.info("study %s: worker %s writes the summary of these %d trials", study.study_name,
                 (writer or "?").split(" ")[0], len(study.trials))
        return trials
    while True:
        written = len(study.trials)
        write_summary(study, trials, parent_run_id)
        params = client.get_run(parent_run_id).data.params
        claimed = max((int(k.removeprefix(schema.SUMMARY_BY)) for k in params if k.startswith(schema.SUMMARY_BY)),
                      default=written)
        if claimed <= written:
            return trials
        trials = trials_table(study)  # the study as it is now: at least the trials of the later claim
        if still_running(study):
            return trials


def trials_table(study: optuna.Study) -> pd.DataFrame:
    trials = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs", "duration"))
    trials["duration"] = trials["duration"].dt.total_seconds()
    return trials


def still_running(study: optuna.Study) -> bool:
    running = [t.number for t in study.trials if not t.state.is_finished()]
    if running:
        log.info("study %s: trial(s) %s of other workers still running; the last worker to finish writes the summary",
                 study.study_name, ", ".join(map(str, running)))
    return bool(running)


def write_summary(study: optuna.Study, trials: pd.DataFrame, parent_run_id: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as oplt

    client = mlflow.MlflowClient()
    log_table(trials, "trials", run_id=parent_run_id)
    states = trials["state"].value_counts().to_dict()
    for state in ("COMPLETE", "PRUNED", "FAIL"):
        client.log_metric(parent_run_id, f"trials_{state.lower()}", states.get(state, 0))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return
    best = study.best_trial
    client.log_metric(parent_run_id, "best_value", best.value, step=len(complete))
    for name, value in best.params.items():
        client.set_tag(parent_run_id, f"best.{name}", f"{value:.6g}")
    client.set_tag(parent_run_id, "best.trial", str(best.number))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        log_figure(oplt.plot_optimization_history(study).figure, "optimization_history.png", run_id=parent_run_id)
        log_figure(oplt.plot_intermediate_values(study).figure, "intermediate_values.png", run_id=parent_run_id)
        if len(complete) >= 2:
            try:
                axes = oplt.plot_param_importances(study)
                log_figure(axes.figure, "param_importances.png", run_id=parent_run_id)
            except (RuntimeError, ValueError) as exc:  # e.g. every complete trial had the same value
                client.set_tag(parent_run_id, schema.IMPORTANCE, f"not computed: {exc}")


def tune(cfg, s: Setup) -> pd.DataFrame:
    """Run ``cfg.n_trials`` trials of ``cfg.method`` in the (created or joined) study; summarise it."""
    storage = open_storage(cfg.storage)  # before anything is created
    run = mlflow.active_run()
    study, parent_run_id, created = open_study(cfg, storage, run.info.run_id)
    if created:
        mlflow.set_tags({schema.STAGE: "study", schema.STUDY: cfg.study})
    else:
        mlflow.set_tags({schema.PARENT: parent_run_id, schema.STAGE: "tune worker", schema.STUDY: cfg.study})
    fail_dead_trials(study)
    objective = Objective(cfg, s, parent_run_id, run.info.experiment_id)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=cfg.n_trials, catch=(NonFiniteLossError,))
    trials = summarize(study, parent_run_id)
    if cfg.retrain:
        retrain_best(cfg, s, study, parent_run_id, run.info.experiment_id)
    shown = trials[["number", "value", "state"] + [c for c in trials.columns if c.startswith("params_")]]
    return shown.rename(columns=lambda c: c.removeprefix("params_"))


def retrain_best(cfg, s: Setup, study: optuna.Study, parent_run_id: str, experiment_id: str) -> None:
    """A final child run: the best parameters, the full budget, the test split, optional registration."""
    method = METHODS.get(cfg.method)
    best = study.best_trial.params
    run = mlflow.MlflowClient().create_run(experiment_id, run_name="best parameters, full budget", tags={
        schema.PARENT: parent_run_id, schema.STAGE: "retrain", schema.STUDY: cfg.study})
    with mlflow.start_run(run_id=run.info.run_id, nested=True):
        mlflow.log_params(best | {"method": cfg.method})
        opts = updated(cfg.options[method.name], lambda loc: f"{cfg.method}_{'.'.join(loc)}", **best)
        trained, infos = train_in_run(s, method.name, opts, cfg.teacher, study=cfg.study)
        classifier = trained if "classifier" in method.produces else train_probe(s, trained, cfg.probe)
        log_datasets(s.splits, "train", "test")
        link(list(infos.values()), evaluate_model(s, classifier, cfg.eval), s)
        register_trained(method.name, infos, opts)
