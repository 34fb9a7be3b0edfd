"""Commands of field offices: ``report``, ``revise``, ``withdraw`` and ``import``.

Each sends commands to the intake service of a running ledger (``ledger up``, found through
``runtime.json``, or the server given by ``--nats-url``) through :class:`OfficeClient`. They
start nothing themselves: with no intake answering, they say so and exit with code 3.

They connect with ``--creds`` / ``LEDGER_CREDS``, else with ``<data dir>/creds/office-<OFFICE>.nk``
of the office they send as, when it exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from events.commands import Accepted
from events.decisions import split_validation_error
from events.errors import FieldIssue, InvalidEventError
from events.model import ActivityReported
from services.cli.context import run_async, settings_of
from services.client.errors import IntakeUnavailableError
from services.client.fields import parse_field
from services.client.importer import (
    DEFAULT_MAX_LINE_BYTES,
    ImportRejectedError,
    ImportSummary,
    import_file,
    write_rejects,
)
from services.client.office import OfficeClient
from services.infra.access import credentials_for
from services.infra.config import Settings
from services.infra.office_keys import office_seeds
from services.infra.runtime import read_runtime
from services.infra.stack import connect

__all__ = ["import_", "office_client", "office_options", "report", "revise", "withdraw"]

F = TypeVar("F", bound=Callable[..., Any])


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


@asynccontextmanager
async def office_client(
    settings: Settings, office: str | None, actor: str | None
) -> AsyncIterator[OfficeClient]:
    """An :class:`OfficeClient` of ``office`` on the running ledger, with the office's own
    credentials and, when the data directory keeps it, its signing key."""
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
    nc = await connect(url, name="ledger-office", creds=creds)
    try:
        # Offices whose signing key is kept here sign their commands with it.
        seeds = office_seeds(settings.data_dir)
        yield OfficeClient(nc, office, settings.namespace, actor=actor, seeds=seeds)
    finally:
        await nc.close()


def _print_accepted(what: str, reply: Accepted) -> None:
    if reply.duplicate:
        click.echo(
            f"{reply.activity_id}: already {what} (version {reply.version}, event "
            f"{reply.event_id}); nothing new stored"
        )
    else:
        click.echo(
            f"{reply.activity_id}: {what}, now at version {reply.version} "
            f"(event {reply.event_id}, sequence {reply.sequence})"
        )


@click.command()
@click.argument("file", type=click.File("rb"))
@office_options(required=False)
@click.pass_context
def report(ctx: click.Context, file: Any, office: str | None, actor: str | None) -> None:
    """Report one activity from a JSON file ("-" reads standard input).

    The JSON object has the fields of a line of data/activities.jsonl.

    Example: ledger report training.json
    """
    try:
        activity = msgspec.json.decode(file.read(), type=ActivityReported)
    except msgspec.ValidationError as exc:
        field, message = split_validation_error(exc)
        raise InvalidEventError([FieldIssue(field, message)]) from None
    except msgspec.DecodeError as exc:
        raise InvalidEventError([FieldIssue("", f"{file.name} is not JSON: {exc}")]) from None

    async def _report() -> Accepted:
        async with office_client(settings_of(ctx), office or activity.office, actor) as client:
            return await client.report(activity)

    _print_accepted("reported", run_async(_report()))


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
@click.pass_context
def revise(
    ctx: click.Context,
    activity_id: str,
    sets: tuple[str, ...],
    reason: str,
    expected_version: int | None,
    office: str,
    actor: str | None,
) -> None:
    """Change some fields of an activity, saying why.

    Example: ledger revise KAZ-TRAINING-1 --office KAZ --set metrics.people_trained=600
    --reason "final attendance list"
    """
    changes = _parse_sets(sets)

    async def _revise() -> Accepted:
        async with office_client(settings_of(ctx), office, actor) as client:
            return await client.revise(activity_id, changes, reason, expected_version)

    _print_accepted("revised", run_async(_revise()))


@click.command()
@click.argument("activity_id")
@click.option("--reason", required=True, help="Why the activity is withdrawn.")
@click.option("--expected-version", type=int, default=None, help="The version you read.")
@office_options(required=True)
@click.pass_context
def withdraw(
    ctx: click.Context,
    activity_id: str,
    reason: str,
    expected_version: int | None,
    office: str,
    actor: str | None,
) -> None:
    """Withdraw an activity: it stays in history but counts nowhere.

    Example: ledger withdraw KAZ-TRAINING-1 --office KAZ --reason "reported twice"
    """

    async def _withdraw() -> Accepted:
        async with office_client(settings_of(ctx), office, actor) as client:
            return await client.withdraw(activity_id, reason, expected_version)

    _print_accepted("withdrawn", run_async(_withdraw()))


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
@click.pass_context
def import_(
    ctx: click.Context,
    file: Path,
    window: int,
    file_format: str,
    max_line_bytes: int,
    office: str | None,
    actor: str | None,
) -> None:
    """Report every activity of a JSON Lines or CSV file.

    Lines already imported (same content) are recognised and not stored again, so the same
    file can be imported again after an interruption. Rejected lines are listed and written
    to FILE.rejects.jsonl; the exit code is then 1.

    Example: ledger import data/activities.jsonl
    """
    csv_format = None if file_format == "auto" else file_format == "csv"
    summary = run_async(
        _import(settings_of(ctx), file, office, actor, window, max_line_bytes, csv_format)
    )
    rejects = write_rejects(file, summary.rejections)
    for rejection in summary.rejections:
        where = f"{rejection.field}: " if rejection.field else ""
        click.echo(
            f"line {rejection.line}: rejected ({rejection.code}) {where}{rejection.message}",
            err=True,
        )
    click.echo(
        f"{file}: {summary.accepted} accepted, {summary.already_present} already present, "
        f"{summary.rejected} rejected"
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
) -> ImportSummary:

    console = Console(stderr=True)

    async with office_client(settings, office, actor) as client:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            transient=True,
            disable=not console.is_terminal,
            console=console,
        ) as progress:
            task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
            return await import_file(
                client,
                file,
                window=window,
                max_line_bytes=max_line_bytes,
                csv_format=csv_format,
                on_progress=lambda done: progress.update(task, completed=done),
            )
