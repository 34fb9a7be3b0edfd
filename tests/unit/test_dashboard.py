"""The dashboard's pages on the seeded projection (tests/query_seed.py), via the TestClient.

Figures are the seed's, worked out by hand here: Kazakhstan trained 571 in 2020 (KAZ-TRAINING-1)
and 60% of CYBER-SHARED's 100 in 2021, so 631 in all; MULTI-1 names it without shares, so it is
listed apart and counted in no country; WITHDRAWN-1 counts nowhere.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from projections.answers import AsOf, Cell, Release, Timeline
from projections.errors import BadParameterError
from services.api.app import create_app
from services.api.dashboard.charts import Bar, column_chart, nice_ticks, row_chart
from services.api.dashboard.format import format_exact, format_number
from services.api.dashboard.render import Asked, Page
from services.api.dashboard.views import cell_changes, parse_sequence

PAGES = [
    "/",
    "/?metric=people_trained",
    "/countries",
    "/countries?sort=-people_trained&metric=firearms_seized",
    "/programmes",
    "/years",
    "/countries/KAZ",
    "/countries/Kazakhstan?year=2021",
    "/programmes/GENERAL",
    "/programmes/GPCC?year=2021",
    "/years/2020",
    "/activities/KAZ-TRAINING-1",
    "/activities/WITHDRAWN-1",
    "/provenance?country=KAZ&metric=people_trained",
    "/provenance?metric=*",
    "/search",
    "/search?q=trigger&country=&programme=&year=&kind=&status=",
    "/releases",
]

KAZ_TRAINED = 571 + 100 * 60 // 100
KAZ_2020_TRAINED = 571
COUNTED_ACTIVITIES = 4  # KAZ-TRAINING-1, CYBER-SHARED, MULTI-1, UZB-OP-1; not WITHDRAWN-1


def get_html(client: TestClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def text_of(html: str, name: str) -> str:
    """The text of the element with ``data-testid=name``, tags stripped (none nests itself)."""
    found = re.search(rf'<(\w+)[^>]*data-testid="{re.escape(name)}"[^>]*>(.*?)</\1>', html, re.S)
    assert found, f"no {name} in the page"
    return re.sub(r"<[^>]+>", "", found.group(2)).strip()


def section(html: str, heading_id: str) -> str:
    """The HTML of the section whose heading has ``id=heading_id``."""
    start = html.index(f'id="{heading_id}"')
    return html[start : html.index("</section>", start)]


# -- every page --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_and_says_its_sequence(client: TestClient, url: str):
    html = get_html(client, url)

    assert text_of(html, "as-of-sequence") == "7"
    assert "<main" in html and '<nav aria-label="Main">' in html
    # The present: no banner, and the time control sits at the last sequence.
    assert 'data-testid="as-of-banner"' not in html
    assert re.search(r'<input type="range" [^>]*min="1" max="7" [^>]*value="7"', html)


@pytest.mark.parametrize("url", PAGES)
def test_pages_link_nowhere_outside_the_ledger(client: TestClient, url: str):
    html = get_html(client, url)

    targets = re.findall(r'(?:src|href|action)="([^"]*)"', html)
    assert targets
    assert [t for t in targets if not t.startswith(("/", "#"))] == []
    assert "http://" not in html and "https://" not in html


@pytest.mark.parametrize("url", PAGES)
def test_every_list_downloads_as_csv(client: TestClient, url: str):
    html = get_html(client, url)

    for link in re.findall(r'class="download" href="([^"]+)"', html):
        response = client.get(link.replace("&amp;", "&"))
        assert response.status_code == 200, (link, response.text)
        # CSV and JSON, and a draft report section as Word or Markdown (issue 21).
        assert response.headers["content-type"].startswith(
            ("text/csv", "application/json", "application/vnd.openxmlformats", "text/markdown")
        )


def test_the_dashboard_has_no_route_that_writes(client: TestClient, tmp_path: Path):
    app = create_app(tmp_path / "none.db")
    while not isinstance(app, Litestar):  # unwrap the HEAD-as-GET (and any other) wrapper
        app = app.app
    methods = {
        method
        for route in app.routes
        for handler in route.route_handlers
        for method in (handler.http_methods or ())
    }

    assert methods <= {"GET", "HEAD", "OPTIONS"}
    assert "<form" in get_html(client, "/search")
    for url in PAGES:
        assert 'method="post"' not in get_html(client, url).lower()
    assert client.post("/search", data={"q": "x"}).status_code == 405


# -- figures -----------------------------------------------------------------------------------


def test_overview_shows_headline_totals_and_status(client: TestClient):
    html = get_html(client, "/")

    assert f">{COUNTED_ACTIVITIES}</a>" in section(html, "headline")
    totals = section(html, "metric-totals")
    assert re.search(r"Firearms seized.*?>250</a>", totals, re.S)
    # Globally CYBER-SHARED counts whole and MULTI-1 counts: 571 + 100 + 30.
    assert re.search(r"People trained.*?>701</a>", totals, re.S)
    assert re.sub(r"\s+", " ", text_of(html, "status")) == (
        # A file served alone (no store): which sequence and instant it reflects (issue 20).
        "Projection at sequence 7 Lag none (a file served alone: it reflects sequence 7, "
        "recorded 2021-06-30 12:00:06 UTC, and follows no stream) Quarantined 0"
    )
    assert 'role="img"' in html and "<title" in section(html, "per-year")


def test_country_page_shows_its_figures_formatted(client: TestClient):
    html = get_html(client, "/countries/KAZ")

    assert text_of(html, "total-people_trained") == format_number(KAZ_TRAINED) == "631"
    assert text_of(html, "total-activities") == "2"
    by_year = section(html, "by-year")
    assert re.search(rf"2020</a></th>.*?>{KAZ_2020_TRAINED}</a>", by_year, re.S)
    assert re.search(r"2021</a></th>.*?>60</a>", by_year, re.S)

    narrowed = get_html(client, "/countries/KAZ?year=2020")
    assert text_of(narrowed, "total-people_trained") == "571"


def test_country_page_lists_multi_country_activities_apart_with_the_reason(client: TestClient):
    html = get_html(client, "/countries/KAZ")

    note = re.sub(r"\s+", " ", text_of(html, "multi-country-note"))
    assert "not in Kazakhstan's totals" in note
    apart = section(html, "multi-country")
    assert "/activities/MULTI-1" in apart
    assert "/activities/KAZ-TRAINING-1" not in apart
    assert "Kazakhstan, Uzbekistan, Kyrgyzstan" in apart


def test_a_figure_links_to_the_activities_that_make_it_up(client: TestClient):
    html = get_html(client, "/countries/KAZ")
    link = re.search(r'href="([^"]+)"[^>]*>631</a>', html)
    assert link
    assert link.group(1) == "/provenance?country=KAZ&amp;metric=people_trained"

    provenance = get_html(client, link.group(1).replace("&amp;", "&"))

    assert text_of(provenance, "provenance-total") == "631"
    assert re.findall(r'data-activity="([^"]+)"', provenance) == [
        "CYBER-SHARED",
        "KAZ-TRAINING-1",
        "MULTI-1",
    ]
    assert "listed only: multi-country without shares" in provenance


def test_programme_and_year_pages_count_multi_country_activities(client: TestClient):
    general = get_html(client, "/programmes/GENERAL?year=2020")
    assert text_of(general, "total-people_trained") == format_number(571 + 30)
    assert "count in these totals" in text_of(general, "multi-country-note")

    year = get_html(client, "/years/2021")
    assert text_of(year, "total-firearms_seized") == "250"
    assert text_of(year, "total-participants") == "50"


def test_activity_page_shows_state_source_and_why_history_is_missing(client: TestClient):
    html = get_html(client, "/activities/KAZ-TRAINING-1")

    assert text_of(html, "activity-status") == "Active"
    assert text_of(html, "source") == "para. 30 of SG report 2021 (A/76, item 109)"
    assert "no NATS connection" in text_of(html, "history-note")
    assert "Judges and prosecutors trained on asset recovery." in html

    withdrawn = get_html(client, "/activities/WITHDRAWN-1")
    assert text_of(withdrawn, "activity-status") == "Withdrawn"
    assert "reported twice by mistake" in withdrawn


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=trigger", ["UZB-OP-1"]),
        ("kind=operation&year=", ["UZB-OP-1"]),
        ("country=UZB&year=2021", ["CYBER-SHARED", "UZB-OP-1"]),
        ("programme=GPCC", ["CYBER-SHARED"]),
        ("status=withdrawn", ["WITHDRAWN-1"]),
        ("q=nothing-like-this", []),
    ],
)
def test_search_finds_by_words_and_filters(client: TestClient, query: str, expected: list[str]):
    html = get_html(client, f"/search?{query}")

    results = section(html, "activities") if 'id="activities"' in html else ""
    assert re.findall(r'<span class="code">([^<]+)</span>', results) == expected


def test_activity_csv_lists_every_match(client: TestClient):
    response = client.get("/csv/activities?country=KAZ")

    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["activity_id"] for row in rows] == [
        "CYBER-SHARED",
        "KAZ-TRAINING-1",
        "MULTI-1",
        "WITHDRAWN-1",
    ]
    assert response.headers["x-as-of-sequence"] == "7"
    multi = client.get("/csv/country/KAZ/multi_country").text
    assert [row["activity_id"] for row in csv.DictReader(io.StringIO(multi))] == ["MULTI-1"]


# -- as of, and refusals -----------------------------------------------------------------------


def test_a_page_as_of_a_past_sequence_shows_it_and_says_so(client: TestClient):
    # At [1] Kazakhstan has only its 2020 training.
    older = get_html(client, "/countries/KAZ?as_of_sequence=1")

    assert text_of(older, "total-people_trained") == "571"
    assert text_of(older, "banner-sequence") == "1"
    assert text_of(older, "as-of-sequence") == "1"
    assert 'href="/years/2020?as_of_sequence=1"' in older
    assert "ledger replay" not in older

    same = get_html(client, "/countries/KAZ?as_of_sequence=7")
    assert 'data-testid="as-of-banner"' not in same
    assert text_of(same, "total-people_trained") == "631"


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/countries/Atlantis", 404, "unknown country"),
        ("/activities/NO-SUCH", 404, "no activity"),
        ("/countries/KAZ?colour=blue", 400, "unknown query parameter"),
        ("/search?year=twenty", 400, "is not a year"),
        ("/countries/KAZ?metric=cocaine_seized_kg", 400, "no figures of"),
        ("/countries/KAZ?as_of=yesterday", 400, "is not an instant"),
        ("/countries/KAZ?as_of_sequence=five", 400, "is not a sequence"),
        ("/countries/KAZ?as_of_sequence=-1", 400, "is negative"),
        ("/countries/KAZ?as_of_sequence=8", 400, "past the last applied sequence, 7"),
        ("/countries/KAZ?release=R1&as_of_sequence=3", 400, "a release names its sequence"),
        ("/countries/KAZ?release=R1", 404, "no release"),
        ("/releases/R1", 404, "no release"),
        ("/csv/activities?as_of=nope", 400, "is not an instant"),
    ],
)
def test_refusals_are_pages_that_say_what_is_wrong(
    client: TestClient, url: str, status: int, words: str
):
    response = client.get(url)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert words in response.text


# -- charts and numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (4, [0, 1, 2, 3, 4]),
        (97, [0, 20, 40, 60, 80, 100]),
        (571, [0, 200, 400, 600]),
        (2.5, [0, 1, 2, 3]),
    ],
)
def test_gridlines_fall_on_round_numbers(top: float, ticks: list[float]):
    assert nice_ticks(top) == ticks


@pytest.mark.parametrize(
    ("value", "text"),
    [(571, "571"), (2440.0, "2,440"), (4_500_000.0, "4,500,000"), (13.2, "13.2"), (0.125, "0.12")],
)
def test_numbers_get_thousands_separators(value: float, text: str):
    assert format_number(value) == text


@pytest.mark.parametrize("draw", [column_chart, row_chart])
def test_charts_are_labelled_svg_with_a_tooltip_per_bar(draw):
    bars = [Bar("2020", 97), Bar("<2021>", 37)]

    svg = draw(bars, chart_id="c", title="Activities per year", unit="activities")

    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg
    assert 'aria-labelledby="c-t c-d"' in svg and '<title id="c-t">Activities per year' in svg
    assert svg.count("<rect") == 2 and svg.count("<title>") == 2
    assert "&lt;2021&gt;: 37 activities" in svg


def test_figures_that_are_not_summed_are_listed_never_totalled(tmp_path: Path):
    from projections.apply import Applier
    from projections.db import ensure_live, open_writer
    from tests.factories import make_reported, sealed
    from tests.query_seed import raw_messages

    live = tmp_path / "projections" / "ledger.db"
    conn = open_writer(ensure_live(live))
    Applier(conn).apply(
        raw_messages(
            [
                sealed(make_reported(activity_id="A-12", metrics={"countries_assisted": 12})),
                sealed(make_reported(activity_id="B-30", metrics={"countries_assisted": 30})),
            ]
        )
    )
    conn.close()
    with TestClient(app=create_app(live, wait=0.3)) as test_client:
        for url in ("/", "/countries/KAZ"):
            html = get_html(test_client, url)
            # 12 + 30 = 42 would count the same countries twice: no card or total says it.
            assert 'data-testid="total-countries_assisted"' not in html
            assert ">42<" not in html
            row = text_of(html, "reported-countries_assisted")
            assert "not summed" in row
            assert row.index("30") < row.index("12"), row  # largest first


# -- links and time travel, without a server ---------------------------------------------------

T = dt.datetime(2021, 6, 30, 12, 0, tzinfo=dt.UTC)


def _asked(**scope: Any) -> Asked:
    return Asked(**scope, path="/countries/KAZ", params=(("year", "2020"), ("metric", "*")))


def test_links_keep_the_scope_and_a_given_parameter_wins():
    page = Page("KAZ", AsOf(5, T, now=False), _asked(as_of_sequence=5, document="A/77/100"))

    assert page.link("/years/2020") == "/years/2020?as_of_sequence=5&document=A%2F77%2F100"
    assert page.link("/", as_of_sequence=3) == "/?as_of_sequence=3&document=A%2F77%2F100"
    assert page.provenance("people_trained", country="KAZ") == (
        "/provenance?country=KAZ&metric=people_trained&as_of_sequence=5&document=A%2F77%2F100"
    )
    # Back to now: the same page and its own parameters, no scope and no cursor.
    assert page.now_url == "/countries/KAZ?year=2020&metric=%2A"
    assert page.travelled


def test_the_api_is_asked_for_a_release_by_its_sequence():
    page = Page("KAZ", AsOf(5, T, now=False, release="R1"), _asked(release="R1"))

    assert page.api("/v1/countries", format="csv") == "/v1/countries?format=csv&as_of_sequence=5"
    assert page.link("/countries") == "/countries?release=R1"


def test_the_present_is_not_announced_but_a_document_is():
    assert not Page("KAZ", AsOf(7, T), _asked()).travelled
    assert not Page("KAZ", AsOf(7, T), _asked(as_of_sequence=7)).travelled
    assert Page("KAZ", AsOf(7, T, document="D"), _asked(document="D")).travelled
    assert not Page("Error", None).travelled


def test_release_marks_sit_along_the_slider_by_sequence():
    def release(name: str, sequence: int) -> Release:
        return Release(
            name=name,
            sequence=sequence,
            time=T,
            digest="",
            note="",
            office="HQ",
            actor="a",
            event_id="e",
            recorded_sequence=sequence,
            recorded_at=T,
        )

    timeline = Timeline(
        as_of=AsOf(11, T),
        first=AsOf(1, T),
        last=AsOf(11, T),
        releases=[release("R1", 1), release("R2", 6), release("R3", 11)],
    )
    page = Page("KAZ", AsOf(6, T, now=False), _asked(as_of_sequence=6), timeline)

    slider = page.slider
    assert slider is not None
    assert (slider.low, slider.high, slider.value) == (1, 11, 6)
    assert [(m.name, m.percent) for m in slider.marks] == [("R1", 0), ("R2", 50), ("R3", 100)]
    assert slider.marks[1].url == "/countries/KAZ?year=2020&metric=%2A&release=R2"
    assert Page("KAZ", AsOf(0, None), _asked(), Timeline(as_of=AsOf(0, None))).slider is None


def test_changed_figures_are_listed_with_their_difference():
    then = [
        Cell(country="KAZ", name="Kazakhstan", activities=3, totals={"people_trained": 1631}),
        Cell(country="KGZ", name="Kyrgyzstan", activities=1),
    ]
    now = [
        Cell(country="KAZ", name="Kazakhstan", activities=2, totals={"people_trained": 631}),
        Cell(country="UZB", name="Uzbekistan", activities=1, totals={"firearms_seized": 250}),
    ]

    changes = cell_changes(then, now, "country")

    assert [(c.key, c.metric, c.then, c.now, c.delta) for c in changes] == [
        ("KAZ", "*", 3, 2, "-1"),
        ("KAZ", "people_trained", 1631, 631, "-1,000"),
        ("KGZ", "*", 1, 0, "-1"),
        ("UZB", "*", 0, 1, "+1"),
        ("UZB", "firearms_seized", 0, 250, "+250"),
    ]


@pytest.mark.parametrize(("text", "sequence"), [(None, None), ("", None), (" 5 ", 5), ("-1", -1)])
def test_a_sequence_from_a_form(text: str | None, sequence: int | None):
    assert parse_sequence(text) == sequence


def test_a_sequence_that_is_not_a_number_is_refused_by_name():
    with pytest.raises(BadParameterError) as refused:
        parse_sequence("5th")

    assert refused.value.parameter == "as_of_sequence"


def test_an_instant_asked_keeps_its_fraction():
    assert format_exact(T + dt.timedelta(seconds=4.5)) == "2021-06-30 12:00:04.5 UTC"
    assert format_exact(T) == "2021-06-30 12:00:00 UTC"


def test_the_way_back_to_now_is_the_page_asked_quoted(client: TestClient):
    html = get_html(client, "/programmes/Global%20Programme%20on%20Cybercrime?as_of_sequence=5")

    assert 'href="/programmes/Global%20Programme%20on%20Cybercrime" data-testid="back-to-now"' in (
        html
    )
    assert 'action="/programmes/Global%20Programme%20on%20Cybercrime"' in html
