"""Write a draft as a Word file (python-docx): figures bold with a superscript note number,
and each section's notes listed, numbered, under it.

python-docx has no API for Word's own footnotes, so the notes are endnotes of each section:
a "Notes" heading after its sentences, one paragraph a note, numbered as the marks are. The
footer of every page, and the last paragraph, say which ledger the figures reflect.
"""

from __future__ import annotations

import io

import docx
from docx.shared import Pt

from services.drafts.document import Draft, Mark
from services.drafts.text import clean

__all__ = ["to_docx"]


def to_docx(draft: Draft) -> bytes:
    """The draft as the bytes of a ``.docx`` file."""
    document = docx.Document()
    document.core_properties.title = clean(draft.title)
    document.core_properties.comments = clean(draft.footer)
    document.add_heading(clean(draft.title), level=0)
    for section in draft.sections:
        document.add_heading(clean(section.heading), level=1)
        for sentence in section.sentences:
            paragraph = document.add_paragraph()
            for run in sentence.runs:
                if isinstance(run, Mark):
                    paragraph.add_run(clean(run.text)).bold = run.figure
                    paragraph.add_run(str(run.note)).font.superscript = True
                else:
                    paragraph.add_run(clean(run))
        if section.notes:
            document.add_heading("Notes", level=2)
            for note in section.notes:
                paragraph = document.add_paragraph()
                paragraph.add_run(f"{note.number}. ").bold = True
                paragraph.add_run(clean(note.text)).font.size = Pt(9)
    closing = document.add_paragraph()
    closing.add_run(clean(draft.footer)).italic = True
    footer = document.sections[0].footer.paragraphs[0]
    footer.text = clean(draft.footer)
    for run in footer.runs:
        run.font.size = Pt(8)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
