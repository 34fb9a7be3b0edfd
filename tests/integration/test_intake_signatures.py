"""Signed commands through a real intake: offices with a key must sign, and forgeries fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events.keys import KeyRegistry, save_registry
from events.signing import new_key_pair
from events.store import EventStore
from events.subjects import Namespace
from replay.chain import ChainChecker
from services.client.errors import ForbiddenError
from services.client.office import OfficeClient
from services.infra.embedded import EmbeddedNats
from services.infra.office_keys import RegistryFile
from services.intake.service import run_intake
from tests.factories import make_reported

KAZ_SEED, KAZ_PUBLIC = new_key_pair()
VNM_SEED, VNM_PUBLIC = new_key_pair()


@pytest.fixture
async def signing_intake(
    nats_server: EmbeddedNats, store: EventStore, tmp_path: Path
) -> AsyncIterator[KeyRegistry]:
    """Intake checking signatures against a registry where KAZ and VNM have keys."""
    registry = KeyRegistry({"KAZ": [KAZ_PUBLIC], "VNM": [VNM_PUBLIC]})
    path = tmp_path / "registry.json"
    save_registry(path, registry)
    stop, ready = asyncio.Event(), asyncio.Event()
    serving = run_intake(nats_server.url, store, stop, ready=ready, keys=RegistryFile(path))
    task = asyncio.create_task(serving)
    await asyncio.wait_for(ready.wait(), 10)
    yield registry
    stop.set()
    await task


def _client(nc: Any, namespace: Namespace, seeds: dict[str, str]) -> OfficeClient:
    return OfficeClient(nc, "KAZ", namespace, actor="kaz@example.org", seeds=seeds)


async def test_signed_commands_are_stored_with_verifiable_signatures(
    nc: Any, namespace: Namespace, store: EventStore, signing_intake: KeyRegistry
) -> None:
    kaz = _client(nc, namespace, {"KAZ": KAZ_SEED})

    await kaz.report(make_reported(office="KAZ"))
    await kaz.revise("KAZ-TRAINING-1", {"metrics.people_trained": 600}, "final list")
    await kaz.withdraw("KAZ-TRAINING-1", "reported twice")

    checker = ChainChecker(signing_intake, require_signatures=True)
    stored = [raw async for batch in store.read_raw() for raw in batch]
    events = [store.decode(raw).event for raw in stored]
    failures = [
        f
        for raw, event in zip(stored, events, strict=True)
        for f in checker.check(raw.sequence, raw.subject, event, raw.data)
    ]
    assert failures == []
    assert checker.signed == 3
    assert all(event.signature for event in events)


async def test_intake_refuses_unsigned_and_forged_commands(
    nc: Any, namespace: Namespace, store: EventStore, signing_intake: KeyRegistry
) -> None:
    with pytest.raises(ForbiddenError, match="is not signed"):
        await _client(nc, namespace, {}).report(make_reported(office="KAZ"))
    with pytest.raises(ForbiddenError, match="does not verify"):
        await _client(nc, namespace, {"KAZ": VNM_SEED}).report(make_reported(office="KAZ"))
    assert (await store.load("KAZ-TRAINING-1")).events == []
