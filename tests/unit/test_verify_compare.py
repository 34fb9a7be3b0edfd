"""How verify compares two projection files: every table, row for row, by primary key and
values, in both directions."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from projections.db import open_writer
from replay.verify import compare_projections
from tests.query_seed import seed_projection


@pytest.fixture
def pair(tmp_path: Path) -> sqlite3.Connection:
    """The seed's projection and a copy of it, attached as ``main`` and ``other``."""
    one = seed_projection(tmp_path / "a" / "ledger.db")
    two = tmp_path / "copy.db"
    shutil.copy(one, two)
    conn = open_writer(one)
    conn.execute("ATTACH DATABASE ? AS other", (str(two),))
    return conn


def test_equal_files_have_no_difference(pair: sqlite3.Connection):
    assert compare_projections(pair, "main", "other") == []


def test_a_row_one_side_lacks_and_a_changed_value_are_each_counted(pair: sqlite3.Connection):
    pair.execute("DELETE FROM other.timeline WHERE sequence = 3")
    pair.execute("INSERT INTO other.quarantine VALUES (99, 's', x'00', NULL, 'made up', 0)")
    pair.execute(
        "UPDATE other.footprints SET micros = micros + 1 "
        "WHERE country = 'KAZ' AND metric = 'people_trained' AND activity_id = 'KAZ-TRAINING-1'"
    )

    found = {
        d.table: (d.only_live, d.only_rebuilt) for d in compare_projections(pair, "main", "other")
    }

    assert found == {"timeline": (1, 0), "quarantine": (0, 1), "footprints": (1, 1)}
