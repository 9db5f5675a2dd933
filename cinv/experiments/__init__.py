"""Experiments: the lab that trains and evaluates models by method name for one seed (``lab``),
the paper's experiments registered by name in :data:`EXPERIMENTS` (``paper``), and the
cross-method benchmark (``benchmark``)."""

from cinv.experiments.paper import EXPERIMENTS

__all__ = ["EXPERIMENTS"]
