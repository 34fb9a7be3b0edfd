"""``ledger doctor``: what is wrong with this ledger, one line a check, each with its fix.

It checks, in order: the data directory; the NATS server (the one ``--nats-url`` names, else
the running ``ledger up``'s); the credentials and their file modes; the stream's settings; the
projection's lag; the office outbox; and the clock skew between this machine and the server
(the server's ``/varz`` ``now``, read from its monitoring endpoint on 127.0.0.1). It reads and
changes nothing: no server is started, no stream made, no mode fixed.

Each check ends ``ok``, ``warn`` (worth a look, not wrong) or ``fail``. The exit code is 0 when
nothing fails and 1 (failed) when anything does, so that a script or a health probe can run it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import stat
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import click

from events.errors import LedgerError
from events.store import EventStore
from projections.db import live_path, open_reader, resolve
from projections.queries import current_sequence
from services.cli.context import run_async, settings_of
from services.cli.exit_codes import ExitCode
from services.client.outbox import outbox_depth, outbox_path
from services.infra.access import credentials_for
from services.infra.config import Settings
from services.infra.credentials import creds_dir
from services.infra.runtime import read_runtime
from services.infra.stack import connect

__all__ = ["Check", "check_clock", "check_files", "doctor"]

Outcome = Literal["ok", "warn", "fail"]

SKEW_WARN = 1.0
"""Seconds of clock skew worth a warning: instants the CLI shows and asks with are this far off."""
SKEW_FAIL = 30.0
"""Seconds of clock skew that fail: ``as_of`` instants and the offices' ``occurred_at`` would
mislead, and signed commands' ``issued_at`` may look out of place."""
_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    """One check's outcome: what was found, and what to do when it is not ok."""

    name: str
    outcome: Outcome
    found: str
    fix: str = ""

    def line(self) -> str:
        """The check as one line of text."""
        text = f"{self.outcome.upper():<4}  {self.name:<15} {self.found}"
        return f"{text}; fix: {self.fix}" if self.fix and self.outcome != "ok" else text


# -- pure rules --------------------------------------------------------------------------------


def check_files(data_dir: Path) -> list[Check]:
    """The data directory, and every secret file under it: present, and readable by us alone."""
    if not data_dir.exists():
        return [
            Check(
                "data directory",
                "fail",
                f"{data_dir} does not exist",
                "start the ledger once with `ledger up`, or give the right --data-dir",
            )
        ]
    if not data_dir.is_dir() or not os.access(data_dir, os.W_OK | os.X_OK):
        return [
            Check(
                "data directory",
                "fail",
                f"{data_dir} is not a directory this user can write",
                f"give a --data-dir you own, or fix the owner of {data_dir}",
            )
        ]
    checks = [Check("data directory", "ok", f"{data_dir.resolve()}, writable")]
    secrets = [p for folder in ("creds", "keys") for p in sorted((data_dir / folder).glob("*.nk"))]
    loose = [p for p in secrets if stat.S_IMODE(p.stat().st_mode) & 0o077]
    folder = creds_dir(data_dir)
    open_dir = folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) & 0o077
    if loose or open_dir:
        named = ", ".join(
            f"{p.relative_to(data_dir)} ({stat.S_IMODE(p.stat().st_mode):04o})" for p in loose[:4]
        )
        checks.append(
            Check(
                "credentials",
                "fail",
                "others may read "
                + (named or f"{folder} ({stat.S_IMODE(folder.stat().st_mode):04o})"),
                f"chmod 600 {data_dir}/creds/*.nk {data_dir}/keys/*.nk; chmod 700 {folder}",
            )
        )
    elif secrets:
        checks.append(
            Check("credentials", "ok", f"{len(secrets)} seed files, readable by their owner only")
        )
    else:
        checks.append(
            Check(
                "credentials",
                "warn",
                "no seed files under creds/ or keys/ (a server without authentication?)",
                "`ledger up` makes them at its first start; an office gets its own with "
                "`ledger office add`",
            )
        )
    return checks


