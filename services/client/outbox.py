"""The office outbox: every write command an office sends, kept in SQLite before it is sent.

``<data dir>/outbox.db`` holds one row per command id: the command's bytes as they will be
sent, the activity it is about, its order number, its state and its outcome. The row is
committed before the command is sent and the outcome after, so a crash between the two leaves
a row that is simply sent again: intake answers a command id it has seen with the first
outcome, so nothing is stored twice.

States: ``waiting`` (queued, not sent), ``sent`` (sent, no answer recorded yet: sent again
like a waiting one), ``stored`` (intake accepted it: event id, sequence and version kept),
``rejected`` (intake refused it: code, message and field kept; never sent again).

Order holds per activity (office and activity id): a command is sent only once every earlier
command of its activity is settled, and not while an earlier one was rejected after it was
queued (:func:`sendable`). Command ids are kept for ever; only ``ledger outbox drop`` removes a
row.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.request import pathname2url

import msgspec

from events.commands import (
    Accepted,
    Command,
    Rejected,
    ReportActivity,
    ReviseActivity,
    WithdrawActivity,
    decode_command,
    encode_command,
)
from events.envelope import utc_now
from events.errors import LedgerError

__all__ = [
    "OUTBOX_FILE",
    "Entry",
    "Outbox",
    "OutboxEntryNotFoundError",
    "OutboxFileError",
    "WriteCommand",
    "activity_of",
    "fingerprint_of",
    "outbox_depth",
    "outbox_path",
    "sendable",
]

OUTBOX_FILE = "outbox.db"

T = TypeVar("T")

WriteCommand = ReportActivity | ReviseActivity | WithdrawActivity
"""The commands that go through the outbox: the ones that store an event."""

_UNSETTLED = ("waiting", "sent")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    command_id   TEXT PRIMARY KEY,
    position     INTEGER NOT NULL UNIQUE,
    office       TEXT NOT NULL,
    activity_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    body         BLOB NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('waiting', 'sent', 'stored', 'rejected')),
    event_id     TEXT,
    sequence     INTEGER,
    version      INTEGER,
    code         TEXT,
    message      TEXT,
    field        TEXT,
    holds_until  INTEGER,
    queued_at    TEXT NOT NULL,
    sent_at      TEXT,
    settled_at   TEXT
);
CREATE INDEX IF NOT EXISTS commands_activity ON commands (office, activity_id, position);
"""
# holds_until: for a rejected row, the highest position queued when the rejection came. The
# activity's commands queued up to then were built on the rejected one and wait for the
# office's decision (drop it, or them); commands queued later are the office's answer to the
# rejection and go.


class OutboxEntryNotFoundError(LedgerError):
    """Raised when ``ledger outbox drop`` names a command id the outbox does not hold."""


class OutboxFileError(LedgerError):
    """Raised when the outbox file, or a command in it, cannot be read as the outbox's."""


@dataclass(frozen=True)
class Entry:
    """One command of the outbox, as stored."""

    command_id: str
    position: int
    """The order number: commands of one activity are sent in this order."""
    office: str
    activity_id: str
    kind: str
    """``report``, ``revise`` or ``withdraw``."""
    fingerprint: str
    """A hash of what the command asks for, without its id, time or signature: the same
    command typed again has the same one (:func:`fingerprint_of`)."""
    body: bytes
    """The command's bytes as they are (or will be) sent."""
    state: str
    event_id: str | None
    sequence: int | None
    version: int | None
    code: str | None
    message: str | None
    field: str | None
    holds_until: int | None
    queued_at: str
    sent_at: str | None
    settled_at: str | None

    @property
    def unsettled(self) -> bool:
        """Whether the command still has to be sent (waiting, or sent without an answer)."""
        return self.state in _UNSETTLED

    @property
    def command(self) -> WriteCommand:
        """The command the row holds.

        :raises OutboxFileError: when the bytes are not a report, revision or withdrawal.
        """
        try:
            command = decode_command(self.body)
        except (ValueError, TypeError) as exc:  # msgspec's errors and InvalidEventError
            raise OutboxFileError(
                f"the outbox's command {self.command_id} cannot be read ({exc}); remove it "
                f"with `ledger outbox drop {self.command_id}`"
            ) from None
        if not isinstance(command, WriteCommand):
            raise OutboxFileError(
                f"the outbox's command {self.command_id} is a {type(command).__name__}, not a "
                f"report, revision or withdrawal; remove it with `ledger outbox drop "
                f"{self.command_id}`"
            )
        return command

    def accepted(self) -> Accepted:
        """The recorded acceptance of a stored command, as intake answers a resend."""
        return Accepted(
            event_id=self.event_id or "",
            activity_id=self.activity_id,
            sequence=self.sequence or 0,
            version=self.version or 0,
            duplicate=True,
        )

    def rejected(self) -> Rejected:
        """The recorded refusal of a rejected command."""
        return msgspec.convert(
            {"code": self.code, "message": self.message or "", "field": self.field or ""},
            Rejected,
        )


