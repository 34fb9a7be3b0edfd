"""The store contract (tests/store_contract.py) on the JetStream EventStore, a real nats-server.

The ``store`` fixture of tests/conftest.py gives each case a fresh stream; the same cases run
on the in-memory store in tests/unit/test_memory_store.py.
"""

from __future__ import annotations

from tests.store_contract import StoreContract


class TestJetStreamStore(StoreContract):
    """Every case of the contract, on the JetStream store."""
