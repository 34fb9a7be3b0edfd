"""The rules of the IATI standard ruleset (``data/standard.json``, version 2.03) that apply to the
activities the ledger writes, as pure checks on one ``iati-activity`` element.

The ruleset states its rules as XPath over an activity; the ones here are those that can hold
or fail for an activity without transactions or budgets (the ledger has no money values):
identifier form (1.1.3, 1.1.21, 1.3.1, 1.3.13, 1.14.1, 1.14.13), a start date (6.11.1), dates
in order and actual dates not in the future (11.1.1-11.1.5), a sector (6.2.2) and percentages
per vocabulary (2.1.1, 2.1.2, 2.1.4, 2.2.1, 12.3.1), recipient countries and regions (3.1.1,
3.1.2, 3.1.4, 3.7.1, 12.1.1), narratives and languages (4.1.1, 4.3.1, 4.4.1), participating
organisations (6.10.1), and results (8.6.1, 8.8-8.10 numeric values, 8.11.1). Rules the
ruleset marks as warnings are enforced as errors: the export writes only what passes them all.

A date "before" another may equal it: a one-day activity starts and ends on the same day.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from lxml import etree

from services.iati.codelists import codelist
from services.iati.schema import data_path

__all__ = ["Problem", "check_rules", "rule_message"]

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_BAD_ID_CHARACTERS = re.compile(r"[/&|?]")
_HUNDRED = Decimal(100)


class Problem(NamedTuple):
    """One broken rule: its id, the element or attribute at fault, and what is wrong."""

    rule: str
    element: str
    message: str


@functools.cache
def _messages() -> dict[str, str]:
    ruleset = json.loads(data_path("standard.json").read_text("utf-8"))
    found: dict[str, str] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            info = node.get("ruleInfo")
            if isinstance(info, dict) and "id" in info:
                found.setdefault(str(info["id"]), str(info.get("message", "")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(ruleset)
    return found


def rule_message(rule: str) -> str:
    """The ruleset's own words for a rule id."""
    return _messages().get(rule, "")


def _problem(rule: str, element: str, detail: str = "") -> Problem:
    message = rule_message(rule)
    return Problem(rule, element, f"{message} {detail}".strip() if detail else message)


def _text(element: etree._Element | None) -> str:
    return "" if element is None or element.text is None else element.text


def _attribute(element: etree._Element | None, name: str) -> str | None:
    return None if element is None else element.get(name)


def _day(text: str | None) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _decimal(text: str | None) -> Decimal | None:
    if text is None or not _NUMBER.fullmatch(text.strip()):
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


Children = dict[str, list[etree._Element]]
"""An activity's child elements by tag: one pass over them, for every check (lxml's path
lookups are Python, and each check would otherwise make its own)."""
Check = Callable[[etree._Element, Children, dt.datetime], Iterator[Problem]]


def _first(children: Children, tag: str) -> etree._Element | None:
    found = children.get(tag)
    return found[0] if found else None


def _identifiers(
    activity: etree._Element, children: Children, now: dt.datetime
) -> Iterator[Problem]:
    identifier = _text(_first(children, "iati-identifier"))
    org = _first(children, "reporting-org")
    ref = "" if org is None else org.get("ref", "")
    if identifier != identifier.strip():
        yield _problem("1.3.1", "iati-identifier", f"({identifier!r})")
    if _BAD_ID_CHARACTERS.search(identifier):
        yield _problem("1.3.13", "iati-identifier", f"({identifier!r})")
    if ref != ref.strip():
        yield _problem("1.14.1", "reporting-org/@ref", f"({ref!r})")
    if _BAD_ID_CHARACTERS.search(ref):
        yield _problem("1.14.13", "reporting-org/@ref", f"({ref!r})")
    if identifier and identifier == ref:
        yield _problem("1.1.3", "iati-identifier", f"({identifier!r})")
    prefixes = [ref] + [
        other.get("ref", "")
        for other in children.get("other-identifier", ())
        if other.get("type") == "B1"
    ]
    if not any(p and identifier.startswith(p + "-") for p in prefixes):
        yield _problem("1.1.21", "iati-identifier", f"({identifier!r} does not start with {ref}-)")


