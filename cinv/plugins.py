"""Plug-ins from outside the package: a user's own corruption, loss, encoder or method.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."cinv.plugins"]
    my_fog = "my_pkg.fog"      # a module whose import registers into cinv's registries

[load][] imports every module of the group once (the CLI calls it at start-up, before any
name is validated); the names it registers are then usable wherever cinv takes a corruption,
loss, encoder or method name, e.g. ``-P corruption="my_fog(level=3)"`` or ``-P methods=student,my_method``.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from cinv.errors import PluginError

GROUP = "cinv.plugins"
_loaded: set[str] = set()

__all__ = ["GROUP", "load"]


def load() -> list[str]:
    """Import every ``cinv.plugins`` entry point not imported yet; their names, in order."""
    names = []
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if entry.value in _loaded:
            continue
        try:
            import_module(entry.value.partition(":")[0])
        except Exception as exc:
            raise PluginError(f"plug-in {entry.name} ({entry.value}) failed to load: {exc}") from exc
        _loaded.add(entry.value)
        names.append(entry.name)
    return names
