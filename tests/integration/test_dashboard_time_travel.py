"""The dashboard as of a past moment, narrowed to one document, and against a release, on the
seed ledger (tests/query_seed.py), whose event n was recorded at 12:00:0(n-1) on 30 June 2021.

Figures are worked out by hand from the seed's story: before the withdrawal at [6],
Kazakhstan's people trained are 571 + 60% of 100 + 1000 = 1631; after it, 631. The firearms
operation in Uzbekistan seized 200 until its revision at [7] made it 250. A release is a row of
the projection's ``releases`` table, written here directly, as the projector would.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from services.api.app import create_app
from tests.query_seed import DOCUMENT_2021, DOCUMENT_2022, T0, seed_projection, seed_two_reports

OLD, NEW = DOCUMENT_2021, DOCUMENT_2022
RELEASE = "2021-H1"


def add_release(real: Path, name: str = RELEASE, sequence: int = 5) -> None:
    """A release of the figures as of ``sequence``, made by an event at [7]."""
    conn = sqlite3.connect(real)
    with conn:
        conn.execute(
            "INSERT INTO releases (name, sequence, digest, note, office, actor, event_id, "
            "recorded_sequence, recorded_ns, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                sequence,
                "ab" * 32,
                "Figures for the first half of 2021",
                "HQ",
                "auditor@example.org",
                "release-event-1",
                7,
                (int(T0.timestamp()) + 6) * 1_000_000_000,
                b"{}",
            ),
        )
    conn.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    live = tmp_path / "projections" / "ledger.db"
    add_release(seed_projection(live))
    with TestClient(app=create_app(live, wait=0.3)) as test_client:
        yield test_client


@pytest.fixture
def two_reports(tmp_path: Path) -> Iterator[TestClient]:
    live = tmp_path / "projections" / "ledger.db"
    seed_two_reports(live)
    with TestClient(app=create_app(live, wait=0.3)) as test_client:
        yield test_client


def get_html(client: TestClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def text_of(html: str, name: str) -> str:
    """The text of the element with ``data-testid=name``, tags and extra spaces stripped."""
    found = re.search(rf'<(\w+)[^>]*data-testid="{re.escape(name)}"[^>]*>(.*?)</\1>', html, re.S)
    assert found, f"no {name} in the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", found.group(2))).strip()


def links(html: str) -> list[tuple[str, str]]:
    """Every link of the page as (the whole opening tag, its target, unescaped)."""
    return [
        (tag, target.replace("&amp;", "&"))
        for tag, target in re.findall(r'(<a [^>]*href="([^"]*)"[^>]*>)', html)
    ]


# -- as of a past sequence or instant ----------------------------------------------------------


def test_a_country_before_the_withdrawal_and_now(client: TestClient):
    then = get_html(client, "/countries/KAZ?as_of_sequence=5")
    now = get_html(client, "/countries/KAZ")

    assert text_of(then, "total-people_trained") == "1,631"
    assert text_of(then, "total-activities") == "3"
    banner = text_of(then, "as-of-banner")
    assert "as of stream sequence 5, recorded 2021-06-30 12:00:04 UTC" in banner
    assert "not now" in banner
    assert text_of(now, "total-people_trained") == "631"
    assert 'data-testid="as-of-banner"' not in now


def test_every_link_of_a_past_page_keeps_its_sequence(client: TestClient):
    html = get_html(client, "/countries/KAZ?as_of_sequence=5&year=2020")

    elsewhen = {"back-to-now": "", "release-mark": ""}
    kept = []
    for tag, target in links(html):
        testid = re.search(r'data-testid="([^"]+)"', tag)
        if testid and testid.group(1) in elsewhen:
            elsewhen[testid.group(1)] = target
        elif not target.startswith(("#", "/static/", "/schema")):
            kept.append(target)
    assert len(kept) > 20
    assert [target for target in kept if "as_of_sequence=5" not in target] == []
    # The way back to now drops it, and a release marker asks for the release instead.
    assert elsewhen["back-to-now"] == "/countries/KAZ?year=2020"
    assert elsewhen["release-mark"] == f"/countries/KAZ?year=2020&release={RELEASE}"
    # The forms of the page carry it too, but for the time control's own.
    assert '<input type="hidden" name="as_of_sequence" value="5">' in html
    assert re.search(r'<input type="range" [^>]*name="as_of_sequence"[^>]*value="5"', html)


def test_a_figure_of_the_past_leads_to_its_activities_then(client: TestClient):
    html = get_html(client, "/countries/KAZ?as_of_sequence=5")
    link = re.search(r'href="([^"]+)"[^>]*>1,631</a>', html)
    assert link

    provenance = get_html(client, link.group(1).replace("&amp;", "&"))

    assert text_of(provenance, "provenance-total") == "1,631"
    assert re.findall(r'data-activity="([^"]+)"', provenance) == [
        "CYBER-SHARED",
        "KAZ-TRAINING-1",
        "MULTI-1",
        "WITHDRAWN-1",
    ]


def test_an_instant_shows_the_last_event_recorded_by_then(client: TestClient):
    html = get_html(client, "/countries/KAZ?as_of=2021-06-30T12:00:04.5Z")

    assert text_of(html, "banner-sequence") == "5"
    assert text_of(html, "total-people_trained") == "1,631"
    assert "the last event recorded by 2021-06-30 12:00:04.5 UTC" in text_of(html, "as-of-banner")
    assert 'href="/years/2020?as_of=2021-06-30T12%3A00%3A04.5Z"' in html


def test_a_date_before_the_first_event_shows_an_empty_ledger(client: TestClient):
    html = get_html(client, "/countries/KAZ?as_of=2021-06-30")

    assert text_of(html, "banner-sequence") == "0"
    assert "before the first event" in text_of(html, "as-of-banner")
    assert text_of(html, "total-activities") == "0"
    assert 'value="2021-06-30"' in html  # the date field shows the date asked


def test_an_activity_as_it_was_before_its_revision(client: TestClient):
    then = get_html(client, "/activities/UZB-OP-1?as_of_sequence=6")
    now = get_html(client, "/activities/UZB-OP-1")

    assert "State at sequence 6" in then and "version 1" in then
    assert re.search(r"Firearms seized</th><td class=\"num\">200<", then)
    assert "Trigger" not in then
    assert 'href="/v1/activities/UZB-OP-1?as_of_sequence=6"' in then
    assert re.search(r"Firearms seized</th><td class=\"num\">250<", now)


def test_an_activity_not_yet_reported_then_is_not_found(client: TestClient):
    response = client.get("/activities/WITHDRAWN-1?as_of_sequence=4")

    assert response.status_code == 404
    assert "as of sequence 4" in response.text


def test_search_as_of_a_sequence_finds_what_was_then(client: TestClient):
    then = get_html(client, "/search?status=withdrawn&as_of_sequence=5")
    after = get_html(client, "/search?status=withdrawn&as_of_sequence=6")

    assert "WITHDRAWN-1" not in then.split('id="activities"')[1]
    assert '<span class="code">WITHDRAWN-1</span>' in after
    assert '<input type="hidden" name="as_of_sequence" value="6">' in after


def test_the_downloads_of_a_past_page_list_what_it_shows(client: TestClient):
    html = get_html(client, "/countries/KAZ?as_of_sequence=5")
    downloads = re.findall(r'class="download" href="([^"]+)"', html)
    assert downloads

    for link in downloads:
        response = client.get(link.replace("&amp;", "&"))
        assert response.status_code == 200, (link, response.text)
        assert response.headers["x-as-of-sequence"] == "5", link
    activities = client.get("/csv/activities?country=KAZ&as_of_sequence=5").text
    assert "WITHDRAWN-1" in activities and ",active," in activities.split("WITHDRAWN-1")[1]


@pytest.mark.parametrize(
    ("query", "status", "field", "words"),
    [
        ("as_of=yesterday", 400, "as_of", "is not an instant"),
        ("as_of=2021-06-30T12:00:00", 400, "as_of", "has no time zone"),
        ("as_of=2999-01-01T00:00:00Z", 400, "as_of", "sequence 7"),
        ("as_of=2021-06-30Z&as_of_sequence=3", 400, "as_of", "not both"),
        ("as_of_sequence=8", 400, "as_of_sequence", "7"),
        ("release=NO-SUCH", 404, "release", "no release"),
        ("document=A/99/1", 404, "document", "no activity cites"),
    ],
)
def test_a_bad_scope_is_a_page_that_names_it(
    client: TestClient, query: str, status: int, field: str, words: str
):
    response = client.get(f"/countries/KAZ?{query}")

    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<strong>{field}</strong>:" in response.text
    assert words in response.text
    assert "Traceback" not in response.text


# -- one document ------------------------------------------------------------------------------


def test_a_document_narrows_every_figure(two_reports: TestClient):
    new = get_html(two_reports, f"/countries/KAZ?document={NEW}")
    old = get_html(two_reports, f"/countries/KAZ?document={OLD}")
    both = get_html(two_reports, "/countries/KAZ")

    # The 2022 report: its own 40, and the 2021 training it cites again.
    assert text_of(new, "total-people_trained") == "611"
    assert text_of(new, "banner-document") == NEW
    assert 'href="/years/2020?document=A%2F77%2F100"' in new
    assert text_of(old, "total-people_trained") == "631"
    assert text_of(both, "total-people_trained") == format(571 + 60 + 40, ",")
    # Both documents are offered, the one shown selected; "All documents" is blank.
    assert f'<option value="{NEW}" selected>' in new
    assert '<option value="">All documents</option>' in both


def test_a_document_as_of_before_a_revision_cited_it(two_reports: TestClient):
    html = get_html(two_reports, f"/countries/KAZ?document={NEW}&as_of_sequence=8")

    assert text_of(html, "total-people_trained") == "40"
    banner = text_of(html, "as-of-banner")
    assert "sequence 8" in banner and NEW in banner


def test_the_document_select_sends_a_blank_for_all(two_reports: TestClient):
    html = get_html(two_reports, "/countries/KAZ?document=&as_of_sequence=")

    assert text_of(html, "total-people_trained") == "671"
    assert 'data-testid="as-of-banner"' not in html


# -- releases ----------------------------------------------------------------------------------


def test_a_release_is_a_marker_on_every_page(client: TestClient):
    html = get_html(client, "/")

    mark = re.search(r'<a class="mark at-(\d+)[^"]*" href="([^"]+)"[^>]*>([^<]+)</a>', html)
    assert mark
    # Sequence 5 of the history 1..7: two thirds along.
    assert mark.groups() == ("67", f"/?release={RELEASE}", RELEASE)


def test_a_page_as_a_release_states_it(client: TestClient):
    html = get_html(client, f"/countries/KAZ?release={RELEASE}")

    assert text_of(html, "total-people_trained") == "1,631"
    banner = text_of(html, "as-of-banner")
    assert "sequence 5" in banner and f"the sequence release {RELEASE} states" in banner
    assert f'href="/years/2020?release={RELEASE}"' in html
    assert f'href="/csv/country/KAZ/by_year?release={RELEASE}"' in html


def test_the_api_is_asked_for_a_release_by_its_sequence(client: TestClient):
    html = get_html(client, f"/?release={RELEASE}")
    link = 'href="/v1/years?format=csv&amp;as_of_sequence=5"'
    assert link in html

    response = client.get("/v1/years?format=csv&as_of_sequence=5")

    assert response.status_code == 200
    assert response.headers["x-as-of-sequence"] == "5"


def test_the_releases_are_listed(client: TestClient, tmp_path: Path):
    html = get_html(client, "/releases")

    assert re.findall(r'data-release="([^"]+)"', html) == [RELEASE]
    assert f'href="/releases/{RELEASE}"' in html
    assert f'href="/?release={RELEASE}"' in html
    assert client.get("/v1/releases").json()["items"][0]["name"] == RELEASE

    live = tmp_path / "empty" / "projections" / "ledger.db"
    seed_projection(live)
    with TestClient(app=create_app(live, wait=0.3)) as plain:
        empty = get_html(plain, "/releases")
    assert "No release has been made" in empty
    assert 'data-testid="release-mark"' not in empty


def test_a_release_page_lists_what_changed_since(client: TestClient):
    html = get_html(client, f"/releases/{RELEASE}")

    assert text_of(html, "release-sequence") == "5"
    assert f'href="/v1/releases/{RELEASE}"' in html
    assert client.get(f"/v1/releases/{RELEASE}").json()["sequence"] == 5
    facts = text_of(html, "release-facts")
    assert "auditor@example.org (HQ)" in facts and "ab" * 32 in facts
    rows = {
        key: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).split()
        for key, row in re.findall(r'<tr data-change="([^"]+)">(.*?)</tr>', html, re.S)
    }
    # The withdrawal took 1000 trained from Kazakhstan, GENERAL and the ledger; the revision
    # added 50 firearms in Uzbekistan.
    assert rows["KAZ people_trained"][-3:] == ["1,631", "631", "-1,000"]
    assert rows["KAZ *"][-3:] == ["3", "2", "-1"]
    assert rows["UZB firearms_seized"][-3:] == ["200", "250", "+50"]
    assert rows["GENERAL people_trained"][-3:] == ["1,601", "601", "-1,000"]
    assert rows["total people_trained"][-3:] == ["1,701", "701", "-1,000"]
    assert "GPCC *" not in rows and "KGZ *" not in rows  # unchanged
    changed = text_of(html, "changed-activities")
    assert re.findall(r'<tr data-activity="([^"]+)"', html) == ["UZB-OP-1", "WITHDRAWN-1"]
    assert "Firearms seized: 200 firearms → 250 firearms" in changed
    assert "active → withdrawn" in changed
    assert 'href="/activities/UZB-OP-1?release=2021-H1"' in html
    assert 'href="/activities/UZB-OP-1#history"' in html
    assert 'href="/provenance?country=KAZ&amp;metric=people_trained&amp;release=2021-H1"' in html


def test_a_release_against_another_moment(client: TestClient):
    # At [6] the withdrawal is made, the revision not yet.
    html = get_html(client, f"/releases/{RELEASE}?as_of_sequence=6")

    assert re.findall(r'<tr data-activity="([^"]+)"', html) == ["WITHDRAWN-1"]
    assert "UZB firearms_seized" not in html
    assert "At sequence 6" in html
