"""Intake's decision function, without NATS: each error code, retries, and what gets appended."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.commands import (
    Accepted,
    Command,
    Rejected,
    ReportActivity,
    ReviseActivity,
    WithdrawActivity,
    decode_command,
    encode_command,
    encode_reply,
    event_id_for,
    nesting_exceeds,
)
from events.decisions import (
    Append,
    Decision,
    decide,
    decode_request,
    rejection_for,
    split_validation_error,
)
from events.errors import FieldIssue, InvalidEventError
from events.limits import (
    MAX_ACTOR,
    MAX_BATCH,
    MAX_BATCH_BYTES,
    MAX_COMMAND_BYTES,
    MAX_COUNTRIES,
    MAX_DEPTH,
    MAX_FIGURE,
    MAX_ISSUES,
    MAX_METRICS,
    MAX_NAME,
    MAX_PARTNERS,
    MAX_REASON,
    MAX_TEXT,
    MAX_TITLE,
)
from events.model import ActivityRevised, ActivityWithdrawn, CountryShare
from events.reference import load_reference
from events.stored import LoadedActivity, Recorded
from tests.factories import make_reported

NOW = dt.datetime(2021, 6, 30, 12, 0, tzinfo=dt.UTC)
REF = load_reference()
NOTHING = LoadedActivity([])


def report(command_id: str = "c-report", **overrides: Any) -> ReportActivity:
    return ReportActivity(
        command_id=command_id,
        issued_at=NOW,
        actor="kaz.officer@example.org",
        activity=make_reported(office="KAZ", **overrides),
    )


def revise(command_id: str = "c-revise", **fields: Any) -> ReviseActivity:
    fields.setdefault("reason", "final attendance list")
    return ReviseActivity(
        command_id=command_id,
        issued_at=NOW,
        actor="kaz.officer@example.org",
        activity_id="KAZ-TRAINING-1",
        **{"changes": {"metrics.people_trained": 600}} | fields,
    )


def withdraw(command_id: str = "c-withdraw", **fields: Any) -> WithdrawActivity:
    fields.setdefault("reason", "reported twice")
    return WithdrawActivity(
        command_id=command_id,
        issued_at=NOW,
        actor="kaz.officer@example.org",
        activity_id="KAZ-TRAINING-1",
        **fields,
    )


def stored(*commands: Command) -> LoadedActivity:
    """The activity after each command was accepted in turn, as intake would have stored it."""
    loaded = NOTHING
    for command in commands:
        decision = decide(command, "KAZ", loaded, REF, NOW)
        if not isinstance(decision, Append):
            raise AssertionError(f"set-up command refused: {decision}")
        recorded = Recorded(
            sequence=loaded.last_sequence + 10, time=NOW, subject="s", event=decision.event
        )
        loaded = LoadedActivity([*loaded.events, recorded])
    return loaded


def rejected(decision: Decision) -> tuple[str, str]:
    if not isinstance(decision, Rejected):
        raise AssertionError(f"expected a rejection, got {decision}")
    return decision.code, decision.field


def test_a_valid_report_is_appended_as_the_first_event_with_codes_resolved() -> None:
    command = report(countries=[CountryShare("Kazakhstan")], programme="GENERAL")

    decision = decide(command, "KAZ", NOTHING, REF, NOW)

    assert isinstance(decision, Append)
    assert (decision.expected_sequence, decision.version) == (0, 1)
    assert decision.event.payload.countries == [CountryShare("KAZ")]
    assert decision.event.causation_id == "c-report"
    assert decision.event.occurred_at == NOW


def test_the_event_id_is_the_same_for_every_retry_of_a_command() -> None:
    first = decide(report(), "KAZ", NOTHING, REF, NOW)
    again = decide(report(), "KAZ", NOTHING, REF, NOW + dt.timedelta(minutes=5))

    assert isinstance(first, Append) and isinstance(again, Append)
    assert first.event.event_id == again.event.event_id


@pytest.mark.parametrize(
    ("command", "office", "loaded", "expected"),
    [
        (report(year=1900), "KAZ", NOTHING, ("invalid", "year")),
        (report(countries=[CountryShare("Atlantis")]), "KAZ", NOTHING,
         ("invalid", "countries.0.country")),
        (report(), "VNM", NOTHING, ("forbidden", "office")),
        (report("other-command"), "KAZ", stored(report()), ("conflict", "activity_id")),
        (revise(), "KAZ", NOTHING, ("unknown_activity", "activity_id")),
        (withdraw(), "KAZ", NOTHING, ("unknown_activity", "activity_id")),
        (revise(), "VNM", stored(report()), ("forbidden", "office")),
        (withdraw(), "VNM", stored(report()), ("forbidden", "office")),
        (revise(reason="  "), "KAZ", stored(report()), ("invalid", "reason")),
        (withdraw(reason=""), "KAZ", stored(report()), ("invalid", "reason")),
        (revise(changes={"metrics.people_trained": 571}), "KAZ", stored(report()),
         ("invalid", "changes")),
        (revise(changes={}), "KAZ", stored(report()), ("invalid", "changes")),
        (revise(changes={"office": "VNM"}), "KAZ", stored(report()), ("invalid", "office")),
        (revise(changes={"year": "twenty"}), "KAZ", stored(report()), ("invalid", "year")),
        (revise(changes={"metrics.bananas": 3}), "KAZ", stored(report()),
         ("invalid", "metrics.bananas")),
        (revise(expected_version=3), "KAZ", stored(report()), ("conflict", "expected_version")),
        (revise(), "KAZ", stored(report(), withdraw()), ("withdrawn", "activity_id")),
        (withdraw("again"), "KAZ", stored(report(), withdraw()), ("withdrawn", "activity_id")),
    ],
)  # fmt: skip
def test_each_broken_rule_gets_its_code_and_field(
    command: Command, office: str, loaded: LoadedActivity, expected: tuple[str, str]
) -> None:
    assert rejected(decide(command, office, loaded, REF, NOW)) == expected


def test_a_conflict_carries_the_current_version_and_sequence() -> None:
    loaded = stored(report(), revise())

    decision = decide(revise("late", expected_version=1), "KAZ", loaded, REF, NOW)

    assert isinstance(decision, Rejected)
    assert (decision.code, decision.version, decision.sequence) == ("conflict", 2, 20)


def test_a_revision_stores_only_the_fields_that_change_and_keeps_other_metrics() -> None:
    loaded = stored(report(metrics={"people_trained": 571, "participants": 600}))
    command = revise(changes={"metrics.people_trained": 600, "year": 2020, "title": "New"})

    decision = decide(command, "KAZ", loaded, REF, NOW)

    assert isinstance(decision, Append)
    assert (decision.expected_sequence, decision.version) == (10, 2)
    payload = decision.event.payload
    assert isinstance(payload, ActivityRevised)
    assert payload.changes.as_dict() == {
        "metrics": {"people_trained": 600, "participants": 600},
        "title": "New",
    }
    assert decision.event.prev == loaded.events[-1].event.hash


def test_a_withdrawal_follows_the_chain() -> None:
    loaded = stored(report(), revise())

    decision = decide(withdraw(expected_version=2), "KAZ", loaded, REF, NOW)

    assert isinstance(decision, Append)
    assert isinstance(decision.event.payload, ActivityWithdrawn)
    assert (decision.expected_sequence, decision.version) == (20, 3)


@pytest.mark.parametrize(
    ("history", "retried", "version"),
    [
        ((report(),), report(), 1),
        ((report(), revise()), revise(), 2),
        ((report(), revise(), withdraw()), revise(), 2),
        ((report(), withdraw()), withdraw(), 2),
    ],
)
def test_a_retried_command_gets_its_first_outcome_back(
    history: tuple[Command, ...], retried: Command, version: int
) -> None:
    loaded = stored(*history)

    decision = decide(retried, "KAZ", loaded, REF, NOW + dt.timedelta(hours=1))

    assert decision == Accepted(
        event_id=loaded.events[version - 1].event.event_id,
        activity_id="KAZ-TRAINING-1",
        sequence=version * 10,
        version=version,
        duplicate=True,
    )


def test_commands_round_trip_through_the_tagged_union() -> None:
    for command in (report(), revise(expected_version=1), withdraw()):
        assert decode_command(encode_command(command)) == command


def test_a_validation_error_names_the_field_without_the_wrapper() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        decode_command(b'{"command": "withdraw", "command_id": "x", "issued_at": '
                       b'"2021-01-01T00:00:00Z", "actor": "a", "activity_id": "A"}')  # fmt: skip

    assert split_validation_error(caught.value) == (
        "reason",
        "Object missing required field `reason`",
    )


# Limits on decoding: what intake replies to bytes that exceed one (events.limits).
def refusal(data: bytes) -> Rejected | None:
    """The refusal intake gives to these bytes before it reads the stream, if any.

    A report that decodes is decided as a new activity of KAZ, where the validation limits
    apply.
    """
    request = decode_request(data)
    if isinstance(request, ReportActivity):
        decision = decide(request, "KAZ", NOTHING, REF, NOW, None)
        return decision if isinstance(decision, Rejected) else None
    return request if isinstance(request, Rejected) else None


def report_json(**activity: Any) -> dict[str, Any]:
    """A report command as plain data; it need not pass validation, only decoding."""
    return {
        "command": "report",
        "command_id": "c-1",
        "issued_at": "2021-06-30T12:00:00Z",
        "actor": "kaz.officer@example.org",
        "activity": msgspec.to_builtins(make_reported(office="KAZ")) | activity,
    }


def revise_json(**fields: Any) -> dict[str, Any]:
    return {
        "command": "revise",
        "command_id": "c-2",
        "issued_at": "2021-06-30T12:00:00Z",
        "actor": "kaz.officer@example.org",
        "activity_id": "KAZ-TRAINING-1",
        "changes": {"year": 2021},
        "reason": "typo",
    } | fields


def padded(data: bytes, size: int) -> bytes:
    """``data``, a JSON object, grown to exactly ``size`` bytes by whitespace before its end."""
    assert len(data) <= size
    return data[:-1] + b" " * (size - len(data)) + data[-1:]


def encoded(value: Any) -> bytes:
    return msgspec.json.encode(value)


def batch_of(reports: list[bytes]) -> bytes:
    return b'{"command":"report_batch","commands":[' + b",".join(reports) + b"]}"


def nested(depth: int) -> bytes:
    """A revision whose JSON nests ``depth`` levels: the command, ``changes``, then lists."""
    lists = depth - 2
    return encoded(revise_json(changes={"notes": 0})).replace(
        b'"notes":0', b'"notes":' + b"[" * lists + b"]" * lists
    )


def one_mebibyte_batch(size: int) -> bytes:
    reports = [padded(encoded(report_json(activity_id=f"A{i}")), 61_000) for i in range(17)]
    return padded(batch_of(reports), size)


@pytest.mark.parametrize(
    ("field", "build", "limit", "words"),
    [
        ("title", lambda n: encoded(report_json(title="t" * n)), MAX_TITLE, "at most 300"),
        ("summary", lambda n: encoded(report_json(summary="s" * n)), MAX_TEXT, "at most 5,000"),
        ("notes", lambda n: encoded(report_json(notes="n" * n)), MAX_TEXT, "at most 5,000"),
        ("actor", lambda n: encoded(report_json() | {"actor": "a" * n}), MAX_ACTOR,
         "at most 200"),
        ("reason", lambda n: encoded(revise_json(reason="r" * n)), MAX_REASON, "at most 200"),
        ("partners", lambda n: encoded(report_json(partners=["p"] * n)), MAX_PARTNERS,
         "at most 100"),
        ("partners.0", lambda n: encoded(report_json(partners=["p" * n])), MAX_NAME,
         "at most 200"),
        ("metrics.people_trained",
         lambda n: encoded(report_json(metrics={"people_trained": n})), MAX_FIGURE,
         "at most 10,000,000,000"),
        ("commands", lambda n: batch_of([encoded(report_json())] * n), MAX_BATCH,
         "at most 100"),
        ("", lambda n: padded(encoded(revise_json()), n), MAX_COMMAND_BYTES, "65,536 bytes"),
        ("commands.1",
         lambda n: batch_of([encoded(report_json()), padded(encoded(report_json()), n)]),
         MAX_COMMAND_BYTES, "65,536 bytes"),
        ("", one_mebibyte_batch, MAX_BATCH_BYTES, "1,048,576 bytes"),
        ("", nested, MAX_DEPTH, "deeper than 16 levels"),
    ],
    ids=["title", "summary", "notes", "actor", "reason", "partners",
         "partner-name", "figure", "batch-reports", "command-bytes",
         "report-in-batch-bytes", "request-bytes", "depth"],
)  # fmt: skip
def test_each_limit_decodes_at_the_limit_and_is_refused_one_over(
    field: str, build: Callable[[int], bytes], limit: int, words: str
) -> None:
    assert refusal(build(limit)) is None

    refused = refusal(build(limit + 1))

    assert refused is not None
    assert (refused.code, refused.field) == ("invalid", field)
    assert words in refused.message


@pytest.mark.parametrize(
    ("field", "data", "words"),
    [
        # The catalogues hold fewer countries and metrics than the limits, so only "one over"
        # can be shown, with entries that would each be valid on their own.
        ("countries", report_json(countries=[{"country": "KAZ"}] * (MAX_COUNTRIES + 1)),
         "at most 250"),
        ("metrics", report_json(metrics={f"m{i}": 1 for i in range(MAX_METRICS + 1)}),
         "at most 50"),
    ],
    ids=["countries", "metrics"],
)  # fmt: skip
def test_a_list_over_its_limit_is_refused_as_a_whole(
    field: str, data: dict[str, Any], words: str
) -> None:
    refused = refusal(encoded(data))

    assert refused is not None
    assert (refused.code, refused.field) == ("invalid", field)
    assert words in refused.message


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000,
        b'{"command":"report","activity":{"title":"' + b"\\" * 100_001 + b'"}}',
        b'{"command":"report","actor":"\xff\xfe"}',
        encoded(report_json()).replace(b'"year":2020', b'"year":' + b"9" * 5_000),
        encoded(report_json()).replace(b'"year":2020', b'"year":1e999999'),
        encoded(report_json(countries=[{"country": "KAZ"}] * 50_000)),
        b"\x00" * 10,
        b"",
    ],
    ids=["deep", "unclosed", "backslashes", "not-utf8", "huge-int", "huge-float",
         "50000-countries", "nul", "empty"],
)  # fmt: skip
def test_hostile_bytes_are_refused_as_invalid_with_a_short_reply(data: bytes) -> None:
    refused = refusal(data)

    assert refused is not None and refused.code == "invalid"
    assert len(encode_reply(refused)) < 1_024


@pytest.mark.parametrize("error", [RecursionError, ValueError, OverflowError, UnicodeDecodeError])
def test_any_other_decoding_error_becomes_invalid(
    error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Failing:
        def decode(self, data: bytes) -> Any:
            if error is UnicodeDecodeError:
                raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
            raise error("boom")

    monkeypatch.setattr("events.commands._command_decoder", Failing())

    with pytest.raises(InvalidEventError) as caught:
        decode_command(encoded(report_json()))

    assert caught.value.field == ""
    assert error.__name__ in str(caught.value)


def test_a_rejection_stays_small_whatever_the_issues() -> None:
    many = InvalidEventError(
        [FieldIssue(f"countries.{i}.country", "KAZ is listed twice") for i in range(50_000)]
    )
    huge = InvalidEventError([FieldIssue("f" * 100_000, "\U0001d11e" * 100_000)] * 20)
    control = InvalidEventError([FieldIssue("\x01" * 100_000, "\x01" * 100_000)] * 20)

    for error in (many, huge, control):
        reply = encode_reply(rejection_for(error))
        assert len(reply) < 4_096
    listed = rejection_for(many)
    assert listed.field == "countries.0.country"
    assert listed.message.count("listed twice") == MAX_ISSUES
    assert listed.message.endswith("; and 49990 more")


def _depth(value: Any) -> int:
    """The nesting depth of decoded JSON, without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in (
                item.values() if isinstance(item, dict) else item))  # fmt: skip
    return deepest


