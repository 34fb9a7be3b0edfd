"""Draft report sections: sentences filled with the ledger's figures, each footnoted to its events.

A report writer asks for a programme's or a country's section (``ledger draft``, or the
dashboard's "Draft" links) and gets sentences such as "In 2020, UNODC trained 571 people in
Kazakhstan", each figure with a note naming the activity, its source paragraph, its event ids
and stream sequence, and a footer naming the checkpoint or release the figures reflect.

- :mod:`.gather` reads the figures and their provenance from a projection (the one I/O step);
- :mod:`.sentences` reads the templates, ``sentences.toml``, that the report writer edits;
- :mod:`.compose` fills them in: facts and templates in, a :class:`~.document.Draft` out;
- :mod:`.markdown` and :mod:`.docx` write a draft as Markdown or Word.

The manual is ``docs/drafts.md``.
"""
