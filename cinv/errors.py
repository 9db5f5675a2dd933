"""Errors that mean "the input is wrong", reported to users as one line, never as a traceback."""


class CinvError(Exception):
    """Base: a problem the user can fix (bad data, missing weights, bad parameter)."""


class DatasetError(CinvError):
    """Missing or unreadable data: folder, class list, image file, empty split."""


class WeightsUnavailableError(CinvError):
    """Pretrained weights cannot be found offline; the message says how to provide them."""


def one_line(exc: BaseException) -> str:
    """The last line of a message: errors re-raised from loader workers carry a traceback."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    for prefix in (f"{type(exc).__module__}.{type(exc).__name__}: ", f"{type(exc).__name__}: "):
        text = text.removeprefix(prefix)
    return text