def check_clock(server_now: dt.datetime, sent: float, received: float) -> Check:
    """The skew between the server's clock and ours, from one exchange.

    :param server_now: the server's time, as it answered.
    :param sent: our clock (epoch seconds) when we asked; ``received``: when it answered. The
        server's instant is compared with their midpoint, so the round trip is not skew.
    """
    skew = server_now.timestamp() - (sent + received) / 2
    found = f"this machine is {abs(skew):.2f} s {'behind' if skew > 0 else 'ahead of'} the server"
    fix = "synchronise both clocks with NTP (e.g. `timedatectl set-ntp true`)"
    if abs(skew) >= SKEW_FAIL:
        return Check("clock", "fail", found, fix)
    if abs(skew) >= SKEW_WARN:
        return Check("clock", "warn", found, fix)
    return Check("clock", "ok", found)


def check_lag(last: int, checkpoint: int | None, moved: bool) -> Check:
    """The projection's lag behind the stream, and whether it is moving."""
    if checkpoint is None:
        return Check(
            "projection",
            "fail",
            "no projection file in the data directory",
            "`ledger up` projects the stream; or `ledger rebuild`",
        )
    lag = max(last - checkpoint, 0)
    if lag == 0:
        return Check("projection", "ok", f"at sequence {checkpoint}, lag 0")
    if moved:
        return Check("projection", "ok", f"at sequence {checkpoint}, lag {lag}, catching up")
    return Check(
        "projection",
        "fail",
        f"at sequence {checkpoint}, lag {lag}, and not moving",
        "is the projector running? `ledger up` runs it; `ledger status` shows the quarantine",
    )


def check_outbox(depth: int, reachable: bool, where: Path) -> Check:
    """The office outbox: commands that wait to be sent."""
    if depth == 0:
        return Check("outbox", "ok", "nothing waits" if where.exists() else "no outbox here")
    if reachable:
        return Check(
            "outbox",
            "warn",
            f"{depth} commands wait although the server answers",
            "`ledger outbox list` shows them; `ledger outbox send` sends them",
        )
    return Check(
        "outbox",
        "warn",
        f"{depth} commands wait for the server",
        "they go when it answers: start it, then `ledger outbox send`",
    )


# -- what reads the world ----------------------------------------------------------------------


def _projection_checkpoint(data_dir: Path) -> int | None:
    live = live_path(data_dir)
    if not resolve(live).exists():
        return None
    conn = open_reader(live)
    try:
        return current_sequence(conn)
    except Exception:  # a file being created has no checkpoint yet
        return None
    finally:
        conn.close()


def _server_now(monitor_url: str) -> tuple[dt.datetime, float, float]:
    sent = time.time()
    # The server's own monitoring endpoint, which runtime.json or --monitor-url names.
    with urllib.request.urlopen(f"{monitor_url.rstrip('/')}/varz", timeout=_TIMEOUT) as answer:
        varz = json.loads(answer.read(1 << 20))
    received = time.time()
    return dt.datetime.fromisoformat(varz["now"]), sent, received


