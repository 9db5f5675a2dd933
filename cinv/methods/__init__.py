"""Methods as peers: one [Method][cinv.methods.base.Method] class per module, registered in
[METHODS][] under the module's name, the only dispatch every command uses. ``student``
(contrastive inversion), ``baseline`` (supervised), ``rocl``, ``fcl``, ``trades`` and ``teacher``
(original representations) register when this package is imported (each module here is one
method); a plug-in registers its own the same way. Old names (``contrastive_inversion``,
``supervised_baseline``) stay as aliases."""

from importlib import import_module
from pkgutil import iter_modules

from cinv.methods.base import CELL_LABELS, METHODS, Method, Range

# Every module of this package is a method (but base): importing it registers it, so a new method
# is one module here and nothing else.
for _module in sorted(m.name for m in iter_modules(__path__)):
    if _module != "base":
        import_module(f"{__name__}.{_module}")

__all__ = ["METHODS", "Method", "Range", "CELL_LABELS", "label", "title"]


def label(key: str) -> str:
    """A row label: a method's display name, a cell variant's, or ``<restorer> + <label>``."""
    restorer, plus, key = key.rpartition(" + ")
    if key in CELL_LABELS:
        return f"{restorer}{plus}{CELL_LABELS[key][0]}"
    found = METHODS.find(key)
    return f"{restorer}{plus}{found.display if found else key}"


def title(key: str) -> str:
    """The longer label of the main job's table."""
    if key in CELL_LABELS:
        return CELL_LABELS[key][1]
    found = METHODS.find(key)
    return found.title or found.display if found else key
