"""The live projection link: atomic switch, readers keep their file, old files pruned."""

from __future__ import annotations

from pathlib import Path

from projections.db import (
    ensure_live,
    new_database_path,
    open_reader,
    open_writer,
    prune_old,
    resolve,
    switch_live,
)


def make_projection(directory: Path, sequence: int) -> Path:
    path = new_database_path(directory)
    conn = open_writer(path)
    conn.execute("INSERT INTO checkpoint VALUES ('ledger', ?, 0)", (sequence,))
    conn.close()
    return path


def test_reader_keeps_its_file_across_a_switch(tmp_path: Path):
    live = tmp_path / "projections" / "ledger.db"
    first = ensure_live(live)
    conn = open_writer(first)
    conn.execute("INSERT INTO checkpoint VALUES ('ledger', 1, 0)")
    conn.close()
    reader = open_reader(live)
    second = make_projection(live.parent, 2)

    switch_live(live, second)

    # Check the open reader still sees the old file, and a new reader the new one.
    assert reader.execute("SELECT sequence FROM checkpoint").fetchone() == (1,)
    assert open_reader(live).execute("SELECT sequence FROM checkpoint").fetchone() == (2,)
    assert resolve(live) == second.resolve()


def test_prune_keeps_the_live_file_and_the_previous_one(tmp_path: Path):
    live = tmp_path / "ledger.db"
    files = [ensure_live(live)]
    for sequence in range(2, 5):
        files.append(make_projection(tmp_path, sequence))
        switch_live(live, files[-1])
        prune_old(live, keep=2)
    assert sorted(p.name for p in tmp_path.glob("ledger-*.db")) == [files[2].name, files[3].name]
