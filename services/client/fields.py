"""Text to field values: how a CSV cell or a ``--set field=value`` becomes an activity's field.

One set of rules for both, so an office writes ``KAZ:60;UZB:40`` the same way in a spreadsheet
and on the command line. Values come out as plain data; msgspec then checks the types.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from events.errors import FieldIssue, InvalidEventError

__all__ = ["LIST_SEPARATOR", "parse_countries", "parse_field", "parse_number"]

LIST_SEPARATOR = ";"
"""Between the items of a list cell: ``KAZ;UZB``, ``UNDP;WHO``."""


def parse_number(text: str, field: str) -> int | float:
    """A figure: ``571``, ``2.5`` or ``1,234`` (thousands separators are dropped).

    :raises InvalidEventError: naming ``field`` when the text is not a number.
    """
    cleaned = text.strip().replace(",", "").replace("_", "")
    try:
        value = float(cleaned)
    except ValueError:
        raise InvalidEventError(
            [FieldIssue(field, f"{text!r} is not a number; give digits, e.g. 571")]
        ) from None
    if math.isfinite(value) and value.is_integer() and "." not in cleaned:
        return int(value)
    return value


def parse_countries(text: str, field: str = "countries") -> list[dict[str, Any]]:
    """Countries as ``KAZ;UZB`` (no shares) or ``KAZ:60;UZB:40`` (shares in percent); a
    country that only hosted the activity is ``AUT:venue``.

    :raises InvalidEventError: when a share is not a number.
    """
    countries: list[dict[str, Any]] = []
    for i, item in enumerate(p.strip() for p in text.split(LIST_SEPARATOR)):
        if not item:
            continue
        name, sep, share = item.rpartition(":") if ":" in item else (item, "", "")
        entry: dict[str, Any] = {"country": name.strip()}
        if sep and share.strip().lower() == "venue":
            entry["role"] = "venue"
        elif sep:
            entry["share"] = float(parse_number(share, f"{field}.{i}.share"))
        countries.append(entry)
    return countries


def parse_field(path: str, text: str) -> Any:
    """The value of one field, given as text.

    ``metrics.<name>`` is a number (empty or ``null`` removes it), ``countries`` and
    ``partners`` are lists, ``year`` and ``source.paragraph`` are whole numbers, dates and the
    other fields are kept as text; ``sources`` is JSON.

    :raises InvalidEventError: naming ``path`` when the text cannot be that field.
    """
    stripped = text.strip()
    if path.startswith(("metrics.", "metric.")):
        return None if stripped in ("", "null") else parse_number(stripped, path)
    if path == "countries":
        return parse_countries(stripped)
    if path == "partners":
        return [p.strip() for p in stripped.split(LIST_SEPARATOR) if p.strip()]
    if path in ("year", "source.paragraph"):
        if not stripped and path == "source.paragraph":
            return None
        number = parse_number(stripped, path)
        if not isinstance(number, int):
            raise InvalidEventError([FieldIssue(path, f"{text!r} is not a whole number")])
        return number
    if path in ("start_date", "end_date"):
        return stripped or None
    if path in ("metrics", "sources"):
        try:
            return msgspec.json.decode(stripped or "null")
        except msgspec.DecodeError:
            raise InvalidEventError(
                [FieldIssue(path, f"give {path} as JSON, e.g. " + _EXAMPLES[path])]
            ) from None
    return text


_EXAMPLES = {
    "metrics": '{"people_trained": 600}',
    "sources": '[{"document": "A/76/119", "paragraph": 30}]',
}
