"""Office signing keys on disk: the seed for the office, the public key in the registry.

``<data dir>/keys/<OFFICE>.nk`` holds an office's Ed25519 seed (mode 0600: only its owner may
read it), and ``<data dir>/keys/registry.json`` the public keys intake and auditors check
signatures against. ``LEDGER_KEY_REGISTRY`` can point elsewhere, e.g. at an auditor's copy.

``<data dir>/keys/ledger.nk`` holds the ledger's own seed, made on first need: the ledger signs
the manifests of its exports and the checkpoints of its Merkle tree with it. ``notaries.json``
lists the keys of the ledgers whose exports it imported, whose checkpoints came along.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from events.errors import FieldIssue, InvalidEventError
from events.keys import KeyRegistry, load_registry, save_registry
from events.reference import load_reference
from events.signing import new_key_pair, public_key_of

__all__ = [
    "RegistryFile",
    "create_office_key",
    "ledger_seed",
    "ledger_seed_path",
    "load_office_registry",
    "office_seeds",
    "read_office_seed",
    "registry_path",
    "seed_path",
    "trust_notary",
    "trusted_notaries",
]


def registry_path(data_dir: Path) -> Path:
    """Where the key registry of a data directory is."""
    override = os.environ.get("LEDGER_KEY_REGISTRY")
    return Path(override) if override else Path(data_dir) / "keys" / "registry.json"


def seed_path(data_dir: Path, office: str) -> Path:
    """Where an office's signing seed is kept."""
    return Path(data_dir) / "keys" / f"{office}.nk"


def create_office_key(data_dir: Path, office: str, *, replace: bool = False) -> str:
    """Make a key pair for ``office``, keep its seed and register its public key; return it.

    An office that already has a seed keeps it unless ``replace`` is set; the old public key
    stays registered so that events it signed still verify.

    :raises InvalidEventError: for an office that is not in the catalogue.
    """
    if office not in load_reference().offices:
        raise InvalidEventError([FieldIssue("office", f"unknown office {office!r}")])
    path = seed_path(data_dir, office)
    if path.exists() and not replace:
        public = public_key_of(path.read_text().strip())
    else:
        seed, public = new_key_pair()
        _write_seed(path, seed)
    registry = load_registry(registry_path(data_dir))
    registry.register(office, public)
    save_registry(registry_path(data_dir), registry)
    return public


def _write_seed(path: Path, seed: str) -> None:
    # The folder of seeds is its owner's alone, even one an older version made 0755.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    # Created with 0600 from the start, never readable by others even for a moment.
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(seed + "\n")
    os.replace(tmp, path)


_LEDGER_KEY = "ledger"
"""The ledger key's file stem: lower case, so no office code (upper case) can take it."""


def ledger_seed_path(data_dir: Path) -> Path:
    """Where the ledger's own signing seed is kept."""
    return Path(data_dir) / "keys" / f"{_LEDGER_KEY}.nk"


def ledger_seed(data_dir: Path) -> str:
    """The ledger's signing seed, made on first need (mode 0600, in a folder of mode 0700).

    Its public key is the one an importer sees on an export's manifest; it is no office's key
    and is never in the registry.
    """
    path = ledger_seed_path(data_dir)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The folder may predate this key (made for the registry); only its owner may list it now.
    path.parent.chmod(0o700)
    seed, _ = new_key_pair()
    _write_seed(path, seed)
    return seed


def _notaries_path(data_dir: Path) -> Path:
    return Path(data_dir) / "keys" / "notaries.json"


def trusted_notaries(data_dir: Path) -> list[str]:
    """The public keys whose checkpoints this ledger's log may hold: its own ledger key, and
    the keys of the ledgers whose exports it imported (their checkpoints came along)."""
    own = ledger_seed_path(data_dir)
    keys = [public_key_of(own.read_text().strip())] if own.exists() else []
    path = _notaries_path(data_dir)
    if path.exists():
        keys += [
            key for key in msgspec.json.decode(path.read_bytes(), type=list[str]) if key not in keys
        ]
    return keys


def trust_notary(data_dir: Path, public_key: str) -> None:
    """Remember that the log holds checkpoints signed by ``public_key`` (an import's
    exporter), so that ``ledger verify`` checks them against it."""
    path = _notaries_path(data_dir)
    kept = msgspec.json.decode(path.read_bytes(), type=list[str]) if path.exists() else []
    if public_key not in kept:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode([*kept, public_key]))
        os.replace(tmp, path)


def read_office_seed(data_dir: Path, office: str) -> str | None:
    """The office's signing seed, or ``None`` when it has none."""
    path = seed_path(data_dir, office)
    return path.read_text().strip() if path.exists() else None


def office_seeds(data_dir: Path) -> dict[str, str]:
    """The signing seeds kept in a data directory, by office."""
    folder = Path(data_dir) / "keys"
    if not folder.is_dir():
        return {}
    return {
        path.stem: path.read_text().strip()
        for path in sorted(folder.glob("*.nk"))
        if path.stem != _LEDGER_KEY  # the ledger's own key signs no office's events
    }


def load_office_registry(data_dir: Path) -> KeyRegistry:
    """The registry intake checks signatures against."""
    return load_registry(registry_path(data_dir))


class RegistryFile:
    """The key registry on disk, read again whenever the file changes.

    Intake asks for it on every command; a ``stat`` is all that costs until someone runs
    ``ledger keys new`` or ``ledger office add``, and then the new key counts at once.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._registry = KeyRegistry()

    def current(self) -> KeyRegistry:
        """The registry as the file holds it now (empty while there is no file)."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._registry = None, KeyRegistry()
            return self._registry
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            self._registry, self._stamp = load_registry(self.path), stamp
        return self._registry
