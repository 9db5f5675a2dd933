"""What a command's configuration resolves to, derived from the one place each setting is declared.

A command that compares methods ([cinv.config.options.Trains][]: main, experiment,
benchmark, tune) takes every registered method's options, plug-ins included, as
``<method>_<option>``; a single-method command (student, baseline, rocl, fcl) takes its own
method's, also by their bare names ([runnable_methods][]). [build][] validates the command's own parameters, finds the methods the run
uses, rejects an option for any other method, and resolves each used method's options from its
presets (``Method.preset``) and what was given. It records the resolved image size and weights in
the config itself, so what a run logs is what it did.

From a resolved config:
- [settings][]: every setting as a run resolves it (image size in pixels, weights by tag,
  precision per role), without the seed and runtime knobs;
- [paper_recipe][]: the paper's recipe for the same selection (its presets, its data, its
  precision, each method's ``Method.paper``), and [deviations][], the settings that differ;
- [recipe_key][] (what the report averages over seeds) and [fingerprint][] (what a trained
  model is reused by): hashes of the resolved settings, precision included.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, get_args

from cinv.config.base import FlatField, Paper, Strict, flat_fields, updated, validate
from cinv.config.base import build as build_fields
from cinv.config.base import to_flat as own_flat
from cinv.config.options import MODEL_URI_SCHEMES, Trains
from cinv.data.datasets import EMBEDDED_FACTS, DataFacts
from cinv.encoders import default_weights
from cinv.errors import ConfigError
from cinv.methods import METHODS
from cinv.runtime import resolve_device, resolve_precision

__all__ = ["method_fields", "registered_methods", "runnable_methods", "parameters", "build", "to_flat", "settings", "paper_recipe",
           "deviations", "paper_vs_code", "as_released", "recipe_key", "fingerprint", "training_settings", "describe", "method_preset_defaults",
           "method_preset_keys"]

NOT_SETTINGS = {"seed", "seeds", "preset"}  # what a recipe is repeated over, and where its values came from


def method_fields(name: str) -> list[FlatField]:
    """One method's options as ``<name>_<option>`` parameters."""
    return flat_fields(METHODS.get(name).Options, prefix=f"{name}_", path=("options", name), group=name)


def registered_methods() -> list[str]:
    return [name for name in METHODS.names() if ":" not in name]


def runnable_methods(cls: type[Strict]) -> list[str]:
    """The methods a command can run, whose options it takes: a single-method command's own, every
    registered method's for the commands that compare methods (main, experiment, benchmark, tune)."""
    if not issubclass(cls, Trains):
        return []
    return [cls.METHOD] if cls.METHOD else registered_methods()


def parameters(cls: type[Strict]) -> list[FlatField]:
    """Every parameter a command takes: its own, then the options of each method it can run."""
    return flat_fields(cls) + [f for name in runnable_methods(cls) for f in method_fields(name)]


def _optional(field) -> bool:
    return type(None) in get_args(field.annotation)


def build(cls: type[Strict], flat: dict[str, Any], *, check: bool = True):
    """Validate flat parameters into a config whose methods' options are resolved (see the module
    docstring); ``check=False`` skips the command's own cross-checks (the paper's recipe, built
    from the selection alone, is not a run)."""
    if not issubclass(cls, Trains):
        return build_fields(cls, flat)
    own = {f.key for f in flat_fields(cls)}
    by_key = {f.key: f for name in runnable_methods(cls) for f in method_fields(name)}
    given: dict[str, dict[str, Any]] = {}
    static, unknown = {}, []
    for key, value in flat.items():
        if key in own:
            static[key] = value
            continue
        field = by_key.get(key) or (by_key.get(f"{cls.METHOD}_{key}") if cls.METHOD else None)
        if field is None:
            unknown.append(key)
        else:
            given.setdefault(field.path[1], {})[field.path[2]] = value
    if unknown:
        allowed = ", ".join(sorted(own)) + "; and <method>_<option> for " + ", ".join(runnable_methods(cls))
        raise ConfigError(f"unknown parameter(s) {', '.join(sorted(unknown))}; allowed: {allowed} (see --help)")
    config = build_fields(cls, static)
    used = [METHODS.canonical(name) for name in config.method_names()]
    for name in sorted(set(given) - set(used)):
        keys = ", ".join(f"{name}_{option}" for option in given[name])
        raise ConfigError(f"invalid parameter {keys}: this run does not use method {name} (it runs "
                          f"{', '.join(used) or 'no method'}); add {name} to its methods or leave the option out")
    data = config.data_facts()
    options = {name: _configure(name, config.preset, data, given.get(name, {})) for name in used}
    config = _resolved(config, options, data)
    if not check:
        return config
    try:
        config.check_options()
    except ValueError as exc:
        raise ConfigError(f"invalid parameter {exc}") from None
    return config


