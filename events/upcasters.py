"""From each old schema version of an event to the next, as plain data.

Stored events are never rewritten: an event of an older version is decoded to plain data,
passed through these functions one version at a time, and only then decoded into the current
Structs (``events/codec.py``). Its hash is checked against its stored bytes, never against
the upcast copy (``events.integrity.stored_hashes``).

Version 1 to 2 (``events/model.py``): an activity's one ``source`` became a list of
``sources``; ``part_of`` and each country's ``role`` are new and take their defaults (no
parent; a recipient), which is what every version 1 event meant.
"""

from __future__ import annotations

from typing import Any

__all__ = ["UPCASTERS", "sources_of"]


def sources_of(body: dict[str, Any]) -> None:
    """Replace a mapping's ``source`` (a source or null) with ``sources`` (a list), in place:
    the version 1 form of a report's fields, which import files may still use."""
    if "source" in body:
        source = body.pop("source")
        body["sources"] = [] if source is None else [source]


def reported_1_to_2(envelope: dict[str, Any]) -> dict[str, Any]:
    """An ``ActivityReported`` of version 1 as version 2."""
    sources_of(envelope["payload"])
    return envelope


def revised_1_to_2(envelope: dict[str, Any]) -> dict[str, Any]:
    """An ``ActivityRevised`` of version 1 as version 2: a change of ``source`` is a change of
    ``sources`` (to none, when the source was removed)."""
    sources_of(envelope["payload"]["changes"])
    return envelope


def withdrawn_1_to_2(envelope: dict[str, Any]) -> dict[str, Any]:
    """An ``ActivityWithdrawn`` of version 1 as version 2: nothing changed."""
    return envelope


UPCASTERS = {
    ("ActivityReported", 1): reported_1_to_2,
    ("ActivityRevised", 1): revised_1_to_2,
    ("ActivityWithdrawn", 1): withdrawn_1_to_2,
}
"""Every upcaster, by ``(type, from_version)``, as ``events.codec.Codec`` takes them."""
