"""Every error a user can fix, in one place: reported as one line (exit status 2), never as a traceback."""


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


class CommandFailed(CinvError):
    """A command run through :func:`cinv.run_command` failed; ``run_id`` is its FAILED run."""

    def __init__(self, message: str, run_id: str | None):
        super().__init__(message)
        self.run_id = run_id


def one_line(exc: BaseException) -> str:
    """The last line of a message: errors re-raised from loader workers carry a traceback."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    for prefix in (f"{type(exc).__module__}.{type(exc).__name__}: ", f"{type(exc).__name__}: "):
        text = text.removeprefix(prefix)
    return text
