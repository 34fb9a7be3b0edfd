"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, over a live server.

The server is the API's app (dashboard included) under uvicorn on a free loopback port, over the
seeded projection of tests/query_seed.py, so the figures are those worked out there, with one
release (:data:`RELEASE`, of the figures as of sequence 5, before the withdrawal). Each test
saves a screenshot of what it saw under its own temporary directory.

Playwright is pointed at the system Chromium; nothing here downloads a browser. Without
/usr/bin/chromium or the playwright package the tests are skipped, saying which is missing
(`.ci/run` installs Chromium when it can).
"""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from services.api.app import create_app
from tests.query_seed import T0, seed_projection
from tools.dashboard_screenshots import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)",
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'"
)


RELEASE = "2021-H1"


def add_release(real: Path) -> None:
    """The release of the figures as of sequence 5, as the projector would record it."""
    conn = sqlite3.connect(real)
    with conn:
        conn.execute(
            "INSERT INTO releases (name, sequence, digest, note, office, actor, event_id, "
            "recorded_sequence, recorded_ns, data) VALUES (?, 5, ?, 'First half', 'HQ', "
            "'auditor@example.org', 'release-1', 7, ?, x'')",
            (RELEASE, "ab" * 32, (int(T0.timestamp()) + 6) * 1_000_000_000),
        )
    conn.close()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard over the seeded projection, served from a thread of this process."""
    live = tmp_path_factory.mktemp("dashboard") / "projections" / "ledger.db"
    add_release(seed_projection(live))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(live), lifespan="off", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard's server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    """A fresh tab at desktop size that refuses every request off this server."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url)
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    tab = context.new_page()
    refused: list[str] = []
    tab.on("console", lambda message: refused.append(message.text))
    yield tab
    context.close()
    # Nothing a page shows may come from anywhere else: the machines may have no internet.
    assert [url for url in requested if not url.startswith(base_url)] == []
    # The server's Content-Security-Policy blocked nothing the pages need.
    assert [text for text in refused if "Content Security Policy" in text] == []


def shoot(page: Any, tmp_path: Path, name: str) -> Path:
    """Save what the page shows now, whole, and return the file."""
    target = tmp_path / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    return target


def test_overview_shows_totals_chart_and_status(page: Any, tmp_path: Path):
    page.goto("/")

    assert page.title() == "Overview · Activity Ledger"
    assert page.get_by_role("heading", level=1).inner_text() == "Technical cooperation at a glance"
    status = page.get_by_test_id("status").inner_text()
    assert "sequence 7" in status and "Quarantined 0" in status
    chart = page.get_by_role("img", name="Activities per year")
    assert chart.is_visible()
    assert chart.locator("rect").count() == 2
    assert page.get_by_test_id("as-of-sequence").inner_text() == "7"
    shoot(page, tmp_path, "overview")


def test_a_person_reaches_a_country_and_sees_its_figures(page: Any, tmp_path: Path):
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Countries").click()
    page.get_by_role("link", name="Kazakhstan").first.click()

    assert page.url.endswith("/countries/KAZ")
    assert page.get_by_role("heading", level=1).inner_text() == "Kazakhstan"
    assert page.get_by_test_id("total-people_trained").inner_text() == "631"
    note = page.get_by_test_id("multi-country-note")
    assert note.is_visible() and "not in Kazakhstan's totals" in note.inner_text()
    assert page.get_by_role("link", name="Regional workshop on border control").count() >= 1
    shoot(page, tmp_path, "country")


def test_clicking_a_figure_lists_the_activities_behind_it(page: Any, tmp_path: Path):
    page.goto("/countries/KAZ")

    page.get_by_test_id("total-people_trained").get_by_role("link").click()

    page.wait_for_url("**/provenance?country=KAZ&metric=people_trained")
    assert page.get_by_test_id("provenance-total").inner_text() == "631"
    rows = page.locator("tr[data-activity]")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.activity)") == [
        "CYBER-SHARED",
        "KAZ-TRAINING-1",
        "MULTI-1",
    ]
    assert "listed only" in rows.nth(2).inner_text()
    shoot(page, tmp_path, "provenance")


