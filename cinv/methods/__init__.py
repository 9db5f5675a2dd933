"""Methods as peers: one :class:`~cinv.methods.base.Method` class per module, registered in
:data:`METHODS`, the only dispatch every command uses. ``inversion`` (the student), ``supervised``
(the baseline), ``rocl``, ``fcl``, ``trades`` and ``teacher`` (original representations) register
when this package is imported; a plug-in registers its own the same way."""

from cinv.methods import fcl, inversion, rocl, supervised, teacher, trades  # noqa: F401  (register the methods)
from cinv.methods.base import CELL_LABELS, METHODS, Method, Range

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