def _configure(name: str, preset: str, data: DataFacts, given: dict[str, Any]) -> Strict:
    """A method's options: its preset on this data, then what was given ('' means the preset's value)."""
    method = METHODS.get(name)
    values = method.preset(preset, data)
    fields = method.Options.model_fields
    for key, value in given.items():
        if value == "" and key in values:
            continue
        values[key] = None if value == "" and key in fields and _optional(fields[key]) else value
    return validate(method.Options, values, lambda loc: f"{name}_{'.'.join(loc)}")


def _weights(encoder: str | None, weights: str | None) -> str | None:
    if weights is not None or not encoder or encoder.startswith(MODEL_URI_SCHEMES):
        return weights
    return default_weights(encoder)


def _with_weights(opts: Strict) -> Strict:
    """Options with every ``<x>_weights`` left to its encoder's default set to that default's tag."""
    update = {}
    for key in type(opts).model_fields:
        if key.endswith("_weights") and key.removesuffix("_weights") in type(opts).model_fields:
            resolved = _weights(getattr(opts, key.removesuffix("_weights")), getattr(opts, key))
            if resolved != getattr(opts, key):
                update[key] = resolved
    return updated(opts, **update) if update else opts


def _resolved(config: Trains, options: dict[str, Strict], data: DataFacts) -> Trains:
    """The methods' options, the image size in pixels and every encoder's weights, as the run will
    use them, in the config itself, validated again."""
    update: dict[str, Any] = {"options": {name: _with_weights(opts) for name, opts in options.items()}}
    if data.image_size is None:  # a dataset whose default size cinv does not know: its own loader decides
        pass
    elif "data" in type(config).model_fields:
        update["data"] = updated(config.data, image_size=data.image_size)
    elif "image_size" in type(config).model_fields:
        update["image_size"] = data.image_size
    if "teacher" in type(config).model_fields:
        update["teacher_weights"] = _weights(config.teacher, config.teacher_weights)
    return updated(config, **update)


def to_flat(config: Strict) -> dict[str, Any]:
    """Every parameter of a config, its methods' options included, as flat key -> value."""
    flat = own_flat(config)
    for name, opts in getattr(config, "options", {}).items():
        flat |= {f"{name}_{k}": v for k, v in opts.model_dump().items()}
    return flat


def _kinds(config: Strict) -> dict[str, FlatField]:
    fields = {f.key: f for f in flat_fields(type(config))}
    for name in getattr(config, "options", {}):
        fields |= {f.key: f for f in method_fields(name)}
    return fields


def comparable(config: Strict) -> dict[str, Any]:
    """Every parameter but the runtime knobs (device, workers, logging, system metrics, names):
    what a resumed run must share with the run it continues."""
    fields = _kinds(config)
    return {k: v for k, v in to_flat(config).items() if not fields[k].runtime}


def precision_of(config: Strict) -> str:
    """The precision the run resolves to on its device (per role)."""
    return resolve_precision(resolve_device(config.device), config.precision).describe()


