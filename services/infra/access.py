"""The embedded server's access control: its users, its generated configuration, new offices.

The first start on a data directory creates a user for every service role and for every office
of the catalogue (``services/infra/credentials.py``); every start writes the server
configuration from the registry of users (``services/infra/security.py``). ``ledger office
add`` registers one more office and, when a ``ledger up`` runs the embedded server, rewrites the
configuration and sends the server SIGHUP, so the new user can connect at once without a
restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from events.errors import FieldIssue, InvalidEventError
from events.reference import load_reference
from services.infra.config import Settings
from services.infra.credentials import (
    Credentials,
    creds_path,
    ensure_user,
    ensure_users,
    load_credentials,
)
from services.infra.embedded import EmbeddedNats
from services.infra.office_keys import create_office_key
from services.infra.runtime import read_runtime
from services.infra.security import accounts_config

__all__ = ["OfficeAdded", "add_office", "credentials_for", "embedded_server", "reload_server"]


def embedded_server(settings: Settings) -> EmbeddedNats:
    """The embedded server of a data directory, configured with every registered user."""
    users = ensure_users(settings.data_dir, load_reference().offices)
    return EmbeddedNats(
        settings.data_dir / "nats",
        extra_config=accounts_config(users, settings.namespace),
        monitor=True,
    )


def credentials_for(settings: Settings, name: str) -> Credentials | None:
    """The credentials to connect as the user ``name`` (a role, or ``office-<CODE>``).

    ``--creds`` / ``LEDGER_CREDS`` wins; else the user's file under ``<data dir>/creds/``;
    else none, which suits a server without authentication.
    """
    if settings.creds is not None:
        return load_credentials(settings.creds)
    return role_credentials(settings.data_dir, name)


def role_credentials(data_dir: Path, name: str) -> Credentials | None:
    """The data directory's credentials of user ``name``, or ``None`` when it has none."""
    path = creds_path(data_dir, name)
    return load_credentials(path) if path.exists() else None


def reload_server(settings: Settings) -> int | None:
    """Regenerate the running embedded server's configuration and reload it.

    :returns: the server's process id, or ``None`` when no ``ledger up`` runs an embedded
        server on this data directory (the next start reads the new users anyway).
    """
    running = read_runtime(settings.data_dir)
    if running is None or not running.embedded or not running.nats_pid:
        return None
    embedded_server(settings).reload(running.nats_pid)
    return running.nats_pid


@dataclass(frozen=True)
class OfficeAdded:
    """What ``ledger office add`` made."""

    office: str
    creds: Path
    """The office's NATS credentials."""
    nats_public_key: str
    signing_public_key: str
    """The public key of the office's event-signing key (a different key)."""
    reloaded_pid: int | None
    """The embedded server that now knows the office, when one runs."""


def add_office(settings: Settings, office: str) -> OfficeAdded:
    """Give ``office`` its NATS credentials and signing key, and tell a running server.

    Existing keys are kept, so running it twice changes nothing.

    :raises InvalidEventError: for an office that is not in ``events/reference/offices.json``.
    """
    if office not in load_reference().offices:
        known = ", ".join(sorted(load_reference().offices))
        issue = FieldIssue("office", f"unknown office {office!r}; one of {known}")
        raise InvalidEventError([issue])
    user = ensure_user(settings.data_dir, "office", office)
    signing = create_office_key(settings.data_dir, office)
    return OfficeAdded(
        office=office,
        creds=creds_path(settings.data_dir, user.name),
        nats_public_key=user.public_key,
        signing_public_key=signing,
        reloaded_pid=reload_server(settings),
    )
