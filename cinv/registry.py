"""Name -> factory registries for the things users extend (corruptions, losses, encoders, methods).

One small class serves every registry so that names, listing and error messages behave the
same everywhere, in the spirit of timm's ``create_model`` and open_clip's model factory.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories by name; ``family:variant`` names pass ``variant`` to the family's factory.
    Old names can stay as ``aliases`` of a renamed entry: they resolve to it, are not listed, and
    warn once (a FutureWarning, as timm's deprecated names do). A registered class gets its
    ``name`` from the registration, so a name is written once."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._families: set[str] = set()
        self._aliases: dict[str, str] = {}
        self._warned: set[str] = set()

    def register(self, name: str, *, family: bool = False,
                 aliases: tuple[str, ...] = ()) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator. A family factory takes the variant (text after ':') as first argument."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            for taken in (name, *aliases):
                if taken in self._factories or taken in self._aliases:
                    raise ValueError(f"{self.kind} {taken!r} is already registered")
            if isinstance(factory, type) and hasattr(factory, "name"):
                declared = vars(factory).get("name")
                if declared not in (None, "", name):
                    raise ValueError(f"{self.kind} {name!r}: its class declares name = {declared!r}; drop it, the "
                                     "registration names it")
                factory.name = name
            self._factories[name] = factory
            self._aliases.update(dict.fromkeys(aliases, name))
            if family:
                self._families.add(name)
            return factory

        return decorator

    def names(self) -> list[str]:
        return sorted(f"{n}:<variant>" if n in self._families else n for n in self._factories)

    def canonical(self, name: str) -> str:
        """The registered name ``name`` stands for (itself, or the entry it is an alias of)."""
        self._resolve(name)
        return self._aliases.get(name, name)

    def factory(self, name: str) -> tuple[Callable[..., T], tuple[str, ...]]:
        """The factory ``name`` resolves to and the positional arguments its name gives (a family's variant)."""
        return self._resolve(name)

    def _resolve(self, name: str) -> tuple[Callable[..., T], tuple[str, ...]]:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string; allowed: {', '.join(self.names())}")
        if name in self._aliases and name not in self._warned:
            self._warned.add(name)
            warnings.warn(f"{self.kind} {name!r} is an old name of {self._aliases[name]!r}, which it stands for; "
                          "use the new name", FutureWarning, stacklevel=4)
        name = self._aliases.get(name, name)
        family, sep, variant = name.partition(":")
        if sep and family in self._families:
            if not variant:
                raise ValueError(f"{self.kind} {name!r} needs a variant after ':'")
            return self._factories[family], (variant,)
        if name in self._factories and name not in self._families:
            return self._factories[name], ()
        raise ValueError(f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}")

    def find(self, name: str) -> T | None:
        """What ``name`` builds with no parameters, or None when it names nothing here."""
        try:
            return self.get(name)
        except ValueError:
            return None

    def __contains__(self, name: str) -> bool:
        try:
            self._resolve(name)
        except ValueError:
            return False
        return True

    def check(self, name: str) -> str:
        """Validate a name without building anything (configs call this)."""
        self._resolve(name)
        return name

    def get(self, name: str, **params: Any) -> T:
        factory, args = self._resolve(name)
        _check_params(self.kind, name, factory, len(args), params)
        return factory(*args, **params)

    def from_spec(self, spec: str) -> T:
        """Build from a command-line spec such as ``random_mask(fraction=0.9)``."""
        name, params = parse_spec(spec)
        return self.get(name, **params)


def _check_params(kind: str, name: str, factory: Callable, n_positional: int, params: dict) -> None:
    """Turn a wrong keyword into a ValueError that names it, instead of a bare TypeError."""
    sig = inspect.signature(factory)
    accepted = [p for p in list(sig.parameters.values())[n_positional:]]
    if any(p.kind is p.VAR_KEYWORD for p in accepted):
        return
    allowed = {p.name for p in accepted}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"{kind} {name!r} got unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    missing = [
        p.name
        for p in accepted
        if p.default is p.empty and p.kind is not p.VAR_POSITIONAL and p.name not in params
    ]
    if missing:
        raise ValueError(f"{kind} {name!r} needs parameter(s) {', '.join(missing)}")


