"""The commands, one thin module each: its typed config and ``run(config)``, which calls the library.

:data:`COMMANDS` maps every entry-point name to its :class:`Command`; the CLI, the MLproject
generator and ``cinv.run_command`` read it, and nothing else lists the commands.
"""

from __future__ import annotations

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
    def summary(self) -> str:
        """One line: the first line of its config's docstring."""
        return (self.config.__doc__ or "").strip().splitlines()[0]


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
