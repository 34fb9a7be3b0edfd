"""The dashboard for report writers: sorted tables, the world map and a history in words.

Over the seed of tests/query_seed.py, plus [8] 10 trained in Germany (DEU), [9] 5 in Algeria
(DZA) and [10] 3 in Singapore (SGP), too small for a 1:110m map. So the people trained per
country are KAZ 631 (571 + 60% of 100), UZB 40, DEU 10, DZA 5, SGP 3 and KGZ none (only
MULTI-1, without shares, names it); by name the countries read Algeria, Germany, Kazakhstan,
Kyrgyzstan, Singapore, Uzbekistan, which is not their codes' order (DEU before DZA).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from events.model import CountryShare
from projections.answers import Cell
from projections.apply import Applier
from projections.db import open_writer
from replay.history import FieldChange
from services.api.app import create_app
from services.api.dashboard.history_text import change_rows, plain
from services.api.dashboard.sorting import Sort, parse_sort, sort_cells
from services.api.dashboard.worldmap import bands_of, load_shapes
from tests.factories import make_reported, sealed
from tests.query_seed import raw_messages, seed_projection

TRAINED = {"KAZ": 571 + 100 * 60 // 100, "UZB": 100 * 40 // 100, "DEU": 10, "DZA": 5, "SGP": 3}
NAMES = {
    "DZA": "Algeria",
    "DEU": "Germany",
    "KAZ": "Kazakhstan",
    "KGZ": "Kyrgyzstan",
    "SGP": "Singapore",
    "UZB": "Uzbekistan",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    live = tmp_path_factory.mktemp("reading") / "projections" / "ledger.db"
    real = seed_projection(live)
    more = [
        sealed(make_reported(activity_id=f"{code}-1", countries=[CountryShare(code)], **extra))
        for code, extra in [
            ("DEU", {"metrics": {"people_trained": 10}}),
            ("DZA", {"metrics": {"people_trained": 5}}),
            ("SGP", {"metrics": {"people_trained": 3}}),
        ]
    ]
    conn = open_writer(real)
    try:
        Applier(conn).apply(raw_messages(more, first=8))
    finally:
        conn.close()
    with TestClient(app=create_app(live, wait=0.3)) as test_client:
        yield test_client


def get_html(client: TestClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.text


def rows(html: str, table: str, key: str) -> list[str]:
    """The row keys of the table under the heading ``table``, top to bottom."""
    start = html.index(f'id="{table}"')
    body = html[start : html.index("</table>", start)]
    return re.findall(rf'<th scope="row"><a href="/{key}/([^"?]+)"', body)


def by_trained(descending: bool) -> list[str]:
    """Codes by people trained (KGZ has none), ties by name: worked out from :data:`TRAINED`."""
    figures = {code: TRAINED.get(code, 0) for code in NAMES}
    ordered = sorted(sorted(NAMES, key=NAMES.__getitem__), key=figures.__getitem__)
    return ordered[::-1] if descending else ordered


# -- sorting -----------------------------------------------------------------------------------


def test_the_country_list_reads_by_name_not_by_code(client: TestClient):
    html = get_html(client, "/countries")

    assert rows(html, "all-countries", "countries") == [
        "DZA",  # Algeria, though DEU < DZA
        "DEU",
        "KAZ",
        "KGZ",
        "SGP",
        "UZB",
    ]


@pytest.mark.parametrize(
    ("url", "table", "key", "expected"),
    [
        ("/countries?sort=-name", "all-countries", "countries", sorted(NAMES, key=NAMES.get)[::-1]),
        ("/countries?sort=-people_trained", "all-countries", "countries", by_trained(True)),
        ("/countries?sort=people_trained", "all-countries", "countries", by_trained(False)),
        # One multi-country activity names KAZ, KGZ and UZB; the others by name after them.
        (
            "/countries?sort=-multi_country",
            "all-countries",
            "countries",
            ["KAZ", "KGZ", "UZB", "DZA", "DEU", "SGP"],
        ),
        # By name: "Global Programme on Cybercrime" before "UNODC general / ...".
        ("/programmes", "all-programmes", "programmes", ["GPCC", "GENERAL"]),
        ("/programmes?sort=-name", "all-programmes", "programmes", ["GENERAL", "GPCC"]),
        ("/years", "all-years", "years", ["2020", "2021"]),
        ("/years?sort=-name", "all-years", "years", ["2021", "2020"]),
        # 2021 seized 250 firearms, 2020 none.
        ("/years?sort=-firearms_seized", "all-years", "years", ["2021", "2020"]),
        # 2020: KAZ-TRAINING-1 571, MULTI-1 30, DEU 10, DZA 5, SGP 3 = 619; 2021: 100.
        ("/years?sort=people_trained", "all-years", "years", ["2021", "2020"]),
        # Kazakhstan: 571 in 2020 under GENERAL, 60 in 2021 under GPCC.
        ("/countries/KAZ?sort=people_trained", "by-year", "years", ["2021", "2020"]),
        ("/countries/KAZ?sort=people_trained", "by-programme", "programmes", ["GPCC", "GENERAL"]),
        ("/countries/KAZ?sort=-name", "by-programme", "programmes", ["GENERAL", "GPCC"]),
        # 2021 by country: UZB has 40 trained and 250 firearms, KAZ 60 trained.
        ("/years/2021?sort=-firearms_seized", "by-country", "countries", ["UZB", "KAZ"]),
        ("/years/2021?sort=-people_trained", "by-country", "countries", ["KAZ", "UZB"]),
    ],
)
def test_each_table_sorts_as_its_sort_link_says(
    client: TestClient, url: str, table: str, key: str, expected: list[str]
):
    assert rows(get_html(client, url), table, key) == expected


@pytest.mark.parametrize(
    "url",
    [
        "/countries?sort=code",
        "/programmes?sort=-",
        "/years?sort=people",
        "/countries/KAZ?sort=x",
        "/years/2020?sort=%3Cscript%3Ealert(1)%3C/script%3E",
    ],
)
def test_an_unknown_sort_key_is_refused_naming_the_choices(client: TestClient, url: str):
    response = client.get(url)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    text = re.sub(r"<[^>]+>", "", response.text)
    assert "sort: this page has no column" in text
    assert "name, activities, multi_country" in text
    assert "<script>" not in response.text


def test_a_column_heading_links_to_the_page_sorted_by_it_keeping_its_moment(client: TestClient):
    html = get_html(client, "/countries?as_of_sequence=5&sort=-people_trained")

    heading = re.search(
        r'<th scope="col" class="num" aria-sort="(\w+)"><a [^>]*data-sort="people_trained"', html
    )
    assert heading and heading.group(1) == "descending"
    # Again reverses it; another column starts from its natural end; the moment stays.
    assert 'href="/countries?sort=people_trained&amp;as_of_sequence=5"' in html
    assert 'href="/countries?sort=name&amp;as_of_sequence=5"' in html
    assert 'href="/countries?sort=-activities&amp;as_of_sequence=5"' in html


def test_names_sort_as_read_accents_and_case_aside():
    cells = [
        Cell(country="DEU", name="Germany"),
        Cell(country="ALA", name="Åland Islands"),
        Cell(country="DZA", name="Algeria"),
        Cell(country="ZZZ", name="albania"),
    ]

    ordered = sort_cells(cells, parse_sort(None, []), "country")

    assert [cell.name for cell in ordered] == ["Åland Islands", "albania", "Algeria", "Germany"]
    assert Sort("name").toggle("people_trained") == "-people_trained"
    assert Sort("people_trained", True).toggle("people_trained") == "people_trained"


# -- the world map -----------------------------------------------------------------------------


def map_classes(html: str) -> dict[str, str]:
    """Each country on the map, by code: the colour class of its shape."""
    found = re.findall(
        r'<a href="/countries/([A-Z]{3})" data-country="\1" tabindex="-1"><path class="(\w+)"', html
    )
    return dict(found)


@pytest.mark.parametrize("url", ["/", "/countries"])
def test_the_map_links_every_country_to_its_page(client: TestClient, url: str):
    html = get_html(client, url)
    svg = html[
        html.index('<svg class="worldmap"') : html.index("</svg>", html.index('class="worldmap"'))
    ]

    shapes = load_shapes()
    assert len(shapes.paths) > 150
    links = re.findall(r'<a href="([^"]+)" data-country="([A-Z]{3})" tabindex="-1">', svg)
    assert sorted(code for _, code in links) == sorted(shapes.paths)
    assert all(href == f"/countries/{code}" for href, code in links)
    assert svg.count("<path") == len(shapes.paths) == svg.count("<title") - 1


def test_a_metric_colours_the_countries_with_a_figure_of_it(client: TestClient):
    classes = map_classes(get_html(client, "/?metric=people_trained"))

    coloured = {code for code, css in classes.items() if css.startswith("m") and css != "m0"}
    assert coloured == {code for code, trained in TRAINED.items() if trained and code != "SGP"}
    # Kyrgyzstan only by MULTI-1, without shares: shown apart, not as a figure or as none.
    assert classes["KGZ"] == "apart"
    assert classes["FRA"] == "m0"
    # Five figures (3, 5, 10, 40, 631, Singapore's off the map), five colours: the most
    # trained is the darkest, Algeria's 5 the second lightest.
    assert classes["KAZ"] == "m5" and classes["DZA"] == "m2" and classes["UZB"] == "m4"

    firearms = map_classes(get_html(client, "/countries?metric=firearms_seized"))
    assert {code for code, css in firearms.items() if css not in ("m0", "apart")} == {"UZB"}


def test_the_map_says_each_figure_on_hover_and_lists_what_it_cannot_draw(client: TestClient):
    html = get_html(client, "/?metric=people_trained")

    assert (
        "<title>Kazakhstan: 631 people; also named by 1 multi-country activity without shares, "
        "counted in no country</title>" in html
    )
    assert "<title>Algeria: 5 people</title>" in html
    assert "<title>France: no figure</title>" in html
    off_map = re.sub(r"<[^>]+>", "", html[html.index('data-testid="off-map"') :].split("</p>")[0])
    assert "Singapore" in off_map and "Kazakhstan" not in off_map


def test_an_unknown_map_metric_is_refused(client: TestClient):
    response = client.get("/?metric=cocaine_seized_kg")

    assert response.status_code == 400
    assert "no figures of" in response.text


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], []),
        ([0.0, 0.0], []),
        ([7.0, 7.0, 7.0], [("m1", 7.0, 7.0)]),
        (
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            [("m1", 1, 2), ("m2", 3, 4), ("m3", 5, 6), ("m4", 7, 8), ("m5", 9, 10)],
        ),
        ([5, 631, 10, 40], [("m1", 5, 5), ("m2", 10, 10), ("m3", 40, 40), ("m4", 631, 631)]),
    ],
)
def test_map_colours_split_the_figures_into_bands_of_equal_counts(values, expected):
    assert [(b.css, b.low, b.high) for b in bands_of([float(v) for v in values])] == expected


# -- history in words --------------------------------------------------------------------------


def test_a_revision_of_countries_and_metrics_reads_as_names_labels_and_units():
    countries = change_rows(
        FieldChange(
            "countries",
            [{"country": "KAZ", "share": None, "role": "recipient"}],
            [
                {"country": "KAZ", "share": 60.0, "role": "recipient"},
                {"country": "KGZ", "share": 40.0, "role": "recipient"},
            ],
        )
    )
    metrics = change_rows(
        FieldChange(
            "metrics",
            {"people_trained": 571, "participants": 20},
            {"people_trained": 5000, "participants": 20, "cocaine_seized_kg": 1.5},
        )
    )
    sources = change_rows(
        FieldChange(
            "sources",
            [{"document": "SG report 2021 (A/76, item 109)", "paragraph": 30}],
            [{"document": "SG report 2021 (A/76, item 109)", "paragraph": 21}],
        )
    )

    assert [(r.field, r.before, r.after) for r in countries] == [
        ("Countries", "Kazakhstan", "Kazakhstan (60%), Kyrgyzstan (40%)")
    ]
    # Participants did not change, so they are not shown.
    assert [(r.field, r.before, r.after) for r in metrics] == [
        ("People trained", "571 people", "5,000 people"),
        ("Cocaine seized kg", "none", "1.5 kg"),
    ]
    assert [(r.field, r.before, r.after) for r in sources] == [
        (
            "Sources",
            "para. 30 of SG report 2021 (A/76, item 109)",
            "para. 21 of SG report 2021 (A/76, item 109)",
        )
    ]


def test_a_first_report_has_nothing_before_and_a_field_sent_unchanged_no_row():
    reported = change_rows(
        FieldChange("countries", None, [{"country": "UZB", "share": None, "role": "venue"}]),
        first=True,
    )
    unchanged = change_rows(FieldChange("year", 2020, 2020))
    programme = change_rows(FieldChange("programme", "GENERAL", "GPCC"))

    assert [(r.before, r.after) for r in reported] == [("", "Uzbekistan (venue only)")]
    assert unchanged == []
    assert programme[0].before.endswith("(GENERAL)") and programme[0].after.endswith("(GPCC)")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"a_b": [1, {"c": None}]}, "a b: 1, c: none"),
        ([], "none"),
        (2440.0, "2,440"),
        (True, "yes"),
    ],
)
def test_any_value_is_spelt_out_never_a_repr(value, text):
    assert plain(value) == text