def test_search_by_words_and_a_filter(page: Any, tmp_path: Path):
    page.goto("/search")

    page.get_by_label("Words").fill("trigger")
    page.get_by_label("Kind").select_option("operation")
    page.get_by_role("button", name="Search").click()

    page.wait_for_url("**/search?q=trigger*")
    results = page.locator("table.activities tbody tr")
    assert results.count() == 1
    assert "Firearms operation" in results.first.inner_text()
    assert page.get_by_label("Words").input_value() == "trigger"
    shoot(page, tmp_path, "search")


def test_the_security_policy_lets_the_stylesheet_apply(page: Any):
    response = page.goto("/countries/KAZ")

    assert "default-src 'none'" in response.headers["content-security-policy"]
    # dashboard.css paints the page's ground #f5f7fa: the one stylesheet loaded.
    ground = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert ground == "rgb(245, 247, 250)"
    assert page.locator("svg.chart").first.is_visible()


def test_keyboard_and_narrow_screen(browser: Any, base_url: str, tmp_path: Path):
    context = browser.new_context(viewport={"width": 375, "height": 800}, base_url=base_url)
    tab = context.new_page()
    tab.goto("/countries/KAZ")

    tab.keyboard.press("Tab")
    focused = tab.evaluate("document.activeElement.textContent")
    width = tab.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")

    assert focused == "Skip to content"
    assert width[0] <= width[1], "the page scrolls sideways on a narrow screen"
    shoot(tab, tmp_path, "country-narrow")
    context.close()


# -- time travel -------------------------------------------------------------------------------


def test_moving_the_slider_shows_the_ledger_as_it_stood(page: Any, tmp_path: Path):
    page.goto("/countries/KAZ")
    assert page.get_by_test_id("total-people_trained").inner_text() == "631"
    slider = page.get_by_label("Ledger as of sequence")
    assert slider.input_value() == "7"

    slider.fill("5")
    page.get_by_role("button", name="Show sequence").click()

    page.wait_for_url("**/countries/KAZ?as_of_sequence=5")
    # Before the withdrawal at [6]: 571 + 60 + 1000.
    assert page.get_by_test_id("total-people_trained").inner_text() == "1,631"
    banner = page.get_by_test_id("as-of-banner")
    assert banner.is_visible() and "sequence 5" in banner.inner_text()
    assert page.get_by_label("Ledger as of sequence").input_value() == "5"
    shoot(page, tmp_path, "country-as-of")

    # Every link keeps the sequence: the menu's, and a figure's.
    nav = page.get_by_role("navigation", name="Main").get_by_role("link", name="Countries")
    assert nav.get_attribute("href") == "/countries?as_of_sequence=5"
    page.get_by_test_id("total-people_trained").get_by_role("link").click()
    page.wait_for_url("**/provenance?country=KAZ&metric=people_trained&as_of_sequence=5")
    assert page.get_by_test_id("provenance-total").inner_text() == "1,631"
    assert "WITHDRAWN-1" in page.locator("tr[data-activity]").all_inner_texts()[-1]

    page.get_by_test_id("back-to-now").click()
    page.wait_for_url(re.compile(r".*/provenance\?country=KAZ&metric=people_trained$"))
    assert page.get_by_test_id("provenance-total").inner_text() == "631"
    assert page.get_by_test_id("as-of-banner").count() == 0


def test_a_date_before_the_first_event_shows_nothing_yet(page: Any):
    page.goto("/countries/KAZ")

    page.get_by_label("Date", exact=True).fill("2021-06-30")
    page.get_by_role("button", name="Show date").click()

    page.wait_for_url("**/countries/KAZ?as_of=2021-06-30")
    assert "before the first event" in page.get_by_test_id("as-of-banner").inner_text()
    assert page.get_by_test_id("total-activities").inner_text() == "0"


