"""Every check of an IATI activity, and the hardened reading of an IATI file.

:func:`check_activity` runs, on one ``iati-activity`` element, the 2.03 schema, the codelists
(refusing withdrawn codes) and the rules of :mod:`services.iati.rules`, and raises at the first
failure, naming the activity, the element and the rule. The export runs it on each activity
before writing it; ``ledger iati validate`` runs it on each activity of any file.

:func:`read_activities` reads a file one activity at a time, whatever its length, through the
parser of :func:`services.iati.schema.safe_parser`'s settings, and refuses before reading on:
a file over the size limit, one that is not XML, one whose root is not ``iati-activities`` of
version 2.03, and any DOCTYPE (so no entity expansion, external entity or network DTD).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lxml import etree

from services.iati.codelists import CHECKED, codelist
from services.iati.errors import IatiFileError, IatiInvalidError
from services.iati.rules import check_rules
from services.iati.schema import IATI_VERSION, activity_schema

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FileReport",
    "check_activity",
    "name_of",
    "read_activities",
    "validate_file",
]

DEFAULT_MAX_BYTES = 1 << 30
"""The largest IATI file read: 1 GiB (the largest publishers' files are a few hundred MB)."""

_BY_TAG: dict[str, list[tuple[str, str]]] = {}
for (_tag, _attribute), _name in CHECKED.items():
    _BY_TAG.setdefault(_tag, []).append((_attribute, _name))


_CODED = tuple(tag for tag in _BY_TAG if tag != "narrative")
_NARRATIVE_LANGS = etree.XPath("descendant::narrative/@xml:lang")


def _check_code(
    activity: etree._Element,
    position: int,
    element: etree._Element | None,
    attribute: str,
    name: str,
    value: str,
) -> None:
    refused = codelist(name).problem(value)
    if refused is None:
        return
    short = "xml:lang" if attribute.endswith("}lang") else attribute
    where = short if element is None else f"{element.tag!s}/@{short}"
    raise IatiInvalidError(name_of(activity, position), where, f"codelist {name}", refused)


def name_of(activity: etree._Element, position: int) -> str:
    """How an error names an activity: its identifier, else its place in the file."""
    identifier = (activity.findtext("iati-identifier") or "").strip()
    line = f" (line {activity.sourceline})" if activity.sourceline else ""
    return identifier or f"#{position}{line}"


def _schema_failure(activity: etree._Element) -> tuple[str, str] | None:
    schema = activity_schema()
    if schema.validate(activity):
        return None
    error = schema.error_log[0] if schema.error_log else None
    if error is None:
        return "iati-activity", "does not match the schema"
    # libxml2 says "Element 'x': ..."; keep its words, which name the element.
    element = error.path.rsplit("/", 1)[-1] if error.path else "iati-activity"
    return element, error.message


def check_activity(activity: etree._Element, *, now: dt.datetime, position: int = 0) -> None:
    """Check one ``iati-activity`` against the schema, the codelists and the rules.

    :param now: the instant after which a date is in the future.
    :param position: the activity's place in its document, to name one without identifier.
    :raises IatiInvalidError: at the first failure, naming the activity, element and rule.
    """
    failure = _schema_failure(activity)
    if failure is not None:
        raise IatiInvalidError(name_of(activity, position), failure[0], "XSD 2.03", failure[1])
    for element in activity.iter(*_CODED):
        for attribute, name in _BY_TAG[str(element.tag)]:
            value = element.get(attribute)
            if value is not None:
                _check_code(activity, position, element, attribute, name, value)
    # Narratives are the most frequent element and seldom carry a language: one XPath (C)
    # finds the languages given, rather than a visit to every narrative.
    for lang in _NARRATIVE_LANGS(activity):
        _check_code(activity, position, None, "narrative/@xml:lang", "Language", str(lang))
    for problem in check_rules(activity, now):
        raise IatiInvalidError(
            name_of(activity, position), problem.element, problem.rule, problem.message
        )


def _refuse_doctype(root: etree._Element, path: Path) -> None:
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise IatiFileError(
            f"{path}: the file declares a DOCTYPE; IATI files have none, and DTDs, entities "
            "and external references are refused unread"
        )


def _check_root(root: etree._Element, path: Path) -> None:
    if root.tag != "iati-activities":
        raise IatiFileError(
            f"{path}: the root element is <{root.tag!s}>, not <iati-activities>: this is not an "
            "IATI activity file"
        )
    version = root.get("version")
    if version != IATI_VERSION:
        raise IatiFileError(
            f"{path}: iati-activities/@version is {version!r}; only IATI {IATI_VERSION} files "
            "are read (convert older files with the IATI tools first)"
        )


def read_activities(
    stream: IO[bytes], path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[etree._Element]:
    """Each ``iati-activity`` of an IATI 2.03 file, one at a time; each is cleared once the
    caller asks for the next, so memory holds one activity whatever the file's size.

    :raises IatiFileError: for a file too large, not XML, with a DOCTYPE, or not IATI 2.03.
    """
    size = path.stat().st_size if path.exists() else 0
    if size > max_bytes:
        raise IatiFileError(
            f"{path}: {size:,} bytes, over the limit of {max_bytes:,}; split the file, or raise "
            "--max-bytes"
        )
    events = etree.iterparse(
        stream,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    depth = 0
    root: etree._Element | None = None
    try:
        for event, element in events:
            if event == "start":
                depth += 1
                if root is None:
                    root = element
                    _refuse_doctype(root, path)
                    _check_root(root, path)
                continue
            depth -= 1
            if depth != 1:
                continue
            if element.tag == "iati-activity":
                yield element
            # Free what is read: the element, and the siblings before it.
            element.clear()
            parent = element.getparent()
            while parent is not None and element.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        raise IatiFileError(f"{path}: not well-formed XML: {exc}") from None
    if root is None:
        raise IatiFileError(
            f"{path}: the file is empty; an IATI file is one iati-activities element"
        )


@dataclass(frozen=True)
class FileReport:
    """What validating a file found: every activity passed."""

    path: Path
    activities: int


def validate_file(
    path: Path,
    *,
    now: dt.datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_progress: Callable[[int], None] | None = None,
) -> FileReport:
    """Check every activity of an IATI file as the export checks its own.

    :raises IatiFileError: when the file cannot be read as IATI 2.03.
    :raises IatiInvalidError: at the first activity that fails a check.
    """
    instant = now or dt.datetime.now(dt.UTC)
    count = 0
    with open(path, "rb") as stream:
        for count, activity in enumerate(read_activities(stream, path, max_bytes=max_bytes), 1):
            check_activity(activity, now=instant, position=count)
            if on_progress is not None:
                on_progress(stream.tell())
    if count == 0:
        raise IatiFileError(
            f"{path}: the file holds no iati-activity; the 2.03 schema wants at least one"
        )
    return FileReport(path, count)
