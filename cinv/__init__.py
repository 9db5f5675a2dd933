"""cinv: robust image representations by contrastive inversion of a frozen pretrained teacher.

The package reads as the pipeline does, one folder per stage: ``corruption`` (A(x)) -> ``data``
-> ``encoders`` -> ``losses`` -> ``methods`` (every method a peer behind one interface) ->
``training`` -> ``probe`` -> ``evaluation`` -> ``tracking``; ``experiments`` runs the papers'
grids, ``commands`` holds one thin module per command and ``cli`` turns them into entry points.
``plugins`` loads registrations from other packages.
"""

from importlib import import_module

__version__ = "0.1.0"

# The public API, imported on first use so that `import cinv` stays light (no torch, no MLflow).
_API = {"load_encoder": "cinv.tracking.serving", "run_command": "cinv.cli", "CommandFailed": "cinv.errors"}


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'cinv' has no attribute {name!r}")
