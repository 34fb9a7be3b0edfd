"""The dashboard's draft downloads, on the query seed (tests/query_seed.py) over HTTP.

Kazakhstan's people trained: 571 (KAZ-TRAINING-1) + 60% of CYBER-SHARED's 100 = 631 now; as
of [5], before the withdrawal at [6], 631 + 1000 = 1631.
"""

from __future__ import annotations

import html
import io
import re

import docx
import pytest
from litestar.testing import TestClient


def draft_links(client: TestClient, page: str) -> list[str]:
    response = client.get(page)
    assert response.status_code == 200, response.text
    (block,) = re.findall(r'<p class="draft".*?</p>', response.text)
    return [html.unescape(link) for link in re.findall(r'href="([^"]+)"', block)]


@pytest.mark.parametrize(
    ("page", "figure"),
    # CYBER-SHARED's 100 trained under its programme, Kazakhstan's 60% share of them there.
    [("/programmes/GPCC", "100"), ("/countries/KAZ", "60")],
)
def test_every_programme_and_country_page_offers_word_and_markdown(
    client: TestClient, page: str, figure: str
) -> None:
    word, markdown = draft_links(client, page)
    assert (word, markdown) == (f"{page}/draft.docx", f"{page}/draft.md")

    got = client.get(word)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in got.headers["content-disposition"]
    read = docx.Document(io.BytesIO(got.content))
    assert any(run.text == figure and run.bold for p in read.paragraphs for run in p.runs)
    text = client.get(markdown).text
    assert f"**{figure}**[^" in text and "CYBER-SHARED" in text
    assert client.get(markdown).headers["x-as-of-sequence"] == "7"


def test_a_page_in_the_past_downloads_the_past(client: TestClient) -> None:
    _, markdown = draft_links(client, "/countries/KAZ?as_of_sequence=5&year=2020")
    assert markdown == "/countries/KAZ/draft.md?year=2020&as_of_sequence=5"

    then = client.get(markdown)
    assert then.status_code == 200
    assert "trained **1,571**[^" in then.text  # 571 + the 1000 withdrawn later, in 2020
    assert "Figures as of stream sequence 5 " in then.text
    assert then.headers["content-disposition"].endswith('draft-country-KAZ-2020.md"')
    assert "**1,571**" not in client.get("/countries/KAZ/draft.md?year=2020").text


def test_a_year_page_offers_no_draft_and_no_other_format_is_served(client: TestClient) -> None:
    assert '<p class="draft"' not in client.get("/years/2020").text
    assert client.get("/countries/KAZ/draft.pdf").status_code == 404


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/programmes/NOPE/draft.md", 404),
        ("/countries/XXX/draft.docx", 404),
        ("/countries/KAZ/draft.md?release=nope", 404),
        ("/countries/KAZ/draft.md?as_of=yesterday", 400),
        ("/countries/KAZ/draft.md?as_of_sequence=3&release=x", 400),
        ("/countries/KAZ/draft.md?year=abc", 400),
        ("/countries/KAZ/draft.md?sentences=/etc/passwd", 400),
    ],
)
def test_bad_asks_get_the_dashboards_error_page(client: TestClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
