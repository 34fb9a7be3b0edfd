"""Commands of field offices: ``report``, ``revise``, ``withdraw`` and ``import``.

Each keeps its commands in the data directory's outbox (``services/client/outbox.py``), then
sends them to the intake service of a running ledger (``ledger up``, found through
``runtime.json``, or the server given by ``--nats-url``) through :class:`OfficeClient`, after
what waited there before. They start nothing themselves: when NATS cannot be reached, the
commands stay queued, and the command says so and exits 0. ``--no-queue`` sends without the
outbox, as before it existed: with no intake answering, the command says so and fails.

They connect with ``--creds`` / ``LEDGER_CREDS``, else with ``<data dir>/creds/office-<OFFICE>.nk``
of the office they send as, when it exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click
from nats.aio.client import Client as NATS
from rich.console import Console

from events.commands import Accepted, Rejected
from services.cli.context import file_progress, run_async, settings_of
from services.client.delivery import Queued, send_waiting
from services.client.delivery import submit as deliver
from services.client.errors import IntakeUnavailableError
from services.client.fields import parse_field
from services.client.importer import (
    DEFAULT_MAX_LINE_BYTES,
    ImportRejectedError,
    ImportSummary,
    activity_from_json,
    import_file,
    write_rejects,
)
from services.client.office import OfficeClient
from services.client.outbox import Outbox, WriteCommand
from services.infra.access import credentials_for
from services.infra.config import Settings
from services.infra.office_keys import office_seeds
from services.infra.runtime import read_runtime
from services.infra.stack import ConnectionFailedError, connect

__all__ = [
    "import_",
    "office_client",
    "office_options",
    "print_queued",
    "print_sent",
    "queue_option",
    "report",
    "revise",
    "submit",
    "withdraw",
]

F = TypeVar("F", bound=Callable[..., Any])
Builder = Callable[[OfficeClient], WriteCommand]


def office_options(required: bool, default: str | None = None) -> Callable[[F], F]:
    """``--office`` and ``--actor``, as every command an office sends takes them."""

    def decorate(func: F) -> F:
        func = click.option(
            "--actor",
            envvar="LEDGER_ACTOR",
            default=None,
            help="Who issues the command [env LEDGER_ACTOR; default: your login name].",
        )(func)
        return click.option(
            "--office",
            envvar="LEDGER_OFFICE",
            default=default,
            required=required,
            help="The office to send as [env LEDGER_OFFICE]"
            + ("." if required else "; default: the office each record names."),
        )(func)

    return decorate


QUEUE_CONNECT_TIMEOUT = 3.0
"""Seconds a queueing command tries to reach NATS before it keeps its command for later."""


def queue_option(func: F) -> F:
    """``--no-queue``, as every write command of an office takes it."""
    return click.option(
        "--no-queue",
        is_flag=True,
        help="Send without the outbox: when intake cannot be reached, retry for 30 s, then "
        "fail (exit 7) and keep nothing.",
    )(func)


@asynccontextmanager
async def office_client(
    settings: Settings, office: str | None, actor: str | None, *, queue: bool = False
) -> AsyncIterator[OfficeClient]:
    """An :class:`OfficeClient` of ``office`` on the running ledger, with the office's own
    credentials and, when the data directory keeps it, its signing key.

    :param queue: keep commands in the data directory's outbox; the client then has no
        connection (``nc`` is ``None``) when NATS cannot be reached, and only queues.
    """
    outbox = Outbox(settings.data_dir) if queue else None
    try:
        reason = ""
        nc: NATS | None = None
        try:
            nc = await _connect(settings, office, QUEUE_CONNECT_TIMEOUT if queue else 10.0)
        except (IntakeUnavailableError, ConnectionFailedError) as exc:
            if not queue:
                raise
            reason = str(exc)
        try:
            # Offices whose signing key is kept here sign their commands with it.
            seeds = office_seeds(settings.data_dir)
            client = OfficeClient(
                nc, office, settings.namespace, actor=actor, seeds=seeds, outbox=outbox
            )
            client.unreachable = reason
            yield client
        finally:
            if nc is not None:
                await nc.close()
    finally:
        if outbox is not None:
            outbox.close()


async def _connect(settings: Settings, office: str | None, timeout: float) -> NATS:
    url = settings.nats_url
    if url is None:
        running = read_runtime(settings.data_dir)
        if running is None:
            raise IntakeUnavailableError(
                f"no ledger is running on {settings.data_dir}; start it with `ledger up` in "
                "another terminal, or give --nats-url"
            )
        url = running.nats_url
    # An office's own credentials when it is known; a file of several offices' records is
    # sent with the admin's, and intake still checks each record against its office.
    creds = credentials_for(settings, f"office-{office}" if office else "admin")
    return await connect(url, name="ledger-office", timeout=timeout, creds=creds)


def _print_accepted(what: str, reply: Accepted) -> None:
    if reply.duplicate:
        click.echo(
            f"{reply.activity_id}: already stored, event {reply.event_id}, sequence "
            f"{reply.sequence} (version {reply.version}); nothing new stored"
        )
    else:
        click.echo(
            f"{reply.activity_id}: {what}, now at version {reply.version} "
            f"(event {reply.event_id}, sequence {reply.sequence})"
        )


def print_queued(queued: Queued) -> None:
    """Say that a command waits in the outbox, and why."""
    click.echo(f"{queued.activity_id}: queued ({queued.waiting} waiting)")
    if queued.reason:
        click.echo(
            f"  not sent: {queued.reason}. It is sent by `ledger outbox send`, by `ledger up`, "
            "and by the next office command; `ledger outbox list` shows what waits.",
            err=True,
        )
    elif queued.behind is not None:
        behind = queued.behind
        why = (
            f"was rejected ({behind.code}: {behind.message}); drop one of them with "
            "`ledger outbox drop ID`"
            if behind.state == "rejected"
            else "waits to be sent"
        )
        click.echo(
            f"  it waits behind {behind.kind} {behind.command_id} of the same activity, which "
            f"{why}",
            err=True,
        )


def print_sent(answers: dict[str, Accepted | Rejected], outbox: Outbox) -> None:
    """One line for each command of the outbox just sent, saying what became of it."""
    for command_id, answer in answers.items():
        entry = outbox.get(command_id)
        what = f"{entry.kind} of {entry.activity_id}" if entry else command_id
        if isinstance(answer, Accepted):
            click.echo(
                f"outbox: {what}: stored, event {answer.event_id}, sequence {answer.sequence}"
            )
        else:
            field = f" {answer.field}:" if answer.field else ""
            click.echo(f"outbox: {what}: rejected ({answer.code}){field} {answer.message}")


async def submit(
    settings: Settings, office: str | None, actor: str | None, no_queue: bool, build: Builder
) -> Accepted | Queued:
    """Build a command with the office's client and send it, through the outbox unless
    ``no_queue``: what waits there goes first."""
    async with office_client(settings, office, actor, queue=not no_queue) as client:
        command = build(client)
        if no_queue:
            return await client.send(command)
        if client.nc is not None and client.outbox is not None:
            answers, _ = await send_waiting(client)
            print_sent(answers, client.outbox)
        outcome = await deliver(client, command)
        if isinstance(outcome, Queued) and not outcome.reason and client.unreachable:
            outcome = replace(outcome, reason=client.unreachable)
        return outcome


def _print_outcome(what: str, outcome: Accepted | Queued) -> None:
    if isinstance(outcome, Queued):
        print_queued(outcome)
    else:
        _print_accepted(what, outcome)


@click.command()
@click.argument("file", type=click.File("rb"))
@office_options(required=False)
@queue_option
@click.pass_context
def report(
    ctx: click.Context, file: Any, office: str | None, actor: str | None, no_queue: bool
) -> None:
    """Report one activity from a JSON file ("-" reads standard input).

    The JSON object has the fields of a line of data/activities.jsonl. The command is kept in
    the outbox first: when the ledger cannot be reached it is queued (exit 0), and running the
    same report again never stores it twice.

    Example: ledger report training.json
    """
    activity = activity_from_json(file.read(), getattr(file, "name", "the input"))
    outcome = run_async(
        submit(
            settings_of(ctx),
            office or activity.office,
            actor,
            no_queue,
            lambda client: client.report_command(activity),
        )
    )
    _print_outcome("reported", outcome)


def _parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for item in values:
        path, sep, text = item.partition("=")
        if not sep or not path.strip():
            raise click.BadParameter(
                f"{item!r} is not FIELD=VALUE, e.g. metrics.people_trained=600",
                param_hint="--set",
            )
        path = path.strip()
        if path.startswith("source."):
            # One source, as a shorthand: the revision's whole list of sources is that one.
            sources = changes.setdefault("sources", [{}])
            sources[0][path.removeprefix("source.")] = parse_field(path, text)
        else:
            changes[path] = parse_field(path, text)
    return changes


@click.command()
@click.argument("activity_id")
@click.option(
    "--set",
    "sets",
    multiple=True,
    required=True,
    metavar="FIELD=VALUE",
    help="A new value: year=2021, metrics.people_trained=600, countries='KAZ:60;UZB:40', "
    "partners='UNDP;WHO'; repeat for several fields. metrics.NAME= removes a figure.",
)
@click.option("--reason", required=True, help="Why the record changes (kept in history).")
@click.option(
    "--expected-version",
    type=int,
    default=None,
    help="The version you read; if the activity changed since, nothing is stored (exit 4).",
)
@office_options(required=True)
@queue_option
@click.pass_context
def revise(
    ctx: click.Context,
    activity_id: str,
    sets: tuple[str, ...],
    reason: str,
    expected_version: int | None,
    office: str,
    actor: str | None,
    no_queue: bool,
) -> None:
    """Change some fields of an activity, saying why.

    Example: ledger revise KAZ-TRAINING-1 --office KAZ --set metrics.people_trained=600
    --reason "final attendance list"
    """
    changes = _parse_sets(sets)

    outcome = run_async(
        submit(
            settings_of(ctx),
            office,
            actor,
            no_queue,
            lambda client: client.revise_command(activity_id, changes, reason, expected_version),
        )
    )
    _print_outcome("revised", outcome)


@click.command()
@click.argument("activity_id")
@click.option("--reason", required=True, help="Why the activity is withdrawn.")
@click.option("--expected-version", type=int, default=None, help="The version you read.")
@office_options(required=True)
@queue_option
@click.pass_context
def withdraw(
    ctx: click.Context,
    activity_id: str,
    reason: str,
    expected_version: int | None,
    office: str,
    actor: str | None,
    no_queue: bool,
) -> None:
    """Withdraw an activity: it stays in history but counts nowhere.

    Example: ledger withdraw KAZ-TRAINING-1 --office KAZ --reason "reported twice"
    """

    outcome = run_async(
        submit(
            settings_of(ctx),
            office,
            actor,
            no_queue,
            lambda client: client.withdraw_command(activity_id, reason, expected_version),
        )
    )
    _print_outcome("withdrawn", outcome)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--window", default=256, show_default=True, help="Commands awaiting a reply at once.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help="auto: CSV when the name ends in .csv, else JSON Lines.",
)
@click.option(
    "--max-line-bytes",
    default=DEFAULT_MAX_LINE_BYTES,
    show_default=True,
    help="Longer lines are rejected without being read into memory.",
)
@office_options(required=False)
@queue_option
@click.pass_context
def import_(
    ctx: click.Context,
    file: Path,
    window: int,
    file_format: str,
    max_line_bytes: int,
    office: str | None,
    actor: str | None,
    no_queue: bool,
) -> None:
    """Report every activity of a JSON Lines or CSV file.

    Lines already imported (same content) are recognised and not stored again, so the same
    file can be imported again after an interruption. Rejected lines are listed and written
    to FILE.rejects.jsonl; the exit code is then 1.

    Example: ledger import data/activities.jsonl
    """
    csv_format = None if file_format == "auto" else file_format == "csv"
    summary = run_async(
        _import(settings_of(ctx), file, office, actor, window, max_line_bytes, csv_format, no_queue)
    )
    rejects = write_rejects(file, summary.rejections)
    for rejection in summary.rejections:
        where = f"{rejection.field}: " if rejection.field else ""
        click.echo(
            f"line {rejection.line}: rejected ({rejection.code}) {where}{rejection.message}",
            err=True,
        )
    queued = f", {summary.queued} queued ({summary.waiting} waiting)" if summary.queued else ""
    click.echo(
        f"{file}: {summary.accepted} accepted, {summary.already_present} already present, "
        f"{summary.rejected} rejected{queued}"
    )
    if summary.rejected:
        raise ImportRejectedError(
            f"{summary.rejected} line(s) rejected, listed above and in {rejects}; fix them and "
            "import the file again (lines already stored are recognised)"
        )


async def _import(
    settings: Settings,
    file: Path,
    office: str | None,
    actor: str | None,
    window: int,
    max_line_bytes: int,
    csv_format: bool | None,
    no_queue: bool,
) -> ImportSummary:

    console = Console(stderr=True)

    async with office_client(settings, office, actor, queue=not no_queue) as client:
        if client.nc is None:
            click.echo(f"not sent: {client.unreachable}; the lines are queued", err=True)
        with file_progress(console) as progress:
            task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
            return await import_file(
                client,
                file,
                window=window,
                max_line_bytes=max_line_bytes,
                csv_format=csv_format,
                on_progress=lambda done: progress.update(task, completed=done),
            )
