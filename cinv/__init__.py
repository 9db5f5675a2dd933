"""cinv: robust image representations by contrastive inversion of a frozen pretrained teacher.

The package reads as the pipeline does, one folder per stage, and each layer imports only the
layers below it (``tests/test_architecture.py`` keeps the order): the runtime decisions
(``runtime``, ``distributed``) at the bottom; ``corruption`` (A(x)) -> ``data`` -> ``encoders`` ->
``losses``; the run ``context`` and ``config``; ``tracking`` (plain MLflow); ``training`` (one
loop for everything that trains); ``methods`` (every method a peer behind one interface, trained
by that loop); ``evaluation`` and ``probe``; ``promotion`` (@champion); ``settings`` (one
resolution per setting); ``experiments`` (the engine and its recipes) and ``tuning`` (Optuna
studies); ``commands``, one thin module per command, and ``cli``, which turns them into entry
points. ``plugins`` loads registrations from other packages.
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
