"""Auditors' commands: history, replay, diff, verify, export, import-log and office keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from events.checkpoint import origin_of
from events.keys import load_registry
from events.signing import public_key_of
from events.store import EventStore
from projections.db import live_path
from projections.errors import BadParameterError
from projections.temporal import parse_instant, scope_of
from replay.archive import export_log
from replay.archive import import_log as load_archive
from replay.archive_check import ImportRules
from replay.asof import replay_as_of
from replay.diff import diff as diff_figures
from replay.history import activity_history
from replay.logcheck import LogReport, check_log, open_trusted
from replay.manifest import manifest_path
from replay.progress import ProgressReporter
from replay.release import release_instant
from replay.tree import TreeStore, tree_path
from replay.verify import verify as verify_ledger
from services.cli.context import run_async, settings_of
from services.cli.exit_codes import ExitCode
from services.infra.office_keys import (
    create_office_key,
    ledger_seed,
    ledger_seed_path,
    registry_path,
    seed_path,
    trust_notary,
    trusted_notaries,
)
from services.infra.stack import open_ledger

__all__ = ["diff", "export", "history", "import_log", "keys", "replay", "verify"]


class Instant(click.ParamType):
    """An ISO 8601 instant with a time zone; a bare date means its midnight UTC. With
    ``releases``, also ``now`` and ``release:NAME`` (kept as text, for the command to look
    up)."""

    name = "INSTANT"

    def __init__(self, releases: bool = False) -> None:
        self.releases = releases

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.datetime):
            return value
        text = str(value).strip()
        if self.releases and text == "now":
            return dt.datetime.now(dt.UTC)
        if self.releases and text.startswith("release:"):
            return text
        try:
            return parse_instant(text)
        except BadParameterError as exc:
            self.fail(exc.message, param, ctx)


async def _instant(store: EventStore, value: dt.datetime | str) -> dt.datetime:
    """An instant as given, or the one a ``release:NAME`` stands for."""
    if isinstance(value, dt.datetime):
        return value
    return await release_instant(store, value.removeprefix("release:"))


_REPORTED_FIELDS_SHOWN = ("title", "programme", "countries", "year", "metrics")
"""What a table shows of a first report; ``--json`` gives every field."""


def _json(value: Any) -> None:
    click.echo(msgspec.json.encode(value).decode())


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
@click.argument("activity_id")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
@click.option(
    "--as-of",
    default=None,
    metavar="INSTANT",
    help="Only the events recorded by this RFC 3339 instant.",
)
@click.option(
    "--as-of-sequence", type=int, default=None, metavar="N", help="Only the events up to N."
)
@click.pass_context
def history(
    ctx: click.Context,
    activity_id: str,
    as_json: bool,
    as_of: str | None,
    as_of_sequence: int | None,
) -> None:
    """List every event of one activity: when, who, what changed and why.

    Example: ledger history P030-KAZ-TRAINING --as-of 2021-06-30T00:00:00Z
    """
    scope = scope_of(as_of, as_of_sequence)

    async def _history() -> list[Any]:
        async with open_ledger(settings_of(ctx)) as ledger:
            return await activity_history(ledger.store, activity_id)

    entries = [
        entry
        for entry in run_async(_history())
        if (scope.as_of_sequence is None or entry.sequence <= scope.as_of_sequence)
        and (scope.as_of is None or entry.recorded_at <= scope.as_of)
    ]
    if as_json:
        _json(entries)
        return
    table = Table(title=f"History of {activity_id}")
    for column in ("seq", "recorded (UTC)", "office", "actor", "event", "changes", "reason"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        shown = entry.changes
        if entry.type == "ActivityReported":
            shown = [c for c in entry.changes if c.field in _REPORTED_FIELDS_SHOWN]
        changes = "\n".join(
            f"{c.field}: {_short(c.new)}"
            if c.old is None
            else f"{c.field}: {_short(c.old, 28)} → {_short(c.new, 28)}"
            for c in shown
        )
        table.add_row(
            str(entry.sequence),
            entry.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
            entry.office,
            entry.actor,
            entry.type.removeprefix("Activity").lower(),
            changes,
            entry.reason,
        )
    Console().print(table)


@click.command()
@click.option("--as-of", "as_of", type=Instant(), help="Count events recorded up to this instant.")
@click.option("--until-seq", type=click.IntRange(min=1), help="Count events up to this sequence.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="New file."
)
@click.pass_context
def replay(ctx: click.Context, as_of: dt.datetime | None, until_seq: int | None, out: Path) -> None:
    """Build every projection as it stood at an instant or a sequence, into a new file.

    Serve the file with `ledger up --db FILE --read-only` to query the past with the usual tools.

    Example: ledger replay --as-of 2021-06-30T00:00:00Z --out asof.db
    """

    async def _replay() -> Any:
        async with open_ledger(settings_of(ctx)) as ledger:
            return await replay_as_of(ledger.source, out, until_seq=until_seq, until_time=as_of)

    result = run_async(_replay())
    click.echo(
        f"{out}: {result.events:,} events read, projections at sequence {result.checkpoint} "
        f"({result.seconds:.1f}s)"
    )


@click.command()
@click.option(
    "--from",
    "since",
    type=Instant(releases=True),
    required=True,
    help="The earlier instant, or release:NAME.",
)
@click.option(
    "--to",
    "until",
    type=Instant(releases=True),
    required=True,
    help="The later instant, release:NAME, or now.",
)
@click.option("--country", help="Only figures of this country (ISO3).")
@click.option("--programme", help="Only figures of this programme (code).")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@click.pass_context
def diff(
    ctx: click.Context,
    since: dt.datetime | str,
    until: dt.datetime | str,
    country: str | None,
    programme: str | None,
    as_json: bool,
) -> None:
    """List every figure that changed between two instants, with the events that changed it.

    A release stands for the instant by which the events up to its sequence were recorded:
    what changed since publication, who changed it, and why.

    Example: ledger diff --from release:SG-2021 --to now --country KAZ
    """

    async def _diff() -> tuple[list[Any], dt.datetime, dt.datetime]:
        async with open_ledger(settings_of(ctx)) as ledger:
            start = await _instant(ledger.store, since)
            end = await _instant(ledger.store, until)
            found = await diff_figures(
                ledger.store, start, end, country=country, programme=programme
            )
            return found, start, end

    changes, since, until = run_async(_diff())
    if as_json:
        _json(changes)
        return
    if not changes:
        click.echo("no figure changed")
        return
    table = Table(title=f"Figures changed from {since.isoformat()} to {until.isoformat()}")
    for column in ("rollup", "key", "metric", "before", "after", "events (seq, who, why)"):
        table.add_column(column, overflow="fold")
    for change in changes:
        events = "\n".join(
            f"{e.sequence} {e.type.removeprefix('Activity').lower()} {e.activity_id} by "
            f"{e.actor}" + (f": {e.reason}" if e.reason else "")
            for e in change.events
        )
        table.add_row(
            change.table,
            " ".join(f"{k}={v}" for k, v in change.key.items()) or "all",
            "activities" if change.metric == "*" else change.metric,
            f"{change.before:,g}",
            f"{change.after:,g}",
            events,
        )
    Console().print(table)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--require-signatures", is_flag=True, help="Fail unsigned events of every office.")
@click.option("--no-projection", is_flag=True, help="Check the log only; skip the rebuild.")
@click.option(
    "--registry",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key registry to check signatures against [default: <data dir>/keys/registry.json].",
)
@click.option(
    "--checkpoint",
    "kept",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A signed checkpoint saved earlier: prove that today's log extends it.",
)
@click.option(
    "--key",
    multiple=True,
    metavar="PUBLIC",
    help="A ledger key trusted to sign checkpoints, besides this data directory's own and "
    "those of imported exports (repeatable).",
)
@click.pass_context
def verify(
    ctx: click.Context,
    as_json: bool,
    require_signatures: bool,
    no_projection: bool,
    registry: Path | None,
    kept: Path | None,
    key: tuple[str, ...],
) -> None:
    """Check every hash, prev link and signature, the stream's Merkle tree against every
    signed checkpoint (and --checkpoint), and compare a fresh rebuild with the live projection
    table by table. Exits 1 on any failure.

    Example: ledger verify --checkpoint published-checkpoint.txt
    """

    settings = settings_of(ctx)
    keys = load_registry(registry or registry_path(settings.data_dir))
    trusted = [*key, *trusted_notaries(settings.data_dir)]
    given = open_trusted(_small_file(kept), trusted) if kept is not None else None

    async def _verify() -> tuple[Any, LogReport]:
        async with open_ledger(settings) as ledger:
            total = await ledger.store.last_sequence()
            with ProgressReporter(total, label="verify log") as reporter:
                report = await verify_ledger(
                    ledger.source,
                    keys,
                    None if no_projection else live_path(settings.data_dir),
                    require_signatures=require_signatures,
                    progress=lambda done: reporter.advance(done - reporter.done),
                    rebuild_progress=None,
                )
            path = tree_path(settings.data_dir, settings.namespace.stream)
            tree = TreeStore(path, settings.namespace.stream) if path.exists() else None
            try:
                stored = await ledger.store.stored_sequence()
                with ProgressReporter(stored, label="verify tree") as reporter:
                    log = await check_log(
                        ledger.source,
                        trusted,
                        given=given,
                        tree=tree,
                        progress=lambda done: reporter.advance(done - reporter.done),
                    )
            finally:
                if tree is not None:
                    tree.close()
            return report, log

    report, log = run_async(_verify())
    ok = report.ok and log.ok
    if as_json:
        _json(msgspec.structs.asdict(report) | {"log": dataclasses.asdict(log), "ok": ok})
    else:
        click.echo(
            f"{report.events:,} events of {report.activities:,} activities checked: hashes, "
            f"prev links, signatures ({report.signed:,} signed, {report.unsigned:,} unsigned)"
        )
        if report.compared_at is not None:
            click.echo(
                f"live projection compared with a fresh rebuild at sequence "
                f"{report.compared_at}: {report.tables} tables"
            )
        for failure in report.failures:
            click.secho(
                f"  FAIL sequence {failure.sequence} [{failure.check}] "
                f"{failure.activity_id}: {failure.message}",
                fg="red",
            )
        for difference in report.differences:
            click.secho(
                f"  FAIL table {difference.table}: {difference.only_live} rows only in the live "
                f"projection, {difference.only_rebuilt} only in the rebuild; e.g. "
                f"{difference.example}",
                fg="red",
            )
        click.echo(
            f"Merkle tree of {log.leaves:,} messages, root {log.root}: {log.checkpoints} signed "
            "checkpoints match it"
            + (", and so does every leaf the notary stored" if log.tree_compared else "")
        )
        if log.extends is not None:
            click.echo(f"today's log extends the checkpoint of {log.extends:,} messages ({kept})")
        for failure in log.failures:
            click.secho(f"  FAIL log: {failure}", fg="red")
        click.echo("verify: OK" if ok else "verify: FAILED")
    ctx.exit(ExitCode.OK if ok else ExitCode.FAILED)


def _small_file(path: Path) -> bytes:
    if path.stat().st_size > 64 * 1024:
        raise click.UsageError(f"--checkpoint: {path} is larger than a checkpoint can be")
    return path.read_bytes()


@click.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Archive to write: JSON Lines, gzip-compressed when it ends in .gz.",
)
@click.pass_context
def export(ctx: click.Context, out: Path) -> None:
    """Write the whole log (envelope, payload, sequence, time) as JSON Lines, and beside it
    OUT.manifest.json: count, sequences and SHA-256 of the archive, signed with this ledger's
    key (<data dir>/keys/ledger.nk, made on first export).

    Example: ledger export --out ledger.jsonl.gz
    """

    settings = settings_of(ctx)
    seed = ledger_seed(settings.data_dir)

    async def _export() -> Any:
        async with open_ledger(settings) as ledger:
            total = await ledger.store.last_sequence()
            with ProgressReporter(total, label="export") as reporter:
                return await export_log(
                    ledger.store,
                    out,
                    seed=seed,
                    progress=lambda done: reporter.advance(done - reporter.done),
                )

    manifest = run_async(_export())
    click.echo(f"{out}: {manifest.count:,} messages")
    click.echo(
        f"  manifest: {manifest_path(out)} (sequences {manifest.first_sequence}-"
        f"{manifest.last_sequence}, sha256 {manifest.sha256})"
    )
    click.echo(f"  signed by this ledger's key {manifest.public_key}")


_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 1 << 10,
    "MIB": 1 << 20,
    "GIB": 1 << 30,
    "TIB": 1 << 40,
}


class ByteSize(click.ParamType):
    """A size in bytes: a number, optionally with a unit (KiB, MiB, GiB, TiB; KB, MB, GB, TB)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().replace(" ", "")
        number = text.rstrip("KMGTIB")
        unit = _SIZE_UNITS.get(text[len(number) :])
        if not number.isdigit() or unit is None or int(number) < 1:
            self.fail(f"{value!r} is not a size; write e.g. 4GiB, 500MiB or 1000000", param, ctx)
        return int(number) * unit


