"""Command-line wrapper shared by every entry point: parse, open the MLflow run, validate, call.

Parameters are ``--key value`` (what ``mlflow run -P key=value`` passes). The run is opened
before validation so that a bad parameter still leaves a FAILED run that says why; the error
is printed as one line and the exit status is 2 for bad input, 1 for anything unexpected.
``--dry_run true`` resolves the configuration exactly as a run would and prints it, with its
deviations from the paper, as one JSON object; it opens no run and touches no store.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from typing import Any, Literal, NamedTuple, get_args, get_origin

import mlflow
from pydantic import TypeAdapter

import cinv
from cinv import distributed, plugins, settings
from cinv.commands import COMMANDS
from cinv.config.base import Strict, preset_keys, preset_values
from cinv.config.mlproject import mlproject_text as write_mlproject
from cinv.config.options import Trains
from cinv.data.stream import end_loader_workers
from cinv.errors import CinvError, CommandFailed, ConfigError, ResumeError, StoreError, Terminated, one_line
from cinv.runtime import environ, termination
from cinv.secrets import redact, redacted
from cinv.tracking import schema
from cinv.tracking.lease import Lease
from cinv.tracking.resume import check_same_config, resume_run
from cinv.tracking.runs import interrupted, log_json, log_params, use_experiment
from cinv.tracking.store import check_store, configure, quick_store, stopping, with_retries
from cinv.training.checkpoint import remove_checkpoints

EXPECTED = (ConfigError, CinvError, ValueError, FileNotFoundError)


def metavar(annotation: Any, key: str) -> str:
    """What a parameter takes, for --help: INT, FLOAT, BOOL, {a,b}, SPEC, PATH, URI, LIST or TEXT."""
    kind = annotation
    if get_origin(kind) is not Literal and type(None) in get_args(kind):  # Optional[X]: X
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is Literal:
        return "{" + ",".join(map(str, get_args(kind))) + "}"
    if kind is bool:
        return "BOOL"
    if kind is int:
        return "INT"
    if kind is float:
        return "FLOAT"
    if key.endswith(("corruption", "corruptions", "dataset", "targets", "space")) or key in ("teacher",) or \
            key.endswith(("_backbone", "_encoder")):
        return "SPEC"
    if key.endswith(("_weights", "class_list", "storage", "mnist", "images", "output", "label_shift_table")):
        return "PATH"
    if key in ("model",) or key.endswith("_uri"):
        return "URI"
    if key.endswith(("seeds", "methods", "fractions", "losses", "budgets")):
        return "LIST"
    return "TEXT"


def _shown(value: Any) -> Any:
    return "none" if value is None else value


def _default(description: str, default: str) -> str:
    """A help line: the description, then its default unless the description says it or there is none."""
    if "default:" in description.lower() or default in ("default: none", "default: ", "default: ''"):
        return description
    return f"{description} ({default})"


log = logging.getLogger(__name__)

class HelpRow(NamedTuple):
    group: str  # the command's own options, an option group, or "method <name> ..."
    key: str
    metavar: str
    description: str
    default: str  # "default: ...", per preset where the preset decides it, or "required"
    bare: str | None  # the option's bare name, for the options of a single-method command's method


def help_rows(command: str, cls: type[Strict]) -> list[HelpRow]:
    """Every parameter of a command, grouped, with its type and its default (per preset where the
    preset decides it): what ``--help`` prints and the documentation's command pages list."""
    governed = preset_keys(cls)
    presets = {name: preset_values(cls, name) for name in ("cpu", "paper")} if governed else {}
    methods = settings.runnable_methods(cls)
    single = getattr(cls, "METHOD", None)
    fields = settings.parameters(cls)
    own = {f.key for f in fields}
    rows = []
    for f in fields:
        title = f.group or f"{command} options"
        if f.group in methods:
            title = f"method {f.group}" + (" (also by the bare option name)" if f.group == single else
                                           " (used when the run runs it)")
        if f.key in governed:
            default = "default: " + "; ".join(f"preset {name}: {_shown(values.get(f.key, f.default))}"
                                              for name, values in presets.items())
        elif f.group in methods and f.path[-1] in settings.method_preset_keys(f.group):
            default = "default: " + "; ".join(f"preset {name}: {_shown(v)}"
                                              for name, v in settings.method_preset_defaults(f.group, f.path[-1]).items())
        else:
            default = "required" if f.required else f"default: {_shown(f.default)}"
        bare = f.path[-1] if f.group == single and f.path[-1] not in own else None
        rows.append(HelpRow(title, f.key, metavar(f.annotation, f.key), f.description, default, bare))
    return rows


