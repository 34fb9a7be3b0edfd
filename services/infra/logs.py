"""How a ledger process logs: plain text for a person at a terminal, JSON lines for a machine.

``--log-format json`` (or ``LEDGER_LOG_FORMAT=json``) writes one JSON object a line to standard
error, with ``time``, ``level``, ``component``, ``event`` and ``message``, and the
``activity_id``, ``office``, ``sequence`` and ``command_id`` of the few log calls that pass
them with ``extra=``. An exception's traceback, FastStream's included, is the ``traceback``
field of its one line, never lines of its own. ``text`` is the default when standard error is
a terminal and everywhere else unless JSON is asked for: a pipe into ``less`` should read as
text, and a collector's configuration says ``json`` once.

No line carries a secret: the formatter replaces anything shaped like an nkey seed and the
API's bearer token, should any code ever pass one, before the line is written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from typing import Any, TextIO

__all__ = [
    "FIELDS",
    "FORMATS",
    "LOG_FORMAT_VARIABLE",
    "JsonFormatter",
    "TextFormatter",
    "choose_format",
    "component_of",
    "redact",
    "setup_logging",
]

LOG_FORMAT_VARIABLE = "LEDGER_LOG_FORMAT"
"""The environment variable that chooses the format when ``--log-format`` is not given."""

FORMATS = ("text", "json")

FIELDS = ("activity_id", "office", "sequence", "command_id")
"""The ledger's own fields a log call may pass with ``extra=``; each goes into the JSON line."""

_SEED = re.compile(r"S[UAONCPX][A-Z2-7]{50,}")
"""An nkey seed: ``S``, the key type's letter, then base32 (58 characters in all)."""

_COMPONENTS = (
    ("ledger.projector", "projector"),
    ("services.projector", "projector"),
    ("services.intake", "intake"),
    ("ledger.api", "api"),
    ("ledger.dashboard", "api"),
    ("services.api", "api"),
    ("uvicorn", "api"),
    ("services.notary", "notary"),
    ("faststream", "projector"),
    ("nats", "nats-client"),
    ("replay", "replay"),
    ("projections", "projections"),
)
"""Logger names and the component each stands for; the first that prefixes a name wins."""


_LIBRARIES = ("faststream", "uvicorn")
"""Loggers whose own handlers are replaced by the ledger's one."""


def component_of(logger_name: str) -> str:
    """The part of the ledger a logger belongs to: ``intake``, ``projector``, ``api``, ..."""
    for prefix, component in _COMPONENTS:
        if logger_name == prefix or logger_name.startswith(f"{prefix}."):
            return component
    head = logger_name.split(".")
    return head[1] if head[0] in ("ledger", "services") and len(head) > 1 else head[0]


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every nkey seed and every one of ``secrets`` replaced by a marker."""
    text = _SEED.sub("[seed redacted]", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[secret redacted]")
    return text


def _secrets() -> tuple[str, ...]:
    token = (os.environ.get("LEDGER_API_TOKEN") or "").strip()
    return (token,) if len(token) >= 8 else ()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (no newline inside: JSON escapes them)."""
        secrets = _secrets()
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "component": getattr(record, "component", None) or component_of(record.name),
            # The message's template: the same for every line of one kind, so it can be counted.
            "event": getattr(record, "event", None) or str(record.msg),
            "message": record.getMessage(),
            "logger": record.name,
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["traceback"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        text = json.dumps(line, ensure_ascii=False, default=str)
        return redact(text, secrets)


class TextFormatter(logging.Formatter):
    """A plain line for a person: time, level, component, message, and the ledger's fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        """The record as text, with ``key=value`` for each field it carries."""
        text = super().format(record)
        extra = " ".join(
            f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None)
        )
        if extra:
            head, newline, rest = text.partition("\n")
            text = f"{head} [{extra}]{newline}{rest}"
        return redact(text, _secrets())


def choose_format(asked: str | None) -> str:
    """The format to use: ``asked``, else ``LEDGER_LOG_FORMAT``, else ``text``.

    :raises ValueError: for a format that is neither ``text`` nor ``json``.
    """
    chosen = (asked or os.environ.get(LOG_FORMAT_VARIABLE) or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(
            f"log format {chosen!r} is not known; give --log-format text or json "
            f"(or {LOG_FORMAT_VARIABLE})"
        )
    return chosen


class _LedgerHandler(logging.StreamHandler):
    """Writes to the standard error of the moment (or a given stream): a test runner that
    swaps ``sys.stderr`` gets the lines, and a closed old one is never written to."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream)
        self._fixed = stream

    @property
    def stream(self) -> TextIO:
        """Where the next line goes."""
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # StreamHandler sets it; the property decides


def setup_logging(
    log_format: str | None = None, *, level: int | None = None, stream: TextIO | None = None
) -> str:
    """Send every logger's records to standard error in the chosen format; return it.

    Replaces the handler an earlier call installed (other handlers, such as a test runner's,
    stay), and routes FastStream's and uvicorn's records through it: their own handlers would
    print multi-line tracebacks of their own.

    :param log_format: ``text`` or ``json``; ``None`` reads ``LEDGER_LOG_FORMAT``.
    :param level: the root logger's level; by default warnings for text (a person reads it)
        and information for JSON (a collector keeps it: stored events' office and sequence,
        rejected commands, projector starts).
    :param stream: where to write; standard error by default.
    :raises ValueError: for an unknown format.
    """
    chosen = choose_format(log_format)
    handler = _LedgerHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _LedgerHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(
        level if level is not None else logging.INFO if chosen == "json" else logging.WARNING
    )
    # FastStream gives its loggers handlers of their own (its "faststream" logger one at
    # import), which would write tracebacks over many lines in their own format.
    known = [name for name in logging.root.manager.loggerDict if name.startswith(_LIBRARIES)]
    for name in {*_LIBRARIES, *known}:
        library = logging.getLogger(name)
        for old in list(library.handlers):
            library.removeHandler(old)
        library.propagate = True
    return chosen
