"""Intake's signature rule, without NATS: an office with a registered key must sign."""

from __future__ import annotations

import msgspec

from events.commands import DescribeActivity, Described, Rejected
from events.decisions import Append, decide
from events.integrity import content_hash
from events.keys import KeyRegistry
from events.signing import new_key_pair, sign_hash, signature_is_valid
from tests.unit.test_intake_decisions import NOTHING, NOW, REF, report, stored

KAZ_SEED, KAZ_PUBLIC = new_key_pair()
VNM_SEED, VNM_PUBLIC = new_key_pair()
KEYS = KeyRegistry({"KAZ": [KAZ_PUBLIC], "VNM": [VNM_PUBLIC]})


def signed_with(seed: str, command: object) -> object:
    # The client's side: the event intake will make, hashed, then signed.
    event = decide(command, "KAZ", NOTHING, REF, NOW).event  # type: ignore[union-attr, arg-type]
    return msgspec.structs.replace(command, signature=sign_hash(seed, content_hash(event)))


def test_a_command_signed_by_its_office_is_appended_with_the_signature() -> None:
    command = signed_with(KAZ_SEED, report())
    decision = decide(command, "KAZ", NOTHING, REF, NOW, KEYS)  # type: ignore[arg-type]
    assert isinstance(decision, Append)
    event = decision.event
    assert event.signature == command.signature  # type: ignore[attr-defined]
    assert signature_is_valid(KAZ_PUBLIC, content_hash(event), event.signature)


def test_an_unsigned_command_of_an_office_with_a_key_is_forbidden() -> None:
    decision = decide(report(), "KAZ", NOTHING, REF, NOW, KEYS)
    assert isinstance(decision, Rejected)
    assert (decision.code, decision.field) == ("forbidden", "signature")
    assert "is not signed" in decision.message


def test_a_command_signed_with_another_offices_key_is_forbidden() -> None:
    forged = signed_with(VNM_SEED, report())
    decision = decide(forged, "KAZ", NOTHING, REF, NOW, KEYS)  # type: ignore[arg-type]
    assert isinstance(decision, Rejected)
    assert decision.code == "forbidden"
    assert "does not verify" in decision.message


def test_a_signature_over_other_content_is_forbidden() -> None:
    signed = signed_with(KAZ_SEED, report())
    altered = msgspec.structs.replace(
        signed,
        activity=msgspec.structs.replace(signed.activity, metrics={"people_trained": 5710}),  # type: ignore[attr-defined]
    )
    assert isinstance(decide(altered, "KAZ", NOTHING, REF, NOW, KEYS), Rejected)  # type: ignore[arg-type]


def test_an_office_without_a_key_may_send_unsigned_commands() -> None:
    assert isinstance(decide(report(), "KAZ", NOTHING, REF, NOW, KeyRegistry()), Append)


def test_describe_gives_the_office_its_own_activity_only() -> None:
    loaded = stored(report())
    ask = DescribeActivity(command_id="d", issued_at=NOW, actor="x", activity_id="KAZ-TRAINING-1")
    described = decide(ask, "KAZ", loaded, REF, NOW, KEYS)
    assert isinstance(described, Described)
    assert (described.version, described.sequences) == (1, [10])  # as `stored` numbers it
    other = decide(ask, "VNM", loaded, REF, NOW, KEYS)
    assert isinstance(other, Rejected) and other.code == "forbidden"
    missing = decide(ask, "KAZ", NOTHING, REF, NOW, KEYS)
    assert isinstance(missing, Rejected) and missing.code == "unknown_activity"
