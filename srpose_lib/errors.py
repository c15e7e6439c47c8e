"""Errors that name the problem and the fix.

Every error srpose raises for bad input derives from :class:`SrposeError` and carries a
``fix`` sentence, printed on its own line, so a notebook user sees what to do next.
"""

from __future__ import annotations


class SrposeError(Exception):
    """Base class: ``message`` says what is wrong, ``fix`` says what to do about it."""

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(message if fix is None else f"{message}\n  fix: {fix}")


class ConfigError(SrposeError, ValueError):
    """An unknown or invalid configuration field, preset, task or run mode."""


class ParameterError(SrposeError, ValueError):
    """A notebook parameter that is unknown or has the wrong type or value."""


class DataError(SrposeError):
    """Missing, corrupt or inconsistent data."""


class CacheError(SrposeError):
    """A checkpoint whose contents do not match what was asked for."""


class TrainingError(SrposeError):
    """Training cannot go on (for example the loss became NaN)."""


def did_you_mean(name: str, options) -> str:
    """A short suggestion listing the closest valid names."""
    import difflib

    options = sorted(options)
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return f"{hint}valid names: {', '.join(options)}"