def settings(config: Strict, *, selection: bool = True) -> dict[str, Any]:
    """Every setting of a resolved config by flat key: no runtime knob, no seed; precision as it
    resolves on the device; the dataset as its kind (see [describe][] for the full spec).
    ``selection=False`` leaves out what the command selects (its corruptions, methods, experiment);
    a method's own variant (``fcl_method``, ``rocl_adversarial``) changes what it trains and stays."""
    fields = _kinds(config)
    own = {f.key for f in flat_fields(type(config))}
    out = {k: v for k, v in to_flat(config).items()
           if not fields[k].runtime and k not in NOT_SETTINGS and (selection or not (fields[k].select and k in own))}
    if "precision" in out:
        out["precision"] = precision_of(config)
    if isinstance(config, Trains):
        out = config.canonical(out)
    return out


def paper_recipe(config: Trains) -> dict[str, Paper]:
    """The paper's recipe for what ``config`` runs: every setting a preset can set at ``paper``, on
    the paper's data (``PAPER``), with each method's options as its paper ran them."""
    cls = type(config)
    fields = _kinds(config)
    kept = {k: v for k, v in to_flat(config).items() if fields[k].select}
    paper = build(cls, {**{k: _flat_value(v) for k, v in kept.items() if k in {f.key for f in flat_fields(cls)}},
                        "preset": "paper"}, check=False)
    recipe = {k: Paper(v) for k, v in settings(paper, selection=False).items()
              if k != "precision" or k in cls.PAPER}  # a paper that does not say its precision is not compared on it
    recipe |= {k: v if isinstance(v, Paper) else Paper(v) for k, v in cls.PAPER.items()}
    data = config.paper_facts()
    for name in paper.options:
        keys = {f.key for f in method_fields(name)}
        runtime = {f.key for f in method_fields(name) if f.runtime or f.select}
        recipe = {k: v for k, v in recipe.items() if k not in keys}  # replaced by what the method's paper states
        stated = {k: v if isinstance(v, Paper) else Paper(v) for k, v in METHODS.get(name).paper(data).items()}
        for key, paper_value in list(stated.items()):
            encoder = stated.get(key.removesuffix("_weights"))
            if key.endswith("_weights") and paper_value.value is None and encoder and isinstance(encoder.value, str):
                try:
                    stated[key] = Paper(_weights(encoder.value, None), paper_value.source)
                except ValueError:  # not an encoder cinv has
                    pass
        recipe |= {f"{name}_{k}": v for k, v in stated.items() if f"{name}_{k}" not in runtime}
    return recipe


def _flat_value(value: Any) -> Any:
    return "" if value is None else value


def _same(value: Any, paper: Any) -> bool:
    if isinstance(value, float) or isinstance(paper, float):
        try:
            return abs(float(value) - float(paper)) <= 1e-12 * max(1.0, abs(float(paper)))
        except (TypeError, ValueError):
            return False
    return value == paper


def deviations(config: Strict) -> dict[str, dict[str, Any]]:
    """Every setting of the paper's recipe that ``config`` resolves differently: ``{key: {"value":
    v, "paper": p}}`` (with ``"source"`` where the paper says it); {} for a command with no paper recipe."""
    if not isinstance(config, Trains) or not type(config).PAPER:
        return {}
    resolved = settings(config)
    out = {}
    for key, paper in paper_recipe(config).items():
        if key not in resolved:  # a setting this run does not read (an experiment's, another experiment reads)
            continue
        value = resolved.get(key)
        if not _same(value, paper.value):
            out[key] = {"value": value, "paper": paper.value, **({"source": paper.source} if paper.source else {})}
    return out


def paper_vs_code(config: Strict) -> list[dict[str, Any]]:
    """Where the paper's text and its authors' released code disagree, for the settings this run
    uses: the command's own (``PAPER_VS_CODE``, an experiment's only where it reads the setting)
    and each used method's (``Method.RELEASED``, as ``<method>_<option>``), each as {setting,
    paper, released, cinv, value (this run's), changes_training}."""
    if not isinstance(config, Trains):
        return []
    used = settings(config)
    experiment = getattr(config, "name", None)
    found = [(r.setting, r) for r in type(config).PAPER_VS_CODE if not r.only or experiment in r.only]
    found += [(f"{name}_{r.setting}", r) for name in config.options for r in METHODS.get(name).RELEASED]
    return [{"setting": key, "paper": r.paper, "released": r.released, "cinv": r.cinv, "value": used[key],
             "changes_training": r.changes_training, "as_released": r.as_released} for key, r in found if key in used]


