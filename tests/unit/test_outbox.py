"""The outbox file and its rules, on real SQLite files: order per activity, the same command
recognised when typed again, the expected version of a queued revision, depth and drop."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from events.commands import Accepted, Rejected, ReportActivity, ReviseActivity, WithdrawActivity
from events.envelope import utc_now
from services.client.outbox import (
    Outbox,
    OutboxEntryNotFoundError,
    OutboxFileError,
    WriteCommand,
    fingerprint_of,
    outbox_depth,
    outbox_path,
    sendable,
)
from tests.factories import make_reported


def report(activity_id: str = "KAZ-1", **overrides: object) -> ReportActivity:
    return ReportActivity(
        command_id=uuid.uuid4().hex,
        issued_at=utc_now(),
        actor="kaz",
        activity=make_reported(activity_id=activity_id, **overrides),
    )


def revise(activity_id: str = "KAZ-1", year: int = 2021, **fields: object) -> ReviseActivity:
    return ReviseActivity(
        command_id=uuid.uuid4().hex,
        issued_at=utc_now(),
        actor="kaz",
        activity_id=activity_id,
        changes={"year": year},
        reason="typo",
        **fields,  # type: ignore[arg-type]
    )


def withdraw(activity_id: str = "KAZ-1") -> WithdrawActivity:
    return WithdrawActivity(
        command_id=uuid.uuid4().hex,
        issued_at=utc_now(),
        actor="kaz",
        activity_id=activity_id,
        reason="twice",
    )


def queue(box: Outbox, *commands: WriteCommand) -> list[str]:
    box.add((c, "KAZ", fingerprint_of(c, "KAZ")) for c in commands)
    return [c.command_id for c in commands]


def stored(sequence: int, version: int) -> Accepted:
    return Accepted(
        event_id=f"e{sequence}", activity_id="KAZ-1", sequence=sequence, version=version
    )


INVALID = Rejected(code="invalid", message="year: 1800 is outside 1990..2027", field="year")


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path)


def test_depth_is_zero_without_an_outbox_and_creates_no_file(tmp_path: Path) -> None:
    assert outbox_depth(tmp_path) == 0
    assert not outbox_path(tmp_path).exists()


def test_depth_counts_waiting_and_unanswered_commands(tmp_path: Path, box: Outbox) -> None:
    _, second, third = queue(box, report("A"), report("B"), report("C"))
    box.mark_sent([box.get(second).command])  # type: ignore[union-attr]
    box.record([(third, stored(1, 1))])

    assert outbox_depth(tmp_path) == 2  # first waits, second was sent without an answer


def test_an_activitys_commands_go_one_at_a_time_in_order(box: Outbox) -> None:
    a_report, b_report, a_revise, a_withdraw = queue(
        box, report("A"), report("B"), revise("A"), withdraw("A")
    )

    ready, held = sendable(box.pending())

    assert [row.command_id for row in ready] == [a_report, b_report]
    assert {cid: row.command_id for cid, row in held.items()} == {
        a_revise: a_report,
        a_withdraw: a_report,
    }
    box.record([(a_report, stored(1, 1))])
    ready, _ = sendable(box.pending())
    assert [row.command_id for row in ready] == [b_report, a_revise]


def test_a_rejection_holds_what_was_queued_behind_it_but_not_what_comes_after(
    box: Outbox,
) -> None:
    bad_report, revision = queue(box, report("A"), revise("A"))
    box.record([(bad_report, INVALID)])

    ready, held = sendable(box.pending())
    assert ready == []
    assert held[revision].command_id == bad_report
    # Check a command queued after the rejection: the office's answer to it goes.
    (fixed,) = queue(box, report("A", title="Fixed"))
    ready, held = sendable(box.pending())
    assert [row.command_id for row in ready] == []  # still behind the held revision
    box.drop(revision)
    ready, _ = sendable(box.pending())
    assert [row.command_id for row in ready] == [fixed]


def test_the_same_report_typed_again_is_recognised_and_another_is_not(box: Outbox) -> None:
    (first,) = queue(box, report("A"))

    again = box.same_as(report("A"), "KAZ")
    other = box.same_as(report("A", title="Other title"), "KAZ")

    assert again is not None and again.command_id == first
    assert other is None


def test_a_revision_matches_only_the_activitys_latest_command(box: Outbox) -> None:
    (_, to_2021, _) = queue(box, report("A"), revise("A", 2021), revise("A", 2022))

    assert box.same_as(revise("A", 2022), "KAZ") is not None
    # 2021 again after 2022 is a new change, not a re-run of the first.
    assert box.same_as(revise("A", 2021), "KAZ") is None
    assert box.get(to_2021) is not None


def test_a_queued_revision_expects_the_version_its_queued_predecessors_lead_to(
    box: Outbox,
) -> None:
    assert box.version_after_queued("KAZ", "A") is None
    (a_report,) = queue(box, report("A"))
    assert box.version_after_queued("KAZ", "A") == 1
    queue(box, revise("A"))
    assert box.version_after_queued("KAZ", "A") == 2
    box.record([(a_report, stored(1, 1))])
    assert box.version_after_queued("KAZ", "A") == 2  # version 1 stored, one revision waits
    # A revision of an activity reported elsewhere: the stream's version is not known here.
    queue(box, revise("B"))
    assert box.version_after_queued("KAZ", "B") is None


def test_queueing_a_command_id_again_keeps_its_place_and_outcome(box: Outbox) -> None:
    command = report("A")
    queue(box, command)
    box.record([(command.command_id, stored(7, 1))])

    box.add([(command, "KAZ", fingerprint_of(command, "KAZ"))], state="sent")

    entry = box.get(command.command_id)
    assert entry is not None
    assert (entry.position, entry.state, entry.sequence) == (1, "stored", 7)
    assert len(box.entries()) == 1


def test_drop_returns_what_it_removed_and_refuses_an_unknown_id(box: Outbox) -> None:
    (command_id,) = queue(box, report("A"))

    dropped = box.drop(command_id)

    assert (dropped.kind, dropped.activity_id, dropped.state) == ("report", "A", "waiting")
    assert box.get(command_id) is None
    with pytest.raises(OutboxEntryNotFoundError, match="holds no command 'nope'"):
        box.drop("nope")


def test_the_stored_bytes_are_the_command_as_queued(box: Outbox) -> None:
    command = report("A")
    queue(box, command)

    entry = box.get(command.command_id)

    assert entry is not None
    assert entry.command == command


def test_a_file_that_is_no_outbox_is_refused_clearly(tmp_path: Path) -> None:
    outbox_path(tmp_path).write_bytes(b"not a database, whatever its name says" * 100)

    with pytest.raises(OutboxFileError, match=r"cannot be read .*move it aside"):
        Outbox(tmp_path)
    with pytest.raises(OutboxFileError, match="cannot be read"):
        outbox_depth(tmp_path)


def test_a_tampered_command_is_refused_with_the_way_to_remove_it(box: Outbox) -> None:
    (command_id,) = queue(box, report("A"))
    box.conn.execute("UPDATE commands SET body = ? WHERE command_id = ?", (b"{[", command_id))

    entry = box.get(command_id)

    assert entry is not None
    with pytest.raises(OutboxFileError, match=f"ledger outbox drop {command_id}"):
        _ = entry.command


def test_the_outbox_file_is_its_owners_alone(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    command = report()
    try:
        outbox.add([(command, "KAZ", fingerprint_of(command, "KAZ"))])
    finally:
        outbox.close()
    # 0600 from its creation, whatever the umask: it holds the office's signed commands.
    assert (tmp_path / "outbox.db").stat().st_mode & 0o777 == 0o600
