"""IATI activity data (:mod:`services.iati.mapping`) as XML: one element per activity, and the
``iati-activities`` document around them, streamed with ``lxml.etree.xmlfile``.

An activity's element is made whole (it is small), checked, then written and dropped, so a
document of any length holds one activity in memory at a time. :func:`document_chunks` yields
the document's bytes as they are made, for a file or an HTTP answer alike.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Iterator

from lxml import etree

from services.iati.errors import IatiInvalidError
from services.iati.mapping import LEDGER_NS, IatiActivity, Organisation, format_figure
from services.iati.schema import IATI_VERSION, safe_parser

__all__ = ["document_chunks", "element_of", "render"]

_PARSER = safe_parser()
_DERIVED_NARRATIVE = "<narrative>Derived from the year the activity is reported under</narrative>"
_NSMAP = {"ledger": LEDGER_NS}
_CHUNK = 64 * 1024
_DOCUMENT_CATEGORY = "A08"
"""DocumentCategory: results, outcomes and outputs (what a report paragraph gives)."""
_FORMAT = "text/html"
"""FileFormat (IANA media type) of a UN document's page."""


def _text(value: str) -> str:
    # str.replace, not str.translate with a table: translate looks every character up in a
    # dict and cost 35 µs of an activity's ~290 (bench/iati.py); replace is a C scan that
    # returns the very string when there is nothing to escape.
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def _attribute(value: str) -> str:
    return _text(value).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


def _attributes(pairs: Iterable[tuple[str, str]]) -> str:
    return "".join(f' {name}="{_attribute(value)}"' for name, value in pairs if value)


def _narrative(text: str) -> str:
    return f"<narrative>{_text(text)}</narrative>"


def _organisation(tag: str, org: Organisation) -> str:
    attributes = _attributes((("ref", org.ref), ("type", org.type), ("role", org.role)))
    return f"<{tag}{attributes}>{_narrative(org.name) if org.name else ''}</{tag}>"


def _iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def render(activity: IatiActivity) -> str:
    """The ``iati-activity`` element of one activity as XML text, its children in the
    schema's order. Text is written, not built node by node: an activity's text and one parse
    cost a quarter of what lxml's ``SubElement`` calls do (bench/iati.py)."""
    head = [("xml:lang", "en")]
    if activity.last_updated is not None:
        head.append(("last-updated-datetime", _iso(activity.last_updated)))
    head += [(f"ledger:{name}", value) for name, value in activity.ledger.items()]
    parts = [
        f'<iati-activity xmlns:ledger="{LEDGER_NS}"{_attributes(head)}>',
        f"<iati-identifier>{_text(activity.identifier)}</iati-identifier>",
        _organisation("reporting-org", activity.reporting_org),
        f"<title>{_narrative(activity.title)}</title>",
        f'<description type="1">{_narrative(activity.description)}</description>',
        *(_organisation("participating-org", org) for org in activity.participating),
        f'<activity-status code="{_attribute(activity.status)}"/>',
    ]
    for date in activity.dates:
        opening = f'<activity-date type="{_attribute(date.type)}" iso-date="{date.day.isoformat()}"'
        if date.derived:
            parts.append(f'{opening} ledger:derived="year">{_DERIVED_NARRATIVE}</activity-date>')
        else:
            parts.append(opening + "/>")
    for recipient in activity.recipients:
        code = _attribute(recipient.code)
        if recipient.percentage is None:
            parts.append(f'<recipient-country code="{code}"/>')
        else:
            percentage = format_figure(recipient.percentage)
            parts.append(f'<recipient-country code="{code}" percentage="{percentage}"/>')
    if activity.region is not None:
        parts.append(f'<recipient-region code="{_attribute(activity.region)}" vocabulary="1"/>')
    for sector in activity.sectors:
        name = _narrative(sector.name) if sector.name else ""
        parts.append(
            f'<sector vocabulary="{_attribute(sector.vocabulary)}" code="{_attribute(sector.code)}"'
            f' percentage="{format_figure(sector.percentage)}">{name}</sector>'
        )
    for link in activity.documents:
        title = link.document
        extra = [("url", link.url), ("format", _FORMAT), ("ledger:document", link.document)]
        if link.paragraph is not None:
            extra.append(("ledger:paragraph", str(link.paragraph)))
            title += f", paragraph {link.paragraph}"
        parts.append(
            f"<document-link{_attributes(extra)}><title>{_narrative(title)}</title>"
            f'<category code="{_DOCUMENT_CATEGORY}"/></document-link>'
        )
    if activity.parent is not None:
        parts.append(f'<related-activity ref="{_attribute(activity.parent)}" type="1"/>')
    if activity.indicators:
        parts.append(
            '<result type="1" aggregation-status="1">'
            f"<title>{_narrative('Figures reported to the ledger')}</title>"
        )
        for indicator in activity.indicators:
            summed = "1" if indicator.summed else "0"
            parts.append(
                f'<indicator measure="1" ascending="1" aggregation-status="{summed}">'
                f"<title>{_narrative(indicator.title)}</title>"
                f'<reference vocabulary="99" code="{_attribute(indicator.metric)}"/>'
                f'<period><period-start iso-date="{indicator.start.isoformat()}"/>'
                f'<period-end iso-date="{indicator.end.isoformat()}"/>'
                f'<actual value="{format_figure(indicator.value)}"/>'
            )
            for country, part in indicator.parts:
                parts.append(
                    f'<actual value="{format_figure(part)}"><dimension name="recipient-country"'
                    f' value="{_attribute(country)}"/></actual>'
                )
            parts.append("</period></indicator>")
        parts.append("</result>")
    parts.append("</iati-activity>")
    return "".join(parts)


def element_of(activity: IatiActivity) -> etree._Element:
    """The ``iati-activity`` element of one activity, parsed from :func:`render`.

    :raises IatiInvalidError: when a text of the activity cannot be XML (a control character).
    """
    text = render(activity)
    try:
        return etree.fromstring(text.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise IatiInvalidError(
            activity.identifier, "narrative", "XML 1.0", f"a text cannot be written as XML: {exc}"
        ) from None


def document_chunks(
    elements: Iterable[etree._Element], *, generated: dt.datetime
) -> Iterator[bytes]:
    """The bytes of one ``iati-activities`` document holding ``elements``, as they are made.

    The caller checks each element before this writes it; an error raised while the
    elements are produced ends the document unfinished, and the caller discards it.
    """
    buffer = io.BytesIO()
    with etree.xmlfile(buffer, encoding="utf-8") as xf:
        xf.write_declaration()
        attributes = {"version": IATI_VERSION, "generated-datetime": _iso(generated)}
        with xf.element("iati-activities", attributes, nsmap=_NSMAP):
            for element in elements:
                xf.write(element)
                xf.write("\n")
                if buffer.tell() >= _CHUNK:
                    xf.flush()
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
    yield buffer.getvalue()
