"""Every error a user can fix, in one place: reported as one line (exit status 2), never as a traceback."""

import re

from cinv.secrets import redact


class CinvError(Exception):
    """Base: a problem the user can fix (bad data, missing weights, bad parameter)."""


class ConfigError(ValueError):
    """Invalid parameters, reported with the flat parameter names users typed."""


class DatasetError(CinvError):
    """Missing or unreadable data: folder, class list, image file, empty split."""


class WeightsUnavailableError(CinvError):
    """Pretrained weights cannot be found offline; the message says how to provide them."""


class NonFiniteLossError(CinvError):
    """Training diverged: the run stops rather than writing NaN weights."""


class StoreError(CinvError):
    """The MLflow store stayed unreachable or full after retries."""


class ResumeError(CinvError):
    """The run named for resuming cannot be resumed (finished, other config, no checkpoint)."""


class ModelLoadError(CinvError):
    """The URI names no model, or the store holding it cannot be read."""


class PluginError(CinvError):
    """A package registered under the ``cinv.plugins`` entry-point group failed to load."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``docker stop``, Kubernetes, Slurm): stopped like Ctrl-C, after the
    training step in progress and its checkpoint, so the run can be resumed."""


class CommandFailed(CinvError):
    """A command run through [cinv.run_command][cinv.cli.run_command] failed; ``run_id`` is its FAILED run."""

    def __init__(self, message: str, run_id: str | None):
        super().__init__(message)
        self.run_id = run_id


def one_line(exc: BaseException) -> str:
    """The line of a message that says what is wrong, with any secret in a URL masked.

    Errors re-raised from loader workers carry a traceback (their last line counts); SQLAlchemy's
    end with a "Background on this error" link and the SQL (the driver's own message counts).
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("(Background on this error", "[SQL:", "[parameters:",
                                                          "Is the server running"))]  # libpq's hint after its reason
    text = lines[-1] if lines else type(exc).__name__
    for prefix in (f"{type(exc).__module__}.{type(exc).__name__}: ", f"{type(exc).__name__}: "):
        text = text.removeprefix(prefix)
    # "(sqlite3.OperationalError) attempt to write a readonly database": the driver's words.
    text = re.sub(r"^\((?:[\w.]+\.)?\w+(?:Error|Exception)\) ", "", text)
    return redact(text)
