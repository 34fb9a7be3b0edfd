"""The export: the projection's activities as one checked IATI 2.03 document.

Each activity is mapped (:mod:`services.iati.mapping`), built (:mod:`services.iati.writer`) and
checked (:func:`services.iati.validate.check_activity`) before its bytes are written. A file is
written to a temporary name beside the target and renamed over it only once every activity has
passed, so a failed export leaves no file, and never a partial one: the target keeps what it
held before.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from events.activity import ActivityState
from events.reference import load_reference
from services.iati.errors import NothingToExportError
from services.iati.mapping import DEFAULT_REPORTING_ORG, IatiActivity, activity_of
from services.iati.validate import check_activity
from services.iati.writer import document_chunks, element_of

__all__ = [
    "REPORTING_ORG_ENV",
    "ExportSummary",
    "checked_elements",
    "iati_activities",
    "reporting_org_default",
    "write_document",
]

REPORTING_ORG_ENV = "LEDGER_IATI_REPORTING_ORG"
"""The setting (environment variable) for the reporting organisation's identifier."""


def reporting_org_default() -> str:
    """The reporting organisation's identifier: ``LEDGER_IATI_REPORTING_ORG``, else UNODC's
    assumed ``XM-DAC-41128``."""
    return os.environ.get(REPORTING_ORG_ENV, "").strip() or DEFAULT_REPORTING_ORG


def iati_activities(
    states: Iterable[tuple[ActivityState, dt.datetime | None]],
    *,
    reporting_org: str,
    today: dt.date,
) -> Iterator[IatiActivity]:
    """The IATI data of each ``(state, time of its last event)``."""
    reference = load_reference()
    for state, last_updated in states:
        yield activity_of(
            state,
            reference=reference,
            reporting_org=reporting_org,
            last_updated=last_updated,
            today=today,
        )


def checked_elements(
    activities: Iterable[IatiActivity], *, now: dt.datetime, counter: list[int] | None = None
) -> Iterator[etree._Element]:
    """Each activity's element, once it has passed every check.

    :param counter: a one-item list that counts the elements given, for the summary.
    :raises IatiInvalidError: at the first activity that fails, naming it, the element and
        the rule.
    :raises NothingToExportError: when there is no activity at all.
    """
    position = 0
    for position, activity in enumerate(activities, 1):
        element = element_of(activity)
        check_activity(element, now=now, position=position)
        if counter is not None:
            counter[0] = position
        yield element
    if position == 0:
        raise NothingToExportError(
            "activities",
            "no activity that is not withdrawn matches the filters; an IATI file holds at "
            "least one, so none is written",
        )


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    path: Path
    activities: int
    bytes: int


def write_document(
    path: Path, activities: Iterable[IatiActivity], *, now: dt.datetime | None = None
) -> ExportSummary:
    """Write the activities as one IATI document at ``path``, every one checked first.

    :raises IatiInvalidError: when an activity fails a check; nothing is written then.
    :raises NothingToExportError: when there is no activity to write; nor is anything then.
    """
    instant = now or dt.datetime.now(dt.UTC)
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    counter = [0]
    try:
        with open(temporary, "xb") as out:
            elements = checked_elements(activities, now=instant, counter=counter)
            for chunk in document_chunks(elements, generated=instant):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        size = temporary.stat().st_size
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return ExportSummary(path, counter[0], size)
