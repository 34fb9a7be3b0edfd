"""Clustered deployments with authentication: every client and every route proves who it is.

A node's configuration has three parts. The accounts block of :mod:`services.infra.security` holds
one nkey user per service role and per office, with the permissions of its role, and no
anonymous user. The cluster block makes routes authenticate: each node accepts a route only
with the shared route user and password, and dials the others with them. The listen addresses
are the caller's: ``ledger cluster up`` (:class:`services.infra.cluster.LocalCluster`) binds every
port to 127.0.0.1; ``compose.yaml`` binds clients and routes to the container's network and
monitoring to the container's loopback, where its health check runs.

:func:`init_deployment` writes what ``compose.yaml`` mounts (``ledger deploy init``): a
configuration per node, one credentials file per service, the registry of users and the
offices' signing key registry. The folder is a data directory in the layout of
``services/infra/credentials.py``, so the same commands (``ledger --data-dir deploy office add``)
work on it.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from events.keys import KeyRegistry, save_registry
from events.reference import load_reference
from events.subjects import DEFAULT, Namespace
from services.infra.credentials import creds_dir, creds_path, ensure_users, users_path
from services.infra.office_keys import ledger_seed
from services.infra.security import SERVICE_ROLES, User, accounts_config

__all__ = [
    "ROUTE_USER",
    "Deployment",
    "NodeAddresses",
    "cluster_block",
    "compose_nodes",
    "ensure_route_secret",
    "init_deployment",
    "key_registry_path",
    "node_config",
    "route_secret_path",
]

ROUTE_USER = "route"
"""The user every node's routes authenticate as."""

_SECRET_BYTES = 32  # 256 random bits, as urlsafe base64: no character a route URL must escape


@dataclass(frozen=True)
class NodeAddresses:
    """Where one node listens, and where the other nodes reach its route port."""

    name: str
    """The node's ``server_name``; the compose service has the same name."""
    client: str
    """``host:port`` for clients."""
    cluster: str
    """``host:port`` the route port listens on."""
    http: str
    """``host:port`` of the monitoring endpoints (``/healthz``, ``/jsz``)."""
    route: str
    """``host:port`` the other nodes dial to reach this node's route port."""


def route_secret_path(data_dir: Path) -> Path:
    """Where a data directory keeps its cluster's route password: beside its credentials."""
    return creds_dir(data_dir) / "route.secret"


def ensure_route_secret(data_dir: Path) -> str:
    """The route password of the data directory's cluster, made at first use and then kept.

    It is written with mode 0600 from the start, in the credentials folder (mode 0700).
    """
    path = route_secret_path(data_dir)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    _write_private(path, secret + "\n")
    return secret


def cluster_block(name: str, listen: str, routes: Sequence[str], secret: str) -> str:
    """The ``cluster`` section of one node: authenticated routes to ``routes``.

    :param name: the cluster's name, the same on every node.
    :param listen: ``host:port`` of this node's route port.
    :param routes: ``host:port`` of every node's route port; a node skips its own.
    :param secret: the route password (:func:`ensure_route_secret`).
    """
    # A node refuses a route that does not present this user and password, so a process that
    # reaches the route port cannot join the cluster and read every account's traffic.
    urls = [f"nats-route://{ROUTE_USER}:{secret}@{route}" for route in routes]
    lines = [
        "cluster {",
        f"  name: {json.dumps(name)}",
        f"  listen: {json.dumps(listen)}",
        f"  authorization {{ user: {json.dumps(ROUTE_USER)}, password: {json.dumps(secret)} }}",
        "  routes: [",
        *(f"    {json.dumps(url)}" for url in urls),
        "  ]",
        "}",
    ]
    return "\n".join(lines) + "\n"


