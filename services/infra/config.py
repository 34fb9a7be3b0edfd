"""Settings of a ledger process, from flags first, then the environment, then defaults.

``LEDGER_NATS_URL`` (or ``--nats-url``) names an existing NATS server; without it the program
starts the embedded one. ``LEDGER_DATA_DIR`` (or ``--data-dir``, default ``./.ledger``) holds the
embedded server's store, the projections and ``runtime.json``. ``LEDGER_CREDS`` (or ``--creds``)
names the NATS credentials to connect with; without it, a command uses the matching file of
``<data dir>/creds/`` when there is one (docs/security.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from events.subjects import DEFAULT, Namespace

__all__ = ["DEFAULT_DATA_DIR", "Settings", "server_urls"]

DEFAULT_DATA_DIR = Path(".ledger")


def server_urls(url: str) -> list[str]:
    """The servers in a comma-joined ``--nats-url``, as nats-py wants them: a list.

    A cluster's clients name several nodes (``nats://a:4222,nats://b:4222``), so a client can
    reach the cluster through whichever node is up; nats-py parses only one URL per string.
    """
    return [part.strip() for part in url.split(",") if part.strip()]


@dataclass(frozen=True)
class Settings:
    """Where the ledger's server and files are."""

    nats_url: str | None = None
    """URL of an external NATS server; ``None`` means: find or start the embedded one."""
    data_dir: Path = DEFAULT_DATA_DIR
    replicas: int = 1
    """Stream replicas: 1 embedded, 3 in a cluster."""
    namespace: Namespace = field(default=DEFAULT)
    creds: Path | None = None
    """NATS credentials (nkey seed or .creds file) to connect with; ``None``: see the docstring."""

    @classmethod
    def load(
        cls,
        nats_url: str | None = None,
        data_dir: str | Path | None = None,
        replicas: int | None = None,
        creds: str | Path | None = None,
    ) -> Settings:
        """Settings from the given values, falling back to the environment, then defaults."""
        env = os.environ
        creds = creds or env.get("LEDGER_CREDS") or None
        return cls(
            nats_url=nats_url or env.get("LEDGER_NATS_URL") or None,
            data_dir=Path(data_dir or env.get("LEDGER_DATA_DIR") or DEFAULT_DATA_DIR),
            replicas=replicas or int(env.get("LEDGER_REPLICAS", "1")),
            creds=Path(creds) if creds else None,
        )
