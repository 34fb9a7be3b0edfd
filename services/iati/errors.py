"""The errors of the IATI export, validation and import."""

from __future__ import annotations

from events.errors import LedgerError
from projections.errors import UnknownKeyError

__all__ = ["IatiDataMissingError", "IatiFileError", "IatiInvalidError", "NothingToExportError"]


class IatiInvalidError(LedgerError):
    """Raised when an IATI activity breaks the schema, a codelist or a rule of the standard:
    names the activity, the element and the rule."""

    def __init__(self, activity: str, element: str, rule: str, message: str) -> None:
        self.activity = activity
        """The activity's ``iati-identifier`` (or its position, when it has none)."""
        self.element = element
        """The element or attribute at fault, e.g. ``recipient-country/@percentage``."""
        self.rule = rule
        """The rule broken: ``XSD``, ``codelist Sector`` or a ruleset id such as ``3.1.2``."""
        super().__init__(f"activity {activity}: {element}: [{rule}] {message}")


class IatiFileError(LedgerError):
    """Raised when a file cannot be read as IATI at all: not XML, too large, or with a
    DOCTYPE, entities or external references, which are refused unread."""


class IatiDataMissingError(LedgerError):
    """Raised when the schema or codelist files shipped with the package are missing."""


class NothingToExportError(UnknownKeyError):
    """Raised when no activity matches an export's filters: an IATI file holds at least one
    ``iati-activity`` (the schema's ``minOccurs="1"``), so none is written."""
