"""``ledger iati export|validate|import``: the ledger's activities as IATI 2.03, and IATI files in.

``export`` reads the projection (the data directory's live one, or ``--db``) read-only through
the query layer, with the filters and scope of ``ledger activities``, checks every activity
against the 2.03 schema, the codelists and the standard ruleset, and writes the file only when
all pass (:mod:`services.iati.export`). ``validate`` runs the same checks on any file.
``import`` reports a file's activities through intake as ``ledger import`` does. The manual is
``docs/iati.md``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from rich.console import Console

from projections.db import live_path, open_reader
from projections.temporal import Scope
from services.cli.context import file_progress, run_async, scope_options, settings_of
from services.cli.office import office_client, office_options
from services.client.importer import ImportRejectedError, ImportSummary, write_rejects
from services.iati.export import (
    REPORTING_ORG_ENV,
    iati_activities,
    reporting_org_default,
    write_document,
)
from services.iati.importer import DEFAULT_KIND, DEFAULT_PROGRAMME, import_iati
from services.iati.source import ExportFilters, read_states
from services.iati.validate import DEFAULT_MAX_BYTES, validate_file
from services.infra.config import Settings

__all__ = ["iati"]


@click.group()
def iati() -> None:
    """Speak IATI: export the activities as IATI 2.03 XML, validate and import IATI files.

    Example: ledger iati export --out activities.xml --country KAZ
    """


@iati.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The IATI file to write (replaced only once every activity has passed the checks).",
)
@click.option("--country", default=None, help="Only activities listed under this country.")
@click.option("--programme", default=None, help="Only this programme's activities.")
@click.option("--year", type=int, default=None, help="Only activities of this year.")
@click.option(
    "--reporting-org",
    envvar=REPORTING_ORG_ENV,
    default=None,
    metavar="REF",
    help=f"The reporting organisation's IATI identifier [env {REPORTING_ORG_ENV}; default: "
    "XM-DAC-41128, UNODC's DAC channel code, assumed].",
)
@scope_options
@click.pass_context
def export(
    ctx: click.Context,
    out: Path,
    country: str | None,
    programme: str | None,
    year: int | None,
    scope: Scope,
    reporting_org: str | None,
    db: Path | None,
) -> None:
    """Write the activities that are not withdrawn as one IATI 2.03 activity file.

    Every activity is checked against the IATI schema, codelists and standard ruleset first;
    the first that fails is named with the element and rule, and nothing is written.

    Example: ledger iati export --out unodc.xml --year 2020
    """
    filters = ExportFilters(country=country, programme=programme, year=year, scope=scope)
    conn = open_reader(db or live_path(settings_of(ctx).data_dir))
    try:
        now = dt.datetime.now(dt.UTC)
        activities = iati_activities(
            read_states(conn, filters),
            reporting_org=(reporting_org or "").strip() or reporting_org_default(),
            today=now.date(),
        )
        summary = write_document(out, activities, now=now)
    finally:
        conn.close()
    click.echo(
        f"{summary.path}: {summary.activities} activities, {summary.bytes:,} bytes, valid IATI "
        "2.03 (schema, codelists, standard ruleset)"
    )


@iati.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--max-bytes",
    default=DEFAULT_MAX_BYTES,
    show_default=True,
    help="Larger files are refused unread.",
)
def validate(file: Path, max_bytes: int) -> None:
    """Check an IATI 2.03 activity file as the export checks its own: schema, codelists
    (no withdrawn code) and the standard ruleset. Exit code 6 names the first failure.

    Example: ledger iati validate unodc.xml
    """
    console = Console(stderr=True)
    with file_progress(console) as progress:
        task = progress.add_task(f"checking {file.name}", total=file.stat().st_size)
        report = validate_file(
            file,
            max_bytes=max_bytes,
            on_progress=lambda done: progress.update(task, completed=done),
        )
    click.echo(f"{file}: {report.activities} activities, valid IATI 2.03")


@iati.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--programme",
    default=DEFAULT_PROGRAMME,
    show_default=True,
    help="The programme of activities whose file names none the ledger knows.",
)
@click.option(
    "--kind",
    default=DEFAULT_KIND,
    show_default=True,
    help="The kind of activities whose file says none.",
)
@click.option("--window", default=256, show_default=True, help="Commands awaiting a reply at once.")
@click.option(
    "--max-bytes",
    default=DEFAULT_MAX_BYTES,
    show_default=True,
    help="Larger files are refused unread.",
)
@office_options(required=True)
@click.pass_context
def import_(
    ctx: click.Context,
    file: Path,
    programme: str,
    kind: str,
    window: int,
    max_bytes: int,
    office: str,
    actor: str | None,
) -> None:
    """Report every activity of an IATI 2.03 file through intake, as OFFICE's.

    As with `ledger import`, activities already imported are recognised and not stored
    again; rejected ones are listed and written to FILE.rejects.jsonl, and the exit code is 1.

    Example: ledger iati import partner.xml --office KAZ
    """
    summary = run_async(
        _import(settings_of(ctx), file, office, actor, programme, kind, window, max_bytes)
    )
    rejects = write_rejects(file, summary.rejections)
    for rejection in summary.rejections:
        where = f"{rejection.field}: " if rejection.field else ""
        who = f" {rejection.activity_id}" if rejection.activity_id else ""
        click.echo(
            f"line {rejection.line}{who}: rejected ({rejection.code}) {where}{rejection.message}",
            err=True,
        )
    click.echo(
        f"{file}: {summary.accepted} accepted, {summary.already_present} already present, "
        f"{summary.rejected} rejected"
    )
    if summary.rejected:
        raise ImportRejectedError(
            f"{summary.rejected} activities rejected, listed above and in {rejects}; fix them "
            "and import the file again (activities already stored are recognised)"
        )


async def _import(
    settings: Settings,
    file: Path,
    office: str,
    actor: str | None,
    programme: str,
    kind: str,
    window: int,
    max_bytes: int,
) -> ImportSummary:
    console = Console(stderr=True)
    async with office_client(settings, office, actor) as client:
        with file_progress(console) as progress:
            task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
            return await import_iati(
                client,
                file,
                office=office,
                programme=programme,
                kind=kind,
                window=window,
                max_bytes=max_bytes,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
