"""The AsyncAPI document of the NATS interface: current on disk, complete, true, and served.

The checked-in copy (docs/asyncapi.json) must be what :mod:`services.api.asyncapi` builds now;
every intake, query and activity subject must be there with its payload schema (and the
requests with their replies); the answer type documented for each query must be what the query
service really answers; and the API must serve the same document, and a page that needs no
script.
"""

from __future__ import annotations

import json
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import msgspec
import pytest
from litestar.testing import TestClient

from events.subjects import DEFAULT
from services.api import asyncapi
from services.api.nats_queries import QUERY_NAMES, QueryService
from services.api.read_model import ReadModel
from services.errors import ANSWERS

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
REGENERATE = "python -m services.api.asyncapi > docs/asyncapi.json"

# Parameters each query answers on the seeded projection (tests/query_seed.py).
QUERY_PARAMS: dict[str, dict[str, Any]] = {
    "country": {"country": "KAZ"},
    "programme": {"programme": "GENERAL"},
    "year": {"year": 2020},
    "activity": {"activity_id": "KAZ-TRAINING-1"},
    "provenance": {"metric": "people_trained"},
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi.build_document()


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    assert ref.startswith("#/"), ref
    for part in ref.removeprefix("#/").split("/"):
        node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def payload_schema(document: dict[str, Any], message_ref: str) -> tuple[str, dict[str, Any]]:
    """The name and body of the schema a channel's or operation's message carries."""
    message = resolve(document, message_ref)
    if "$ref" in message:
        message = resolve(document, message["$ref"])
    ref = message["payload"]["$ref"]
    return ref.rpartition("/")[2], resolve(document, ref)


def channel_at(document: dict[str, Any], address: str) -> tuple[str, dict[str, Any]]:
    found = [(k, c) for k, c in document["channels"].items() if c.get("address") == address]
    assert len(found) == 1, f"{address}: {len(found)} channels"
    return found[0]


def operation_on(document: dict[str, Any], key: str, action: str) -> dict[str, Any]:
    found = [
        op
        for op in document["operations"].values()
        if op["channel"]["$ref"] == f"#/channels/{key}" and op["action"] == action
    ]
    assert len(found) == 1, f"{key} {action}: {len(found)} operations"
    return found[0]


def described(schema: dict[str, Any]) -> bool:
    """Whether a schema says something about its value (not FastStream's bare placeholder)."""
    return bool(schema.get("properties") or schema.get("anyOf") or schema.get("oneOf"))


# -- the checked-in copy -----------------------------------------------------------------------


def test_the_checked_in_document_is_current(document: dict[str, Any]):
    assert CHECKED_IN.exists(), f"docs/asyncapi.json is missing; create it with `{REGENERATE}`"
    expected = asyncapi.render_json(document)
    assert CHECKED_IN.read_text("utf-8") == expected, (
        f"docs/asyncapi.json differs from the generated document; regenerate it with "
        f"`{REGENERATE}` and review the diff"
    )


def test_the_module_prints_the_document(capsysbinary: pytest.CaptureFixture[bytes]):
    asyncapi.main([])

    assert capsysbinary.readouterr().out.decode() == CHECKED_IN.read_text("utf-8")


# -- what the document covers ------------------------------------------------------------------


def test_it_is_asyncapi_3_with_title_version_and_server(document: dict[str, Any]):
    assert document["asyncapi"] == "3.0.0"
    info = document["info"]
    assert info["title"] and info["description"]
    assert info["version"] == asyncapi._package_version()
    (server,) = document["servers"].values()
    assert f"{server['protocol']}://{server['host']}" == "nats://127.0.0.1:4222"


def test_every_reference_resolves(document: dict[str, Any]):
    for ref in set(refs(document)):
        assert resolve(document, ref) is not None, ref


def test_intake_takes_every_command_and_replies(document: dict[str, Any]):
    key, channel = channel_at(document, DEFAULT.intake("{office}"))
    assert set(channel["parameters"]) == {"office"}
    operation = operation_on(document, key, "receive")
    ((name, request),) = [payload_schema(document, m["$ref"]) for m in operation["messages"]]
    replies = [payload_schema(document, m["$ref"]) for m in operation["reply"]["messages"]]

    assert name == "IntakeRequest"
    assert request["discriminator"] == "command"
    variants = {ref.rpartition("/")[2] for ref in refs(request["anyOf"])}
    assert variants == {
        "ReportActivity",
        "ReviseActivity",
        "WithdrawActivity",
        "DescribeActivity",
        "ReportActivities",
        "ReleaseFigures",  # headquarters only (events/release.py)
    }
    batch = document["components"]["schemas"]["ReportActivities"]
    assert batch["properties"]["commands"]["items"] == {
        "$ref": "#/components/schemas/ReportActivity"
    }
    assert [reply_name for reply_name, _ in replies] == ["IntakeReply"]
    outcomes = {ref.rpartition("/")[2] for ref in refs(replies[0][1]["anyOf"])}
    assert outcomes == {"Accepted", "Rejected", "Described", "Replies"}


@pytest.mark.parametrize("name", QUERY_NAMES)
def test_every_query_has_its_parameters_and_answers(document: dict[str, Any], name: str):
    key, _ = channel_at(document, DEFAULT.query(name))
    operation = operation_on(document, key, "receive")
    ((_, params),) = [payload_schema(document, m["$ref"]) for m in operation["messages"]]
    replies = dict(payload_schema(document, m["$ref"]) for m in operation["reply"]["messages"])

    assert params["type"] == "object"
    assert "min_sequence" in params["properties"]
    assert set(replies) == {asyncapi.QUERY_ANSWERS[name].__name__, "QueryRefusal"}
    assert all(described(schema) for schema in replies.values())


def test_a_refusal_names_every_code_a_query_can_refuse_with(document: dict[str, Any]):
    header = document["components"]["messages"]["query.refusal"]["headers"]["properties"]

    assert set(header["Ledger-Error"]["enum"]) == {answer.code for answer in ANSWERS.values()} | {
        "invalid",
        "internal",
    }


def test_the_activity_subject_carries_the_stored_events(document: dict[str, Any]):
    key, channel = channel_at(document, DEFAULT.activity("{office}", "{activity_id}"))
    assert set(channel["parameters"]) == {"office", "activity_id"}
    sent = operation_on(document, key, "send")
    read = operation_on(document, key, "receive")
    ((name, event),) = [payload_schema(document, m["$ref"]) for m in sent["messages"]]

    assert [payload_schema(document, m["$ref"])[0] for m in read["messages"]] == [name]
    assert name == "StoredEvent"
    assert event["discriminator"] == "type"
    for ref in refs(event["oneOf"]):
        envelope = resolve(document, ref)
        kind = envelope["properties"]["type"]["const"]
        assert envelope["properties"]["payload"] == {"$ref": f"#/components/schemas/{kind}"}
        assert described(document["components"]["schemas"][kind])


def test_every_schema_is_described(document: dict[str, Any]):
    # A placeholder FastStream wrote and nothing replaced would be a bare {"title": ...}.
    for name, schema in document["components"]["schemas"].items():
        assert described(schema), name


def test_building_warns_of_nothing_and_connects_nowhere(monkeypatch: pytest.MonkeyPatch):
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("building the document tried to connect")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastStream warns when channels or payloads collide
        assert asyncapi.build_document()["channels"]


# -- the documented answers are the real ones --------------------------------------------------


@pytest.mark.parametrize("name", QUERY_NAMES)
async def test_the_documented_answer_is_what_the_query_answers(live: Path, name: str):
    model = ReadModel(live)
    try:
        body, code = await QueryService(model).answer(
            name, json.dumps(QUERY_PARAMS.get(name, {})).encode()
        )
    finally:
        model.close()

    assert code == "", body
    # Decoded into the documented Struct and encoded again, the answer loses nothing: a wrong
    # type in QUERY_ANSWERS fails to decode, or drops the fields it does not have.
    answer = msgspec.json.decode(body, type=asyncapi.QUERY_ANSWERS[name])
    assert json.loads(msgspec.json.encode(answer)) == json.loads(body)


# -- served by the API -------------------------------------------------------------------------


def test_the_api_serves_the_document(client: TestClient, document: dict[str, Any]):
    response = client.get("/asyncapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == json.loads(json.dumps(document))
    assert response.content == CHECKED_IN.read_bytes()


def test_the_api_serves_a_page_without_script(client: TestClient):
    response = client.get("/asyncapi")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    # Nothing the Content-Security-Policy would block: no script, no inline style, no CDN.
    assert "<script" not in page and "<style" not in page and " style=" not in page
    assert "https://" not in page and "http://" not in page
    assert 'href="/asyncapi.json"' in page
    for subject in (
        DEFAULT.intake("{office}"),
        DEFAULT.activity("{office}", "{activity_id}"),
        *(DEFAULT.query(name) for name in QUERY_NAMES),
    ):
        assert f"<code>{subject}</code>" in page
    assert 'id="schema-ReportActivities"' in page


def test_the_routes_stay_out_of_the_openapi_schema(client: TestClient):
    paths = client.get("/schema/openapi.json").json()["paths"]

    assert not any(path.startswith("/asyncapi") for path in paths)
    assert client.get("/asyncapi.json?x=1").status_code == 400  # like every route: no unknowns
