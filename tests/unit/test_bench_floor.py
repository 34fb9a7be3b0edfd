"""The raw sqlite3 baseline of ``bench.rebuild``: a floor only if it writes every row.

The benchmark's argument is that no rebuild can write the rows of its file faster than raw
``executemany`` copying them in key order; a copy that left rows out would make the floor
too low, so the copy must equal its source, table by table, row for row.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.rebuild import sqlite_floor
from tests.unit.test_bulk_apply import bulk_projection, poisoned_stream, rows_of


def test_the_floor_copies_every_row_of_every_table_and_the_search_index(tmp_path: Path):
    source = bulk_projection(tmp_path / "rebuilt.db", poisoned_stream(), cache=50)
    expected = rows_of(source)
    source.close()

    rows, seconds = sqlite_floor(tmp_path / "rebuilt.db", tmp_path / "floor.db")

    copy = sqlite3.connect(tmp_path / "floor.db")
    assert rows_of(copy) == expected
    assert rows >= sum(len(table) for table in expected.values())
    assert seconds > 0
    # The indexes and the full-text index were built too: they are part of the work.
    source_indexes = sqlite3.connect(tmp_path / "rebuilt.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
    )
    copied = copy.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
    )
    assert copied.fetchall() == source_indexes.fetchall()
    title = expected["activities"][0][4]
    word = title.split()[0]
    found = copy.execute(
        "SELECT count(*) FROM activities_fts WHERE activities_fts MATCH ?", (f'"{word}"',)
    ).fetchone()[0]
    assert found >= 1
