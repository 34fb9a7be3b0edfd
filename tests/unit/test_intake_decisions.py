"""Intake's decision function, without NATS: each error code, retries, and what gets appended."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from events.commands import (
    Accepted,
    Command,
    Rejected,
    ReportActivity,
    ReviseActivity,
    WithdrawActivity,
    decode_command,
    encode_command,
)
from events.model import ActivityRevised, ActivityWithdrawn, CountryShare
from events.reference import load_reference
from events.store import LoadedActivity, Recorded
from services.decisions import Append, Decision, decide, split_validation_error
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
    import msgspec

    with pytest.raises(msgspec.ValidationError) as caught:
        decode_command(b'{"command": "withdraw", "command_id": "x", "issued_at": '
                       b'"2021-01-01T00:00:00Z", "actor": "a", "activity_id": "A"}')  # fmt: skip

    assert split_validation_error(caught.value) == (
        "reason",
        "Object missing required field `reason`",
    )
