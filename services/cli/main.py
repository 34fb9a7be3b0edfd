"""The ``ledger`` command: one click group, shared options, and errors mapped to exit codes once.

Each command is a thin adapter: it parses flags, calls one library function, and prints. The
commands live beside this module, one module per user (stack, office, reader, auditor), and
``commands.py`` lists them.
"""

from __future__ import annotations

from typing import Any

import click

from events.error_kinds import ErrorKind
from events.errors import LedgerError
from services import errors
from services.api.app import HistoryUnavailableError
from services.api.auth import PublicBindError, TokenRequiredError
from services.api.log_routes import LogUnavailableError
from services.api.server import PortInUseError
from services.cli.commands import COMMANDS
from services.cli.exit_codes import ExitCode
from services.client.errors import ForbiddenError, IntakeUnavailableError, VersionConflict
from services.client.importer import BadImportFileError, ImportRejectedError
from services.client.outbox import OutboxEntryNotFoundError, OutboxFileError
from services.iati.errors import (
    IatiDataMissingError,
    IatiFileError,
    IatiInvalidError,
    NothingToExportError,
)
from services.infra.config import Settings
from services.infra.logs import FORMATS, LOG_FORMAT_VARIABLE, setup_logging
from services.projector.process import ProjectorExitedError
from services.projector.service import DurableNameError

__all__ = ["KINDS", "exit_code_for", "main"]


KINDS: dict[type[BaseException], ErrorKind] = {
    **errors.KINDS,
    # The errors of the API's and the client's rooms: the CLI is the one room that may import
    # both, and the only edge that meets them (the API answers HistoryUnavailableError by its
    # parent's row, the same).
    HistoryUnavailableError: ErrorKind.NOT_READY,
    LogUnavailableError: ErrorKind.NOT_READY,
    PublicBindError: ErrorKind.USAGE,
    TokenRequiredError: ErrorKind.INSECURE,
    PortInUseError: ErrorKind.FAILED,
    ForbiddenError: ErrorKind.REFUSED,
    IntakeUnavailableError: ErrorKind.UNAVAILABLE,
    VersionConflict: ErrorKind.CONFLICT,
    BadImportFileError: ErrorKind.INVALID,
    ImportRejectedError: ErrorKind.FAILED,
    IatiInvalidError: ErrorKind.INVALID,
    IatiFileError: ErrorKind.INVALID,
    IatiDataMissingError: ErrorKind.MISSING_FILE,
    NothingToExportError: ErrorKind.NOT_FOUND,
    OutboxEntryNotFoundError: ErrorKind.NOT_FOUND,
    OutboxFileError: ErrorKind.INVALID,
    ProjectorExitedError: ErrorKind.FAILED,
    DurableNameError: ErrorKind.INVALID,
}
"""The kind of every error class of the project: :data:`services.errors.KINDS` and the rest."""


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code that stands for an error.

    It is the error's row of the one error table (:mod:`services.errors`), so the CLI, the API
    and intake agree on what an error is; :attr:`ExitCode.FAILED` for an error not in it.
    """
    return errors.answer_for(exc, KINDS).exit


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
@click.option(
    "--log-format",
    envvar=LOG_FORMAT_VARIABLE,
    default="text",
    show_default=True,
    type=click.Choice(FORMATS, case_sensitive=False),
    help="How log lines are written to standard error: text for a person, json (one object "
    f"a line, for a collector) [env {LOG_FORMAT_VARIABLE}].",
)
@click.version_option(package_name="activity-ledger")
@click.pass_context
def main(
    ctx: click.Context, nats_url: str | None, data_dir: str, creds: str | None, log_format: str
) -> None:
    """Activity Ledger: every reported activity an immutable event, every figure traceable.

    \b
    Exit codes: 0 ok; 1 failed (e.g. rejected lines); 2 usage; 3 stack already running
    or not found; 4 conflict; 5 not found; 6 invalid input; 7 NATS unreachable;
    8 refused (withdrawn, wrong office, not permitted, weak stream settings); 9 insecure
    (--public without LEDGER_API_TOKEN);
    130 interrupted.
    """
    setup_logging(log_format.lower())
    ctx.obj = Settings.load(nats_url=nats_url, data_dir=data_dir, creds=creds)


for _command in COMMANDS:
    main.add_command(_command)
