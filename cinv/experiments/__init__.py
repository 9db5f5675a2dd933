"""Experiments: one engine (``engine``: the lab that trains and evaluates models by method name for
one seed, and the run over seeds) and its recipes, registered by name in [EXPERIMENTS][]:
the main job (``main``), the paper's experiments (``paper``) and the cross-method benchmark
(``benchmark``)."""

from cinv.experiments import benchmark, main, paper  # noqa: F401  (register the recipes)
from cinv.experiments.engine import EXPERIMENTS, Recipe

__all__ = ["EXPERIMENTS", "Recipe"]
