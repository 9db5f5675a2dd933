"""cinv: robust image representations by contrastive inversion of a frozen pretrained teacher.

The package reads as the pipeline does, one folder per stage: ``corruption`` (A(x)) -> ``data``
-> ``encoders`` -> ``losses`` -> ``methods`` (every method a peer behind one interface) ->
``training`` -> ``probe`` -> ``evaluation``, with ``tracking`` (plain MLflow) beneath training and
the run ``context`` and ``config`` beneath that; ``experiments`` runs the papers' grids,
``tuning`` the Optuna studies, ``commands`` holds one thin module per command and ``cli`` turns
them into entry points. Each package imports only the ones before it in that order
(``tests/test_architecture.py`` keeps it). ``plugins`` loads registrations from other packages.
"""

from importlib import import_module


def _version() -> str:
    """The installed package's version: pyproject.toml's, declared there once."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cinv")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown (not installed)"


__version__ = _version()

# The public API, imported on first use so that `import cinv` stays light (no torch, no MLflow).
_API = {"load_encoder": "cinv.tracking.serving", "run_command": "cinv.cli", "CommandFailed": "cinv.errors"}


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'cinv' has no attribute {name!r}")