async def _stream_checks(settings: Settings, url: str) -> tuple[list[Check], bool]:
    """The server, the stream's settings and the projection's lag; and whether it answered."""
    checks: list[Check] = []
    creds = credentials_for(settings, "admin")
    try:
        nc = await connect(url, "ledger-doctor", timeout=_TIMEOUT, creds=creds)
    except LedgerError as exc:
        checks.append(Check("server", "fail", str(exc).split(";")[0], _server_fix(settings)))
        return checks, False
    try:
        who = f"as {creds.path.name}" if creds else "without credentials"
        checks.append(Check("server", "ok", f"{url} answers ({who})"))
        store = EventStore(nc, settings.namespace)
        try:
            problems = await asyncio.wait_for(store.stream_problems(settings.replicas), _TIMEOUT)
            last = await asyncio.wait_for(store.last_sequence(), _TIMEOUT)
        except LedgerError as exc:
            checks.append(Check("stream", "fail", str(exc), "start the ledger with `ledger up`"))
            return checks, True
        except Exception as exc:  # a refused read times out
            checks.append(
                Check(
                    "stream",
                    "fail",
                    f"its settings could not be read ({type(exc).__name__})",
                    "give credentials that may read the stream (--creds, e.g. the admin's "
                    "or the auditor's)",
                )
            )
            return checks, True
        if problems:
            checks.append(
                Check(
                    "stream",
                    "fail",
                    f"{store.ns.stream}: " + "; ".join(problems),
                    "a stream's safety settings cannot be loosened back: make a new stream "
                    "with `ledger import-log` from an export (docs/auditors.md)",
                )
            )
        else:
            checks.append(
                Check(
                    "stream", "ok", f"{store.ns.stream}: settings as the design asks, last {last}"
                )
            )
        checkpoint = _projection_checkpoint(settings.data_dir)
        moved = False
        if checkpoint is not None and checkpoint < last:
            await asyncio.sleep(1.0)
            later = _projection_checkpoint(settings.data_dir)
            moved = later is not None and later > checkpoint
            checkpoint = later
        checks.append(check_lag(last, checkpoint, moved))
        return checks, True
    finally:
        await nc.close()


def _server_fix(settings: Settings) -> str:
    if settings.nats_url:
        return "is the server at --nats-url / LEDGER_NATS_URL up and reachable from here?"
    return f"start the ledger with `ledger --data-dir {settings.data_dir} up`"


def run_checks(settings: Settings, monitor_url: str | None = None) -> list[Check]:
    """Every check, in order, for the ledger of ``settings``."""
    checks = check_files(settings.data_dir)
    running = read_runtime(settings.data_dir) if settings.data_dir.exists() else None
    url = settings.nats_url or (running.nats_url if running else None)
    reachable = False
    if url is None:
        checks.append(
            Check(
                "server",
                "fail",
                f"no `ledger up` runs on {settings.data_dir}, and no --nats-url was given",
                _server_fix(settings),
            )
        )
    else:
        found, reachable = run_async(_stream_checks(settings, url))
        checks.extend(found)
    checks.append(
        check_outbox(outbox_depth(settings.data_dir), reachable, outbox_path(settings.data_dir))
    )
    monitor = monitor_url or (running.nats_monitor_url if running else "")
    if not monitor:
        checks.append(
            Check(
                "clock",
                "warn",
                "not measured: no monitoring endpoint of the server is known",
                "give --monitor-url http://HOST:8222 (the server's `http` port)",
            )
        )
    else:
        try:
            checks.append(check_clock(*_server_now(monitor)))
        except (OSError, ValueError, KeyError) as exc:
            checks.append(
                Check(
                    "clock",
                    "warn",
                    f"not measured: {monitor} did not answer ({type(exc).__name__})",
                    "check that the server's monitoring port is up",
                )
            )
    return checks


@click.command()
@click.option(
    "--monitor-url",
    envvar="LEDGER_NATS_MONITOR_URL",
    default=None,
    metavar="URL",
    help="The nats-server's monitoring endpoint, for the clock check [env "
    "LEDGER_NATS_MONITOR_URL]; the running `ledger up`'s by default.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON lines.")
@click.pass_context
def doctor(ctx: click.Context, monitor_url: str | None, as_json: bool) -> None:
    """Check this ledger and say, one line each, what is wrong and how to fix it.

    Checks the data directory, the server, the credentials and their modes, the stream's
    settings, the projection's lag, the outbox and the clock skew with the server. Exit code
    0 when no check fails, 1 when any does.

    Example: ledger --data-dir .ledger doctor
    """
    checks = run_checks(settings_of(ctx), monitor_url)
    for check in checks:
        if as_json:
            click.echo(json.dumps(asdict(check)))
        else:
            colour: Any = {"ok": "green", "warn": "yellow", "fail": "red"}[check.outcome]
            click.secho(check.line(), fg=colour)
    if any(check.outcome == "fail" for check in checks):
        ctx.exit(ExitCode.FAILED)
