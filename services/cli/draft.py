"""``ledger draft``: a draft report section per programme and country, every figure footnoted.

It reads the live projection of the data directory (or ``--db PATH``) read-only, as the reader
commands do, so it needs no running stack; the sentences are the templates of
``services/drafts/sentences.toml`` or of ``--sentences FILE``. The file is written whole or not
at all: beside its name, then renamed. The manual is ``docs/drafts.md``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from projections.db import live_path, open_reader
from projections.errors import BadParameterError
from projections.temporal import Scope
from services.cli.context import scope_options, settings_of
from services.drafts.compose import compose_draft
from services.drafts.docx import to_docx
from services.drafts.gather import gather_draft
from services.drafts.markdown import to_markdown
from services.drafts.sentences import load_sentences

__all__ = ["FORMATS", "draft", "write_whole"]

FORMATS = {".docx": "Word", ".md": "Markdown", ".markdown": "Markdown"}
"""The formats ``--out`` may name, by extension."""


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file beside it, renamed.

    Nothing is left behind when writing fails, or is interrupted.

    :raises BadParameterError: naming ``out`` when the file cannot be written there.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise BadParameterError(
            "out", f"cannot write {path}: {exc.strerror}; give a path in a directory you may write"
        ) from None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file private; a draft is an ordinary file of the user's.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise BadParameterError(
                "out", f"cannot write {path}: {exc.strerror}; give another path"
            ) from None
        raise


@click.command()
@click.option(
    "--programme", "programmes", multiple=True, help="A section for this programme (repeatable)."
)
@click.option(
    "--country", "countries", multiple=True, help="A section for this country (repeatable)."
)
@click.option("--year", type=int, default=None, help="Narrow every section to this year.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write: .docx for Word, .md for Markdown.",
)
@click.option(
    "--sentences",
    "sentences_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A sentences file of your own (a copy of services/drafts/sentences.toml).",
)
@scope_options
@click.pass_context
def draft(
    ctx: click.Context,
    programmes: tuple[str, ...],
    countries: tuple[str, ...],
    year: int | None,
    scope: Scope,
    out: Path,
    sentences_file: Path | None,
    db: Path | None,
) -> None:
    """Write a draft report section per programme and country, every figure footnoted to the
    activity, source paragraph, events and stream sequence it comes from.

    Example: ledger draft --programme GFP --country KAZ --release SG-2021 --out draft.docx
    """
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise BadParameterError(
            "out", f"{out.name} is neither .docx nor .md; name the file draft.docx or draft.md"
        )
    if not os.access(out.parent if str(out.parent) else ".", os.W_OK):
        raise BadParameterError(
            "out", f"cannot write in {out.parent}: no such directory, or not yours to write"
        )
    sentences = load_sentences(sentences_file)
    conn = open_reader(db or live_path(settings_of(ctx).data_dir))
    try:
        facts = gather_draft(
            conn, programmes=programmes, countries=countries, year=year, scope=scope
        )
    finally:
        conn.close()
    composed = compose_draft(facts, sentences)
    data = to_docx(composed) if kind == "Word" else to_markdown(composed).encode("utf-8")
    write_whole(out, data)
    notes = sum(len(section.notes) for section in composed.sections)
    sections = len(composed.sections)
    click.echo(
        f"Wrote {out} ({kind}): {sections} section{'s' if sections != 1 else ''}, "
        f"{notes} note{'s' if notes != 1 else ''}. {composed.footer}"
    )