def test_a_release_marker_leads_to_the_release_sequence(page: Any, tmp_path: Path):
    page.goto("/countries/KAZ")
    mark = page.get_by_test_id("release-mark")
    assert mark.inner_text() == RELEASE and mark.is_visible()
    # Two thirds along the slider (sequence 5 of 1..7): right of its middle.
    track = page.get_by_label("Ledger as of sequence").bounding_box()
    box = mark.bounding_box()
    assert track["x"] + track["width"] / 2 < box["x"] + box["width"] < track["x"] + track["width"]
    shoot(page, tmp_path, "release-marker")

    mark.click()

    page.wait_for_url(f"**/countries/KAZ?release={RELEASE}")
    assert page.get_by_test_id("banner-sequence").inner_text() == "5"
    assert page.get_by_test_id("total-people_trained").inner_text() == "1,631"
    assert page.get_by_label("Ledger as of sequence").input_value() == "5"
    page.get_by_role("link", name=RELEASE).last.click()  # the banner names the release

    page.wait_for_url(f"**/releases/{RELEASE}")
    changed = page.locator("tr[data-activity]")
    assert changed.evaluate_all("rows => rows.map(r => r.dataset.activity)") == [
        "UZB-OP-1",
        "WITHDRAWN-1",
    ]
    assert "-1,000" in page.locator('tr[data-change="KAZ people_trained"]').inner_text()
    shoot(page, tmp_path, "release")


def test_the_document_select_narrows_the_page(page: Any):
    page.goto("/countries/KAZ?as_of_sequence=5")

    page.get_by_label("Document", exact=True).select_option("SG report 2021 (A/76, item 109)")
    page.get_by_role("button", name="Show document").click()

    page.wait_for_url("**/countries/KAZ?as_of_sequence=5&document=*")
    # Every seed activity cites that report: the same figures, narrowed and said so.
    assert page.get_by_test_id("total-people_trained").inner_text() == "1,631"
    assert page.get_by_test_id("banner-document").inner_text() == "SG report 2021 (A/76, item 109)"


# -- the map and print -------------------------------------------------------------------------


def test_the_map_shows_links_each_country_and_colours_those_with_figures(page: Any, tmp_path: Path):
    page.goto("/?metric=people_trained")

    world = page.get_by_role("img", name="People trained per country, in people")
    assert world.is_visible()
    countries = world.locator("a[data-country]")
    assert countries.count() > 150
    hrefs = countries.evaluate_all(
        "links => links.map(a => [a.dataset.country, a.getAttribute('href')])"
    )
    assert all(href == f"/countries/{code}" for code, href in hrefs)
    fill = "code => getComputedStyle(document.querySelector(`a[data-country=${code}] path`)).fill"
    none = page.evaluate(fill, "FRA")
    # The seed trains people in Kazakhstan (631) and Uzbekistan (40); Kyrgyzstan only by
    # MULTI-1, without shares, so it has a colour of its own, neither a figure's nor none's.
    kaz, uzb, kgz = (page.evaluate(fill, code) for code in ("KAZ", "UZB", "KGZ"))
    assert none not in (kaz, uzb, kgz)
    assert len({kaz, uzb, kgz}) == 3
    assert "Kazakhstan: 631 people" in world.locator("a[data-country=KAZ] title").text_content()
    shoot(page, tmp_path, "map")

    world.locator("a[data-country=KAZ]").click()
    page.wait_for_url("**/countries/KAZ")
    assert page.get_by_role("heading", level=1).inner_text() == "Kazakhstan"


def test_clicking_a_column_heading_sorts_the_table(page: Any):
    page.goto("/countries")
    names = page.locator("section", has=page.locator("#all-countries")).locator("tbody th a")
    assert names.all_inner_texts() == ["Kazakhstan", "Kyrgyzstan", "Uzbekistan"]

    page.get_by_role("link", name="People trained").click()

    page.wait_for_url("**/countries?sort=-people_trained")
    # 631, 40, none.
    assert names.all_inner_texts() == ["Kazakhstan", "Uzbekistan", "Kyrgyzstan"]


def test_a_page_prints_without_navigation_and_with_link_addresses(page: Any, tmp_path: Path):
    page.goto("/countries/KAZ")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.is_visible()

    page.emulate_media(media="print")

    assert not nav.is_visible()
    assert not page.get_by_label("Ledger as of sequence").is_visible()
    after = page.evaluate("getComputedStyle(document.querySelector('.refs a'), '::after').content")
    assert after == '" (/activities/MULTI-1)"'
    pdf = tmp_path / "country.pdf"
    page.pdf(path=str(pdf), format="A4")
    assert pdf.read_bytes().startswith(b"%PDF")
