"""Write a draft as Markdown: figures bold, each followed by its footnote (``[^n]``).

Footnotes use the syntax of GitHub, pandoc and most Markdown editors; the notes of a section
follow it. Text from the ledger (titles, names) is escaped, so a title cannot make a link, an
image, HTML or a footnote of its own.
"""

from __future__ import annotations

import re

from services.drafts.document import Draft, Mark, Sentence
from services.drafts.text import clean

__all__ = ["to_markdown"]

# CommonMark lets a backslash escape any ASCII punctuation; these are the ones that mean
# something anywhere in a line (emphasis, code, links, HTML, entities, tables, strike-through).
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~&])")
# And these only at the start of a line: a list, a quote, a heading underline, a numbered item.
_LINE_START = re.compile(r"^(\s*(?:\d+)?)([+\-=.)])")


def escape(text: str) -> str:
    """``text`` as literal Markdown inside a line."""
    return _SPECIAL.sub(r"\\\1", clean(text))


def _line(text: str) -> str:
    """A line of escaped text that cannot start a list, a quote or a heading underline."""
    return _LINE_START.sub(r"\1\\\2", text, count=1)


def _sentence(sentence: Sentence) -> str:
    out = []
    for run in sentence.runs:
        if isinstance(run, Mark):
            text = escape(run.text)
            out.append(f"**{text}**[^{run.note}]" if run.figure else f"{text}[^{run.note}]")
        else:
            out.append(escape(run))
    return _line("".join(out))


def to_markdown(draft: Draft) -> str:
    """The draft as one Markdown document."""
    lines = [f"# {escape(draft.title)}", ""]
    for section in draft.sections:
        lines += [f"## {escape(section.heading)}", ""]
        for sentence in section.sentences:
            lines += [_sentence(sentence), ""]
        for note in section.notes:
            lines.append(f"[^{note.number}]: {escape(note.text)}")
        if section.notes:
            lines.append("")
    lines += ["---", "", _line(escape(draft.footer)), ""]
    return "\n".join(lines)
