"""Typed configurations: unknown keys and out-of-range values are errors, named as users typed them.

Configs nest option groups (data, student, probe, ...). On the command line and in MLproject
they are flat ``key=value`` parameters: a group's fields appear under its prefix
(``student_lr``), or bare when the group is the command's own (``lr`` for ``student``). A command
with presets (``cpu``, ``paper``) takes its defaults from the chosen one; parameters given
explicitly override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cinv.errors import ConfigError

__all__ = ["Strict", "Section", "Presets", "FlatField", "flat_fields", "build", "to_flat", "preset_keys", "paper_deviations"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


@dataclass(frozen=True)
class Section:
    """Marks a nested option group and the prefix its fields take when flattened."""

    prefix: str = ""


Preset = Literal["cpu", "paper"]
PRESET = Field("cpu", description="cpu: budgets, models and optimiser settings sized for minutes on a CPU, not the "
               "paper's (each difference is listed in deviations.json and printed); paper: the paper's settings. "
               "Parameters given explicitly override the preset")


class Presets(Strict):
    """A command whose settings come as a named preset: ``PRESETS[name]`` holds flat parameters
    that override the command's defaults (the ``cpu`` preset); explicit parameters override both."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    preset: Preset = PRESET


@dataclass(frozen=True)
class FlatField:
    key: str
    path: tuple[str, ...]
    annotation: Any
    default: Any
    required: bool
    description: str
    mlproject_type: str = ""  # MLflow's parameter type when not float/string: path (an existing file or folder) or uri


def _section(field) -> Section | None:
    return next((m for m in field.metadata if isinstance(m, Section)), None)


def flat_fields(cls: type[Strict], defaults: Strict | None = None, prefix: str = "", path: tuple = ()) -> list[FlatField]:
    """Every leaf parameter of a config with its flat key, in declaration order."""
    out: list[FlatField] = []
    for name, field in cls.model_fields.items():
        section = _section(field)
        default = getattr(defaults, name) if defaults is not None else field.get_default(call_default_factory=True)
        if section is not None:
            out += flat_fields(field.annotation, default, prefix + section.prefix, path + (name,))
        else:
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            out.append(FlatField(prefix + name, path + (name,), field.annotation, default, field.is_required() and defaults is None,
                                 field.description or "", extra.get("mlproject", "")))
    keys = [f.key for f in out]
    assert len(keys) == len(set(keys)), f"{cls.__name__}: flat keys collide: {keys}"
    return out


def _optional(annotation) -> bool:
    return type(None) in get_args(annotation) or get_origin(annotation) is None and annotation is type(None)


def preset_keys(cls: type[Strict]) -> set[str]:
    """Flat parameters whose default depends on the preset: '' for them means "the preset's value"."""
    presets = getattr(cls, "PRESETS", {})
    defaults = {f.key: f.default for f in flat_fields(cls)}
    keys = set().union(*presets.values()) if presets else set()
    return {k for k in keys if len({repr(p.get(k, defaults[k])) for p in presets.values()}) > 1}


def build(cls: type[Strict], flat: dict[str, Any]):
    """Validate flat parameters (strings from a command line are fine) into a config."""
    fields = {f.key: f for f in flat_fields(cls)}
    unknown = sorted(set(flat) - set(fields))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    # Start from the command's own defaults: a group's defaults in one command (main's short
    # student budget) differ from the group's class defaults (the paper's), and overriding one
    # parameter must not reset the others. Then the preset, then what was given.
    values = {key: f.default for key, f in fields.items() if not f.required}
    presets = getattr(cls, "PRESETS", {})
    if presets:
        name = flat.get("preset") or fields["preset"].default
        if name not in presets:
            raise ConfigError(f"invalid parameter preset: must be one of {', '.join(presets)} (got {name!r})")
        values.update(presets[name])
        governed = preset_keys(cls)
        flat = {k: v for k, v in flat.items() if not (k in governed and v == "")}
    values.update(flat)
    nested: dict[str, Any] = {}
    for key, value in values.items():
        field = fields[key]
        if value == "" and _optional(field.annotation):
            value = None
        node = nested
        for part in field.path[:-1]:
            node = node.setdefault(part, {})
        node[field.path[-1]] = value
    try:
        return cls.model_validate(nested)
    except ValidationError as exc:
        by_path = {f.path: f.key for f in fields.values()}
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
            key = by_path.get(loc, ".".join(loc)) or "parameters"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "value_error" and "input" in err and not isinstance(err["input"], dict) else ""))
        raise ConfigError("invalid parameter " + "; ".join(problems)) from None


def paper_deviations(config: Strict) -> dict[str, dict[str, Any]]:
    """Where a config differs from its command's ``paper`` preset: ``{key: {"value": v, "paper": p}}``."""
    paper = getattr(config, "PRESETS", {}).get("paper", {})
    flat = to_flat(config)
    return {k: {"value": flat[k], "paper": p} for k, p in paper.items() if flat[k] != p}


def to_flat(config: Strict) -> dict[str, Any]:
    """The resolved config as flat parameters (what gets logged to MLflow)."""
    out = {}
    for f in flat_fields(type(config)):
        node = config
        for part in f.path:
            node = getattr(node, part)
        out[f.key] = node
    return out