_tricky_text = st.text(alphabet='[]{}"\\ab\n\u00e9', max_size=6)
_json_values = st.recursive(
    st.none() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=_json_values, limit=st.integers(1, 8))
def test_the_depth_scan_agrees_with_a_parser(value: Any, limit: int) -> None:
    data = msgspec.json.encode(value)

    assert nesting_exceeds(data, limit) == (_depth(value) > limit)


def test_the_event_id_differs_across_offices_and_activities_and_stays_for_a_retry() -> None:
    first = event_id_for(report(), "KAZ")

    assert event_id_for(report(), "KAZ") == first
    assert event_id_for(report(), "VNM") != first
    assert event_id_for(report(activity_id="KAZ-TRAINING-2"), "KAZ") != first
    assert event_id_for(report("c-other"), "KAZ") != first
    # A revision and a withdrawal that share a command id but not an activity differ too.
    assert event_id_for(revise("same"), "KAZ") != event_id_for(
        msgspec.structs.replace(revise("same"), activity_id="KAZ-TRAINING-2"), "KAZ"
    )
    # Still a UUIDv7 whose first 48 bits are the command's issued_at in milliseconds, so ids
    # sort by time.
    assert first[14] == "7"
    assert int(first.replace("-", "")[:12], 16) == int(NOW.timestamp() * 1000)
    later = msgspec.structs.replace(report(), issued_at=NOW + dt.timedelta(milliseconds=1))
    assert event_id_for(later, "KAZ") > first


def test_the_stored_event_carries_the_office_bound_id() -> None:
    decision = decide(report(), "KAZ", NOTHING, REF, NOW)

    assert isinstance(decision, Append)
    assert decision.event.event_id == event_id_for(report(), "KAZ")


def test_an_overlong_actor_built_in_python_is_refused_before_sending() -> None:
    command = msgspec.structs.replace(report(), actor="a" * (MAX_ACTOR + 1))

    assert rejected(decide(command, "KAZ", NOTHING, REF, NOW)) == ("invalid", "actor")