def parse_spec(spec: str, *, bare_strings: bool = False) -> tuple[str, dict[str, Any]]:
    """Parse ``name`` or ``name(key=literal, ...)`` as written on a command line.

    Literals only (numbers, strings, tuples), read with ``ast.literal_eval``: nothing is executed.
    ``bare_strings``: a value that is not a literal is taken as a string, so paths need no quotes
    (``cifar10(root=/data)``); commas inside such a value must then be quoted.
    """
    import ast

    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise ValueError("spec must be a name or name(key=value, ...), got an empty value")
    if len(text) > MAX_SPEC_CHARS:
        raise ValueError(f"spec is {len(text):,} characters long; at most {MAX_SPEC_CHARS:,}")
    try:
        node = ast.parse(text, mode="eval").body
    except (MemoryError, RecursionError):  # deeply nested input exhausts the parser
        raise ValueError(f"cannot parse the spec {text[:40]!r}...: nested too deeply") from None
    except SyntaxError:
        if bare_strings:
            return _parse_bare(spec, text)
        raise ValueError(f"cannot parse {spec!r}; write name or name(key=value, ...)") from None
    if isinstance(node, ast.Name):
        return node.id, {}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)) or node.args:
        raise ValueError(f"cannot parse {spec!r}; write name or name(key=value, ...) with keywords only")
    params: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise ValueError(f"cannot parse {spec!r}; **kwargs are not allowed")
        if kw.arg in params:
            raise ValueError(f"in {spec!r}, {kw.arg} is given twice")
        try:
            value = ast.literal_eval(kw.value)
        except ValueError:
            if not bare_strings:
                raise ValueError(f"in {spec!r}, {kw.arg} must be a literal (number, string or tuple)") from None
            value = ast.get_source_segment(text, kw.value)
        params[kw.arg] = list(value) if isinstance(value, list) else value
        in_range(spec, kw.arg, value)
    return node.func.id, params


MAX_SPEC_CHARS = 4_000
MAX_NUMBER = 2**32  # no parameter of a spec needs more; bigger numbers overflow deep inside torch or NumPy


def in_range(spec: str, key: str, value: Any) -> None:
    """Numbers inside a spec's value stay finite and within ``MAX_NUMBER``, so a typo fails here,
    naming its key, rather than as an overflow inside the corruption."""
    import math

    for item in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(item, (tuple, list)):
            in_range(spec, key, item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool) and (
                not math.isfinite(item) or abs(item) > MAX_NUMBER):
            raise ValueError(f"in {spec!r}, {key} holds {item!r}: numbers must be finite and at most {MAX_NUMBER:,} "
                             "in size")


def _parse_bare(spec: str, text: str) -> tuple[str, dict[str, Any]]:
    """``name(key=value, ...)`` where values that are not literals are strings (unquoted paths)."""
    import ast
    import re

    match = re.fullmatch(r"([A-Za-z_]\w*)\((.*)\)", text, flags=re.S)
    if not match:
        raise ValueError(f"cannot parse {spec!r}; write name or name(key=value, ...)")
    params: dict[str, Any] = {}
    for part in re.findall(r"""(?:'[^']*'|"[^"]*"|[^,])+""", match.group(2)):
        key, sep, raw = part.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key.isidentifier() or not raw:
            raise ValueError(f"cannot parse {spec!r}; write name(key=value, ...) with keywords only")
        if key in params:
            raise ValueError(f"in {spec!r}, {key} is given twice")
        try:
            params[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            params[key] = raw
        in_range(spec, key, params[key])
    return match.group(1), params


def format_spec(name: str, params: dict[str, Any]) -> str:
    """Inverse of [parse_spec][], for logging a canonical form."""
    if not params:
        return name
    inner = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in params.items())
    return f"{name}({inner})"


class Named:
    """A named, parameterised operation (a corruption, a restorer): its spec is how it is logged."""

    name: str = ""

    def __init__(self, **params: Any):
        self.params = params

    @property
    def spec(self) -> str:
        return format_spec(self.name, self.params)

    def __repr__(self) -> str:
        return self.spec
