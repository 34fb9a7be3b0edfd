"""HTTP hardening: security headers on every answer, a bound on request headers, no public API
without a token, and projection files only their owner's group may read.

The headers are checked on a real server (``ApiServer`` under uvicorn, with and without a
token) over the seed projection of tests/query_seed.py, so that errors written by the server
itself (401, 431) are covered as well as the app's.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from projections.db import ensure_live, new_database_path, open_writer
from services.api.app import create_app
from services.api.auth import TokenRequiredError
from services.api.server import MAX_HEAD_BYTES, ApiServer
from services.cli.exit_codes import ExitCode
from services.cli.main import main
from tests.query_seed import seed_projection

TOKEN = "s3cret-token-for-tests"

EXPECTED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
CSP = {
    "default-src": "'none'",
    "style-src": "'self'",
    "img-src": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
}


def assert_secured(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.url, name)
    policy = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives == CSP, (response.url, policy)


@pytest.fixture
def live(tmp_path: Path) -> Path:
    path = tmp_path / "projections" / "ledger.db"
    seed_projection(path)
    return path


async def _serve(live: Path, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    server = ApiServer("127.0.0.1", 0, token=token)
    server.bind()
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(create_app(live), stop))
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for _ in range(200):
            try:
                await client.get("/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        yield client
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def api(live: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API and dashboard, served without a token."""
    async for client in _serve(live, None):
        yield client


@pytest.fixture
async def guarded(live: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API and dashboard, served with a bearer token."""
    async for client in _serve(live, TOKEN):
        yield client


@pytest.mark.parametrize(
    ("url", "status", "kind"),
    [
        ("/v1/countries/KAZ", 200, "application/json"),
        ("/v1/countries?format=csv", 200, "text/csv"),
        ("/v1/activities?format=csv", 200, "text/csv"),
        ("/csv/activities", 200, "text/csv"),
        ("/", 200, "text/html"),
        ("/countries/KAZ", 200, "text/html"),
        ("/static/dashboard.css", 200, "text/css"),
        ("/schema", 200, "application/vnd.oai.openapi+json"),
        ("/v1/nothing-here", 404, "application/json"),
        ("/nothing-here", 404, "application/json"),
        ("/countries/Atlantis", 404, "text/html"),
        ("/v1/countries?year=abc", 400, "application/json"),
        ("/healthz", 200, "application/json"),
    ],
)
async def test_every_answer_carries_the_security_headers(
    api: httpx.AsyncClient, url: str, status: int, kind: str
):
    response = await api.get(url)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(kind)
    assert_secured(response)


async def test_writes_and_head_carry_them_too(api: httpx.AsyncClient):
    refused = await api.post("/v1/countries")
    head = await api.head("/countries")

    assert refused.status_code == 405
    assert_secured(refused)
    assert (head.status_code, head.content) == (200, b"")
    assert_secured(head)


async def test_a_refused_token_carries_them(guarded: httpx.AsyncClient):
    refused = await guarded.get("/v1/countries")
    allowed = await guarded.get("/", headers={"Authorization": f"Bearer {TOKEN}"})

    assert refused.status_code == 401
    assert_secured(refused)
    assert allowed.status_code == 200
    assert_secured(allowed)


async def test_the_dashboard_needs_nothing_the_policy_forbids(api: httpx.AsyncClient):
    # The policy allows no script, no inline style and nothing from elsewhere: the pages must
    # use none of them (the browser test checks the same in Chromium).
    for url in ("/", "/countries/KAZ", "/search", "/provenance?metric=*", "/activities/MULTI-1"):
        html = (await api.get(url)).text
        assert "<script" not in html and "style=" not in html and "<style" not in html, url
        assert 'rel="stylesheet" href="/static/dashboard.css"' in html


async def _raw_request(url: str, head: bytes) -> bytes:
    """Send ``head`` as it is and read the answer; empty if the server closed first."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    except (ConnectionError, OSError):
        return b""
    finally:
        writer.close()


async def test_a_two_megabyte_header_is_refused(api: httpx.AsyncClient):
    url = str(api.base_url).rstrip("/")
    huge = b"x" * (2 * 1024 * 1024)
    answer = await _raw_request(
        url, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + huge + b"\r\n\r\n"
    )

    # 431 or a closed connection; never an answer to the request.
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
    if answer:
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b"x-content-type-options: nosniff" in answer

    # Many small headers add up the same way; a head just under the bound is served.
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"y" * 100) for i in range(200))
    assert (await _raw_request(url, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n"))[
        :12
    ] in (b"HTTP/1.1 431", b"")
    fits = b"x" * (MAX_HEAD_BYTES - 200)
    ok = await _raw_request(
        url,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Fits: " + fits + b"\r\n\r\n",
    )
    assert ok.startswith(b"HTTP/1.1 200"), ok[:200]
    # The server still answers on a kept-alive connection after all that.
    assert (await api.get("/healthz")).status_code == 200


# -- no public API without a token -------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"LEDGER_API_TOKEN": None})


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--public"],
        ["up", "--host", "0.0.0.0", "--public"],
        ["up", "--host", "0.0.0.0", "--port", "0", "--public", "--read-only"],
    ],
)
def test_up_public_without_a_token_refuses_and_starts_nothing(
    runner: CliRunner, tmp_path: Path, args: list[str]
):
    data_dir = tmp_path / "data"

    result = runner.invoke(main, ["--data-dir", str(data_dir), *args])

    assert result.exit_code == ExitCode.INSECURE == 9, result.output
    assert "LEDGER_API_TOKEN" in result.output and "export LEDGER_API_TOKEN=" in result.output
    # Refused before anything started: no NATS server, no projection, no runtime.json.
    assert not data_dir.exists() or list(data_dir.rglob("*")) == []


def test_a_blank_token_is_no_token(tmp_path: Path):
    result = CliRunner(env={"LEDGER_API_TOKEN": "   "}).invoke(
        main, ["--data-dir", str(tmp_path / "data"), "up", "--public"]
    )

    assert result.exit_code == ExitCode.INSECURE


def test_beyond_loopback_without_public_is_a_usage_error(runner: CliRunner, tmp_path: Path):
    up = runner.invoke(main, ["--data-dir", str(tmp_path), "up", "--host", "0.0.0.0"])
    demo = runner.invoke(main, ["--data-dir", str(tmp_path), "demo", "--host", "0.0.0.0"])

    assert up.exit_code == demo.exit_code == ExitCode.USAGE
    assert "give --public" in up.output
    assert "this machine only" in demo.output


def test_the_server_itself_will_not_bind_public_without_a_token():
    with pytest.raises(TokenRequiredError, match="LEDGER_API_TOKEN"):
        ApiServer("0.0.0.0", 0, public=True).bind()
    server = ApiServer("127.0.0.1", 0, token=TOKEN, public=True)
    assert server.bind().startswith("http://127.0.0.1:")
    assert server._socket is not None
    server._socket.close()


# -- projection files --------------------------------------------------------------------------


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("usual_umask")
def test_projection_files_are_created_0640(tmp_path: Path):
    real = ensure_live(tmp_path / "projections" / "ledger.db")
    rebuilt = new_database_path(real.parent)
    # A rebuild's bulk load keeps its journal in memory; the WAL files come with the writer
    # that serves the file afterwards.
    conn = open_writer(rebuilt)
    try:
        companions = [Path(f"{rebuilt}-wal"), Path(f"{rebuilt}-shm")]
        assert all(p.exists() for p in companions)
        assert [_mode(p) for p in (real, rebuilt, *companions)] == [0o640] * 4
    finally:
        conn.close()
