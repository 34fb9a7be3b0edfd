"""Draft report sections on the query seed (tests/query_seed.py), a real SQLite projection.

The seed's story, by sequence: [1] 571 trained in Kazakhstan (GENERAL, 2020); [2] 100 trained
and 50 participants, Kazakhstan 60% and Uzbekistan 40% (GPCC, 2021); [3] 30 trained in
Kazakhstan, Uzbekistan and Kyrgyzstan without shares (GENERAL, 2020); [4] 200 firearms in
Uzbekistan (GENERAL, 2021); [5] 1000 trained in Kazakhstan, [6] withdrawn; [7] [4] revised to
250 firearms. So Kazakhstan's people trained are 571 + 60 = 631 now, 571 + 60 + 1000 = 1631 as
of [5]; the 30 of [3] are in no country's total, but in GENERAL's: 571 + 30 = 601.
"""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import docx
import pytest

from events.codec import encode
from events.envelope import seal
from events.metrics import metric_rules
from events.model import FiguresReleased
from events.reference import load_reference
from events.stored import RawMessage
from projections.db import open_reader
from projections.errors import BadParameterError, UnknownKeyError
from projections.releases import write_releases
from projections.temporal import scope_of
from services.drafts import gather
from services.drafts.compose import compose_draft
from services.drafts.document import Draft, Mark, Note, Section, Sentence
from services.drafts.docx import to_docx
from services.drafts.gather import gather_draft
from services.drafts.markdown import to_markdown
from services.drafts.sentences import MAX_FILE_BYTES, load_sentences, parse_sentences
from tests.query_seed import T0, seed_projection

SHIPPED = Path(__file__).resolve().parents[2] / "services" / "drafts" / "sentences.toml"


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """The query seed, with a release of the figures as of [5] written as the projector would."""
    real = seed_projection(tmp_path_factory.mktemp("draft") / "projections" / "ledger.db")
    release = seal(
        FiguresReleased(name="H1", sequence=5, digest="ab" * 32, note="as published"),
        office="HQ",
        actor="auditor@example.org",
    )
    writer = sqlite3.connect(real)
    with writer:
        write_releases(
            writer, [RawMessage(8, "ledger.release.H1", T0.timestamp(), {}, encode(release))]
        )
    writer.close()
    conn = open_reader(real)
    yield conn
    conn.close()


def draft_of(conn: sqlite3.Connection, **asked: object) -> Draft:
    scope = asked.pop("scope", None)
    return compose_draft(gather_draft(conn, scope=scope, **asked), load_sentences())  # type: ignore[arg-type]


def text_of(draft: Draft) -> list[str]:
    """Each sentence as plain text, figures as they are written."""
    return [
        "".join(run.text if isinstance(run, Mark) else run for run in sentence.runs)
        for section in draft.sections
        for sentence in section.sentences
    ]


def figures_of(draft: Draft) -> list[tuple[str, str]]:
    """Every figure of the draft with its note's text."""
    notes = {note.number: note.text for section in draft.sections for note in section.notes}
    return [
        (run.text, notes[run.note])
        for section in draft.sections
        for sentence in section.sentences
        for run in sentence.runs
        if isinstance(run, Mark) and run.figure
    ]


# -- the sentences file ------------------------------------------------------------------------


def test_every_catalogue_metric_has_a_clause_of_its_own() -> None:
    sentences = load_sentences()
    assert set(metric_rules()) - {"cocaine_seized_tons"} <= set(sentences.figures)
    # The one metric in another unit is counted, and so written, as kilograms.
    assert "cocaine_seized_tons" not in sentences.figures


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[activity]\ndefault = '{title.__class__}'\n", "{title.__class__}"),
        ("[activity]\ndefault = '{figures!r}'\n", "{figures!r}"),
        ("[activity]\ndefault = '{figures:>10}'\n", "{figures:>10}"),
        ("[activity]\ndefault = '{secret}'\n", "{secret}"),
        ("[activity]\ndefault = 'a { b'\n", "brace"),
        ("[activity]\ndefault = 'x'\ntraining = 3\n", "not a string"),
        ("[activity]\ntraining = 'x'\n", "[activity] with a default"),
        ("[activity]\ndefault = 'x'\n[shell]\ndefault = 'x'\n", "[shell]"),
        ("[activity\n", "not valid TOML"),
    ],
)
def test_a_bad_sentences_file_is_refused_naming_what_to_fix(text: str, says: str) -> None:
    rest = SHIPPED.read_text("utf-8").split("\n[total]\n", 1)[1]
    with pytest.raises(BadParameterError) as refused:
        parse_sentences(text + "\n[total]\n" + rest)
    assert refused.value.parameter == "sentences"
    assert says in refused.value.message


