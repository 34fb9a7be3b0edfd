"""The API's access rules on a tiny Litestar app: bearer token, loopback-only binding, and
``--public`` only with a token."""

from __future__ import annotations

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from services.api.auth import (
    PublicBindError,
    TokenRequiredError,
    check_bind_host,
    require_token,
)


@get("/countries")
async def _countries() -> list[str]:
    return ["KAZ"]


def _client(token: str | None) -> TestClient:
    return TestClient(require_token(Litestar([_countries]), token))


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "s3cret"}, 401),
        ({"Authorization": "Bearer s3cret"}, 200),
    ],
)
def test_with_a_token_only_requests_that_carry_it_are_answered(
    headers: dict[str, str], status: int
) -> None:
    with _client("s3cret") as client:
        response = client.get("/countries", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="ledger"'
        assert response.json()["code"] == "unauthorized"
    else:
        assert response.json() == ["KAZ"]


def test_without_a_token_the_api_is_open() -> None:
    with _client(None) as client:
        assert client.get("/countries").json() == ["KAZ"]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_public_flag(host: str) -> None:
    assert check_bind_host(host, public=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "api.example.org"])
def test_other_addresses_need_the_public_flag_and_a_token(host: str) -> None:
    with pytest.raises(PublicBindError, match="give --public"):
        check_bind_host(host, public=False)
    notice = check_bind_host(host, public=True, token="t")
    assert notice is not None and "can be reached from other machines" in notice


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
@pytest.mark.parametrize("token", [None, "", "   "])
def test_public_without_a_token_is_refused_naming_the_variable(
    host: str, token: str | None
) -> None:
    with pytest.raises(TokenRequiredError, match="set LEDGER_API_TOKEN"):
        check_bind_host(host, public=True, token=token)
