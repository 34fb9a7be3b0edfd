"""The ``ledger`` command: one click group, shared options, and errors mapped to exit codes once.

Each command is a thin adapter: it parses flags, calls one library function, and prints. The
commands live in ``services/cli/commands/``, one module per user (stack, office, reader, auditor).
"""

from __future__ import annotations

from typing import Any

import click

from events.errors import (
    ActivityNotFoundError,
    ActivityWithdrawnError,
    Conflict,
    EventDecodeError,
    InvalidEventError,
    LedgerError,
    StreamConfigError,
    TooManyReadersError,
)
from projections.errors import QueryError, UnknownKeyError
from replay.archive import ArchiveRejectedError
from services.api.auth import PublicBindError, TokenRequiredError
from services.cli.commands import COMMANDS
from services.cli.exit_codes import ExitCode
from services.client.errors import ForbiddenError, IntakeUnavailableError
from services.infra.config import Settings
from services.infra.credentials import CredentialsError
from services.infra.runtime import AlreadyRunningError
from services.infra.stack import ConnectionFailedError
from services.infra.violations import PermissionDeniedError

__all__ = ["exit_code_for", "main"]


_EXIT_CODES: list[tuple[type[BaseException], ExitCode]] = [
    (AlreadyRunningError, ExitCode.NOT_RUNNING),
    (IntakeUnavailableError, ExitCode.NOT_RUNNING),
    (ForbiddenError, ExitCode.REFUSED),
    (PermissionDeniedError, ExitCode.REFUSED),
    (CredentialsError, ExitCode.INVALID),
    (ConnectionFailedError, ExitCode.UNREACHABLE),
    (Conflict, ExitCode.CONFLICT),
    (ActivityNotFoundError, ExitCode.NOT_FOUND),
    (UnknownKeyError, ExitCode.NOT_FOUND),
    (QueryError, ExitCode.INVALID),
    (InvalidEventError, ExitCode.INVALID),
    (EventDecodeError, ExitCode.INVALID),
    (ActivityWithdrawnError, ExitCode.REFUSED),
    (StreamConfigError, ExitCode.REFUSED),
    (TooManyReadersError, ExitCode.NOT_RUNNING),
    (ArchiveRejectedError, ExitCode.INVALID),
    (TokenRequiredError, ExitCode.INSECURE),
    (PublicBindError, ExitCode.USAGE),
    (FileNotFoundError, ExitCode.NOT_FOUND),
    (LedgerError, ExitCode.FAILED),
]


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code that stands for an error."""
    for kind, code in _EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return ExitCode.FAILED


class _LedgerGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (LedgerError, FileNotFoundError) as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exit_code_for(exc))


@click.group(cls=_LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--nats-url",
    envvar="LEDGER_NATS_URL",
    default=None,
    metavar="URL",
    help="NATS server to use [env LEDGER_NATS_URL]. Without it: the running `ledger up`, "
    "else the embedded server.",
)
@click.option(
    "--data-dir",
    envvar="LEDGER_DATA_DIR",
    default=".ledger",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the embedded server, projections and runtime.json live [env LEDGER_DATA_DIR].",
)
@click.option(
    "--creds",
    envvar="LEDGER_CREDS",
    default=None,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="NATS credentials: an nkey seed file or a .creds file [env LEDGER_CREDS]. Without "
    "it: the matching file of <data dir>/creds/, if any.",
)
@click.version_option(package_name="activity-ledger")
@click.pass_context
def main(ctx: click.Context, nats_url: str | None, data_dir: str, creds: str | None) -> None:
    """Activity Ledger: every reported activity an immutable event, every figure traceable.

    \b
    Exit codes: 0 ok; 1 failed (e.g. rejected lines); 2 usage; 3 stack already running
    or not found; 4 conflict; 5 not found; 6 invalid input; 7 NATS unreachable;
    8 refused (withdrawn, wrong office, not permitted, weak stream settings); 9 insecure
    (--public without LEDGER_API_TOKEN);
    130 interrupted.
    """
    ctx.obj = Settings.load(nats_url=nats_url, data_dir=data_dir, creds=creds)


for _command in COMMANDS:
    main.add_command(_command)
