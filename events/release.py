"""The one event that is not an activity's: a release, a named statement of the figures.

A release says "these are the figures as of sequence k" by a digest of every rollup row then
(``projections/digest.py``), with a note such as "figures as published in the
Secretary-General's report of 30 June 2021". Only headquarters releases
(:data:`RELEASING_OFFICE`): intake refuses any other office, and NATS lets only intake write
the subject. The event is sealed and signed like an activity's, on ``<prefix>.release.<NAME>``
of the same stream, once per name.
"""

from __future__ import annotations

from typing import Any

import msgspec

from events.envelope import Envelope
from events.model import FiguresReleased

__all__ = ["RELEASING_OFFICE", "decode_release"]

RELEASING_OFFICE = "HQ"
"""The office that may release figures."""


_decoder = msgspec.json.Decoder(Envelope[FiguresReleased])


def decode_release(data: bytes) -> Envelope[Any]:
    """A stored release event.

    :raises msgspec.DecodeError: when ``data`` is not one (msgspec's ValidationError is one).
    """
    return _decoder.decode(data)
