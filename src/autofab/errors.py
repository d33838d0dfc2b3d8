"""The one error hierarchy of autofab.

Errors raised for bad input name the file, the line or field, and what is
allowed, so that an operator can fix the input without reading code.
"""

from __future__ import annotations


class AutofabError(Exception):
    """Base class of every error autofab raises on purpose."""


class ConfigError(AutofabError, ValueError):
    """A site file, setting or argument is invalid.

    Parameters
    ----------
    message : str
        What is wrong and what is allowed.
    source : str, optional
        The file (or other source) the bad value came from.
    line : int, optional
        1-based line number in ``source`` where known.
    field : str, optional
        Dotted path of the offending field, e.g. ``loops.0.period``.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        what = f"{self.field}: " if self.field else ""
        return f"{where}{what}{self.message}"


class ConnectorError(AutofabError):
    """A connector failed to reach, read from or write to its equipment."""


class HistorianError(AutofabError):
    """The historian could not store or return samples."""


class NotFittedError(AutofabError, ValueError, AttributeError):
    """A model, detector or controller was used before ``fit``/``reset``."""


class SafetyViolation(AutofabError):
    """An action was refused by the safety layer (e.g. an unguarded controller)."""


class SolverError(AutofabError):
    """An optimisation solver failed or returned no usable solution."""