def as_released(config: Strict) -> dict[str, Any]:
    """The parameters that run the released code's behaviour where it and the paper's text disagree."""
    return {c["setting"]: c["as_released"] for c in paper_vs_code(config) if c["as_released"] is not None}


def _digest(payload: Any, length: int) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:length]


def recipe_key(config: Strict, methods: list[str] | None = None) -> str:
    """A hash of every resolved setting but the seed, the runtime knobs and the selection (which
    corruptions, methods or experiment a run covers: each evaluation records its own cell in its
    recipe tags): the report averages two evaluations over seeds only when this and their cell are
    equal. Precision counts. ``methods``: the cell's own methods, whose options count (another
    method's options, which the cell never reads, do not); default every method the run uses."""
    kept = settings(config, selection=False)
    if methods is not None:
        others = {f.key for name in getattr(config, "options", {}) if name not in methods for f in method_fields(name)}
        kept = {k: v for k, v in kept.items() if k not in others}
    return _digest(kept, 12)


def training_settings(opts: Strict, name: str) -> dict[str, Any]:
    """A method's options without its runtime knobs (what changes the model it trains)."""
    runtime = {f.path[-1] for f in method_fields(name) if f.runtime}
    return {k: v for k, v in opts.model_dump(mode="json").items() if k not in runtime}


def fingerprint(config: Strict, name: str, opts: Strict, *, corruption: str, seed: int, classes: list[str],
                label_fraction: float | None = None, kind: str | None = None) -> str:
    """What a trained model is reused by: its data (the dataset spec, its classes and split, the
    image size, the seed of the split), the resolved precision, the teacher when the method starts from it, the method's
    options but runtime knobs, the corruption it trained on, its seed and (for a method with its
    own head) its label fraction. Reuse never crosses precisions."""
    method = METHODS.get(name)
    data = {k: v for k, v in config.data.model_dump(mode="json").items() if k not in ("num_workers", "skip_bad_images")}
    payload = {"kind": kind or name, "data": data, "split_seed": config.seed, "classes": classes,
               "precision": precision_of(config),
               "options": training_settings(opts, name), "corruption": corruption, "seed": seed}
    if method.needs_teacher:
        payload |= {"teacher": config.teacher, "teacher_weights": config.teacher_weights}
    if label_fraction is not None:
        payload["label_fraction"] = label_fraction
    return _digest(payload, 20)


def describe(config: Strict) -> dict[str, Any]:
    """The dry run's answer: the whole resolved configuration, the methods it compares (where it
    compares several), its deviations from the paper, and where the paper's text and its released
    code disagree on the settings it uses."""
    out = {"config": config.model_dump(mode="json")}
    if callable(getattr(config, "compared", None)):  # an empty ``methods`` means every registered method: name them
        out["compared"] = config.compared()
    return out | {"deviations": deviations(config), "paper_vs_code": paper_vs_code(config)}




def method_preset_defaults(name: str, option: str) -> dict[str, Any]:
    """An option's value under each preset of its method (on the default dataset): the preset's,
    or the option's own default where that preset leaves it, for --help."""
    method = METHODS.get(name)
    field = method.Options.model_fields[option]
    default = None if field.is_required() else field.default
    return {preset: method.preset(preset, EMBEDDED_FACTS).get(option, default) for preset in ("cpu", "paper")}


def method_preset_keys(name: str) -> set[str]:
    """The options a method's presets set."""
    method = METHODS.get(name)
    return set(method.preset("cpu", EMBEDDED_FACTS)) | set(method.preset("paper", EMBEDDED_FACTS))