@click.command("import-log")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Add to a stream that already has messages.")
@click.option(
    "--registry",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key registry to check signatures against [default: <data dir>/keys/registry.json].",
)
@click.option(
    "--expect-key",
    metavar="KEY",
    help="The exporting ledger's public key (U...): refuse an archive whose manifest another "
    "key signed.",
)
@click.option(
    "--no-manifest",
    is_flag=True,
    help="Import an archive that has no ARCHIVE.manifest.json beside it (nothing then shows "
    "the archive is complete).",
)
@click.option(
    "--allow-non-events",
    is_flag=True,
    help="Carry over lines that are not ledger events, as old archives may hold, instead of "
    "refusing the archive.",
)
@click.option(
    "--max-size",
    type=ByteSize(),
    default="4GiB",
    show_default=True,
    help="Refuse an archive that decompresses to more than this.",
)
@click.pass_context
def import_log(
    ctx: click.Context,
    archive: Path,
    force: bool,
    registry: Path | None,
    expect_key: str | None,
    no_manifest: bool,
    allow_non_events: bool,
    max_size: int,
) -> None:
    """Load an exported log into a fresh, empty stream, checking every line before writing.

    Every line must be an event on its own office's and activity's subject, with a valid
    hash, prev link and, for an office with a key in the registry, its signature; the
    manifest beside the archive must be validly signed and match the file. Bad input exits
    6 and writes nothing. The exporting ledger's key is printed: compare it with theirs, or
    pin it with --expect-key.

    Example: ledger --data-dir restored import-log ledger.jsonl.gz --expect-key UABC...
    """

    settings = settings_of(ctx)
    keys_file = registry or registry_path(settings.data_dir)
    rules = ImportRules(
        registry=load_registry(keys_file), allow_non_events=allow_non_events, max_size=max_size
    )

    async def _import() -> Any:
        async with open_ledger(settings) as ledger:
            with ProgressReporter(0, label="import-log") as reporter:
                return await load_archive(
                    ledger.store,
                    archive,
                    rules=rules,
                    require_manifest=not no_manifest,
                    expect_key=expect_key,
                    force=force,
                    progress=lambda done: reporter.advance(done - reporter.done),
                )

    report = run_async(_import())
    click.echo(
        f"{archive}: {report.written:,} messages imported; run `ledger rebuild` to project them"
    )
    click.echo(
        f"  signatures: {report.signed:,} signed, {report.unsigned:,} unsigned events, "
        f"checked against {keys_file}"
    )
    if report.non_events:
        click.echo(f"  {report.non_events:,} messages that are not events carried over")
    if report.public_key:
        click.echo(f"  exported and signed by ledger key {report.public_key}")
        if report.checkpoints:
            # Its checkpoints came along: verify checks them against the exporter's key.
            trust_notary(settings.data_dir, report.public_key)
            click.echo(
                f"  {report.checkpoints:,} checkpoints of its Merkle tree checked and carried "
                "over; `ledger verify` trusts that key for them"
            )
    else:
        click.echo("  no manifest checked (--no-manifest): nothing shows the archive is complete")


