"""Command-line wrapper shared by every entry point: parse, open the MLflow run, validate, call.

Parameters are ``--key value`` (what ``mlflow run -P key=value`` passes). The run is opened
before validation so that a bad parameter still leaves a FAILED run that says why; the error
is printed as one line and the exit status is 2 for bad input, 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

import mlflow
from pydantic import TypeAdapter

from cinv import distributed, plugins
from cinv.commands import COMMANDS
from cinv.config.base import Strict, build, flat_fields, paper_deviations, preset_keys, to_flat
from cinv.errors import CinvError, CommandFailed, ConfigError, ResumeError, StoreError, Terminated, one_line
from cinv.runtime import termination
from cinv.secrets import redact, redacted
from cinv.tracking import schema
from cinv.tracking.lease import Lease, still_alive
from cinv.tracking.runs import check_store, configure, interrupted, log_json, log_params, with_retries
from cinv.training.checkpoint import remove_checkpoints

EXPECTED = (ConfigError, CinvError, ValueError, FileNotFoundError)


def parser_for(command: str, cls: type[Strict]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"cinv {command}",
        description=(cls.__doc__ or "").strip(),
        epilog=f"Through MLflow: mlflow run . -e {command} -P key=value ... ; tracking store: $MLFLOW_TRACKING_URI "
        f"or sqlite:///mlflow.db in the working directory; experiment: experiment_name, $MLFLOW_EXPERIMENT_NAME or "
        f"{schema.DEFAULT_EXPERIMENT}; log level: -v / -q or $CINV_LOG_LEVEL.",
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
    )
    governed = preset_keys(cls)
    presets = getattr(cls, "PRESETS", {})
    shown = lambda value: "(none)" if value is None else value
    for f in flat_fields(cls):
        if f.key in governed:
            default = "default: " + "; ".join(f"preset {name}: {shown(values.get(f.key, f.default))}"
                                              for name, values in presets.items())
        else:
            default = "required" if f.required else f"default: {shown(f.default)}"
        parser.add_argument(f"--{f.key}", metavar="VALUE", help=f"{f.description} ({default})")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (debug)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="warnings and errors only")
    return parser


def run_command(command: str, **params) -> str:
    """Python API: run a command exactly as its entry point would; returns the MLflow run id.

    ``cinv.run_command("main", limit_per_class=20, student_epochs=1)``; raises
    :class:`CommandFailed` (with the FAILED run's id) when the command fails.
    """
    argv = [f"--{key}={value}" for key, value in params.items()]
    code, run_id = execute(command, argv)
    if code != 0:
        message = mlflow.get_run(run_id).data.tags.get(schema.ERROR, f"exit status {code}") if run_id else f"exit status {code}"
        raise CommandFailed(f"cinv {command} failed: {message}", run_id)
    return run_id


def run(command: str, argv: list[str] | None = None) -> int:
    """Run ``command`` with command-line style arguments; returns the exit status."""
    return execute(command, argv)[0]


def execute(command: str, argv: list[str] | None = None) -> tuple[int, str | None]:
    """The exit status and the id of the run (None when no run could be opened). SIGTERM stops
    the command like Ctrl-C (after the training step in progress and its checkpoint), exit 143."""
    try:
        with termination.installed():
            return _execute(command, argv)
    except KeyboardInterrupt as exc:  # before any run was opened
        print(f"cinv {command}: {interrupted(exc)}; nothing was started", file=sys.stderr)
        return (143 if isinstance(exc, Terminated) else 130), None
    finally:
        distributed.shutdown()


def _execute(command: str, argv: list[str] | None) -> tuple[int, str | None]:
    plugins.load()
    cls = COMMANDS[command].config
    args, unknown = parser_for(command, cls).parse_known_args(argv)
    set_verbosity(vars(args).pop("verbose", 0) - vars(args).pop("quiet", 0))
    nproc = _processes(cls, args, unknown)
    if nproc > 1 and not distributed.launched():  # rank 0 of the torchrun it starts opens the run
        return distributed.launch(nproc, command, sys.argv[1:] if argv is None else list(argv)), None
    if distributed.launched() and distributed.init(getattr(args, "device", "auto")).rank != 0:
        return _worker(command, cls, args)
    configure()
    resume = getattr(args, "resume_run_id", None)
    try:
        check_store()
        if resume:
            run_ = resume_run(command, resume, getattr(args, "experiment_name", None))
        else:
            with_retries(choose_experiment, "starting a run")(getattr(args, "experiment_name", None))
            run_ = with_retries(mlflow.start_run, "starting a run")(run_name=run_name(command, vars(args)),
                                                                    log_system_metrics=asked(args, "system_metrics") or None)
    except (ResumeError, StoreError, ConfigError) as exc:  # nothing was started; a named run is left as it was
        print(f"cinv {command}: error: {exc}", file=sys.stderr)
        return 2, None
    mlflow.set_tag(schema.COMMAND, command)
    mark_experiment(run_.info.experiment_id)
    lease = Lease(run_.info.run_id).__enter__()  # released in every way out below
    try:
        if unknown:
            raise ConfigError(f"unknown argument(s) {' '.join(unknown)}; see --help")
        config = build(cls, vars(args))
        if resume:
            check_same_config(run_.info.run_id, config)
        elif getattr(config, "experiment_name", "") and mlflow.get_experiment(run_.info.experiment_id).name != config.experiment_name:
            raise ConfigError(f"experiment_name: this run is already in experiment {mlflow.get_experiment(run_.info.experiment_id).name!r} "
                              f"(mlflow run creates it: pass --experiment-name {config.experiment_name} to mlflow run instead)")
        mlflow.set_tag(schema.RUN_NAME, run_name(command, to_flat(config)))
        fn = COMMANDS[command].run
        log_params(to_flat(config))
        log_json(config.model_dump(mode="json"), "config.json")
        preset_line = log_preset(config)
        result = fn(config)
        if preset_line:
            print(preset_line)
        if result is not None and hasattr(result, "to_markdown"):
            shown = result.drop(columns=[c for c in result.columns if c.endswith(("_mean", "_se"))]).to_markdown(index=False)
            print(shown)
            describe(command, config, shown, preset_line)
    except KeyboardInterrupt as exc:
        lease.__exit__(None, None, None)
        mlflow.set_tag(schema.ERROR, interrupted(exc))
        mlflow.end_run(status="KILLED")
        print(f"cinv {command}: {interrupted(exc)}; run {run_.info.run_id} marked KILLED; continue it with "
              f"resume_run_id={run_.info.run_id}", file=sys.stderr)
        return (143 if isinstance(exc, Terminated) else 130), run_.info.run_id
    except Exception as exc:
        lease.__exit__(None, None, None)
        message = one_line(exc)
        expected = isinstance(exc, EXPECTED)
        if not expected:
            traceback.print_exc()
        mlflow.set_tag(schema.ERROR, message[:5000])
        mlflow.end_run(status="FAILED")
        print(f"cinv {command}: error: {message} (run {run_.info.run_id} marked FAILED)", file=sys.stderr)
        return (2 if expected else 1), run_.info.run_id
    lease.__exit__(None, None, None)
    if resume and schema.ERROR in run_.data.tags:
        mlflow.MlflowClient().delete_tag(run_.info.run_id, schema.ERROR)
    mlflow.end_run()
    remove_checkpoints(run_.info.run_id)  # finished: nothing resumes it any more
    print(f"cinv {command}: run {run_.info.run_id} finished; {ui_link(run_.info.experiment_id, run_.info.run_id)}")
    return 0, run_.info.run_id


def asked(args: argparse.Namespace, flag: str) -> bool:
    """A boolean option read before its config is validated (the run must start first); an invalid
    value counts as no here and is reported by validation."""
    try:
        return TypeAdapter(bool).validate_python(getattr(args, flag, False))
    except ValueError:
        return False


def set_verbosity(level: int) -> None:
    """-v: DEBUG, default: INFO (one line per epoch, trial and stage), -q: warnings only; or $CINV_LOG_LEVEL."""
    name = os.environ.get("CINV_LOG_LEVEL") or {-1: "WARNING", 0: "INFO"}.get(max(min(level, 1), -1), "DEBUG")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("cinv").setLevel(name.upper())


def choose_experiment(name: str | None) -> None:
    """The experiment a run goes to: ``experiment_name``, else $MLFLOW_EXPERIMENT_NAME / _ID (which
    `mlflow run` sets), else ``cinv``."""
    if name:
        mlflow.set_experiment(name)
    elif not (os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_ID")):
        mlflow.set_experiment(schema.DEFAULT_EXPERIMENT)


def mark_experiment(experiment_id: str) -> None:
    """Tag the experiment as custom model development, so MLflow's UI opens it on training runs
    (an untagged one opens in GenAI mode); an experiment already marked is left as it is."""
    client = mlflow.MlflowClient()
    marked = lambda: schema.EXPERIMENT_KIND in client.get_experiment(experiment_id).tags
    if marked():
        return
    try:
        with_retries(client.set_experiment_tag, "tagging the experiment")(experiment_id, schema.EXPERIMENT_KIND,
                                                                        schema.CUSTOM_MODEL_DEVELOPMENT)
    except Exception:
        # Workers starting together race to insert the same tag; the losers' insert fails on
        # the store's unique key, and the tag the winner wrote is the one wanted.
        if not marked():
            raise


def run_name(command: str, values: dict) -> str:
    """A readable, distinct name: command, experiment or method, corruption, seed(s)."""
    what = values.get("name") or values.get("method") or ""
    corruption = values.get("corruption") or values.get("train_corruption") or ""
    seeds = values.get("seeds") or ""
    seed = f"seeds {seeds}" if seeds else (f"seed {values['seed']}" if values.get("seed") not in (None, "") else "")
    return " · ".join(str(part).strip("'") for part in (command, what, corruption, seed) if part not in (None, ""))


def describe(command: str, config: Strict, table: str, preset_line: str | None) -> None:
    """The run's description (shown on its page in the UI): its results table, and what the ± means."""
    statistic = mlflow.get_run(mlflow.active_run().info.run_id).data.tags.get(schema.STATISTIC, "")
    lines = [f"**cinv {command}**", "", table, ""]
    lines += [f"± : {statistic}", ""] if statistic else []
    lines += [preset_line] if preset_line else []
    mlflow.set_tag(schema.NOTE, "\n".join(lines)[:60_000])


def ui_link(experiment_id: str, run_id: str) -> str:
    """Where to see the run: the server's page, or `mlflow ui` on a local store and its page."""
    uri = mlflow.get_tracking_uri()
    page = f"#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return f"view it at {redact(uri).rstrip('/')}/{page}"
    return f"view it: mlflow ui --backend-store-uri {redact(uri)}, then http://127.0.0.1:5000/{page}"


def log_preset(config: Strict) -> str | None:
    """For a command with presets: tag the preset, log ``deviations.json`` (every setting that
    differs from the paper's), and return the line that says so in the output."""
    if not getattr(config, "PRESETS", None):
        return None
    deviations = paper_deviations(config)
    mlflow.set_tags({schema.PRESET: config.preset, schema.PAPER_DEVIATIONS: str(len(deviations))})
    log_json({"preset": config.preset, "differs_from_paper": deviations}, "deviations.json")
    if not deviations:
        return f"preset {config.preset}: every setting is the paper's"
    shown = ", ".join(f"{k}={v['value']} (paper: {v['paper']})" for k, v in deviations.items())
    return f"preset {config.preset}: {len(deviations)} setting(s) differ from the paper's: {shown}"


def _processes(cls: type[Strict], args: argparse.Namespace, unknown: list[str]) -> int:
    """How many processes the command asks for (an invalid request is reported inside the run)."""
    if "nproc" not in vars(args) or unknown:
        return 1
    try:
        return build(cls, vars(args)).nproc
    except Exception:
        return 1


def _worker(command: str, cls: type[Strict], args: argparse.Namespace) -> tuple[int, None]:
    """A process other than rank 0 of a distributed run: the same work, no MLflow run of its own."""
    try:
        COMMANDS[command].run(build(cls, vars(args)))
    except Exception as exc:
        print(f"cinv {command} (rank {distributed.world().rank}): error: {one_line(exc)}", file=sys.stderr)
        return 1, None
    return 0, None


def resume_run(command: str, run_id: str, experiment_name: str | None = None):
    """Reopen a FAILED, KILLED or abandoned (still RUNNING) run of ``command``; 'latest' finds one."""
    from mlflow.exceptions import MlflowException

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
    launched = os.environ.get("MLFLOW_RUN_ID")  # `mlflow run` made a run of its own for this invocation
    if launched and launched != run_id:
        client.set_tag(launched, schema.RESUMED_INTO, run_id)
    mlflow.set_experiment(experiment_id=run.info.experiment_id)  # children and tables go where the run is
    active = mlflow.start_run(run_id=run_id)
    mlflow.set_tag(schema.RESUMED, str(int(run.data.tags.get(schema.RESUMED, "0")) + 1))
    return active


def experiment_of_new_runs(name: str | None) -> str | None:
    """The id of the experiment :func:`choose_experiment` would pick, without creating it."""
    if not name and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    experiment = mlflow.get_experiment_by_name(name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or schema.DEFAULT_EXPERIMENT)
    return experiment.experiment_id if experiment else None


def latest_resumable(command: str, experiment_name: str | None = None) -> str:
    """The newest unfinished run of ``command`` in the experiment new runs go to that has something
    to resume from (a checkpoint, or finished child runs) and no process still running it."""
    experiment = experiment_of_new_runs(experiment_name)
    if experiment is None:
        raise ResumeError(f"resume_run_id: no experiment {experiment_name or schema.DEFAULT_EXPERIMENT!r}; nothing to resume")
    unfinished = mlflow.search_runs([experiment], filter_string=f"tags.`{schema.COMMAND}` = '{command}' and "
                                    "attributes.status != 'FINISHED'", order_by=["attributes.start_time DESC"],
                                    output_format="list", max_results=50)
    for run in unfinished:
        if still_alive(run):
            continue
        if schema.CHECKPOINT_STEP in run.data.tags or mlflow.search_runs(
                [experiment], filter_string=f"tags.`{schema.PARENT}` = '{run.info.run_id}'", output_format="list", max_results=1):
            return run.info.run_id
    raise ResumeError(f"resume_run_id: no {command} run in experiment {experiment} to resume (unfinished, with a checkpoint "
                      "or finished stages, and not still running)")


def check_same_config(run_id: str, config: Strict) -> None:
    """A resumed run must continue with the parameters it started with."""
    try:
        before = mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json")
    except Exception:
        raise ResumeError(f"resume_run_id: run {run_id} has no config.json to compare with") from None
    now = redacted(config.model_dump(mode="json"))  # config.json was written redacted
    before.pop("resume_run_id", None)
    now.pop("resume_run_id", None)
    if before != now:
        changed = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
        raise ResumeError(f"resume_run_id: parameters differ from run {run_id} ({', '.join(changed)}); "
                          "resume with the same parameters")


def main(command: str) -> None:
    """What ``entrypoints/<command>.py`` calls."""
    sys.exit(run(command))


def console() -> None:
    """The ``cinv`` console script: ``cinv <command> --key value ...``."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        asked = len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help")
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
        print("usage: cinv <command> [--key value ...]; cinv <command> --help lists its parameters\n\ncommands:\n"
              + "\n".join(lines), file=sys.stdout if asked else sys.stderr)
        sys.exit(0 if asked else 2)
    sys.exit(run(sys.argv[1], sys.argv[2:]))


def mlproject_text() -> str:
    """MLproject generated from the configs, so the two cannot drift (a test compares them)."""
    lines = [
        "# Generated by `python -m cinv.cli mlproject > MLproject`; edit the command configs in cinv/commands/ instead.",
        "name: cinv",
        "python_env: python_env.yaml",
        "entry_points:",
    ]
    for command, entry in COMMANDS.items():
        cls = entry.config
        lines += [f"  {command}:", "    parameters:"]
        args = []
        governed = preset_keys(cls)
        for f in flat_fields(cls):
            numeric = f.annotation in (int, float)  # MLflow rejects "" for float params: optional ones are strings
            kind = f.mlproject_type or ("float" if numeric and f.key not in governed else "string")
            if f.key in governed:  # '': the preset's value
                lines.append(f"      {f.key}: {{type: string, default: ''}}")
            elif f.required:
                lines.append(f"      {f.key}: {{type: {kind}}}")
            else:
                default = "" if f.default is None else str(f.default).lower() if isinstance(f.default, bool) else f.default
                lines.append(f"      {f.key}: {{type: {kind}, default: {_yaml_scalar(default)}}}")
            args.append(f"--{f.key} {{{f.key}}}")
        lines.append(f"    command: \"python entrypoints/{command}.py {' '.join(args)}\"")
    return "\n".join(lines) + "\n"


def _yaml_scalar(value) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


if __name__ == "__main__":
    if sys.argv[1:] == ["mlproject"]:
        sys.stdout.write(mlproject_text())
    else:
        console()