def node_config(
    node: NodeAddresses,
    nodes: Sequence[NodeAddresses],
    *,
    secret: str,
    users: Sequence[User],
    store_dir: str,
    cluster_name: str = "ledger",
    namespace: Namespace = DEFAULT,
) -> str:
    """The whole nats-server configuration of one node of an authenticated cluster.

    :param node: this node's addresses.
    :param nodes: every node of the cluster, this one included.
    :param secret: the route password.
    :param users: the registered users (:func:`services.infra.credentials.ensure_users`).
    :param store_dir: the JetStream store, as the node sees its file system.
    """
    return (
        f"server_name: {json.dumps(node.name)}\n"
        f"listen: {json.dumps(node.client)}\n"
        f"http: {json.dumps(node.http)}\n"
        f"jetstream {{\n  store_dir: {json.dumps(store_dir)}\n}}\n"
        + cluster_block(cluster_name, node.cluster, [n.route for n in nodes], secret)
        + accounts_config(users, namespace)
    )


def compose_nodes(count: int = 3) -> list[NodeAddresses]:
    """The nodes of ``compose.yaml``: services ``nats-1`` .. ``nats-<count>``, NATS's ports.

    Clients and routes listen on the container's network, which compose keeps private to the
    project (no port is published to the host); monitoring stays on the container's loopback.
    """
    return [
        NodeAddresses(
            name=f"nats-{i}",
            client="0.0.0.0:4222",
            cluster="0.0.0.0:6222",
            http="127.0.0.1:8222",
            route=f"nats-{i}:6222",
        )
        for i in range(1, count + 1)
    ]


def key_registry_path(out: Path) -> Path:
    """The offices' signing key registry of a deployment folder, which intake checks."""
    # Not office_keys.registry_path: that one follows LEDGER_KEY_REGISTRY, and compose mounts
    # the folder's own file whatever the operator's shell has set.
    return Path(out) / "keys" / "registry.json"


@dataclass(frozen=True)
class Deployment:
    """What :func:`init_deployment` wrote."""

    out: Path
    configs: list[Path]
    """One nats-server configuration per node, ``nats-<i>.conf``."""
    users: list[User]
    """Every registered user: one per service role and per office."""
    service_creds: dict[str, Path]
    """The credentials file of each service role."""
    users_file: Path
    key_registry: Path
    route_secret: Path


def init_deployment(
    out: Path,
    *,
    nodes: int = 3,
    cluster_name: str = "ledger",
    namespace: Namespace = DEFAULT,
) -> Deployment:
    """Write everything ``compose.yaml`` mounts into ``out``; keep what is already there.

    Existing seeds, the route password and the key registry are kept, so running it again
    (after ``ledger --data-dir <out> office add``) only regenerates the node configurations.

    :param nodes: how many NATS nodes, named ``nats-1`` .. ``nats-<nodes>``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    users = ensure_users(out, load_reference().offices)
    secret = ensure_route_secret(out)
    registry = key_registry_path(out)
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.parent.chmod(0o700)
    if not registry.exists():
        # Compose needs the file to exist (it would mount a missing source as a directory);
        # an empty registry makes no office sign until `ledger office add` registers its key.
        save_registry(registry, KeyRegistry())
    # The notary's signing key (compose.yaml's `notary` mounts it): made once, then kept, as
    # the checkpoints it signed are checked against it for ever.
    ledger_seed(out)
    addresses = compose_nodes(nodes)
    configs = []
    for node in addresses:
        path = out / f"{node.name}.conf"
        text = node_config(
            node,
            addresses,
            secret=secret,
            users=users,
            store_dir="/data",
            cluster_name=cluster_name,
            namespace=namespace,
        )
        # The configuration holds the route password: as private as the seeds.
        _write_private(path, text)
        configs.append(path)
    return Deployment(
        out=out,
        configs=configs,
        users=users,
        service_creds={role: creds_path(out, role) for role in SERVICE_ROLES},
        users_file=users_path(out),
        key_registry=registry,
        route_secret=route_secret_path(out),
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only from the start.

    An existing file is rewritten in place, not replaced: compose mounts each node's file by
    its inode, so a node reloading (SIGHUP) after ``ledger deploy init`` sees the new text only
    in the same inode. Nothing reads the file while it is written; a node reads it at start
    and when told to reload.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