@click.group()
def keys() -> None:
    """Office signing keys (Ed25519, as NATS nkeys)."""


@keys.command("new")
@click.argument("office", required=False)
@click.option("--replace", is_flag=True, help="Make a new key even if the office has one.")
@click.option(
    "--notary",
    is_flag=True,
    help="The ledger's own key instead, which signs checkpoints and export manifests.",
)
@click.pass_context
def keys_new(ctx: click.Context, office: str | None, replace: bool, notary: bool) -> None:
    """Make a key pair for OFFICE, keep its seed (mode 0600) and register its public key.

    With --notary, the ledger's own key: made once (later calls show it), never in the
    registry. Auditors check checkpoints against its public key.

    Example: ledger keys new KAZ; ledger keys new --notary
    """

    settings = settings_of(ctx)
    if notary:
        if office or replace:
            raise click.UsageError("--notary takes no OFFICE and no --replace")
        public = public_key_of(ledger_seed(settings.data_dir))
        click.echo(f"ledger key (notary): public key {public}")
        click.echo(f"  seed:   {ledger_seed_path(settings.data_dir)} (keep it secret)")
        click.echo(f"  origin: {origin_of(settings.namespace, public)}")
        return
    if office is None:
        raise click.UsageError("OFFICE: name the office (or give --notary)")
    public = create_office_key(settings.data_dir, office, replace=replace)
    click.echo(f"office {office}: public key {public}")
    click.echo(f"  seed:     {seed_path(settings.data_dir, office)} (keep it secret)")
    click.echo(f"  registry: {registry_path(settings.data_dir)}")
