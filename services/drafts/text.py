"""Text from the ledger made safe for a document: no control characters, one line."""

from __future__ import annotations

import re

__all__ = ["clean"]

# XML 1.0 (Word) allows no C0 control but tab, newline and carriage return, and neither
# lone surrogates nor U+FFFE/U+FFFF; a title is one line, so those three become spaces too.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]+")


def clean(text: str) -> str:
    """``text`` on one line, without the characters a Word file or a Markdown line cannot hold."""
    return _UNSAFE.sub(" ", text)
