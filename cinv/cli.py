"""Command-line wrapper shared by every entry point: parse, open the MLflow run, validate, call.

Parameters are ``--key value`` (what ``mlflow run -P key=value`` passes). The run is opened
before validation so that a bad parameter still leaves a FAILED run that says why; the error
is printed as one line and the exit status is 2 for bad input, 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import mlflow

from cinv import plugins
from cinv.commands import COMMANDS
from cinv.config.base import Strict, build, flat_fields, paper_deviations, preset_keys, to_flat
from cinv.errors import CinvError, CommandFailed, ConfigError, ResumeError, StoreError, one_line
from cinv.tracking import schema
from cinv.tracking.runs import configure, log_json, log_params, with_retries
from cinv.training import distributed

EXPECTED = (ConfigError, CinvError, ValueError, FileNotFoundError)


def parser_for(command: str, cls: type[Strict]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"cinv {command}",
        description=(cls.__doc__ or "").strip(),
        epilog=f"Through MLflow: mlflow run . -e {command} -P key=value ... ; tracking store: $MLFLOW_TRACKING_URI "
        "or sqlite:///mlflow.db in the working directory.",
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
    """The exit status and the id of the run (None when no run could be opened)."""
    try:
        return _execute(command, argv)
    finally:
        distributed.shutdown()


def _execute(command: str, argv: list[str] | None) -> tuple[int, str | None]:
    plugins.load()
    cls = COMMANDS[command].config
    args, unknown = parser_for(command, cls).parse_known_args(argv)
    nproc = _processes(cls, args, unknown)
    if nproc > 1 and not distributed.launched():  # rank 0 of the torchrun it starts opens the run
        return distributed.launch(nproc, command, sys.argv[1:] if argv is None else list(argv)), None
    if distributed.launched() and distributed.init(getattr(args, "device", "auto")).rank != 0:
        return _worker(command, cls, args)
    configure()
    resume = getattr(args, "resume_run_id", None)
    try:
        run_ = resume_run(command, resume) if resume else with_retries(mlflow.start_run, "starting a run")(
            run_name=command)
    except (ResumeError, StoreError) as exc:  # nothing was started; a named run is left as it was
        print(f"cinv {command}: error: {exc}", file=sys.stderr)
        return 2, None
    mlflow.set_tag(schema.COMMAND, command)
    try:
        if unknown:
            raise ConfigError(f"unknown argument(s) {' '.join(unknown)}; see --help")
        config = build(cls, vars(args))
        if resume:
            check_same_config(run_.info.run_id, config)
        fn = COMMANDS[command].run
        log_params(to_flat(config))
        log_json(config.model_dump(mode="json"), "config.json")
        preset_line = log_preset(config)
        result = fn(config)
        if preset_line:
            print(preset_line)
        if result is not None and hasattr(result, "to_markdown"):
            print(result.drop(columns=[c for c in result.columns if c.endswith(("_mean", "_se"))]).to_markdown(index=False))
    except KeyboardInterrupt:
        mlflow.end_run(status="KILLED")
        print(f"cinv {command}: interrupted; run {run_.info.run_id} marked KILLED", file=sys.stderr)
        return 130, run_.info.run_id
    except Exception as exc:
        message = one_line(exc)
        expected = isinstance(exc, EXPECTED)
        if not expected:
            traceback.print_exc()
        mlflow.set_tag(schema.ERROR, message[:5000])
        mlflow.end_run(status="FAILED")
        print(f"cinv {command}: error: {message} (run {run_.info.run_id} marked FAILED)", file=sys.stderr)
        return (2 if expected else 1), run_.info.run_id
    if resume and schema.ERROR in run_.data.tags:
        mlflow.MlflowClient().delete_tag(run_.info.run_id, schema.ERROR)
    mlflow.end_run()
    print(f"cinv {command}: run {run_.info.run_id} finished; tracking store {mlflow.get_tracking_uri()}")
    return 0, run_.info.run_id


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


def resume_run(command: str, run_id: str):
    """Reopen a FAILED, KILLED or abandoned (still RUNNING) run of ``command``; 'latest' finds one."""
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    if run_id == "latest":
        experiment = mlflow.tracking.fluent._get_experiment_id()
        candidates = mlflow.search_runs([experiment], filter_string=f"tags.`{schema.COMMAND}` = '{command}' and "
                                        "attributes.status != 'FINISHED'", order_by=["attributes.start_time DESC"],
                                        output_format="list", max_results=1)
        if not candidates:
            raise ResumeError(f"resume_run_id: no unfinished {command} run in experiment {experiment} to resume")
        run_id = candidates[0].info.run_id
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ResumeError(f"resume_run_id: {exc.message}") from None
    if run.info.status == "FINISHED":
        raise ResumeError(f"resume_run_id: run {run_id} already FINISHED; nothing to resume")
    if run.data.tags.get(schema.COMMAND) != command:
        raise ResumeError(f"resume_run_id: run {run_id} is a {run.data.tags.get(schema.COMMAND, 'non-cinv')} run, not {command}")
    launched = os.environ.get("MLFLOW_RUN_ID")  # `mlflow run` made a run of its own for this invocation
    if launched and launched != run_id:
        client.set_tag(launched, schema.RESUMED_INTO, run_id)
    active = mlflow.start_run(run_id=run_id)
    mlflow.set_tag(schema.RESUMED, str(int(run.data.tags.get(schema.RESUMED, "0")) + 1))
    return active


def check_same_config(run_id: str, config: Strict) -> None:
    """A resumed run must continue with the parameters it started with."""
    try:
        before = mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json")
    except Exception:
        raise ResumeError(f"resume_run_id: run {run_id} has no config.json to compare with") from None
    now = config.model_dump(mode="json")
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
        "conda_env: conda.yaml",
        "entry_points:",
    ]
    for command, entry in COMMANDS.items():
        cls = entry.config
        lines += [f"  {command}:", "    parameters:"]
        args = []
        governed = preset_keys(cls)
        for f in flat_fields(cls):
            numeric = f.annotation in (int, float)  # MLflow rejects "" for float params: optional ones are strings
            kind = "float" if numeric and f.key not in governed else "string"
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