def test_a_huge_or_missing_sentences_file_is_refused(tmp_path: Path) -> None:
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(BadParameterError, match="larger than"):
        load_sentences(huge)
    with pytest.raises(BadParameterError, match="cannot read"):
        load_sentences(tmp_path / "absent.toml")


def test_an_edited_copy_of_the_sentences_is_used(seed: sqlite3.Connection, tmp_path: Path) -> None:
    edited = tmp_path / "mine.toml"
    edited.write_text(
        SHIPPED.read_text("utf-8").replace(
            'default = "trained {figure} people"', 'default = "built the skills of {figure} people"'
        ),
        "utf-8",
    )
    facts = gather_draft(seed, countries=["KAZ"])
    text = " ".join(text_of(compose_draft(facts, load_sentences(edited))))
    assert "UNODC built the skills of 571 people in Kazakhstan" in text


# -- what a section says ---------------------------------------------------------------------


def test_a_country_gets_its_own_figures_and_its_shares_and_a_total(
    seed: sqlite3.Connection,
) -> None:
    draft = draft_of(seed, countries=["Kazakhstan"])
    text = text_of(draft)

    assert "In 2020, UNODC trained 571 people in Kazakhstan" in " ".join(text)
    assert any(
        s.startswith("In all, UNODC activities in Kazakhstan trained 631 people") for s in text
    )
    figures = dict(figures_of(draft))
    # 60% of the 100 trained of CYBER-SHARED, and of its 50 participants: 30.
    assert "CYBER-SHARED" in figures["60"] and "60% share" in figures["60"]
    assert "CYBER-SHARED" in figures["30"]
    assert "KAZ-TRAINING-1" in figures["631"] and "CYBER-SHARED" in figures["631"]
    assert "para. 30 of SG report 2021" in figures["571"]
    assert "stream sequence 1" in figures["571"]


def test_a_multi_country_activity_without_shares_is_named_in_a_country_never_given_a_figure(
    seed: sqlite3.Connection,
) -> None:
    draft = draft_of(seed, countries=["KAZ"])
    listed = [s for s in text_of(draft) if "Regional workshop on border control" in s]

    assert len(listed) == 1
    assert "count in no single country's total" in listed[0]
    assert not re.search(r"\d", listed[0].replace("Regional workshop on border control", ""))
    assert all("MULTI-1" not in note for _, note in figures_of(draft))


def test_a_programme_counts_its_multi_country_activities(seed: sqlite3.Connection) -> None:
    draft = draft_of(seed, programmes=["GENERAL"])
    figures = dict(figures_of(draft))

    assert "MULTI-1" in figures["30"]
    assert "trained 601 people" in " ".join(text_of(draft))
    assert "250" in figures and "200" not in figures  # the revision's figure, not the first
    assert "events " in figures["250"] and "stream sequence 7" in figures["250"]


def test_a_withdrawn_activity_says_nothing_now_and_counted_before(
    seed: sqlite3.Connection,
) -> None:
    now = " ".join(text_of(draft_of(seed, countries=["KAZ"])))
    then = draft_of(seed, countries=["KAZ"], scope=scope_of(as_of_sequence=5))

    assert "1,000" not in now and "1,631" not in now
    assert "trained 1,631 people" in " ".join(text_of(then))
    assert then.footer.startswith("Figures as of stream sequence 5 (2021-06-30 12:00:04 UTC)")


def test_a_release_is_the_footer(seed: sqlite3.Connection) -> None:
    draft = draft_of(seed, countries=["KAZ"], scope=scope_of(release="H1"))

    assert "trained 1,631 people" in " ".join(text_of(draft))
    assert "release H1" in draft.footer and "stream sequence 5" in draft.footer
    assert "ab" * 32 in draft.footer


