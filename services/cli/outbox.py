"""``ledger outbox list | send | drop ID``: what an office's outbox holds, and what to do with it.

The outbox (``services/client/outbox.py``) keeps every command the office commands send, before
they are sent; these commands look at it, send what waits, and remove a command for good.
"""

from __future__ import annotations

import asyncio

import click

from events.commands import Accepted
from services.cli.context import run_async, settings_of
from services.cli.office import office_client, office_options, print_sent
from services.client.delivery import send_waiting
from services.client.errors import IntakeUnavailableError
from services.client.outbox import Entry, Outbox, outbox_path, sendable
from services.infra.config import Settings

__all__ = ["outbox", "send_after_up"]

_BACKGROUND: set[asyncio.Task[None]] = set()
"""The sends started by :func:`send_after_up`, kept so that they are not collected midway."""


@click.group()
def outbox() -> None:
    """The office's outbox: the commands kept before they are sent, and their outcomes.

    Every `ledger report`, `revise`, `withdraw` and `import` keeps its commands in
    <data dir>/outbox.db first; what cannot be sent waits there until the ledger can be
    reached.
    """


@outbox.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also list the commands already stored.")
@click.pass_context
def list_(ctx: click.Context, show_all: bool) -> None:
    """List the commands that wait, and those intake rejected, with its reason.

    Rejected commands are never sent again by themselves: fix what the message says and send
    a new command, then drop the rejected one (`ledger outbox drop ID`).

    Example: ledger outbox list
    """
    settings = settings_of(ctx)
    if not outbox_path(settings.data_dir).is_file():
        click.echo(f"the outbox of {settings.data_dir} is empty")
        return
    box = Outbox(settings.data_dir)
    try:
        entries = box.entries(settled=show_all)
        _, held = sendable(box.pending())
        waiting = box.depth()
    finally:
        box.close()
    for entry in entries:
        click.echo(_line(entry, held.get(entry.command_id)))
    rejected = sum(entry.state == "rejected" for entry in entries)
    click.echo(f"{waiting} waiting, {rejected} rejected")


def _line(entry: Entry, behind: Entry | None) -> str:
    head = f"#{entry.position} {entry.command_id} {entry.kind} {entry.office}/{entry.activity_id}"
    match entry.state:
        case "stored":
            return (
                f"{head}: stored, event {entry.event_id}, sequence {entry.sequence} "
                f"(version {entry.version})"
            )
        case "rejected":
            field = f" {entry.field}:" if entry.field else ""
            return f"{head}: rejected ({entry.code}){field} {entry.message}"
    state = "sent, no answer yet" if entry.state == "sent" else "waiting"
    since = f" since {entry.queued_at[:19]}Z"
    if behind is not None:
        return f"{head}: {state}{since}, behind #{behind.position} ({behind.state})"
    return f"{head}: {state}{since}"


@outbox.command()
@office_options(required=False)
@click.pass_context
def send(ctx: click.Context, office: str | None, actor: str | None) -> None:
    """Send what waits in the outbox, in order, and say what became of it.

    With --office, only that office's commands are sent, with its credentials; without, every
    office's, with the admin's.

    Example: ledger outbox send
    """
    settings = settings_of(ctx)
    if not outbox_path(settings.data_dir).is_file():
        click.echo("nothing waits: the outbox is empty")
        return

    async def _send() -> tuple[int, int, int, str]:
        async with office_client(settings, office, actor, queue=True) as client:
            answers, reason = await send_waiting(client)
            if client.outbox is not None:
                print_sent(answers, client.outbox)
            stored = sum(isinstance(a, Accepted) for a in answers.values())
            return (
                stored,
                len(answers) - stored,
                client.outbox.depth() if client.outbox else 0,
                reason,
            )

    stored, rejected, waiting, reason = run_async(_send())
    click.echo(f"sent {stored + rejected}: {stored} stored, {rejected} rejected; {waiting} waiting")
    if reason and waiting:
        raise IntakeUnavailableError(
            f"{waiting} command(s) could not be sent: {reason}; they stay in the outbox"
        )


@outbox.command()
@click.argument("command_id")
@click.pass_context
def drop(ctx: click.Context, command_id: str) -> None:
    """Remove one command from the outbox for good, and say what it was.

    A dropped command that waited is never sent; one that was sent without an answer may
    have been stored all the same (`ledger history ACTIVITY` shows it).

    Example: ledger outbox drop 3f2a...
    """
    box = Outbox(settings_of(ctx).data_dir)
    try:
        entry = box.drop(command_id)
    finally:
        box.close()
    click.echo(f"dropped {_line(entry, None)}")
    if entry.state == "sent":
        click.echo(
            "  it had been sent without an answer: intake may have stored it all the same",
            err=True,
        )


def send_after_up(settings: Settings) -> None:
    """Send, in the background, what waits in the outbox of a stack just started (called in
    its event loop, once it is ready)."""
    if not outbox_path(settings.data_dir).is_file():
        return

    async def _send() -> None:
        try:
            async with office_client(settings, None, None, queue=True) as client:
                if client.outbox is not None:
                    answers, reason = await send_waiting(client)
                    print_sent(answers, client.outbox)
                    if reason:
                        click.echo(f"outbox: not all sent ({reason})", err=True)
        except Exception as exc:  # a stack must not fail for an office's leftovers
            click.echo(f"outbox: cannot send what waits: {exc}", err=True)

    task = asyncio.get_running_loop().create_task(_send())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
