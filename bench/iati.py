"""Benchmark: the IATI export of a large ledger, its time and peak memory.

Fills a projection with synthetic events straight through the applier (``bench.query.build``,
kept in a cache directory for the next run; 118k events leave about 100k active activities),
then runs, each in a child process, a raw baseline (plain sqlite3 reads every active activity's
row and plain lxml ``xmlfile`` writes its id, title, summary and countries, unchecked) and
``ledger iati export``'s library call, every activity mapped, checked (schema,
codelists, ruleset) and streamed to a file, in a child process so that its peak RSS (VmHWM)
is its own (VmHWM: it counts the projection's pages SQLite maps into memory), and its CPU time,
and then ``ledger iati validate`` of the file the same way. Prints each figure
beside the goals of issue 19: 100k activities exported in under 30 s with a peak RSS under
200 MB.

    python -m bench.iati --events 118000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_SECONDS = 30.0
GOAL_RSS_MB = 200.0
GOAL_ACTIVITIES = 100_000


def _peak_rss_kb() -> int:
    """This process's own peak resident set (VmHWM), in KB, as bench/rebuild.py reads it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds() -> float:
    """This process's CPU time so far (user and system): on a machine other work shares, the
    wall time grows with the load, and this much less."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_export(db: Path, out: Path) -> dict[str, float]:
    from projections.db import open_reader
    from services.iati.export import iati_activities, write_document
    from services.iati.source import ExportFilters, read_states

    started = time.perf_counter()
    conn = open_reader(db)
    states = read_states(conn, ExportFilters())
    try:
        now = dt.datetime.now(dt.UTC)
        summary = write_document(
            out,
            iati_activities(states, reporting_org="XM-DAC-41128", today=now.date()),
            now=now,
        )
    finally:
        states.close()
        conn.close()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds(),
        "activities": summary.activities,
        "bytes": summary.bytes,
        "peak_rss_kb": _peak_rss_kb(),
    }


def _child_raw(db: Path, out: Path) -> dict[str, float]:
    """The floor: the same rows read and written as XML, with no mapping and no checks."""
    import sqlite3

    from lxml import etree

    started = time.perf_counter()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    count = 0
    try:
        rows = conn.execute(
            "SELECT activity_id, title, summary, countries FROM activities "
            "WHERE status = 'active' ORDER BY activity_id"
        )
        with etree.xmlfile(str(out), encoding="utf-8") as xf, xf.element("iati-activities"):
            for activity_id, title, summary, countries in rows:
                activity = etree.Element("iati-activity")
                etree.SubElement(activity, "iati-identifier").text = activity_id
                etree.SubElement(etree.SubElement(activity, "title"), "narrative").text = title
                description = etree.SubElement(activity, "description")
                etree.SubElement(description, "narrative").text = summary
                etree.SubElement(activity, "recipient-countries").text = countries
                xf.write(activity)
                count += 1
    finally:
        conn.close()
    return {
        "seconds": time.perf_counter() - started,
        "activities": count,
        "bytes": out.stat().st_size,
        "peak_rss_kb": _peak_rss_kb(),
    }


def _child_validate(out: Path) -> dict[str, float]:
    from services.iati.validate import validate_file

    started = time.perf_counter()
    report = validate_file(out)
    return {
        "seconds": time.perf_counter() - started,
        "activities": report.activities,
        "peak_rss_kb": _peak_rss_kb(),
    }


def _run_child(phase: str, db: Path, out: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.iati", "--child", phase, "--db", str(db), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _goal(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    """Build (or reuse) the projection, export and validate in child processes, print."""
    parser = argparse.ArgumentParser(prog="python -m bench.iati", description=__doc__)
    parser.add_argument("--events", type=int, default=118_000)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "ledger-bench-iati"
    )
    parser.add_argument("--child", choices=("raw", "export", "validate"), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "export":
        print(json.dumps(_child_export(args.db, args.out)))
        return
    if args.child == "raw":
        print(json.dumps(_child_raw(args.db, args.out)))
        return
    if args.child == "validate":
        print(json.dumps(_child_validate(args.out)))
        return

    from bench.query import build

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    db = args.cache_dir / f"iati-{args.events}.db"
    build(db, args.events)
    out = args.cache_dir / f"iati-{args.events}.xml"
    raw = _run_child("raw", db, args.cache_dir / f"raw-{args.events}.xml")
    export = _run_child("export", db, out)
    check = _run_child("validate", db, out)
    count = int(export["activities"])
    rss = export["peak_rss_kb"] / 1024
    # The goal is stated for 100k activities; a smaller run is scaled linearly for the time.
    scaled = export["seconds"] * GOAL_ACTIVITIES / max(count, 1)
    megabytes = export["bytes"] / 1e6
    print(f"events {args.events:,}, activities exported {count:,}, file {megabytes:.0f} MB")
    rate = count / export["seconds"]
    met = _goal(scaled < GOAL_SECONDS)
    print(
        f"export     {export['seconds']:6.1f} s  ({rate:,.0f} activities/s; {scaled:.1f} s per "
        f"100k)   goal < {GOAL_SECONDS:.0f} s per 100k: {met}"
    )
    print(
        f"export CPU {export['cpu_seconds']:6.1f} s of the child process (user + system; "
        f"{os.getloadavg()[0]:.1f} load average when done)"
    )
    print(
        f"raw        {raw['seconds']:6.1f} s  ({raw['activities'] / raw['seconds']:,.0f} "
        f"activities/s: sqlite3 and lxml, no mapping, no checks)   export / raw: "
        f"{raw['seconds'] / export['seconds']:.2f}"
    )
    met = _goal(rss < GOAL_RSS_MB)
    print(f"export RSS {rss:6.0f} MB peak (VmHWM)   goal < {GOAL_RSS_MB:.0f} MB: {met}")
    print(
        f"validate   {check['seconds']:6.1f} s, {check['peak_rss_kb'] / 1024:.0f} MB peak "
        "(ledger iati validate of the file; no goal)"
    )


if __name__ == "__main__":
    main()