def test_the_present_names_the_checkpoint(seed: sqlite3.Connection) -> None:
    draft = draft_of(seed, programmes=["GPCC"])
    assert draft.footer.startswith("Figures as of stream sequence 7 ")
    assert "checkpoint" in draft.footer


def test_notes_are_numbered_through_the_draft_in_order(seed: sqlite3.Connection) -> None:
    draft = draft_of(seed, programmes=["GENERAL", "GPCC"], countries=["KAZ", "UZB"])
    numbers = [note.number for section in draft.sections for note in section.notes]
    marks = [
        run.note
        for section in draft.sections
        for sentence in section.sentences
        for run in sentence.runs
        if isinstance(run, Mark)
    ]

    assert numbers == list(range(1, len(numbers) + 1))
    assert marks == numbers
    headings = [section.heading for section in draft.sections]
    assert headings[0].endswith("(GENERAL)") and headings[1].endswith("(GPCC)")
    assert headings[2:] == ["Kazakhstan", "Uzbekistan"]


def test_bad_asks_are_refused_by_name(seed: sqlite3.Connection) -> None:
    with pytest.raises(UnknownKeyError) as unknown:
        gather_draft(seed, programmes=["NOPE"])
    assert unknown.value.parameter == "programme"
    with pytest.raises(BadParameterError) as none:
        gather_draft(seed)
    assert none.value.parameter == "programme"
    with pytest.raises(BadParameterError):
        scope_of(as_of="2021-06-30T12:00:00Z", release="H1")
    with pytest.raises(UnknownKeyError) as release:
        gather_draft(seed, countries=["KAZ"], scope=scope_of(release="nope"))
    assert release.value.parameter == "release"


# -- writers -------------------------------------------------------------------------------------

HOSTILE = "[click](javascript:alert(1)) <script>x</script> **bold** `code`\x00\x1b\n- item &amp;"


def _hostile_draft() -> Draft:
    return Draft(
        title="Draft",
        sections=[
            Section(
                heading=HOSTILE,
                sentences=[
                    Sentence([HOSTILE, Mark(text="12", note=1)]),
                    Sentence(
                        ["- 1. starts like a list ", Mark(text=HOSTILE, note=2, figure=False)]
                    ),
                ],
                notes=[Note(number=1, text=HOSTILE), Note(number=2, text="[^1]: forged")],
            )
        ],
        footer="# not a heading",
    )


def test_markdown_gives_hostile_text_no_markup() -> None:
    text = to_markdown(_hostile_draft())

    # Each is there only escaped, as literal text.
    for markup in (r"<script>", r"\]\(javascript", r"\*\*bold", r"`code", r"&amp;"):
        assert not re.search(r"(?<!\\)" + markup, text), markup
    assert "\x00" not in text and "\x1b" not in text
    assert "**12**[^1]" in text
    # One footnote definition per note: a note cannot forge another.
    assert len(re.findall(r"^\[\^\d+\]:", text, re.MULTILINE)) == 2
    assert not re.search(r"^(- |# )", text.split("\n", 2)[2], re.MULTILINE)


def test_word_takes_hostile_text_and_reads_back() -> None:
    read = docx.Document(io.BytesIO(to_docx(_hostile_draft())))
    paragraphs = [p for p in read.paragraphs]
    figure = next(p for p in paragraphs if "12" in p.text)
    runs = [(run.text, bool(run.bold), bool(run.font.superscript)) for run in figure.runs]

    assert ("12", True, False) in runs and ("1", False, True) in runs
    assert read.sections[0].footer.paragraphs[0].text == "# not a heading"


def test_a_draft_is_bounded_in_sections_and_activities(
    seed: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = sorted(load_reference().countries)[: gather.MOST_SECTIONS + 1]
    with pytest.raises(BadParameterError, match="at most 50"):
        gather_draft(seed, countries=codes)
    # Kazakhstan lists three activities now: KAZ-TRAINING-1, CYBER-SHARED and MULTI-1.
    monkeypatch.setattr(gather, "MOST_ACTIVITIES", 2)
    with pytest.raises(BadParameterError, match="more than 2 activities") as refused:
        gather_draft(seed, countries=["KAZ"])
    assert refused.value.parameter == "country"
    monkeypatch.setattr(gather, "MOST_ACTIVITIES", 3)
    assert len(gather_draft(seed, countries=["KAZ"]).sections[0].activities) == 3
