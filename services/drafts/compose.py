"""Fill the templates with a draft's facts: sections of sentences whose figures carry notes.

Pure: :class:`~.document.DraftFacts` and :class:`~.sentences.Sentences` in, a
:class:`~.document.Draft` out. What a section says follows the counting rules as the facts
carry them (:mod:`.gather`):

- each activity with figures gets one sentence, a clause per figure, each figure with a note
  citing the activity, its source paragraphs, its event ids and the stream sequence of the
  event that gave it the figure;
- a summed figure to which several activities add gets a sentence of totals, whose note lists
  every activity's part: they add up to it. A figure that is not summed (events/metrics.py)
  never gets a total;
- a country's multi-country activities without shares are named apart, with no figure;
- activities without figures are named, each with its note.

Notes are numbered through the whole draft, in the order they are cited.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator

from projections.answers import AsOf, Release, SourceRef
from services.drafts.document import (
    Cited,
    Draft,
    DraftFacts,
    FigureFacts,
    Mark,
    Note,
    Part,
    Section,
    SectionFacts,
    Sentence,
)
from services.drafts.sentences import Sentences, Template

__all__ = ["TITLE", "compose_draft", "footer_of", "format_figure"]

TITLE = "Draft report sections"
_PLACES_NAMED = 4
"""An activity in more countries than this is said to be "in several countries"."""

Run = str | Mark


def format_figure(value: float) -> str:
    """A figure as the dashboard writes it (services/api/dashboard/format.py): thousands
    separators, and up to two decimals only when a share leaves a fraction."""
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _label(metric: str) -> str:
    return metric.replace("_", " ")


def _time(as_of: AsOf) -> str:
    return as_of.time.strftime("%Y-%m-%d %H:%M:%S UTC") if as_of.time else "no event yet"


def footer_of(as_of: AsOf, release: Release | None = None) -> str:
    """What ledger the draft reflects: the release, the past sequence, or the checkpoint."""
    if release is not None:
        text = (
            f"Figures as stated by release {release.name}: the ledger at stream sequence "
            f"{release.sequence} ({_time(as_of)}); release digest {release.digest}, release "
            f"event {release.event_id} at stream sequence {release.recorded_sequence}."
        )
    elif not as_of.now:
        asked = (
            f", the last event recorded by {as_of.asked.strftime('%Y-%m-%d %H:%M:%S UTC')}"
            if as_of.asked is not None
            else ""
        )
        text = f"Figures as of stream sequence {as_of.sequence} ({_time(as_of)}){asked}."
    else:
        text = (
            f"Figures as of stream sequence {as_of.sequence} ({_time(as_of)}), the "
            "projection's checkpoint when this draft was made."
        )
    if as_of.document:
        text += f" Only the figures and activities of the document {as_of.document}."
    return text


def compose_draft(facts: DraftFacts, sentences: Sentences) -> Draft:
    """The draft of ``facts`` in the words of ``sentences``."""
    numbers = itertools.count(1)
    return Draft(
        title=TITLE,
        sections=[_Section(section, sentences, numbers).compose() for section in facts.sections],
        footer=footer_of(facts.as_of, facts.release),
    )


def _fill(template: Template, values: dict[str, list[Run]]) -> list[Run]:
    """The template's runs with each placeholder replaced by its value's runs."""
    runs: list[Run] = []
    for literal, name in template:
        if literal:
            runs.append(literal)
        if name is not None:
            runs.extend(values[name])
    return runs


def _join(items: list[list[Run]]) -> list[Run]:
    """``a``, ``a and b``, ``a, b and c``."""
    runs: list[Run] = []
    for index, item in enumerate(items):
        if index:
            runs.append(" and " if index == len(items) - 1 else ", ")
        runs.extend(item)
    return runs


def _merged(runs: list[Run]) -> Sentence:
    """The runs with adjacent text joined."""
    out: list[Run] = []
    for run in runs:
        if isinstance(run, str) and out and isinstance(out[-1], str):
            out[-1] += run
        elif run != "":
            out.append(run)
    return Sentence(out)


def _sources(sources: list[SourceRef]) -> str:
    if not sources:
        return "no source given"
    return "; ".join(
        f"para. {source.paragraph} of {source.document}"
        if source.paragraph is not None
        else source.document
        for source in sources
    )


def _events(activity: Cited) -> str:
    if len(activity.event_ids) == 1:
        return f"event {activity.event_ids[0]}, stream sequence {activity.sequence}"
    return (
        f"events {', '.join(activity.event_ids)}; figures as of {activity.last_event_id}, "
        f"stream sequence {activity.sequence}"
    )


def _reference(activity: Cited) -> str:
    """Where an activity comes from: its id, title, sources and events."""
    sources = _sources(activity.sources)
    return f"{activity.activity_id} “{activity.title}”, {sources}; {_events(activity)}"


class _Section:
    """One section being composed: its notes are numbered as its sentences cite them."""

    def __init__(self, facts: SectionFacts, sentences: Sentences, numbers: Iterator[int]) -> None:
        self.facts = facts
        self.sentences = sentences
        self.numbers = numbers
        self.notes: list[Note] = []
        self.cited = {activity.activity_id: activity for activity in facts.activities}

    def note(self, text: str) -> int:
        number = next(self.numbers)
        self.notes.append(Note(number=number, text=text))
        return number

    def compose(self) -> Section:
        facts = self.facts
        heading = facts.name if facts.scope == "country" else f"{facts.name} ({facts.code})"
        if facts.year is not None:
            heading += f", {facts.year}"
        out = [*self._totals()]
        parts: dict[str, list[tuple[FigureFacts, Part]]] = defaultdict(list)
        for figure in facts.figures:
            for part in figure.parts:
                parts[part.activity_id].append((figure, part))
        listed = set(facts.listed_only)
        others: list[Cited] = []
        for activity in facts.activities:
            if activity.activity_id in listed:
                continue
            mine = parts.get(activity.activity_id)
            if mine:
                out.append(self._activity(activity, mine))
            else:
                others.append(activity)
        named = [self.cited[i] for i in facts.listed_only if i in self.cited]
        if named:
            out.append(
                _merged(
                    _fill(
                        self.sentences.listed,
                        {"country": [facts.name], "activities": self._titles(named)},
                    )
                )
            )
        if others:
            out.append(
                _merged(
                    _fill(
                        self.sentences.others,
                        {"subject": [self._subject()], "activities": self._titles(others)},
                    )
                )
            )
        if not out:
            out.append(_merged(_fill(self.sentences.empty, {"subject": [self._subject()]})))
        return Section(heading=heading, sentences=out, notes=self.notes)

    def _subject(self) -> str:
        facts = self.facts
        subject = f"under the {facts.name}" if facts.scope == "programme" else f"in {facts.name}"
        return subject + (f" in {facts.year}" if facts.year is not None else "")

    def _in_place(self, activity: Cited) -> str:
        if self.facts.scope == "country":
            return f" in {self.facts.name}"
        places = activity.places
        if not places:
            return ""
        if len(places) > _PLACES_NAMED:
            return " in several countries"
        return " in " + "".join(str(run) for run in _join([[place] for place in places]))

    def _titles(self, activities: list[Cited]) -> list[Run]:
        runs: list[Run] = []
        for index, activity in enumerate(activities):
            if index:
                runs.append("; ")
            runs.append(
                Mark(text=activity.title, note=self.note(_reference(activity) + "."), figure=False)
            )
        return runs

    def _figure_mark(self, figure: FigureFacts, part: Part, activity: Cited) -> Mark:
        share = (
            f" ({self.facts.name}'s {format_figure(part.share)}% share)"
            if part.share is not None
            else ""
        )
        apart = "; not added to other activities' figures" if figure.rule != "sum" else ""
        text = (
            f"{_label(figure.metric).capitalize()}: {format_figure(part.value)} {figure.unit}"
            f"{apart}. {format_figure(part.value)}{share} from {_reference(activity)}."
        )
        return Mark(text=format_figure(part.value), note=self.note(text))

    def _activity(self, activity: Cited, mine: list[tuple[FigureFacts, Part]]) -> Sentence:
        clauses = [
            _fill(
                self.sentences.for_figure(figure.metric, activity.kind),
                {
                    "figure": [self._figure_mark(figure, part, activity)],
                    "label": [_label(figure.metric)],
                    "unit": [figure.unit],
                },
            )
            for figure, part in mine
        ]
        return _merged(
            _fill(
                self.sentences.for_activity(activity.kind),
                {
                    "year": [str(activity.year)],
                    "title": [activity.title],
                    "in_place": [self._in_place(activity)],
                    "figures": _join(clauses),
                },
            )
        )

    def _totals(self) -> list[Sentence]:
        """One sentence of the summed figures to which several activities add."""
        clauses = []
        for figure in self.facts.figures:
            if figure.rule != "sum" or len(figure.parts) < 2 or figure.total is None:
                continue
            cites = "; ".join(
                f"{format_figure(part.value)}"
                + (
                    f" ({self.facts.name}'s {format_figure(part.share)}% share)"
                    if part.share is not None
                    else ""
                )
                + f" from {_reference(self.cited[part.activity_id])}"
                for part in figure.parts
            )
            text = (
                f"{_label(figure.metric).capitalize()} {self._subject()}: "
                f"{format_figure(figure.total)} {figure.unit}, the sum of "
                f"{len(figure.parts)} activities' figures: {cites}."
            )
            mark = Mark(text=format_figure(figure.total), note=self.note(text))
            clauses.append(
                _fill(
                    self.sentences.for_figure(figure.metric),
                    {"figure": [mark], "label": [_label(figure.metric)], "unit": [figure.unit]},
                )
            )
        if not clauses:
            return []
        return [
            _merged(
                _fill(
                    self.sentences.total,
                    {"subject": [self._subject()], "figures": _join(clauses)},
                )
            )
        ]