def _dates(activity: etree._Element, children: Children, now: dt.datetime) -> Iterator[Problem]:
    by_type: dict[str, dt.date] = {}
    for date in children.get("activity-date", ()):
        day = _day(date.get("iso-date"))
        if day is not None:
            by_type.setdefault(date.get("type", ""), day)
    if "1" not in by_type and "2" not in by_type:
        yield _problem("6.11.1", "activity-date", "(no activity-date of type 1 or 2)")
    today = now.date()
    for rule, less, more in (("11.1.2", "1", "3"), ("11.1.3", "2", "4")):
        if less in by_type and more in by_type and by_type[less] > by_type[more]:
            yield _problem(
                rule,
                f"activity-date[@type='{more}']",
                f"({by_type[less].isoformat()} is after {by_type[more].isoformat()})",
            )
    for rule, kind in (("11.1.4", "2"), ("11.1.5", "4")):
        if kind in by_type and by_type[kind] > today:
            yield _problem(rule, f"activity-date[@type='{kind}']", f"({by_type[kind]})")
    updated = activity.get("last-updated-datetime")
    if updated:
        try:
            instant = dt.datetime.fromisoformat(updated.replace("Z", "+00:00"))
        except ValueError:
            instant = None
        if instant is not None and instant.tzinfo is not None and instant > now:
            yield _problem("11.1.1", "@last-updated-datetime", f"({updated})")


def _percentages(elements: list[etree._Element], rule: str, where: str) -> Iterator[Problem]:
    values = [_decimal(e.get("percentage")) for e in elements]
    if any(v is None for v in values):
        return
    total = sum((v for v in values if v is not None), Decimal(0))
    if total != _HUNDRED:
        yield _problem(rule, where, f"(they sum to {total.normalize():f})")


def _range(elements: list[etree._Element], rule: str, where: str) -> Iterator[Problem]:
    for element in elements:
        text = element.get("percentage")
        if text is None:
            continue
        value = _decimal(text)
        if value is None or not 0 <= value <= _HUNDRED:
            yield _problem(rule, where, f"({text!r})")


def _sectors(activity: etree._Element, children: Children, now: dt.datetime) -> Iterator[Problem]:
    sectors = children.get("sector", [])
    if not sectors and not any(
        t.find("sector") is not None for t in children.get("transaction", ())
    ):
        yield _problem("6.2.2", "sector")
    yield from _range(sectors, "12.3.1", "sector/@percentage")
    by_vocabulary: dict[str, list[etree._Element]] = {}
    for sector in sectors:
        by_vocabulary.setdefault(sector.get("vocabulary") or "1", []).append(sector)
    for vocabulary, group in by_vocabulary.items():
        where = f"sector[@vocabulary='{vocabulary}']"
        if len(group) > 1:
            if any(s.get("percentage") is None for s in group):
                yield _problem("2.1.1", where + "/@percentage")
            yield from _percentages(group, "2.1.2", where + "/@percentage")
        elif (value := group[0].get("percentage")) is not None and _decimal(value) != _HUNDRED:
            yield _problem("2.1.4", where + "/@percentage", f"({value!r})")
        if vocabulary in ("98", "99") and any(
            next(s.iterchildren("narrative"), None) is None for s in group
        ):
            yield _problem("2.2.1", where + "/narrative")
        if vocabulary == "1":
            sector_codes = codelist("Sector")
            for sector in group:
                problem = sector_codes.problem(sector.get("code", ""))
                if problem:
                    yield Problem("codelist Sector", where + "/@code", problem)


