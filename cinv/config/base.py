"""Typed configurations: unknown keys and out-of-range values are errors, named as users typed them.

Configs nest option groups (data, probe, ...). On the command line and in MLproject they are
flat ``key=value`` parameters: a group's fields appear under its prefix (``probe_epochs``), or
bare when the group has none (``dataset``).

Presets. A command that takes ``preset`` (``cpu`` or ``paper``) gets its defaults from the chosen
one; parameters given explicitly override it. Each class declares the preset values of its own
fields beside them, in ``PRESETS`` (``{"paper": {"feature_draws": 10}}``): an option group for its
fields, a command class (or a shared base such as the one holding the teacher) for its own. A
field's plain default is its value in every preset that does not name it. A method's options and
presets live beside the method (``cinv.methods``) and are resolved by ``cinv.settings``.

Runtime knobs (``Runtime()`` in a field's metadata: device, workers, where a run is recorded)
change how a run executes, never what it computes: they are left out of the recipe key, the model
fingerprint and the comparison with the paper's recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cinv.errors import ConfigError

__all__ = ["Strict", "Section", "Runtime", "Select", "Paper", "Released", "Presets", "updated", "PRESET_NAMES", "FlatField", "flat_fields", "build", "validate",
           "to_flat", "class_presets", "preset_values", "preset_keys"]

PRESET_NAMES = ("cpu", "paper")


class Strict(BaseModel):
    """A typed option group or command config. ``PRESETS``: per preset, values of this class's own
    fields (and, for a command, of its groups' fields by flat key) that the preset sets."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}


@dataclass(frozen=True)
class Section:
    """Marks a nested option group and the prefix its fields take when flattened."""

    prefix: str = ""


@dataclass(frozen=True)
class Runtime:
    """Marks a field that changes how a run executes or where it is recorded, not what it computes."""


@dataclass(frozen=True)
class Select:
    """Marks a field that selects what a run covers (its corruption, methods, experiment, cells),
    not how: the paper's recipe for a run covers the same selection."""


@dataclass(frozen=True)
class Paper:
    """A setting's value in the paper's recipe, and where the paper (or its released code) says so."""

    value: Any
    source: str = ""


@dataclass(frozen=True)
class Released:
    """A place where a paper's text and its authors' released code disagree on a setting: what the
    text says (section or table), what the code does (repository file and line), and what cinv does,
    with the option that runs the other. Declared beside the setting's owner (a method's
    ``RELEASED``, a command's ``PAPER_VS_CODE``); every dry run and every run's deviations.json
    list those of the settings it uses (``settings.paper_vs_code``)."""

    setting: str  # the option it bears on (a method's: its bare name; the run lists it as <method>_<option>)
    paper: str
    released: str
    cinv: str
    changes_training: bool = True
    only: tuple[str, ...] = ()  # the experiments it bears on (a command-level setting several experiments read)
    as_released: Any = None  # the option's value that runs as the released code did (None: none does, or preset paper)


Preset = Literal["cpu", "paper"]
PRESET = Field("cpu", description="cpu: budgets, models and optimiser settings sized for minutes on a CPU, not the "
               "paper's; paper: the paper's settings. Every difference from the paper's recipe is listed in "
               "deviations.json and printed. Parameters given explicitly override the preset")


class Presets(Strict):
    """A command whose defaults come as a named preset (see the module docstring)."""

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
    runtime: bool = False
    select: bool = False
    group: str = ""  # the option group it belongs to ('' for the command's own fields), for --help


def _marker(field, kind):
    return next((m for m in field.metadata if isinstance(m, kind)), None)


def flat_fields(cls: type[Strict], defaults: Strict | None = None, prefix: str = "", path: tuple = (),
                group: str = "") -> list[FlatField]:
    """Every leaf parameter of a config with its flat key, in declaration order, with its plain
    default (a group's default instance, e.g. the benchmark's attack budget, gives its fields')."""
    out: list[FlatField] = []
    for name, field in cls.model_fields.items():
        section = _marker(field, Section)
        if defaults is not None:
            default = getattr(defaults, name)
        else:
            default = None if field.is_required() else field.get_default(call_default_factory=True)
        if section is not None:
            out += flat_fields(field.annotation, default, prefix + section.prefix, path + (name,), group or name)
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("flat") is False:  # filled by the settings resolver, not a parameter of its own
            continue
        runtime = _marker(field, Runtime) is not None or bool(extra.get("runtime"))
        out.append(FlatField(prefix + name, path + (name,), field.annotation, default,
                             field.is_required() and defaults is None, field.description or "", extra.get("mlproject", ""),
                             runtime, _marker(field, Select) is not None, group))
    keys = [f.key for f in out]
    assert len(keys) == len(set(keys)), f"{cls.__name__}: flat keys collide: {keys}"
    return out


def _optional(annotation) -> bool:
    return type(None) in get_args(annotation) or get_origin(annotation) is None and annotation is type(None)


def class_presets(cls: type[Strict], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every preset's values by flat key: each option group's own ``PRESETS`` (under its prefix),
    then each class of the command's hierarchy, base first (a subclass overrides its bases)."""
    out: dict[str, dict[str, Any]] = {}

    def merge(presets: dict[str, dict[str, Any]], where: str) -> None:
        for name, values in presets.items():
            if name not in PRESET_NAMES:
                raise AssertionError(f"{where}: unknown preset {name!r}; presets are {', '.join(PRESET_NAMES)}")
            out.setdefault(name, {}).update({prefix + k: v for k, v in values.items()})

    for field in cls.model_fields.values():
        section = _marker(field, Section)
        if section is not None:
            for preset, values in class_presets(field.annotation, prefix + section.prefix).items():
                out.setdefault(preset, {}).update(values)
    for klass in reversed(cls.__mro__):
        if "PRESETS" in vars(klass):
            merge(vars(klass)["PRESETS"], klass.__name__)
    return out


def preset_values(cls: type[Strict], preset: str | None) -> dict[str, Any]:
    """What ``preset`` sets, by flat key ({} for a command without presets)."""
    if "preset" not in cls.model_fields:
        return {}
    if preset not in PRESET_NAMES:
        raise ConfigError(f"invalid parameter preset: must be one of {', '.join(PRESET_NAMES)} (got {preset!r})")
    return class_presets(cls).get(preset, {})


def preset_keys(cls: type[Strict]) -> set[str]:
    """Flat parameters whose default depends on the preset."""
    if "preset" not in cls.model_fields:
        return set()
    defaults = {f.key: f.default for f in flat_fields(cls)}
    presets = [preset_values(cls, name) for name in PRESET_NAMES]
    return {k for k in set().union(*presets) if k in defaults and len({repr(p.get(k, defaults[k])) for p in presets}) > 1}


def validate(cls: type[Strict], values: dict[str, Any], key_of=lambda loc: ".".join(loc)):
    """``cls.model_validate(values)``, with each problem named by the parameter a user typed."""
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
            key = key_of(loc) or "parameters"
            msg = err["msg"].removeprefix("Value error, ")
            shown = err["type"] != "value_error" and "input" in err and not isinstance(err["input"], dict)
            problems.append(f"{key}: {msg}" + (f" (got {err['input']!r})" if shown else ""))
        raise ConfigError("invalid parameter " + "; ".join(problems)) from None


def updated(model: Strict, key_of=lambda loc: ".".join(loc), **changes) -> Strict:
    """``model`` with ``changes``, validated again (``model_copy(update=...)`` would skip every check);
    its other fields as they are (a resolved method's options stay its options model)."""
    return validate(type(model), {**dict(model), **changes}, key_of)


def build(cls: type[Strict], flat: dict[str, Any]):
    """Validate flat parameters (strings from a command line are fine) into a config: the fields'
    defaults, then the chosen preset's values, then what was given. '' means "not given" for a
    preset's parameter and None for an optional one."""
    fields = {f.key: f for f in flat_fields(cls)}
    unknown = sorted(set(flat) - set(fields))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    values = {key: f.default for key, f in fields.items() if not f.required}
    preset = preset_values(cls, flat.get("preset") or (fields["preset"].default if "preset" in fields else None))
    values.update(preset)
    values.update({k: v for k, v in flat.items() if not (k in preset and v == "")})
    nested: dict[str, Any] = {}
    for key, value in values.items():
        field = fields[key]
        if value == "" and _optional(field.annotation):
            value = None
        node = nested
        for part in field.path[:-1]:
            node = node.setdefault(part, {})
        node[field.path[-1]] = value
    by_path = {f.path: f.key for f in fields.values()}
    return validate(cls, nested, lambda loc: by_path.get(loc, ".".join(loc)))


def to_flat(config: Strict) -> dict[str, Any]:
    """The config's own fields as flat parameters."""
    out = {}
    for f in flat_fields(type(config)):
        node = config
        for part in f.path:
            node = getattr(node, part)
        out[f.key] = node
    return out
