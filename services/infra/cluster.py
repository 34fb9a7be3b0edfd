"""A local JetStream cluster: several real nats-servers on loopback, routed to each other.

For development and for the cluster tests; production runs the same code against the nodes of
``compose.yaml`` or any NATS cluster. Each node is an :class:`EmbeddedNats` with its own store
directory, a client port, a cluster port and a monitoring port. Every node lists every node's
cluster port in its routes (a server skips the route to itself), so any node can restart and
find the others. A stream with ``num_replicas=3`` then has a leader and two followers
(docs/design.md, "Cluster on loopback").

The nodes check credentials as the embedded server does: the users of a ledger data directory
(``<ledger dir>/creds``, made by :func:`services.infra.credentials.ensure_users`), each with its
role's permissions, and no anonymous user. Routes authenticate with a password kept beside
those credentials (``creds/route.secret``, :mod:`services.infra.deploy`), and every port,
client, route and monitoring, listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats.errors

from events.reference import load_reference
from events.subjects import DEFAULT, Namespace
from services.infra.credentials import Credentials, creds_path, ensure_users, load_credentials
from services.infra.deploy import cluster_block, ensure_route_secret
from services.infra.embedded import EmbeddedNats, EmbeddedNatsError
from services.infra.security import accounts_config

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["DEFAULT_CLIENT_PORT", "LocalCluster", "NodePorts", "free_ports"]

DEFAULT_CLIENT_PORT = 4222
"""The first node's client port when ports are fixed; the others follow it."""

_CLUSTER_OFFSET = 2000  # 4222 -> 6222 and 8222, the ports NATS documents for one server
_HTTP_OFFSET = 4000


@dataclass(frozen=True)
class NodePorts:
    """The three ports one node listens on, all on 127.0.0.1."""

    client: int
    cluster: int
    http: int


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago.

    All sockets stay open until every port is chosen, so the kernel never hands one out twice.
    Another process could still take a port before the server binds it; on a test machine
    that is rare enough, and the server then fails loudly at start.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


