"""The commands, one thin module each: its typed config and ``run(config)``, which calls the library.

[COMMANDS][] maps every entry-point name to its [Command][]; the CLI, the MLproject
generator and ``cinv.run_command`` read it, and nothing else lists the commands.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

from cinv.commands import (
    baseline,
    benchmark,
    embed,
    evaluate,
    experiment,
    fcl,
    main,
    probe,
    promote,
    report,
    rocl,
    student,
    tune,
)
from cinv.config.base import Strict

__all__ = ["Command", "COMMANDS", "CONFIGS"]


@dataclass(frozen=True)
class Command:
    name: str
    config: type[Strict]
    run: Callable

    @property
    def resumable(self) -> bool:
        """Whether a stopped run of it can be continued (its config takes ``resume_run_id``)."""
        return "resume_run_id" in self.config.model_fields

    @property
    def summary(self) -> str:
        """Its first sentence (the config docstring's first paragraph up to a full stop before a
        capital), whole, however the docstring wraps it: what ``cinv --help`` and the documentation list."""
        paragraph = " ".join(inspect.cleandoc(self.config.__doc__ or "").split("\n\n")[0].split())
        end = re.search(r"\.\s+(?=[A-Z])", paragraph)
        return (paragraph[:end.start()] if end else paragraph).rstrip(".") + "."


COMMANDS: dict[str, Command] = {
    "main": Command("main", main.MainConfig, main.run),
    "student": Command("student", student.StudentConfig, student.run),
    "baseline": Command("baseline", baseline.BaselineConfig, baseline.run),
    "probe": Command("probe", probe.ProbeConfig, probe.run),
    "evaluate": Command("evaluate", evaluate.EvaluateConfig, evaluate.run),
    "promote": Command("promote", promote.PromoteConfig, promote.run),
    "embed": Command("embed", embed.EmbedConfig, embed.run),
    "tune": Command("tune", tune.TuneConfig, tune.run),
    "experiment": Command("experiment", experiment.ExperimentConfig, experiment.run),
    "report": Command("report", report.ReportConfig, report.run),
    "fcl": Command("fcl", fcl.FCLConfig, fcl.run),
    "rocl": Command("rocl", rocl.RoCLConfig, rocl.run),
    "benchmark": Command("benchmark", benchmark.BenchmarkConfig, benchmark.run),
}
CONFIGS: dict[str, type[Strict]] = {name: command.config for name, command in COMMANDS.items()}