def parser_for(command: str, cls: type[Strict], full: bool = False) -> argparse.ArgumentParser:
    """--help lists every parameter by group (the command's own, each option group, each method),
    with its type and its default (per preset where the preset decides it); the options of a
    method the command does not run by default are folded into one line each (``full``:
    listed too, what ``--help-all`` prints)."""
    parser = argparse.ArgumentParser(
        prog=f"cinv {command}",
        usage=f"cinv {command} [--key value ...] [--dry_run]",
        description=(cls.__doc__ or "").strip(),
        epilog=f"Through MLflow: mlflow run . -e {command} -P key=value ... ; tracking store: $MLFLOW_TRACKING_URI "
        f"or sqlite:///mlflow.db in the working directory; experiment: experiment_name, $MLFLOW_EXPERIMENT_NAME or "
        f"{schema.DEFAULT_EXPERIMENT}; log level: -v / -q or $CINV_LOG_LEVEL.",
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    run = set(settings.build(cls, {}, check=False).method_names()) if issubclass(cls, Trains) and not full else None
    folded: dict[str, list[str]] = {}
    for row in help_rows(command, cls):
        method = row.group.split(" ")[1] if row.group.startswith("method ") else None
        hidden = run is not None and method is not None and method not in run
        if hidden:
            folded.setdefault(method, []).append(row.key)
            parser.add_argument(f"--{row.key}", help=argparse.SUPPRESS)
            continue
        group = groups.get(row.group) or groups.setdefault(row.group, parser.add_argument_group(row.group))
        group.add_argument(f"--{row.key}", metavar=row.metavar, help=_default(row.description, row.default))
        if row.bare:  # the single method's options by their bare names too
            group.add_argument(f"--{row.bare}", help=argparse.SUPPRESS)
    if folded:
        group = parser.add_argument_group(
            "methods this command does not run by default (add one to methods=...)",
            "; ".join(f"{name}: {len(keys)} options, {name}_<option>" for name, keys in folded.items())
            + f". cinv {command} --help-all lists them, as does docs/commands/{command}.md")
        group.add_argument("--help-all", action="store_true", help="list every method's options and exit")
    parser.add_argument("--dry_run", metavar="BOOL", nargs="?", const="true",
                        help="resolve the configuration and print it and its deviations from the paper as JSON, then "
                        "exit: no run, no file, no store (--dry_run alone: true; default: false)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (debug)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="warnings and errors only")
    return parser


def run_command(command: str, **params) -> str:
    """Python API: run a command exactly as its entry point would; returns the MLflow run id.

    ``cinv.run_command("main", limit_per_class=20, student_epochs=1)``; raises
    [CommandFailed][] (with the FAILED run's id) when the command fails.
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


SYSTEM_METRICS = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"  # MLflow's default for every run a process opens
# MLflow samples every 10 s, so an evaluation of a few seconds would show "System metrics (0)"; every
# 2 s it shows its own (the monitor's cost stays under 1% of a core: benchmarks/system_metrics.py
# measures 0.32-0.38 CPU-s a minute at 2 s, 0.1 at 10 s). A user's own setting wins.
SAMPLING = "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"
SAMPLING_S = "2"


def execute(command: str, argv: list[str] | None = None) -> tuple[int, str | None]:
    """The exit status and the id of the run (None when no run could be opened). SIGTERM stops
    the command like Ctrl-C (after the training step in progress and its checkpoint), exit 143."""
    try:
        # The caller's own settings again afterwards; restored before interpreter exit, which would
        # wait on the monitors (data.stream).
        with environ(keep=(SYSTEM_METRICS, SAMPLING)), termination.installed():
            return _execute(command, argv)
    except KeyboardInterrupt as exc:  # before any run was opened
        print(f"cinv {command}: {interrupted(exc)}; nothing was started", file=sys.stderr)
        return (143 if isinstance(exc, Terminated) else 130), None
    finally:
        distributed.shutdown()
        end_loader_workers()


def build(command: str, params: dict[str, Any]):
    """A command's resolved config from its flat parameters (``settings.build``)."""
    return settings.build(COMMANDS[command].config, params)


def dry_run(command: str, params: dict[str, Any]) -> int:
    """Print the resolved configuration and its deviations as one JSON object on stdout."""
    try:
        described = settings.describe(build(command, params))
    except EXPECTED as exc:
        print(f"cinv {command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(json.dumps(redacted(described), indent=2, default=str))
    return 0


def _execute(command: str, argv: list[str] | None) -> tuple[int, str | None]:
    plugins.load()
    cls = COMMANDS[command].config
    if "--help-all" in (sys.argv[2:] if argv is None else argv):
        parser_for(command, cls, full=True).print_help()
        return 0, None
    args, unknown = parser_for(command, cls).parse_known_args(argv)
    params = vars(args)
    set_verbosity(params.pop("verbose", 0) - params.pop("quiet", 0))
    given = params.pop("dry_run", False)
    try:
        dry = TypeAdapter(bool).validate_python(given)
    except ValueError:
        print(f"cinv {command}: error: invalid parameter dry_run: true or false (got {given!r}); nothing was started",
              file=sys.stderr)
        return 2, None
    if dry:
        if unknown:
            print(f"cinv {command}: error: unknown argument(s) {' '.join(unknown)}; see --help", file=sys.stderr)
            return 2, None
        return dry_run(command, params), None
    nproc = _processes(command, params, unknown)
    if nproc > 1 and not distributed.launched():  # rank 0 of the torchrun it starts opens the run
        return distributed.launch(nproc, command, sys.argv[1:] if argv is None else list(argv)), None
    if distributed.launched() and distributed.init(params.get("device", "auto")).rank != 0:
        return _worker(command, params)
    configure()
    resume = params.get("resume_run_id")
    # Every run the command opens (each child that trains or evaluates too) shows its own system metrics.
    system_metrics = asked(params.get("system_metrics", declared(command, "system_metrics")))
    os.environ[SYSTEM_METRICS] = str(system_metrics).lower()
    os.environ.setdefault(SAMPLING, SAMPLING_S)
    try:
        check_store()
        if resume:
            config = settings.build(COMMANDS[command].config, params)  # a bad value leaves the run as it was
            run_ = resume_run(command, resume, params.get("experiment_name"),
                              same_config=lambda run: check_same_config(run, settings.comparable(config)))
        else:
            with_retries(use_experiment, "starting a run")(params.get("experiment_name"))
            run_ = with_retries(mlflow.start_run, "starting a run")(run_name=run_name(command, params),
                                                                    log_system_metrics=system_metrics)
    except (ResumeError, StoreError, ConfigError) as exc:  # nothing was started; a named run is left as it was
        print(f"cinv {command}: error: {exc}", file=sys.stderr)
        return 2, None
    mlflow.set_tag(schema.COMMAND, command)
    mark_experiment(run_.info.experiment_id)
    run_id = run_.info.run_id
    try:
        with Lease(run_id):
            run_stages(command, params, unknown, resume, run_.info.experiment_id)
    except KeyboardInterrupt as exc:
        last_writes(run_id, "KILLED", interrupted(exc))
        hint = f"continue it with resume_run_id={run_id}" if COMMANDS[command].resumable else "start it again to rerun it"
        print(f"cinv {command}: {interrupted(exc)}; run {run_id} marked KILLED; {hint}", file=sys.stderr)
        return (143 if isinstance(exc, Terminated) else 130), run_id
    except Exception as exc:
        message = one_line(exc)
        expected = isinstance(exc, EXPECTED)
        if not expected:
            traceback.print_exc()
        last_writes(run_id, "FAILED", message)
        print(f"cinv {command}: error: {message} (run {run_id} marked FAILED)", file=sys.stderr)
        return (2 if expected else 1), run_id
    if resume and schema.ERROR in run_.data.tags:
        mlflow.MlflowClient().delete_tag(run_id, schema.ERROR)
    mlflow.end_run()
    remove_checkpoints(run_id)  # finished: nothing resumes it any more
    print(f"cinv {command}: run {run_id} finished; {ui_link(run_.info.experiment_id, run_id)}")
    return 0, run_id


def last_writes(run_id: str, status: str, reason: str) -> None:
    """A stopped or failed run's reason and status, one quick try each: the store may be what
    failed, and a SIGTERM must end the process within seconds whatever it waits on."""
    with quick_store():
        try:
            mlflow.set_tag(schema.ERROR, reason[:5000])
        except Exception as exc:
            log.warning("run %s: its reason could not be written: %s", run_id, one_line(exc))
        try:
            mlflow.end_run(status=status)
            return
        except Exception as exc:
            log.warning("run %s could not be marked %s: %s", run_id, status, one_line(exc))
    stopping()  # the run is still active: MLflow ends it again at exit, with one quick try


def run_stages(command: str, params: dict[str, Any], unknown: list[str], resume: str | None, experiment_id: str) -> None:
    """Inside the open run: validate, record the resolved configuration, run the command, print its table."""
    if unknown:
        raise ConfigError(f"unknown argument(s) {' '.join(unknown)}; see --help")
    config = build(command, params)
    dumped = config.model_dump(mode="json")
    if not resume and getattr(config, "experiment_name", "") and mlflow.get_experiment(experiment_id).name != config.experiment_name:
        raise ConfigError(f"experiment_name: this run is already in experiment {mlflow.get_experiment(experiment_id).name!r} "
                          f"(mlflow run creates it: pass --experiment-name {config.experiment_name} to mlflow run instead)")
    flat = settings.to_flat(config)
    mlflow.set_tag(schema.RUN_NAME, run_name(command, flat))
    log_params(flat)
    log_json(dumped, "config.json")
    preset_line = log_preset(config)
    result = COMMANDS[command].run(config)
    if preset_line:
        print(preset_line)
    if result is not None and hasattr(result, "to_markdown"):
        shown = result.drop(columns=[c for c in result.columns if c.endswith(("_mean", "_se"))]).to_markdown(index=False)
        print(shown)
        against = mlflow.get_run(mlflow.active_run().info.run_id).data.tags.get(schema.PAPER_COMPARISON)
        if against:
            print("against the paper:\n" + "\n".join(f"  {line}" for line in against.splitlines()))
        describe(command, result, shown, preset_line)


def declared(command: str, key: str) -> Any:
    """A command's declared default for ``key``, for the few options read before validation."""
    field = COMMANDS[command].config.model_fields.get(key)
    return field.default if field is not None else None


def asked(value: Any) -> bool:
    """A boolean option read before its config is validated (the run must start first); an invalid
    value counts as no here and is reported by validation."""
    try:
        return TypeAdapter(bool).validate_python(value)
    except ValueError:
        return False


def set_verbosity(level: int) -> None:
    """-v: DEBUG, default: INFO (one line per epoch, trial and stage), -q: warnings only; or $CINV_LOG_LEVEL."""
    name = os.environ.get("CINV_LOG_LEVEL") or {-1: "WARNING", 0: "INFO"}.get(max(min(level, 1), -1), "DEBUG")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("cinv").setLevel(name.upper())
    # MLflow's system-metrics monitor says three INFO lines per run (GPU skipped, started, stopped):
    # 20 of a main job's log lines. Shown with -v.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.INFO if name.upper() == "DEBUG" else logging.WARNING)


EXPERIMENT_NOTE = """Runs of cinv (robust image representations by contrastive inversion).

- Each command is one parent run named `command · experiment or method (where it has one) · corruption · seed(s)`, e.g.
  `main · random_mask(fraction=0.9) · seed 0`; its description opens on the headline against the paper and holds its
  results table; its children hold each training and each evaluated model.
- Training runs log `train_loss` and `lr` per optimiser step and a validation metric per epoch; evaluation runs log
  `test_top1_mean` and `test_top1_se` over corruption draws, and `test_draws.json`, one row per draw.
- On a parent run, `paper_comparison` puts the published value beside each measured cell, and `deviations.json` lists
  every setting that differs from the paper's and where the paper's text and its released code disagree.
- Registered encoders are in the Model registry (`cinv-student`, alias `@champion`); the Models tab lists every logged
  model."""


def mark_experiment(experiment_id: str) -> None:
    """Tag the experiment as custom model development, so MLflow's UI opens it on training runs
    (an untagged one opens in GenAI mode); an experiment already marked is left as it is."""
    client = mlflow.MlflowClient()
    marked = lambda: schema.EXPERIMENT_KIND in client.get_experiment(experiment_id).tags
    if schema.NOTE not in client.get_experiment(experiment_id).tags:
        try:
            with_retries(client.set_experiment_tag, "describing the experiment")(experiment_id, schema.NOTE, EXPERIMENT_NOTE)
        except Exception as exc:  # a worker starting at the same instant wrote it first
            log.debug("describing experiment %s: %s", experiment_id, exc)
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


def describe(command: str, result, table: str, preset_line: str | None) -> None:
    """The run's description (shown on its page in the UI): one headline line first (each row's
    top-1), then its results table, what the ± means and the cells against the paper. The table
    is a code block: the UI renders Markdown tables with no cell padding, so that neighbouring
    cells ran together ("62.40 ± 0.0096.40 ± 0.00")."""
    tags = mlflow.get_run(mlflow.active_run().info.run_id).data.tags
    statistic, against = tags.get(schema.STATISTIC, ""), tags.get(schema.PAPER_COMPARISON, "")
    lines = [f"**cinv {command}**: {headline}" if (headline := headline_of(result)) else f"**cinv {command}**", ""]
    lines += ["```text", table, "```", ""]
    lines += [f"± : {statistic}", ""] if statistic else []
    lines += ["**Against the paper** (paper_comparison table):", "", *(f"- {line}" for line in against.splitlines()), ""] \
        if against else []
    lines += [preset_line] if preset_line else []
    mlflow.set_tag(schema.NOTE, "\n".join(lines)[:60_000])


def headline_of(result) -> str:
    """``model top-1; model top-1; ...`` for the first rows of a results table with a top-1 column."""
    names = next((c for c in ("model", "method", "probe") if c in result.columns), None)
    if names is None or "top1" not in result.columns:
        return ""
    where = [c for c in ("evaluated on", "corruption", "test set", "attack") if c in result.columns]
    shown = [f"{row[names]}{f' ({row[where[0]]})' if where and len(set(result[where[0]])) > 1 else ''} {row['top1']}"
             for _, row in result.head(6).iterrows()]
    return "; ".join(shown) + (" ..." if len(result) > 6 else "")


def ui_link(experiment_id: str, run_id: str) -> str:
    """Where to see the run: the server's page, or `mlflow ui` on a local store and its page."""
    uri = mlflow.get_tracking_uri()
    page = f"#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return f"view it at {redact(uri).rstrip('/')}/{page}"
    return f"view it: mlflow ui --backend-store-uri {redact(uri)}, then http://127.0.0.1:5000/{page}"


def log_preset(config: Strict) -> str | None:
    """For a command with presets: tag the preset, log ``deviations.json`` (every setting of the run
    that differs from the paper's recipe for it), and return the line that says so in the output."""
    if not isinstance(config, Trains):
        return None
    deviations = settings.deviations(config)
    mlflow.set_tags({schema.PRESET: config.preset, schema.PAPER_DEVIATIONS: str(len(deviations))})
    log_json({"preset": config.preset, "differs_from_paper": deviations, "paper_vs_code": settings.paper_vs_code(config)},
             "deviations.json")
    if not deviations:
        return f"preset {config.preset}: every setting is the paper's"
    shown = ", ".join(f"{k}={v['value']} (paper: {v['paper']})" for k, v in deviations.items())
    return f"preset {config.preset}: {len(deviations)} setting(s) differ from the paper's: {shown}"


def _processes(command: str, params: dict[str, Any], unknown: list[str]) -> int:
    """How many processes the command asks for (an invalid request is reported inside the run)."""
    if "nproc" not in params or unknown:
        return 1
    try:
        return build(command, params).nproc
    except Exception:
        return 1


def _worker(command: str, params: dict[str, Any]) -> tuple[int, None]:
    """A process other than rank 0 of a distributed run: the same work, no MLflow run of its own."""
    try:
        COMMANDS[command].run(build(command, params))
    except Exception as exc:
        print(f"cinv {command} (rank {distributed.world().rank}): error: {one_line(exc)}", file=sys.stderr)
        return 1, None
    return 0, None


def main(command: str) -> None:
    """What ``entrypoints/<command>.py`` calls."""
    sys.exit(run(command))


def console() -> None:
    """The ``cinv`` console script: ``cinv <command> --key value ...``; ``cinv --version``."""
    if sys.argv[1:2] in (["--version"], ["-V"]):
        print(f"cinv {cinv.__version__}")
        sys.exit(0)
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        asked_for_help = len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help")
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
        print("usage: cinv <command> [--key value ...]; cinv <command> --help lists its parameters\n\ncommands:\n"
              + "\n".join(lines), file=sys.stdout if asked_for_help else sys.stderr)
        sys.exit(0 if asked_for_help else 2)
    sys.exit(run(sys.argv[1], sys.argv[2:]))


def mlproject_text() -> str:
    """MLproject generated from the configs (``cinv.config.mlproject``)."""
    return write_mlproject({name: entry.config for name, entry in COMMANDS.items()}, lambda cls: issubclass(cls, Trains))


if __name__ == "__main__":
    if sys.argv[1:] == ["mlproject"]:
        sys.stdout.write(mlproject_text())
    else:
        console()