class LocalCluster:
    """``n`` nats-servers with JetStream forming one cluster on 127.0.0.1.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Nodes are numbered
    from 0 and named ``node-<i>``.
    """

    def __init__(
        self,
        data_dir: Path,
        n: int = 3,
        *,
        client_port: int | None = None,
        name: str = "ledger",
        ledger_dir: Path | None = None,
        namespace: Namespace = DEFAULT,
    ) -> None:
        """
        :param data_dir: each node keeps its config, log and JetStream store in
            ``data_dir/node-<i>``; a restart on the same directory finds its streams again.
        :param n: how many nodes; 3 tolerates the loss of one.
        :param client_port: fixed ports: node ``i`` takes ``client_port + i`` for clients,
            2000 above it for routes and 4000 above it for monitoring. ``None`` picks free ports.
        :param name: the cluster's name, which every node must share.
        :param ledger_dir: the ledger data directory whose users the nodes accept, and which
            keeps the route password; ``data_dir`` itself when not given.
        :param namespace: the stream and subjects the users' permissions name.
        """
        if n < 1:
            raise EmbeddedNatsError(f"a cluster needs at least one node, not {n}")
        self.data_dir = Path(data_dir).resolve()
        self.ledger_dir = Path(ledger_dir).resolve() if ledger_dir else self.data_dir
        self.name = name
        self.namespace = namespace
        if client_port is None:
            found = free_ports(3 * n)
            self.ports = [NodePorts(*found[3 * i : 3 * i + 3]) for i in range(n)]
        else:
            self.ports = [
                NodePorts(port, port + _CLUSTER_OFFSET, port + _HTTP_OFFSET)
                for port in range(client_port, client_port + n)
            ]
        self._route_secret = ensure_route_secret(self.ledger_dir)
        self.nodes = [
            EmbeddedNats(self.data_dir / f"node-{i}", port=ports.client, server_name=f"node-{i}")
            for i, ports in enumerate(self.ports)
        ]
        self._configure()

    def _configure(self) -> None:
        """Give every node its configuration from the users registered now."""
        users = ensure_users(self.ledger_dir, load_reference().offices)
        accounts = accounts_config(users, self.namespace)
        routes = [f"127.0.0.1:{ports.cluster}" for ports in self.ports]
        for node, ports in zip(self.nodes, self.ports, strict=True):
            # The monitoring port serves /connz and /jsz to anyone who reaches it: loopback only.
            node.extra_config = (
                f'http: "127.0.0.1:{ports.http}"\n'
                + cluster_block(self.name, f"127.0.0.1:{ports.cluster}", routes, self._route_secret)
                + accounts
            )

    # -- addresses --------------------------------------------------------------------------

    def url_of(self, i: int) -> str:
        """The client URL of node ``i``."""
        return f"nats://127.0.0.1:{self.ports[i].client}"

    @property
    def urls(self) -> str:
        """Every node's client URL, comma-joined: the value for ``--nats-url``."""
        return ",".join(self.url_of(i) for i in range(len(self.nodes)))

    @property
    def url(self) -> str:
        """The same as :attr:`urls`, so a cluster stands in where an :class:`EmbeddedNats` goes."""
        return self.urls

    def credentials(self, name: str = "admin") -> Credentials:
        """The credentials of the user ``name`` (a role, or ``office-<CODE>``) of the cluster.

        :raises CredentialsError: when the ledger directory has no such user.
        """
        return load_credentials(creds_path(self.ledger_dir, name))

    def index_of(self, server_name: str) -> int:
        """The number of the node called ``server_name`` (e.g. a stream leader's name)."""
        for i, node in enumerate(self.nodes):
            if node.server_name == server_name:
                return i
        raise EmbeddedNatsError(f"no node named {server_name!r} in this cluster")

    def is_running(self, i: int) -> bool:
        """Whether node ``i``'s process is alive."""
        process = self.nodes[i].process
        return process is not None and process.poll() is None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> str:
        """Start every node and wait until JetStream has a meta leader; return :attr:`urls`.

        :raises EmbeddedNatsError: when a node exits, or the cluster is not ready in time.
        """
        self._configure()
        try:
            for i in range(len(self.nodes)):
                self.nodes[i].start(timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.urls

    def start_node(self, i: int, timeout: float = 30.0) -> None:
        """Start node ``i`` again (same ports, same store) and wait until it is healthy."""
        self._configure()
        self.nodes[i].start(timeout)
        self.wait_ready(timeout)

    def stop_node(self, i: int) -> None:
        """Stop node ``i`` cleanly: SIGTERM, so it steps down and flushes its store."""
        self.nodes[i].stop()

    def kill_node(self, i: int) -> None:
        """Kill node ``i`` with SIGKILL, as a crash or a pulled plug would."""
        self.nodes[i].kill()

    def start_stopped(self, timeout: float = 30.0) -> None:
        """Start whichever nodes are down, so the cluster is whole again."""
        down = [i for i in range(len(self.nodes)) if not self.is_running(i)]
        if down:
            self._configure()
        for i in down:
            self.nodes[i].start(timeout)
        if down:
            self.wait_ready(timeout)

    def reload(self, timeout: float = 10.0) -> None:
        """Regenerate every node's configuration from the registered users and reload it.

        For a user registered while the cluster runs (``ledger office add``): each running node
        gets SIGHUP and confirms the reload, so the new user can connect at once.

        :raises EmbeddedNatsError: when a node refuses the configuration or does not confirm.
        """
        self._configure()
        for i, node in enumerate(self.nodes):
            if self.is_running(i):
                node.reload(timeout=timeout)

    def stop(self) -> None:
        """Stop every node; safe to call twice."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- health -----------------------------------------------------------------------------

    def monitor(self, i: int, path: str) -> Any:
        """GET a monitoring endpoint of node ``i`` (e.g. ``/jsz?streams=true``), decoded.

        :raises OSError: when the node does not answer.
        """
        url = f"http://127.0.0.1:{self.ports[i].http}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            # /healthz answers 503 with a JSON body while JetStream is not ready.
            return json.loads(exc.read() or b"{}")

    def is_healthy(self, i: int) -> bool:
        """Whether node ``i`` reports JetStream ready: it knows a meta leader and is current."""
        try:
            return self.monitor(i, "/healthz").get("status") == "ok"
        except (OSError, ValueError):
            return False

    def meta_leader(self) -> str | None:
        """The server name of the JetStream meta leader, as the first live node sees it."""
        for i in range(len(self.nodes)):
            if self.is_running(i):
                with contextlib.suppress(OSError, ValueError):
                    return (self.monitor(i, "/jsz").get("meta_cluster") or {}).get("leader")
        return None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every running node is healthy and the cluster has a meta leader.

        :raises EmbeddedNatsError: when that does not happen within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        running = [i for i in range(len(self.nodes)) if self.is_running(i)]
        while time.monotonic() < deadline:
            if all(self.is_healthy(i) for i in running) and self.meta_leader():
                return
            time.sleep(0.1)
        logs = ", ".join(str(self.nodes[i].log_path) for i in running)
        raise EmbeddedNatsError(f"the cluster was not ready within {timeout:g}s; see {logs}")

    def stream_state_on(self, i: int, stream: str) -> dict[str, Any] | None:
        """The stream's state as node ``i``'s own store holds it, or ``None`` if it has none.

        Unlike ``stream_info``, which the stream leader answers, this reads the node's own
        replica, so it shows whether a follower has caught up.
        """
        report = self.monitor(i, "/jsz?accounts=true&streams=true")
        for account in report.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    return detail.get("state")
        return None

    async def stream_leader(self, js: JetStreamContext, stream: str, timeout: float = 30.0) -> int:
        """The number of the node that leads ``stream``, waiting through an election.

        :param js: a JetStream context on a client connected to this cluster.
        :raises EmbeddedNatsError: when no running node leads it within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # During an election the API answers with an error or not at all; ask again.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                info = await js.stream_info(stream)
                leader = info.cluster.leader if info.cluster else None
                if leader:
                    i = self.index_of(leader)
                    if self.is_running(i):
                        return i
            await asyncio.sleep(0.1)
        raise EmbeddedNatsError(f"stream {stream} has no leader after {timeout:g}s")
