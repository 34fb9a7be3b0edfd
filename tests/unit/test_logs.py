"""The log formats (services/infra/logs.py): one JSON object a line, tracebacks inside it, the
ledger's fields where a call passes them, and no seed or token, whatever a call passes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import faststream  # noqa: F401 - its loggers exist, with their own handlers, as in a run
import pytest

from events.signing import new_key_pair
from services.infra.logs import LOG_FORMAT_VARIABLE, choose_format, component_of, setup_logging


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    out = io.StringIO()
    setup_logging("json", stream=out)
    yield out, logging.getLogger("ledger.projector.broker")
    setup_logging("text")  # the default again, for what runs next


def lines_of(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_carries_time_level_component_event_and_the_fields(captured) -> None:
    out, _ = captured
    logging.getLogger("services.intake.service").info(
        "rejected a command: %s",
        "conflict",
        extra={
            "event": "command_rejected",
            "office": "KAZ",
            "activity_id": "KAZ-TRAINING-1",
            "sequence": 12,
            "command_id": "c-1",
        },
    )

    [line] = lines_of(out)
    assert line["level"] == "info"
    assert line["component"] == "intake"
    assert line["event"] == "command_rejected"
    assert line["message"] == "rejected a command: conflict"
    assert (line["office"], line["activity_id"], line["sequence"], line["command_id"]) == (
        "KAZ",
        "KAZ-TRAINING-1",
        12,
        "c-1",
    )
    assert line["time"].endswith("+00:00")


def test_a_traceback_is_one_field_of_one_line(captured) -> None:
    out, broker = captured
    try:
        raise RuntimeError("the fetch failed\nover two lines")
    except RuntimeError:
        # FastStream logs a failing subscriber this way, on the logger the projector gives it,
        # and its own warnings on "faststream", which it gave a handler of its own at import.
        broker.error("Exception in the handler", exc_info=True)
        logging.getLogger("faststream").exception("the broker failed")

    text = out.getvalue()
    assert text.count("\n") == 2  # two lines, each with its traceback inside
    lines = lines_of(out)
    assert [line["component"] for line in lines] == ["projector", "projector"]
    for line in lines:
        assert line["traceback"].startswith("Traceback (most recent call last)")
        assert "RuntimeError: the fetch failed\nover two lines" in line["traceback"]


def test_no_seed_and_no_token_reach_a_line(captured, monkeypatch: pytest.MonkeyPatch) -> None:
    out, broker = captured
    token = "t0ken-" + "Zq9" * 8
    monkeypatch.setenv("LEDGER_API_TOKEN", token)
    seed, _ = new_key_pair()

    broker.warning("a careless call passed %s and %s", seed, token)
    try:
        raise ValueError(f"bad credentials {seed}")
    except ValueError:
        broker.exception("failed")

    text = out.getvalue()
    assert seed not in text and token not in text
    assert text.count("[seed redacted]") == 2 and "[secret redacted]" in text


@pytest.mark.parametrize(
    ("logger", "component"),
    [
        ("services.intake.service", "intake"),
        ("ledger.projector", "projector"),
        ("ledger.projector.broker", "projector"),
        ("ledger.api", "api"),
        ("uvicorn.error", "api"),
        ("ledger.notary", "notary"),
        ("nats.aio.client", "nats-client"),
        ("something.else", "something"),
    ],
)
def test_every_logger_belongs_to_a_component(logger: str, component: str) -> None:
    assert component_of(logger) == component


def test_the_format_comes_from_the_flag_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(LOG_FORMAT_VARIABLE, raising=False)
    assert choose_format(None) == "text"
    monkeypatch.setenv(LOG_FORMAT_VARIABLE, "JSON")
    assert choose_format(None) == "json"
    assert choose_format("text") == "text"
    monkeypatch.setenv(LOG_FORMAT_VARIABLE, "yaml")
    with pytest.raises(ValueError, match=r"log format 'yaml'.*--log-format text or json"):
        choose_format(None)


def test_text_is_one_readable_line_with_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    setup_logging("text", stream=out)
    try:
        logging.getLogger("ledger.projector").warning(
            "put %d events into quarantine", 2, extra={"sequence": 40}
        )
    finally:
        setup_logging("text")
    assert out.getvalue().endswith(
        "WARNING ledger.projector: put 2 events into quarantine [sequence=40]\n"
    )
