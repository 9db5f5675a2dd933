"""Every ``cinv.*`` key cinv writes to MLflow, in one place: what runs, models and versions are
tagged with, so that writers and readers (the report, resume, promotion) agree by construction.

Run tags
    COMMAND, STAGE, ERROR, ...: what a run is and how it ended.
Recipe tags ([RECIPE][])
    What an evaluation measured; the report averages two evaluations only when all of these are
    equal and their SEED differs.
Model and version tags
    Logged models carry plain keys (``method``, ``corruption``, ``fingerprint``, ...; see
    ``tracking.models``); registered versions add PROMOTION and PROMOTION_RUN.
"""

from __future__ import annotations

# ---- runs: what a run is ------------------------------------------------------------------
COMMAND = "cinv.command"  # the command that opened the run
STAGE = "cinv.stage"  # student, baseline, probe, evaluation, experiment, trial, ...
ERROR = "cinv.error"  # the one-line reason a run FAILED
EXPERIMENT = "cinv.experiment"  # the paper experiment (or "benchmark") an evaluation belongs to
ENCODER = "cinv.encoder"  # the encoder a probe run fitted its head on (name or model URI)
MODEL = "cinv.model"  # the model an evaluate / embed run loaded
PRESET = "cinv.preset"  # cpu or paper
PAPER_DEVIATIONS = "cinv.paper_deviations"  # how many settings differ from the paper's (deviations.json)
AUTOCAST = "cinv.autocast"  # the precision decided for the command, per role
PROCESSES = "cinv.processes"  # processes of a distributed run
SE_KIND = "cinv.se_kind"  # seeds or draws: what the main table's ± is
STATISTIC = "cinv.statistic"  # the sentence that says what a table's ± is
PAPER_COMPARISON = "cinv.paper_comparison"  # the lines that hold a run's cells against their papers (paper_comparison table)
REUSED = "cinv.reused"  # prefix: cinv.reused.<kind>.<fingerprint> = URI of a model reused instead of trained
CORRUPTION = "cinv.corruption"  # prefix: the main run's corruption spec and each of its parameters

# ---- MLflow's own keys that cinv sets ------------------------------------------------------
EXPERIMENT_KIND = "mlflow.experimentKind"  # on the experiment: custom_model_development opens the UI on training runs
CUSTOM_MODEL_DEVELOPMENT = "custom_model_development"
NOTE = "mlflow.note.content"  # a run's description (Markdown): the parent run's results table
RUN_NAME = "mlflow.runName"
PARENT = "mlflow.parentRunId"
DEFAULT_EXPERIMENT = "cinv"  # where runs go unless MLFLOW_EXPERIMENT_NAME / _ID or experiment_name says otherwise

# ---- resume and checkpoints ---------------------------------------------------------------
RESUMED = "cinv.resumed"  # how many times the run was resumed
RESUMED_INTO = "cinv.resumed_into"  # on the run `mlflow run` made: the run it resumed instead
CHECKPOINT_STEP = "cinv.checkpoint_step"  # optimiser steps in the latest checkpoint
CHECKPOINT_LOST = "cinv.checkpoint_lost"  # why a resumed training found no checkpoint it could read
LEASE_OWNER = "cinv.lease.owner"  # host:pid:start of the process training the run
LEASE_HEARTBEAT = "cinv.lease.heartbeat"  # unix time its lease was last renewed

# ---- an evaluation's recipe: the report groups by these -----------------------------------
METHOD = "cinv.method"
LOSS = "cinv.loss"
TEACHER = "cinv.teacher"  # the pretrained network the method starts from
DATASET = "cinv.dataset"
TRAIN_CORRUPTION = "cinv.train_corruption"
LABEL_FRACTION = "cinv.label_fraction"
CONDITION = "cinv.condition"  # label shift, transfer target, ...
EVAL_CORRUPTION = "cinv.eval_corruption"
RECIPE_HASH = "cinv.recipe"  # a hash of every other setting (data, budgets, optimiser, probe, evaluation)
SEED = "cinv.seed"  # the training seed: evaluations that differ only here are averaged
RECIPE = {"method": METHOD, "loss": LOSS, "teacher": TEACHER, "dataset": DATASET, "train_corruption": TRAIN_CORRUPTION,
          "label_fraction": LABEL_FRACTION, "condition": CONDITION, "eval_corruption": EVAL_CORRUPTION,
          "recipe": RECIPE_HASH}

# ---- Optuna studies -----------------------------------------------------------------------
STUDY = "cinv.study"
IMPORTANCE = "cinv.importance"  # why parameter importances were not computed
STUDY_RUN_ATTR = "cinv.mlflow_run_id"  # Optuna study user attribute: the study's MLflow run
STUDY_SPACE_ATTR = "cinv.space"  # Optuna study user attribute: its search space

# ---- promotion ----------------------------------------------------------------------------
CANDIDATE = "cinv.candidate"
CHAMPION = "cinv.champion"
DECISION = "cinv.decision"
PROMOTION = "cinv.promotion"  # on a model version: the promotion decision and its reason
PROMOTION_RUN = "cinv.promotion_run"  # on a model version: the run that decided
SUCCESSION = "cinv.succession"  # param on a dethroned champion's run: .<name>.v<version>.<reign> = who took over
CROWNED = "cinv.crowned"  # on a model version: the promote run that made it @champion (its reign)

# ---- atomic claims and workers -------------------------------------------------------------
RESUME_CLAIM = "cinv.resume_claim."  # param prefix: cinv.resume_claim.<n> = the process that made the n-th resume
SUMMARY_BY = "cinv.summary_by."  # param prefix on a study's run: cinv.summary_by.<n trials> = the worker that summarised them
TRIAL_OWNER = "cinv.owner"  # Optuna trial system attr: the worker (host:pid:start) running it
TRIAL_HEARTBEAT = "cinv.heartbeat"  # Optuna trial system attr: that worker's last renewal (unix time)
TRIAL_WORKER_RUN = "cinv.worker_run"  # Optuna trial system attr: the MLflow run of the worker running it


def corruption_tags(spec: str, name: str, params: dict) -> dict[str, str]:
    """The main run's corruption as ``cinv.corruption`` and one ``cinv.corruption.<param>`` per parameter."""
    return {CORRUPTION: spec, f"{CORRUPTION}.name": name,
            **{f"{CORRUPTION}.{k}": str(tuple(v) if isinstance(v, list) else v) for k, v in params.items()}}


def reused(kind: str, fingerprint: str) -> str:
    return f"{REUSED}.{kind}.{fingerprint}"
