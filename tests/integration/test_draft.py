"""``ledger draft`` on the report's own activities, stored in a real stream and projected from it.

The seed (data/activities.jsonl, then data/revisions.jsonl) goes through a real nats-server
into a test stream; the projection is built by reading that stream back. Every figure the
draft writes is then checked against the stream itself: the test reads the events each note
cites, folds them with the domain's own fold (events/activity.py), takes the metric (in its
canonical unit, events/metrics.py) and the country's share where the note gives one, and adds
them up. The report (seed/000_8cff92d5588c1613.txt, para. 73) says Operation Trigger VI
"seized 200,000 illicit firearms".

The seed gives no country a share, so one activity with shares follows it at [144]: 33 people
trained, Kazakhstan 40% (13.2) and Colombia 60% (19.8).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import docx
import msgspec
import pytest
from click.testing import CliRunner, Result

from events.activity import fold_activity
from events.metrics import rule_of
from events.model import ActivityChanges, ActivityRevised, CountryShare
from events.reference import load_reference
from events.store import EventStore
from projections.apply import Applier
from projections.db import open_writer
from services.cli.demo import read_dataset, read_revisions
from services.cli.main import main
from tests.factories import make_reported, sealed

_CITE = re.compile(
    r"(?P<value>[\d,.]+)(?: \((?P<country>.+?)'s (?P<share>[\d.]+)% share\))? from "
    r"(?P<id>\S+) “.*?”, (?P<sources>.*?); events? (?P<events>[0-9a-f, -]+?)"
    r"(?:; figures as of (?P<last>[0-9a-f-]+))?, stream sequence (?P<sequence>\d+)"
)
_FIGURE = re.compile(r"\*\*(?P<figure>[\d,.]+)\*\*\[\^(?P<note>\d+)\]")


@pytest.fixture
async def seeded(store: EventStore, tmp_path: Path) -> Path:
    """The seed through the stream, and a projection file built from the stream."""
    activities = read_dataset()
    outcomes = await store.append_many(
        [(sealed(activity, office=activity.office), 0) for activity in activities]
    )
    assert {outcome.status for outcome in outcomes} == {"stored"}
    offices = {activity.activity_id: activity.office for activity in activities}
    for revision in read_revisions():
        loaded = await store.load(revision.activity_id)
        event = ActivityRevised(
            activity_id=revision.activity_id,
            changes=msgspec.convert(revision.changes, ActivityChanges),
            reason=revision.reason,
        )
        await store.append(
            sealed(event, office=offices[revision.activity_id]), loaded.last_sequence
        )
    shared = make_reported(
        activity_id="X-SHARED",
        title="Shared workshop",
        countries=[CountryShare("KAZ", 40), CountryShare("COL", 60)],
        metrics={"people_trained": 33},
    )
    assert (await store.append(sealed(shared), 0)).sequence == 144
    db = tmp_path / "ledger.db"
    conn = open_writer(db)
    applier = Applier(conn)
    async for batch in store.read_raw():
        applier.apply(batch)
    conn.close()
    return db


def draft(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), "draft", *args])


def notes_of(markdown: str) -> dict[str, str]:
    return dict(re.findall(r"^\[\^(\d+)\]: (.*)$", markdown, re.MULTILINE))


def unescaped(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


async def resolve(store: EventStore, note: str, metric: str) -> float:
    """What the events a note cites give the figure, added up by this test."""
    cites = list(_CITE.finditer(unescaped(note)))
    assert cites, note
    total = 0.0
    for cite in cites:
        recorded = (await store.load(cite["id"])).events
        sequence = int(cite["sequence"])
        upto = [r for r in recorded if r.sequence <= sequence]
        assert upto[-1].sequence == sequence, "the note's sequence is one of the activity's events"
        cited_ids = [e.strip() for e in cite["events"].split(",")]
        assert cited_ids == [r.event.event_id for r in upto]
        assert cite["last"] in (None, upto[-1].event.event_id)
        state = fold_activity([(r.sequence, r.event) for r in upto])
        assert state is not None and not state.withdrawn
        activity = state.activity
        value = sum(
            figure * rule_of(name).factor
            for name, figure in activity.metrics.items()
            if rule_of(name).canonical == metric
        )
        if cite["share"] is not None:
            code = load_reference().country_code(cite["country"])
            (place,) = [p for p in activity.countries if p.country == code]
            assert place.share == float(cite["share"])
            value = value * place.share / 100
        assert float(cite["value"].replace(",", "")) == pytest.approx(value), cite[0]
        paragraphs = [f"para. {s.paragraph} of {s.document}" for s in activity.sources]
        assert cite["sources"] == "; ".join(paragraphs)
        total += value
    return total


async def test_the_gfp_section_says_200000_firearms_from_para_73(
    seeded: Path, store: EventStore, tmp_path: Path
) -> None:
    out = tmp_path / "gfp.md"
    result = draft(tmp_path, "--programme", "GFP", "--db", str(seeded), "--out", str(out))

    assert result.exit_code == 0, result.output
    text = out.read_text("utf-8")
    notes = notes_of(text)
    (firearms,) = [m for m in _FIGURE.finditer(text) if m["figure"] == "200,000"]
    assert "seized **200,000**" in text
    note = unescaped(notes[firearms["note"]])
    assert note.startswith("Firearms seized: 200,000 firearms")
    assert "P073-OPERATION-TRIGGER-VI" in note and "para. 73 of SG report 2021" in note
    assert await resolve(store, notes[firearms["note"]], "firearms_seized") == 200_000


async def test_every_figure_resolves_to_events_that_add_up_to_it(
    seeded: Path, store: EventStore, tmp_path: Path
) -> None:
    out = tmp_path / "all.md"
    programmes = ["GFP", "DOHA", "YOUTH_SPORT", "GENERAL", "CCP"]
    countries = ["KAZ", "COL", "PER", "JPN", "VNM"]
    args = [a for p in programmes for a in ("--programme", p)]
    args += [a for c in countries for a in ("--country", c)]
    result = draft(tmp_path, *args, "--db", str(seeded), "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text("utf-8")
    notes = notes_of(text)

    figures = list(_FIGURE.finditer(text))
    assert len(figures) > 20
    # Kazakhstan's and Colombia's shares of the 33, and Kazakhstan's 571 + 13.2.
    assert {"13.2", "19.8", "584.2"} <= {figure["figure"] for figure in figures}
    for figure in figures:
        note = unescaped(notes[figure["note"]])
        label = note.split(":", 1)[0].split(" under the ")[0].split(" in ")[0]
        metric = label.lower().replace(" ", "_")
        expected = float(figure["figure"].replace(",", ""))
        assert await resolve(store, notes[figure["note"]], metric) == pytest.approx(expected)

    # No other number stands in a sentence: strip the figures, the notes' marks, the years
    # and the titles and names the ledger gave, and no digit is left.
    titles = {a.title for a in read_dataset()} | {"Shared workshop"}
    sentences = [
        unescaped(line)
        for line in text.split("\n---\n")[0].splitlines()
        if line and not line.startswith(("#", "[^"))
    ]
    for sentence in sentences:
        bare = re.sub(r"\*\*[\d,.]+\*\*|\[\^\d+\]|\b(?:19|20)\d\d\b", "", sentence)
        for title in sorted(titles, key=len, reverse=True):
            bare = bare.replace(title, "")
        assert not re.search(r"\d", bare), sentence


async def test_japan_held_the_congress_participants_until_the_venue_revision(
    seeded: Path, tmp_path: Path
) -> None:
    then, now = tmp_path / "then.md", tmp_path / "now.md"
    db = str(seeded)
    assert (
        draft(
            tmp_path, "--country", "JPN", "--as-of-sequence", "134", "--db", db, "--out", str(then)
        ).exit_code
        == 0
    )
    assert draft(tmp_path, "--country", "JPN", "--db", db, "--out", str(now)).exit_code == 0

    assert "**5,600**" in then.read_text("utf-8")
    assert "Figures as of stream sequence 134 " in then.read_text("utf-8")
    assert "5,600" not in now.read_text("utf-8")
    assert "Figures as of stream sequence 144 " in now.read_text("utf-8")


async def test_word_reads_back_with_marked_figures_notes_and_footer(
    seeded: Path, tmp_path: Path
) -> None:
    out = tmp_path / "draft.docx"
    result = draft(
        tmp_path, "--programme", "GFP", "--country", "KAZ", "--db", str(seeded), "--out", str(out)
    )
    assert result.exit_code == 0, result.output

    read = docx.Document(io.BytesIO(out.read_bytes()))
    paragraphs = [p.text for p in read.paragraphs]
    headings = [p.text for p in read.paragraphs if p.style.name.startswith("Heading")]
    assert headings == ["Global Firearms Programme (GFP)", "Notes", "Kazakhstan", "Notes"]
    figure = next(p for p in read.paragraphs if "200,000" in p.text)
    runs = [(r.text, bool(r.bold), bool(r.font.superscript)) for r in figure.runs]
    at = runs.index(("200,000", True, False))
    number = runs[at + 1]
    assert number[2] and number[0].isdigit()
    (note,) = [p for p in paragraphs if p.startswith(f"{number[0]}. ")]
    assert "para. 73 of SG report 2021" in note
    assert "In 2020, UNODC trained 571" in " ".join(paragraphs)
    footer = read.sections[0].footer.paragraphs[0].text
    assert footer.startswith("Figures as of stream sequence 144 ")


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--programme", "NOPE"], 5, "programme: unknown programme 'NOPE'"),
        (["--programme", "GFP", "--as-of", "2021-07-01", "--release", "R"], 6, "release:"),
        (["--programme", "GFP", "--release", "NOPE"], 5, "no release 'NOPE'"),
        (["--programme", "GFP", "--as-of", "yesterday"], 6, "as_of:"),
        (["--programme", "GFP", "--as-of-sequence", "99999"], 6, "as_of_sequence:"),
        ([], 6, "give a programme or a country"),
    ],
)
async def test_bad_flags_are_clear_errors_that_leave_the_file_as_it_was(
    seeded: Path, tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    out = tmp_path / "kept.md"
    out.write_text("the writer's own text", "utf-8")
    result = draft(tmp_path, *args, "--db", str(seeded), "--out", str(out))

    assert result.exit_code == code, result.output
    assert says in result.output and "Traceback" not in result.output
    assert out.read_text("utf-8") == "the writer's own text"
    left = [p.name for p in tmp_path.iterdir() if not p.name.startswith(("data", "ledger.db"))]
    assert left == ["kept.md"]


async def test_an_unwritable_or_unknown_out_leaves_nothing_behind(
    seeded: Path, tmp_path: Path
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory", "utf-8")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    targets = [
        (a_file / "draft.md", "out: cannot write"),
        (tmp_path / "absent" / "draft.md", "out: cannot write"),
        (tmp_path / "draft.pdf", "neither .docx nor .md"),
    ]
    if os.geteuid() != 0:  # root writes in a read-only directory all the same
        targets.append((locked / "draft.md", "out: cannot write"))
    try:
        for out, says in targets:
            result = draft(tmp_path, "--programme", "GFP", "--db", str(seeded), "--out", str(out))
            assert result.exit_code == 6, result.output
            assert says in result.output and "Traceback" not in result.output
        assert list(locked.iterdir()) == []
        assert a_file.read_text("utf-8") == "not a directory"
        assert not (tmp_path / "draft.pdf").exists() and not (tmp_path / "absent").exists()
    finally:
        locked.chmod(0o755)
