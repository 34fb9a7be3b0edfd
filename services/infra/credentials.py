"""NATS credentials on disk: one nkey seed per role and per office, and the registry of users.

``<data dir>/creds/<role>.nk`` and ``<data dir>/creds/office-<CODE>.nk`` each hold one user
nkey seed (``SU...``), mode 0600, in a directory of mode 0700. ``<data dir>/creds/users.json``
lists every user's role, office and public key, so that the server configuration can be
generated again at any time without reading a seed. A seed file holds nothing but the seed, so
the NATS tools take it as it is (``nats --nkey FILE``).

These are NATS credentials, not the offices' signing keys (``services/infra/office_keys.py``): the
server checks these when a client connects, auditors check the signatures for ever.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events.errors import LedgerError
from events.signing import new_key_pair, public_key_of
from services.infra.security import SERVICE_ROLES, User, inbox_prefix_for

__all__ = [
    "Credentials",
    "CredentialsError",
    "creds_dir",
    "creds_path",
    "ensure_user",
    "ensure_users",
    "load_credentials",
    "load_users",
    "load_users_file",
    "office_creds_path",
    "users_path",
]

_SEED_IN_CREDS = re.compile(r"-+BEGIN USER NKEY SEED-+\s*(SU[A-Z2-7]+)\s*-+END", re.MULTILINE)


class CredentialsError(LedgerError):
    """Raised when a credentials file is missing or does not hold a user nkey seed."""


def creds_dir(data_dir: Path) -> Path:
    """Where a data directory keeps its NATS credentials."""
    return Path(data_dir) / "creds"


def creds_path(data_dir: Path, name: str) -> Path:
    """The seed file of the user called ``name`` (a role, or ``office-<CODE>``)."""
    return creds_dir(data_dir) / f"{name}.nk"


def office_creds_path(data_dir: Path, office: str) -> Path:
    """The seed file of an office's NATS user."""
    return creds_path(data_dir, f"office-{office}")


def users_path(data_dir: Path) -> Path:
    """The registry of users the server configuration is generated from."""
    return creds_dir(data_dir) / "users.json"


@dataclass(frozen=True)
class Credentials:
    """A user's credentials file, and what connecting with it takes."""

    path: Path
    public_key: str
    decorated: bool = False
    """Whether the file is a ``.creds`` file (JWT and seed) rather than a bare seed."""

    @property
    def inbox_prefix(self) -> str:
        """Where this user's replies arrive; the server lets no one else read them."""
        return inbox_prefix_for(self.public_key)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (and FastStream's ``NatsBroker``)."""
        key = "user_credentials" if self.decorated else "nkeys_seed"
        return {key: str(self.path), "inbox_prefix": self.inbox_prefix}


def load_credentials(path: Path | str) -> Credentials:
    """Read a bare nkey seed file, or a ``.creds`` file an operator issued.

    :raises CredentialsError: when the file is missing or holds no user seed.
    """
    path = Path(path)
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials {path}: {exc.strerror}") from None
    found = _SEED_IN_CREDS.search(text)
    seed = found.group(1) if found else text
    try:
        if not seed.startswith("SU"):
            raise ValueError(seed[:2])
        public = public_key_of(seed)
    except Exception:  # nkeys raises several unrelated types for a bad seed
        raise CredentialsError(
            f"{path} holds no NATS user nkey seed (a line starting with SU) nor a .creds file"
        ) from None
    return Credentials(path=path, public_key=public, decorated=found is not None)


def load_users(data_dir: Path) -> list[User]:
    """Every user registered in the data directory, in the order they were added."""
    path = users_path(data_dir)
    return load_users_file(path) if path.exists() else []


def load_users_file(path: Path) -> list[User]:
    """The users of a registry file (``users.json``), in the order they were added."""
    entries = json.loads(Path(path).read_text())["users"]
    return [User(e["role"], e["public_key"], e.get("office")) for e in entries]


def _save_users(data_dir: Path, users: list[User]) -> None:
    path = users_path(data_dir)
    entries = [
        {"name": u.name, "role": u.role, "office": u.office, "public_key": u.public_key}
        for u in users
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"users": entries}, indent=2) + "\n")
    os.replace(tmp, path)


def _write_seed(path: Path) -> str:
    seed, public = new_key_pair()
    # Created with 0600 from the start, never readable by others even for a moment.
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(seed + "\n")
    os.replace(tmp, path)
    return public


def ensure_user(data_dir: Path, role: str, office: str | None = None) -> User:
    """The user of a role (or of an office), creating its seed and registering it if needed.

    An existing seed is kept; the registry always follows the seed on disk.
    """
    user = User(role, "", office)
    folder = creds_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = creds_path(data_dir, user.name)
    public = load_credentials(path).public_key if path.exists() else _write_seed(path)
    user = User(role, public, office)
    users = load_users(data_dir)
    if user not in users:
        _save_users(data_dir, [u for u in users if u.name != user.name] + [user])
    return user


def ensure_users(data_dir: Path, offices: Iterable[str]) -> list[User]:
    """Every service role's user and one user per office; return all registered users."""
    for role in SERVICE_ROLES:
        ensure_user(data_dir, role)
    for office in offices:
        ensure_user(data_dir, "office", office)
    return load_users(data_dir)
