"""Errors that mean "the input is wrong", reported to users as one line, never as a traceback."""


class CinvError(Exception):
    """Base: a problem the user can fix (bad data, missing weights, bad parameter)."""


class DatasetError(CinvError):
    """Missing or unreadable data: folder, class list, image file, empty split."""


class WeightsUnavailableError(CinvError):
    """Pretrained weights cannot be found offline; the message says how to provide them."""
