"""The key registry: which public keys may sign for which office.

A small JSON file, ``{"offices": {"KAZ": ["U...", ...]}}``, newest key last. Auditors can hold a
copy offline and check every signature in an export against it. A key stays listed after a newer
one is added, so events signed before a rotation still verify.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

__all__ = ["KeyRegistry", "load_registry", "save_registry"]


class KeyRegistry(msgspec.Struct):
    """Public keys by office."""

    offices: dict[str, list[str]] = {}

    def keys_for(self, office: str) -> list[str]:
        """The public keys registered for ``office``; empty when it has none."""
        return self.offices.get(office, [])

    def register(self, office: str, public_key: str) -> None:
        """Add a public key for ``office``, once."""
        keys = self.offices.setdefault(office, [])
        if public_key not in keys:
            keys.append(public_key)


def load_registry(path: Path) -> KeyRegistry:
    """The registry in ``path``; an empty one when the file does not exist."""
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=KeyRegistry)
    except FileNotFoundError:
        return KeyRegistry()


def save_registry(path: Path, registry: KeyRegistry) -> None:
    """Write the registry atomically: readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(registry)) + b"\n")
    os.replace(tmp, path)