_COLUMNS = ", ".join(Entry.__dataclass_fields__)


def outbox_path(data_dir: Path) -> Path:
    """Where the outbox of the data directory ``data_dir`` lives."""
    return data_dir / OUTBOX_FILE


def outbox_depth(data_dir: Path) -> int:
    """How many commands wait to be sent (or were sent without an answer); 0 without an outbox.

    Opens the file read-only and never creates it, so a metrics scrape or ``ledger doctor``
    leaves no outbox behind in a data directory that has none.

    :raises OutboxFileError: when the file is there but is no SQLite database.
    """
    path = outbox_path(data_dir)
    if not path.is_file():
        return 0
    conn = sqlite3.connect(f"file:{pathname2url(str(path.resolve()))}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT count(*) FROM commands WHERE state IN ('waiting', 'sent')"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0  # a file being created: no table yet
        raise _unreadable(path, exc) from None
    except sqlite3.DatabaseError as exc:
        raise _unreadable(path, exc) from None
    finally:
        conn.close()
    return int(row[0])


def _unreadable(path: Path, exc: Exception) -> OutboxFileError:
    return OutboxFileError(
        f"the outbox {path} cannot be read ({exc}); move it aside to start a new one (the "
        "commands it held are then not sent)"
    )


def activity_of(command: WriteCommand) -> str:
    """The id of the activity a command is about."""
    if isinstance(command, ReportActivity):
        return command.activity.activity_id
    return command.activity_id


def fingerprint_of(command: WriteCommand, office: str) -> str:
    """What the command asks for, hashed: the same for the same command typed again.

    The command id, the time, the actor, the correlation id and the signature are left out:
    a re-run after a crash differs only in those. For a revision or withdrawal, the expected
    version is kept as the office gave it.
    """
    if isinstance(command, ReportActivity):
        # The activity is all a report asks for; the shortcut matters to an import's speed.
        return hashlib.sha256(_encoder.encode([office, command.activity])).hexdigest()
    neutral = msgspec.structs.replace(
        command,
        command_id="-",
        issued_at=_EPOCH,
        actor="",
        correlation_id="",
        signature="",
    )
    return hashlib.sha256(_encoder.encode([office, neutral])).hexdigest()


_encoder = msgspec.json.Encoder(order="sorted")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def sendable(rows: Sequence[Entry]) -> tuple[list[Entry], dict[str, Entry]]:
    """Which unsettled commands may be sent now, and which wait behind another (by the other).

    :param rows: the unsettled rows and the rejected ones, in order number.
    :returns: the first unsettled command of each activity that nothing holds, in order
        number; and, for every other unsettled one, the row it waits behind.
    """
    ready: list[Entry] = []
    held: dict[str, Entry] = {}
    blocker: dict[tuple[str, str], Entry] = {}
    for row in rows:
        key = (row.office, row.activity_id)
        ahead = blocker.get(key)
        if row.state == "rejected":
            if ahead is None and (row.holds_until or 0) > row.position:
                blocker[key] = row
            continue
        if not row.unsettled:
            continue
        if ahead is not None and not (
            ahead.state == "rejected" and row.position > (ahead.holds_until or 0)
        ):
            held[row.command_id] = ahead
            if ahead.state == "rejected":
                blocker[key] = row  # what comes after waits behind this one, in order
            continue
        ready.append(row)
        blocker[key] = row
    return ready, held


class Outbox:
    """The outbox file of one data directory, open for reading and writing."""

    def __init__(self, data_dir: Path) -> None:
        """Open (and create, the first time) ``<data_dir>/outbox.db``."""
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = outbox_path(data_dir)
        # The office's commands, its activities' texts and its signatures: for its owner only
        # from the start (SQLite would make the file 0644 less the umask; its -wal and -shm
        # files take the file's mode).
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self._local = threading.local()
        self._worker: ThreadPoolExecutor | None = None
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise _unreadable(self.path, exc) from None

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to the file (each thread has its own)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=10.0, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # A commit must survive the process being killed, which WAL gives at NORMAL: the
            # commit is in the log once it returns. FULL would add an fsync a commit, to
            # survive a power cut as well, at a cost an import of many batches feels.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    async def run(self, method: Callable[..., T], *args: Any) -> T:
        """Call one of this outbox's methods in its own thread, so that the event loop goes on
        sending and receiving while the file is written (an import's batches)."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="outbox")
        return await asyncio.get_running_loop().run_in_executor(self._worker, method, *args)

    def close(self) -> None:
        """Close the file."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- reading ---------------------------------------------------------------------------

    def _select(self, where: str, params: Iterable[object] = ()) -> list[Entry]:
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM commands {where}", tuple(params))
        return [Entry(*row) for row in rows]

    def get(self, command_id: str) -> Entry | None:
        """The row of a command id, if the outbox holds it."""
        found = self._select("WHERE command_id = ?", (command_id,))
        return found[0] if found else None

    def entries(self, *, settled: bool = True) -> list[Entry]:
        """Every row in order number; without ``settled``, only the unsettled and rejected."""
        where = "" if settled else "WHERE state != 'stored'"
        return self._select(f"{where} ORDER BY position")

    def pending(self) -> list[Entry]:
        """The unsettled rows and the rejected ones that may hold others, for :func:`sendable`."""
        return self._select(
            "WHERE state IN ('waiting', 'sent') OR (state = 'rejected' AND holds_until > position)"
            " ORDER BY position"
        )

    def depth(self) -> int:
        """How many commands are unsettled."""
        row = self.conn.execute(
            "SELECT count(*) FROM commands WHERE state IN ('waiting', 'sent')"
        ).fetchone()
        return int(row[0])

    def same_as(self, command: WriteCommand, office: str) -> Entry | None:
        """The row of the same command queued before, if any: a re-run of it.

        A report matches any earlier report of the same content (an activity is reported
        once). A revision or withdrawal matches only the activity's latest command, so that
        setting a value back to what it was before another change is a new command.
        """
        fingerprint = fingerprint_of(command, office)
        activity_id = activity_of(command)
        if isinstance(command, ReportActivity):
            found = self._select(
                "WHERE office = ? AND activity_id = ? AND fingerprint = ? "
                "ORDER BY position DESC LIMIT 1",
                (office, activity_id, fingerprint),
            )
            return found[0] if found else None
        latest = self._select(
            "WHERE office = ? AND activity_id = ? ORDER BY position DESC LIMIT 1",
            (office, activity_id),
        )
        if latest and latest[0].fingerprint == fingerprint:
            return latest[0]
        return None

    def version_after_queued(self, office: str, activity_id: str) -> int | None:
        """The version the activity will have once its unsettled commands are stored; ``None``
        when none is unsettled (the version is then the stream's, read when sending)."""
        rows = self._select(
            "WHERE office = ? AND activity_id = ? AND state != 'rejected' ORDER BY position",
            (office, activity_id),
        )
        waiting = [row for row in rows if row.unsettled]
        if not waiting:
            return None
        if waiting[0].kind == "report":
            return len(waiting)
        stored = [r for r in rows if r.state == "stored" and r.position < waiting[0].position]
        if not stored or stored[-1].version is None:
            return None  # what the stream holds before them is unknown here
        return stored[-1].version + len(waiting)

    # -- writing ---------------------------------------------------------------------------

    def add(
        self, commands: Iterable[tuple[WriteCommand, str, str]], *, state: str = "waiting"
    ) -> None:
        """Queue commands, each with the office it is sent as and its :func:`fingerprint_of`
        (taken before the client filled in an expected version), in one transaction.

        A command id the outbox holds already is left as it is, so queueing the same command
        twice keeps its first order number and outcome. ``state="sent"`` records commands that
        are about to be sent right away (an import's batch).
        """
        now = utc_now().isoformat()
        sent_at = now if state == "sent" else None
        with self._transaction() as conn:
            top = conn.execute("SELECT coalesce(max(position), 0) FROM commands").fetchone()[0]
            conn.executemany(
                "INSERT INTO commands (command_id, position, office, activity_id, kind, "
                "fingerprint, body, state, queued_at, sent_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (command_id) DO UPDATE SET state = excluded.state, "
                "body = excluded.body, sent_at = excluded.sent_at "
                "WHERE commands.state IN ('waiting', 'sent')",
                [
                    (
                        command.command_id,
                        top + number,
                        office,
                        activity_of(command),
                        _kind(command),
                        fingerprint,
                        encode_command(command),
                        state,
                        now,
                        sent_at,
                    )
                    for number, (command, office, fingerprint) in enumerate(commands, start=1)
                ],
            )

    def mark_sent(self, commands: Iterable[WriteCommand]) -> None:
        """Record, before sending, that the commands are sent with exactly these bytes."""
        now = utc_now().isoformat()
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE commands SET state = 'sent', body = ?, sent_at = ? "
                "WHERE command_id = ? AND state IN ('waiting', 'sent')",
                [(encode_command(c), now, c.command_id) for c in commands],
            )

    def record(self, outcomes: Iterable[tuple[str, Accepted | Rejected]]) -> None:
        """Record intake's answers, by command id, in one transaction."""
        now = utc_now().isoformat()
        with self._transaction() as conn:
            top = conn.execute("SELECT coalesce(max(position), 0) FROM commands").fetchone()[0]
            answers = list(outcomes)
            conn.executemany(
                "UPDATE commands SET state = 'stored', event_id = ?, sequence = ?, "
                "version = ?, settled_at = ? WHERE command_id = ?",
                [
                    (reply.event_id, reply.sequence, reply.version, now, command_id)
                    for command_id, reply in answers
                    if isinstance(reply, Accepted)
                ],
            )
            conn.executemany(
                "UPDATE commands SET state = 'rejected', code = ?, message = ?, "
                "field = ?, holds_until = ?, settled_at = ? WHERE command_id = ?",
                [
                    (reply.code, reply.message, reply.field, top, now, command_id)
                    for command_id, reply in answers
                    if isinstance(reply, Rejected)
                ],
            )

    def drop(self, command_id: str) -> Entry:
        """Remove one command from the outbox and return what it was.

        :raises OutboxEntryNotFoundError: when the outbox holds no such command.
        """
        with self._transaction() as conn:
            entry = self.get(command_id)
            if entry is None:
                raise OutboxEntryNotFoundError(
                    f"the outbox holds no command {command_id!r}; `ledger outbox list` shows "
                    "the ids"
                )
            conn.execute("DELETE FROM commands WHERE command_id = ?", (command_id,))
        return entry


def _kind(command: Command) -> str:
    if isinstance(command, ReportActivity):
        return "report"
    if isinstance(command, ReviseActivity):
        return "revise"
    return "withdraw"
