"""The draft's sentence templates, read from ``sentences.toml`` (or a copy a writer edits), checked.

A template is text with named placeholders in braces (``"trained {figure} people"``). It is
parsed once, here, into literal text and placeholder names, and filled by
:mod:`.compose` run by run, never with :meth:`str.format`: a template cannot reach an
attribute or an index of a value, and every placeholder must be one its table offers.
"""

from __future__ import annotations

import functools
import string
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from projections.errors import BadParameterError

__all__ = ["MAX_FILE_BYTES", "Sentences", "Template", "load_sentences", "parse_sentences"]

MAX_FILE_BYTES = 256 * 1024
"""The largest sentences file read: the shipped one is about 5 KB."""

Template = tuple[tuple[str, str | None], ...]
"""A parsed template: (literal text, placeholder name or ``None``) pairs, in order."""

_PLACEHOLDERS = {
    "activity": frozenset({"year", "title", "in_place", "figures"}),
    "total": frozenset({"subject", "figures"}),
    "listed": frozenset({"country", "activities"}),
    "others": frozenset({"subject", "activities"}),
    "empty": frozenset({"subject"}),
    "figure": frozenset({"figure"}),
    "figure.other": frozenset({"figure", "label", "unit"}),
}
_PARAMETER = "sentences"


@dataclass(frozen=True)
class Sentences:
    """Every template of a draft, by table and key (see ``sentences.toml``)."""

    activity: dict[str, Template]
    total: Template
    listed: Template
    others: Template
    empty: Template
    figures: dict[str, dict[str, Template]]

    def for_activity(self, kind: str) -> Template:
        """The sentence of an activity of this kind."""
        return self.activity.get(kind) or self.activity["default"]

    def for_figure(self, metric: str, kind: str = "default") -> Template:
        """The clause of a figure of ``metric`` in an activity of ``kind``."""
        table = self.figures.get(metric) or self.figures["other"]
        return table.get(kind) or table["default"]


def _parse(where: str, text: Any, allowed: frozenset[str]) -> Template:
    if not isinstance(text, str):
        raise BadParameterError(_PARAMETER, f"{where} is not a string; quote the sentence")
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise BadParameterError(
            _PARAMETER, f"{where}: {exc}; write a brace as {{{{ or }}}}"
        ) from None
    parsed: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in pieces:
        if name is not None and (spec or conversion or name not in allowed):
            raise BadParameterError(
                _PARAMETER,
                f"{where} has the placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}; use one of "
                + ", ".join(f"{{{a}}}" for a in sorted(allowed)),
            )
        parsed.append((literal, name))
    return tuple(parsed)


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name)
    if not isinstance(table, dict) or not isinstance(table.get("default"), str):
        raise BadParameterError(_PARAMETER, f"needs a table [{name}] with a default sentence")
    return table


def parse_sentences(text: str, origin: str = "sentences.toml") -> Sentences:
    """The templates of a sentences file's text.

    :raises BadParameterError: naming ``sentences`` for a file that is not TOML, lacks a
        table or a ``default``, or uses a placeholder its table does not offer.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadParameterError(_PARAMETER, f"{origin} is not valid TOML: {exc}") from None
    unknown = set(data) - {"activity", "total", "listed", "others", "empty", "figure"}
    if unknown:
        raise BadParameterError(
            _PARAMETER,
            f"{origin} has the table [{sorted(unknown)[0]}]; the tables are [activity], "
            "[total], [listed], [others], [empty] and [figure.<metric>]",
        )
    figure_tables = data.get("figure")
    if not isinstance(figure_tables, dict):
        raise BadParameterError(_PARAMETER, f"{origin} has no [figure.<metric>] tables")
    _table(figure_tables, "other")
    figures: dict[str, dict[str, Template]] = {}
    for metric, table in figure_tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("default"), str):
            raise BadParameterError(
                _PARAMETER, f"{origin}: [figure.{metric}] needs a default clause"
            )
        allowed = _PLACEHOLDERS["figure.other" if metric == "other" else "figure"]
        figures[metric] = {
            kind: _parse(f"[figure.{metric}] {kind}", clause, allowed)
            for kind, clause in table.items()
        }
    single = {
        name: _parse(f"[{name}] default", _table(data, name)["default"], _PLACEHOLDERS[name])
        for name in ("total", "listed", "others", "empty")
    }
    return Sentences(
        activity={
            kind: _parse(f"[activity] {kind}", sentence, _PLACEHOLDERS["activity"])
            for kind, sentence in _table(data, "activity").items()
        },
        total=single["total"],
        listed=single["listed"],
        others=single["others"],
        empty=single["empty"],
        figures=figures,
    )


@functools.cache
def _shipped() -> Sentences:
    """The package's templates, read once per process (a dashboard reads them per download)."""
    shipped = resources.files(__name__.rpartition(".")[0]).joinpath("sentences.toml")
    return parse_sentences(shipped.read_text("utf-8"))


def load_sentences(path: Path | None = None) -> Sentences:
    """The templates of ``path``, or of the package's ``sentences.toml`` without one.

    :raises BadParameterError: naming ``sentences`` for a file that cannot be read, is larger
        than :data:`MAX_FILE_BYTES`, or is not a valid sentences file.
    """
    if path is None:
        return _shipped()
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BadParameterError(
            _PARAMETER, f"cannot read {path}: {exc.strerror}; give a sentences file"
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise BadParameterError(
            _PARAMETER, f"{path} is larger than {MAX_FILE_BYTES:,} bytes; it cannot be one"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadParameterError(_PARAMETER, f"{path} is not UTF-8 text") from None
    return parse_sentences(text, str(path))
