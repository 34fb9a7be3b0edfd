"""The size limits of everything an office may send, named once for the model, checks and docs.

An office's command is untrusted input: without bounds one request could fill the stream with a
300 KB title, make intake recurse until it fails, or draw a reply too large for NATS to carry.
Every limit below is enforced twice, for two different inputs:

- on decoding, as msgspec ``Meta`` constraints on the Structs of :mod:`events.model`,
  :mod:`events.envelope` and :mod:`events.commands`, plus the byte and depth checks that
  :func:`events.commands.decode_command` makes before msgspec sees the bytes;
- in :mod:`events.validation`, for Structs built in Python (which msgspec does not check), so
  that a client finds out before it sends.

Each refusal is ``invalid``, names the field, and states the limit.

================================  ============  ==============================================
What                              Limit         Where it is enforced
================================  ============  ==============================================
``title``                         300 chars     model ``Meta``; ``check_reported``
``summary``, ``notes``            5,000 chars   model ``Meta``; ``check_reported``
``actor``                         200 chars     command and envelope ``Meta``; ``check_actor``
``reason``                        200 chars     command and event ``Meta``; ``check_reason``
``countries``                     250 entries   model ``Meta``; ``check_reported`` (no repeats)
``partners``                      100 entries   model ``Meta``; ``check_reported``
``metrics``                       50 entries    model ``Meta``; ``check_reported``
a metric's figure                 0..10**10     model ``Meta`` (upper bound); ``check_reported``
``source.paragraph``              0..100,000    model ``Meta``; ``check_reported``
codes, ids, metric names          64 chars      model and command ``Meta``
names (country, partner, ...)     200 chars     model ``Meta``; ``check_reported`` (partners)
one encoded command               64 KiB        ``decode_command``, before decoding
one report inside a batch         64 KiB        ``decode_command``, before the typed decode
one batch request                 1 MiB         ``decode_command``, before decoding
reports in one batch              100           ``ReportActivities`` ``Meta``
JSON nesting depth                16 levels     ``decode_command``, before decoding
issues listed in one rejection    10 (+ count)  ``InvalidEventError``; ``rejection_for``
================================  ============  ==============================================

The batch bound is 1 MiB rather than 100 x 64 KiB because 1 MiB is NATS's default
``max_payload``: a larger request could not reach intake anyway, and a batch is meant for many
ordinary reports (about 1 KB each), not for many maximal ones. With at most 100 reports and
each rejection bounded (see ``MAX_MESSAGE``), a batch's reply stays far below 1 MiB too.
"""

from __future__ import annotations

__all__ = [
    "MAX_ACTOR",
    "MAX_BATCH",
    "MAX_BATCH_BYTES",
    "MAX_CHANGES",
    "MAX_CODE",
    "MAX_COMMAND_BYTES",
    "MAX_COUNTRIES",
    "MAX_DEPTH",
    "MAX_FIELD_PATH",
    "MAX_FIGURE",
    "MAX_ID",
    "MAX_ISSUES",
    "MAX_MESSAGE",
    "MAX_METRICS",
    "MAX_NAME",
    "MAX_PARAGRAPH",
    "MAX_PARTNERS",
    "MAX_REASON",
    "MAX_SIGNATURE",
    "MAX_SOURCES",
    "MAX_TEXT",
    "MAX_TITLE",
]

MAX_TITLE = 300
"""Characters of an activity's ``title``."""
MAX_TEXT = 5_000
"""Characters of an activity's ``summary`` and of its ``notes``."""
MAX_ACTOR = 200
"""Characters of a command's (and so an event's) ``actor``."""
MAX_REASON = 200
"""Characters of the ``reason`` of a revision or a withdrawal."""
MAX_COUNTRIES = 250
"""Countries of one activity: more than there are UN Member States and observers together."""
MAX_PARTNERS = 100
"""Partner organisations of one activity."""
MAX_METRICS = 50
"""Figures of one activity; the metric catalogue has about 30 names."""
MAX_FIGURE = 10**10
"""The largest figure a metric may hold: more than the world's population. Projections keep
figures in millionths in 64-bit integers (at most about 9.2e18), so an unbounded figure would
overflow them and stop the projector on one event."""
MAX_SOURCES = 20
"""Documents and paragraphs that cite one activity."""
MAX_PARAGRAPH = 100_000
"""The highest paragraph number a source may cite; like figures, it lands in a 64-bit column."""
MAX_CODE = 64
"""Characters of a code or id: activity id, office, kind, metric name (as subject tokens)."""
MAX_NAME = 200
"""Characters of a name that may stand for a code (a programme or a country given by name), of
a partner's name and of a source document's symbol or title."""
MAX_ID = 128
"""Characters of a command id or a correlation id, both chosen by the client."""
MAX_SIGNATURE = 256
"""Characters of a signature (an Ed25519 signature in URL-safe base64 is 86)."""
MAX_CHANGES = 64
"""Fields one revision may change: every revisable field plus every metric, with room."""

MAX_COMMAND_BYTES = 64 * 1024
"""Bytes of one encoded command, alone or as one report of a batch."""
MAX_BATCH_BYTES = 1024 * 1024
"""Bytes of one encoded request of any kind: NATS's default ``max_payload``."""
MAX_BATCH = 100
"""Reports in one ``ReportActivities`` request."""
MAX_DEPTH = 16
"""JSON nesting depth of a request; a batch of reports needs 6 (batch, list, command,
activity, countries, country)."""

MAX_ISSUES = 10
"""Issues spelled out in one error or rejection; the rest are counted ("and 240 more")."""
MAX_MESSAGE = 800
"""Characters of one issue's message, and of a rejection's whole message; longer ones are cut
with an ellipsis. A rejection's message holds only printable characters (others are written
as escapes), so in JSON it takes at most 4 bytes a character, and with the field path the whole
reply stays under 4 KiB whatever the input."""
MAX_FIELD_PATH = 100
"""Characters of one issue's field path, which is kept ASCII; longer ones are cut."""