def _recipients(
    activity: etree._Element, children: Children, now: dt.datetime
) -> Iterator[Problem]:
    countries = children.get("recipient-country", [])
    regions = children.get("recipient-region", [])
    yield from _range(countries, "12.1.1", "recipient-country/@percentage")
    yield from _range(regions, "12.1.1", "recipient-region/@percentage")
    if not countries and not regions and "transaction" not in children:
        yield _problem("3.7.1", "recipient-country")
    if len(countries) > 1 and not regions:
        if any(c.get("percentage") is None for c in countries):
            yield _problem("3.1.1", "recipient-country/@percentage")
        yield from _percentages(countries, "3.1.2", "recipient-country/@percentage")
    if len(countries) == 1 and not regions:
        value = countries[0].get("percentage")
        if value is not None and _decimal(value) != _HUNDRED:
            yield _problem("3.1.4", "recipient-country/@percentage", f"({value!r})")
    for region in regions:
        if (region.get("vocabulary") or "1") == "1":
            problem = codelist("Region").problem(region.get("code", ""))
            if problem:
                yield Problem("codelist Region", "recipient-region/@code", problem)


def _narratives(
    activity: etree._Element, children: Children, now: dt.datetime
) -> Iterator[Problem]:
    if activity.get(XML_LANG) is None and any(
        n.get(XML_LANG) is None for n in activity.iter("narrative")
    ):
        yield _problem("4.1.1", "narrative/@xml:lang")
    for tag, rule in (("title", "4.3.1"), ("description", "4.4.1")):
        for element in children.get(tag, ()):
            if not any(_text(n).strip() for n in element.iterchildren("narrative")):
                yield _problem(rule, f"{tag}/narrative")
    for org in children.get("participating-org", ()):
        if not org.get("ref") and next(org.iterchildren("narrative"), None) is None:
            yield _problem("6.10.1", "participating-org")


def _by_tag(element: etree._Element) -> Children:
    found: Children = {}
    for child in element:
        found.setdefault(str(child.tag), []).append(child)
    return found


def _values(rule: str, where: str, elements: list[etree._Element]) -> Iterator[Problem]:
    for element in elements:
        value = element.get("value")
        if value is None:
            yield _problem(f"{rule}.1", f"{where}/@value")
        elif _decimal(value) is None:
            yield _problem(f"{rule}.2", f"{where}/@value", f"({value!r})")


def _results(activity: etree._Element, children: Children, now: dt.datetime) -> Iterator[Problem]:
    for result in children.get("result", ()):
        parts = _by_tag(result)
        at_result = "reference" in parts
        for indicator in parts.get("indicator", ()):
            own = _by_tag(indicator)
            title_element = _first(own, "title")
            narrative = None if title_element is None else title_element.find("narrative")
            title = _text(narrative) or "indicator"
            where = f"result/indicator[{title[:40]!r}]"
            if at_result and "reference" in own:
                yield _problem("8.11.1", where + "/reference")
            numeric = indicator.get("measure") in ("1", "2", "3", "4")
            targets: list[etree._Element] = []
            actuals: list[etree._Element] = []
            for period in own.get("period", ()):
                inside = _by_tag(period)
                start = _day(_attribute(_first(inside, "period-start"), "iso-date"))
                end = _day(_attribute(_first(inside, "period-end"), "iso-date"))
                if start is not None and end is not None and start > end:
                    yield _problem("8.6.1", where + "/period", f"({start} is after {end})")
                targets += inside.get("target", ())
                actuals += inside.get("actual", ())
            if numeric:
                yield from _values("8.8", f"{where}/baseline", own.get("baseline", []))
                yield from _values("8.9", f"{where}/period/target", targets)
                yield from _values("8.10", f"{where}/period/actual", actuals)


CHECKS: tuple[Check, ...] = (_identifiers, _dates, _recipients, _sectors, _narratives, _results)
"""Every check, in the order a reader of the activity meets the elements."""


def check_rules(activity: etree._Element, now: dt.datetime) -> Iterator[Problem]:
    """Every rule the activity breaks.

    :param now: the instant "the future" starts at (rules 11.1.1, 11.1.4, 11.1.5).
    """
    children = _by_tag(activity)
    for check in CHECKS:
        yield from check(activity, children, now)
