"""The chain checker hashes events as stored, so an event sealed under an older schema (one
without a field that a later schema added, or an older version that is upcast on read) keeps
the hash it was sealed with."""

from __future__ import annotations

import hashlib

import msgspec

from events.codec import DEFAULT_CODEC
from events.integrity import compute_hash
from events.keys import KeyRegistry
from replay.chain import ChainChecker
from tests.factories import make_reported, sealed


def sealed_without(field: str) -> bytes:
    """A report as a writer that did not know ``field`` stored it: its hash over the body
    it wrote, in which the field is absent."""
    body = msgspec.to_builtins(sealed(make_reported()))
    del body["payload"][field]
    del body["hash"], body["signature"]
    body["hash"] = hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()
    body["signature"] = ""
    return msgspec.json.encode(body)


def test_an_event_sealed_before_a_field_existed_keeps_its_hash() -> None:
    data = sealed_without("partners")
    event = DEFAULT_CODEC.decode(data)  # the decoder fills in partners = []
    subject = f"ledger.activity.{event.office}.{event.activity_id}"
    # A decoded copy hashes differently: that is why the checker reads the stored bytes.
    assert compute_hash(event) != event.hash
    assert ChainChecker(KeyRegistry()).check(1, subject, event, data) == []


def test_a_change_to_the_stored_bytes_is_still_caught() -> None:
    data = sealed_without("partners")
    tampered = data.replace(b'"people_trained":571', b'"people_trained":5710')
    assert tampered != data
    event = DEFAULT_CODEC.decode(tampered)
    subject = f"ledger.activity.{event.office}.{event.activity_id}"
    failures = ChainChecker(KeyRegistry()).check(1, subject, event, tampered)
    assert [f.check for f in failures] == ["hash"]
