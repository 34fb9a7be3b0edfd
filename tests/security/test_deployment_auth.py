"""Deployments with authentication: the clusters of ``ledger cluster up`` and of compose.yaml.

Both run real nats-servers on loopback. The compose cluster runs the very files ``ledger deploy
init`` writes, with only the addresses moved to free loopback ports (no Docker engine here);
the local cluster is :class:`services.infra.cluster.LocalCluster`. On each, a client without
credentials, a route without the password and an office reaching for the stream are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.js.errors
import pytest
import yaml
from click.testing import CliRunner

from events.checkpoint import KEY_NAME, open_note, origin_of
from events.signing import new_key_pair, public_key_of
from events.store import EventStore
from events.subjects import DEFAULT
from services.cli.main import main
from services.client.office import OfficeClient
from services.infra.cluster import LocalCluster, NodePorts, free_ports
from services.infra.credentials import (
    Credentials,
    creds_path,
    ensure_user,
    load_credentials,
    load_users,
)
from services.infra.deploy import compose_nodes, route_secret_path
from services.infra.embedded import nats_server_binary
from services.infra.office_keys import create_office_key, seed_path
from services.infra.stack import ConnectionFailedError, connect
from services.infra.violations import PermissionDeniedError, refused_or
from tests.factories import make_reported
from tests.integration.test_projector import wait_for_checkpoint

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
LEDGER = str(Path(sys.executable).parent / "ledger")
NODES = ("nats-1", "nats-2", "nats-3")
_TIMEOUT = 3.0


# -- the clusters ---------------------------------------------------------------------------


def _get(port: int, path: str) -> dict[str, Any]:
    """A monitoring endpoint of the node whose monitoring port is ``port``, decoded."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"{}")


def _wait_healthy(ports: list[int], processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in processes), "a nats-server exited at start"
        with contextlib.suppress(OSError, ValueError):
            if all(_get(port, "/healthz").get("status") == "ok" for port in ports):
                return
        time.sleep(0.1)
    raise AssertionError("the cluster was not healthy within 30s")


def _loopback(text: str, ports: list[NodePorts], i: int, store: Path) -> str:
    """Node ``i``'s compose configuration with its addresses moved to free loopback ports."""
    swaps = {
        '"0.0.0.0:4222"': f'"127.0.0.1:{ports[i].client}"',
        '"0.0.0.0:6222"': f'"127.0.0.1:{ports[i].cluster}"',
        '"127.0.0.1:8222"': f'"127.0.0.1:{ports[i].http}"',
        '"/data"': json.dumps(str(store)),
        **{f"@{node}:6222": f"@127.0.0.1:{ports[j].cluster}" for j, node in enumerate(NODES)},
    }
    for old, new in swaps.items():
        # Each address is in the file, so a change of the generator's shape fails here.
        assert old in text, old
        text = text.replace(old, new)
    return text


@dataclass
class Cluster:
    """A running authenticated cluster, as the tests see it."""

    urls: str
    ports: list[NodePorts]
    names: list[str]
    creds: Callable[[str], Credentials]
    route_secret: str

    def monitor(self, i: int, path: str) -> dict[str, Any]:
        """A monitoring endpoint of node ``i``."""
        return _get(self.ports[i].http, path)


async def _create_stream(urls: str, creds: Credentials) -> None:
    nc = await connect(urls, "test-admin", creds=creds)
    try:
        await EventStore(nc, timeout=10.0).ensure_stream(replicas=3)
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def deploy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder ``ledger deploy init`` wrote, as compose.yaml expects it."""
    out = tmp_path_factory.mktemp("project") / "deploy"
    result = CliRunner().invoke(main, ["deploy", "init", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def compose_cluster(
    deploy_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The three nodes of compose.yaml, from the configurations ``ledger deploy init`` wrote."""
    found = free_ports(9)
    ports = [NodePorts(*found[3 * i : 3 * i + 3]) for i in range(3)]
    run = tmp_path_factory.mktemp("compose-nodes")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for i, node in enumerate(NODES):
            config = run / f"{node}.conf"
            text = (deploy_dir / f"{node}.conf").read_text()
            config.write_text(_loopback(text, ports, i, run / node))
            with (run / f"{node}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [nats_server_binary(), "-c", str(config)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        _wait_healthy([p.http for p in ports], processes)
        cluster = Cluster(
            urls=",".join(f"nats://127.0.0.1:{p.client}" for p in ports),
            ports=ports,
            names=list(NODES),
            creds=lambda name: load_credentials(creds_path(deploy_dir, name)),
            route_secret=route_secret_path(deploy_dir).read_text().strip(),
        )
        asyncio.run(_create_stream(cluster.urls, cluster.creds("admin")))
        yield cluster
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(15)


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """``ledger cluster up``'s cluster: three nodes on the users of a ledger data directory."""
    ledger_dir = tmp_path_factory.mktemp("ledger")
    cluster = LocalCluster(ledger_dir / "cluster", 3, ledger_dir=ledger_dir)
    cluster.start()
    try:
        asyncio.run(_create_stream(cluster.urls, cluster.credentials()))
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def local(local_cluster: LocalCluster) -> Cluster:
    """The local cluster, as the tests see it."""
    return Cluster(
        urls=local_cluster.urls,
        ports=local_cluster.ports,
        names=[node.server_name for node in local_cluster.nodes],
        creds=local_cluster.credentials,
        route_secret=route_secret_path(local_cluster.ledger_dir).read_text().strip(),
    )


@pytest.fixture(params=["compose", "local"])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """Each authenticated cluster in turn."""
    fixture = "compose_cluster" if request.param == "compose" else "local"
    return request.getfixturevalue(fixture)


# -- clients --------------------------------------------------------------------------------


async def test_a_client_without_credentials_is_refused(cluster: Cluster) -> None:
    with pytest.raises(ConnectionFailedError, match="refused a client without credentials"):
        await connect(cluster.urls, "anonymous", timeout=5)


async def test_a_seed_the_cluster_does_not_know_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.nk"
    stranger.write_text(new_key_pair()[0] + "\n")
    with pytest.raises(ConnectionFailedError, match="refused the credentials in"):
        await connect(cluster.urls, "stranger", timeout=5, creds=load_credentials(stranger))


@pytest.mark.parametrize(
    "subject", ["ledger.activity.KAZ.KAZ-1", "ledger.activity.VNM.VNM-1", "ledger.intake.VNM"]
)
async def test_an_office_cannot_write_the_stream_nor_for_another_office(
    cluster: Cluster, subject: str
) -> None:
    kaz = await connect(cluster.urls, "test-office", creds=cluster.creds("office-KAZ"))
    try:
        with pytest.raises(PermissionDeniedError, match=f"refused publish to {subject} "):
            await refused_or(kaz, kaz.request(subject, b"{}", timeout=_TIMEOUT), [subject])
    finally:
        await kaz.close()


@pytest.mark.parametrize("user", ["office-KAZ", "intake", "projector", "query", "auditor"])
async def test_only_the_admin_may_delete_the_stream(cluster: Cluster, user: str) -> None:
    nc = await connect(cluster.urls, f"test-{user}", creds=cluster.creds(user))
    try:
        jsm = nc.jetstream(timeout=_TIMEOUT)
        with pytest.raises(PermissionDeniedError, match=r"refused publish to \$JS\.API\.STREAM"):
            await refused_or(nc, jsm.delete_stream("LEDGER"), ["$JS.API.STREAM.DELETE.LEDGER"])
    finally:
        await nc.close()
    # Check the stream is still there, replicated on every node.
    admin = await connect(cluster.urls, "test-admin", creds=cluster.creds("admin"))
    try:
        info = await admin.jetstream(timeout=10).stream_info("LEDGER")
        assert info.config.num_replicas == 3
    finally:
        await admin.close()


# -- routes ---------------------------------------------------------------------------------


def route_handshake(port: int, password: str | None) -> bytes:
    """What a route port answers to a server's CONNECT with ``password`` (none: no auth)."""
    connect_ = {
        "echo": True,
        "verbose": False,
        "pedantic": False,
        "tls_required": False,
        "name": "rogue",
        "cluster": "ledger",
        "headers": True,
    }
    if password is not None:
        connect_ |= {"user": "route", "pass": password}
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT) as sock:
        assert sock.recv(4096).startswith(b"INFO ")
        sock.sendall(b"CONNECT " + json.dumps(connect_).encode() + b"\r\nPING\r\n")
        with contextlib.suppress(TimeoutError):
            while not (b"PONG" in answer or b"-ERR" in answer):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    return answer


def test_the_nodes_route_to_each_other(cluster: Cluster) -> None:
    for i, name in enumerate(cluster.names):
        routes = cluster.monitor(i, "/routez")["routes"]
        assert {route["remote_name"] for route in routes} == set(cluster.names) - {name}


@pytest.mark.parametrize("password", [None, "wrong", ""])
def test_a_route_without_the_password_is_refused(cluster: Cluster, password: str | None) -> None:
    for ports in cluster.ports:
        assert route_handshake(ports.cluster, password) == b"-ERR 'Authorization Violation'\r\n"


def test_a_route_with_the_password_is_answered(cluster: Cluster) -> None:
    # The control for the refusals above: the same handshake with the password gets through.
    assert route_handshake(cluster.ports[0].cluster, cluster.route_secret) == b"PONG\r\n"


def test_a_server_without_the_route_password_never_joins(
    compose_cluster: Cluster, tmp_path: Path
) -> None:
    client, route, http = free_ports(3)
    routes = ", ".join(f'"nats-route://127.0.0.1:{p.cluster}"' for p in compose_cluster.ports)
    config = tmp_path / "rogue.conf"
    config.write_text(
        f'server_name: "rogue"\nlisten: "127.0.0.1:{client}"\nhttp: "127.0.0.1:{http}"\n'
        f'cluster {{ name: "ledger", listen: "127.0.0.1:{route}", routes: [{routes}] }}\n'
    )
    log = tmp_path / "rogue.log"
    with log.open("wb") as out:
        rogue = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        # Check every node refuses it, and refuses it again when it retries.
        refusals = [
            re.compile(rf"127\.0\.0\.1:{p.cluster} - rid:\d+ - Route Error 'Authorization")
            for p in compose_cluster.ports
        ]

        def counts() -> list[int]:
            text = log.read_text()
            return [len(refusal.findall(text)) for refusal in refusals]

        deadline = time.monotonic() + 30
        while not all(counts()):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        first = counts()
        while not all(now > then for now, then in zip(counts(), first, strict=True)):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert _get(http, "/routez")["num_routes"] == 0
        for i, name in enumerate(NODES):
            names = {r["remote_name"] for r in compose_cluster.monitor(i, "/routez")["routes"]}
            assert names == set(NODES) - {name}
    finally:
        rogue.terminate()
        rogue.wait(15)


# -- the local cluster ----------------------------------------------------------------------


def test_every_port_of_the_local_cluster_is_on_loopback(local_cluster: LocalCluster) -> None:
    for i in range(3):
        varz = local_cluster.monitor(i, "/varz")
        assert (varz["host"], varz["http_host"], varz["cluster"]["addr"]) == ("127.0.0.1",) * 3


def test_the_local_cluster_keeps_its_secrets_private(local_cluster: LocalCluster) -> None:
    folder = local_cluster.ledger_dir / "creds"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    secrets = [*folder.glob("*.nk"), route_secret_path(local_cluster.ledger_dir)]
    assert {path.stem for path in secrets} >= {"admin", "intake", "intake-reply", "route"}
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    # Check a second cluster on the same directory keeps the route password.
    secret = route_secret_path(local_cluster.ledger_dir).read_text()
    again = LocalCluster(local_cluster.data_dir, 3, ledger_dir=local_cluster.ledger_dir)
    assert route_secret_path(local_cluster.ledger_dir).read_text() == secret
    assert f"route:{secret.strip()}@127.0.0.1:" in again.nodes[0].extra_config


async def test_a_new_seed_connects_once_the_local_cluster_reloads(
    local_cluster: LocalCluster,
) -> None:
    # Give HQ a new seed, as an operator rotating a leaked one would.
    creds_path(local_cluster.ledger_dir, "office-HQ").unlink()
    fresh = ensure_user(local_cluster.ledger_dir, "office", "HQ")
    assert fresh in load_users(local_cluster.ledger_dir)
    creds = local_cluster.credentials("office-HQ")
    with pytest.raises(ConnectionFailedError, match="refused the credentials"):
        await connect(local_cluster.urls, "test-hq", timeout=5, creds=creds)
    local_cluster.reload()
    nc = await connect(local_cluster.urls, "test-hq", creds=creds)
    await nc.close()


# -- ledger deploy init ---------------------------------------------------------------------


def test_deploy_init_writes_private_files(deploy_dir: Path) -> None:
    creds = deploy_dir / "creds"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o700
    assert stat.S_IMODE((deploy_dir / "keys").stat().st_mode) == 0o700
    private = [*creds.glob("*.nk"), creds / "route.secret", *deploy_dir.glob("nats-*.conf")]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    names = {path.stem for path in creds.glob("*.nk")}
    assert {"admin", "intake", "intake-reply", "projector", "query", "auditor"} <= names
    assert {user.name for user in load_users(deploy_dir)} == names
    # Check no seed is written anywhere but its own file.
    seeds = [path.read_text().strip() for path in creds.glob("*.nk")]
    for path in [*deploy_dir.glob("nats-*.conf"), creds / "users.json"]:
        assert not any(seed in path.read_text() for seed in seeds), path.name


def test_deploy_init_again_keeps_seeds_and_route_password(deploy_dir: Path) -> None:
    before = {path.name: path.read_text() for path in (deploy_dir / "creds").iterdir()}
    config = deploy_dir / "nats-1.conf"
    inode = config.stat().st_ino
    result = CliRunner().invoke(main, ["deploy", "init", "--out", str(deploy_dir)])
    assert result.exit_code == 0, result.output
    after = {path.name: path.read_text() for path in (deploy_dir / "creds").iterdir()}
    assert after == before
    # Check the configuration is rewritten in place: a file mounted into a running node
    # shows the new text only in the same inode, for the node to reload.
    assert config.stat().st_ino == inode


def test_the_node_configurations_differ_only_in_the_server_name(deploy_dir: Path) -> None:
    texts = [(deploy_dir / f"{node}.conf").read_text() for node in NODES]
    assert [text.splitlines()[0] for text in texts] == [f'server_name: "{n}"' for n in NODES]
    assert len({text.split("\n", 1)[1] for text in texts}) == 1
    assert [node.name for node in compose_nodes()] == list(NODES)


def test_nats_server_accepts_the_compose_configuration_as_written(deploy_dir: Path) -> None:
    checked = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(deploy_dir / "nats-1.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_keys_folder_is_private(tmp_path: Path) -> None:
    # A folder an older version made world-readable is closed when a seed is written in it.
    (tmp_path / "keys").mkdir(mode=0o755)
    create_office_key(tmp_path, "KAZ")
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE(seed_path(tmp_path, "KAZ").stat().st_mode) == 0o600
    fresh = tmp_path / "fresh"
    create_office_key(fresh, "VNM")
    assert stat.S_IMODE((fresh / "keys").stat().st_mode) == 0o700


# -- compose.yaml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    """The services of compose.yaml by name (PyYAML resolves anchors as compose does)."""
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


def test_compose_runs_the_nats_server_release_the_tests_run(services: dict[str, Any]) -> None:
    found = subprocess.run(
        [nats_server_binary(), "--version"], capture_output=True, text=True, timeout=30
    )
    version = re.search(r"v(\d+\.\d+\.\d+)", found.stdout + found.stderr)
    assert version is not None
    for node in NODES:
        assert services[node]["image"] == f"nats:{version.group(1)}-alpine"


def test_each_node_runs_its_generated_configuration_read_only(services: dict[str, Any]) -> None:
    for node in NODES:
        service = services[node]
        assert service["command"] == ["--config", "/etc/nats/nats-server.conf"]
        assert f"./deploy/{node}.conf:/etc/nats/nats-server.conf:ro" in service["volumes"]


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("stream", {"admin.nk"}),
        ("intake", {"intake.nk", "intake-reply.nk", "users.json", "registry.json"}),
        ("projector", {"projector.nk"}),
        ("notary", {"notary.nk", "ledger.nk"}),
        (
            "api",
            {
                "auditor.nk",
                "intake.nk",
                "intake-reply.nk",
                "projector.nk",
                "query.nk",
                "users.json",
                "registry.json",
            },
        ),
    ],
)
def test_each_service_gets_its_own_credentials_files(
    services: dict[str, Any], name: str, files: set[str]
) -> None:
    service = services[name]
    given = {s if isinstance(s, str) else s["source"] for s in service["secrets"]}
    assert given == files
    # Check nothing of ./deploy reaches a ledger service but through read-only secrets.
    assert not any("deploy" in volume for volume in service.get("volumes", []))


def test_services_connect_with_the_files_they_are_given(services: dict[str, Any]) -> None:
    expected = {
        "stream": {"LEDGER_CREDS": "/run/secrets/admin.nk"},
        "intake": {
            "LEDGER_CREDS": "/run/secrets/intake.nk",
            "LEDGER_REPLY_CREDS": "/run/secrets/intake-reply.nk",
            "LEDGER_USERS": "/run/secrets/users.json",
        },
        "projector": {"LEDGER_CREDS": "/run/secrets/projector.nk"},
        "notary": {"LEDGER_CREDS": "/run/secrets/notary.nk"},
        "api": {
            "LEDGER_KEY_REGISTRY": "/run/secrets/registry.json",
            "LEDGER_CREDS": "/run/secrets/auditor.nk",
        },
    }
    for name, env in expected.items():
        environment = services[name]["environment"]
        assert {key: environment.get(key) for key in env} == env, name
    assert services["intake"]["command"][-2:] == ["--key-registry", "/run/secrets/registry.json"]
    # `ledger up` finds its roles' files in <data dir>/creds, as with the embedded server.
    targets = {s["target"] for s in services["api"]["secrets"] if isinstance(s, dict)}
    assert targets == {
        f"/data/creds/{f}"
        for f in ("intake.nk", "intake-reply.nk", "projector.nk", "query.nk", "users.json")
    }


def test_compose_mounts_what_deploy_init_writes(deploy_dir: Path) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    sources = [secret["file"] for secret in compose["secrets"].values()]
    for service in compose["services"].values():
        sources += [v.split(":")[0] for v in service.get("volumes", []) if v.startswith("./")]
    assert sources
    for source in sources:
        assert source.startswith("./deploy/"), source
        assert (deploy_dir / source.removeprefix("./deploy/")).is_file(), source


def test_no_public_api_without_a_token(services: dict[str, Any]) -> None:
    public = [name for name, s in services.items() if "--public" in (s.get("command") or [])]
    assert public == ["api"]
    for name in public:
        token = services[name]["environment"]["LEDGER_API_TOKEN"]
        # Compose refuses to start when the variable is unset or empty.
        assert token.startswith("${LEDGER_API_TOKEN:?"), token
        assert "Bearer" in " ".join(services[name]["healthcheck"]["test"])


# -- compose's services, run as processes ---------------------------------------------------


COMPOSE_URL = "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"


def _as_process(
    name: str, deploy_dir: Path, cluster: Cluster, data: Path
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of compose's service ``name`` on this machine.

    Each ``/run/secrets/<name>`` becomes the file compose would mount there, from the folder
    ``ledger deploy init`` wrote; the nodes' URL becomes the test cluster's; ``/data`` a
    folder of the test's.
    """
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    files = {key: spec["file"] for key, spec in compose["secrets"].items()}

    def local(value: str) -> str:
        for key, file in files.items():
            value = value.replace(f"/run/secrets/{key}", str(deploy_dir.parent / file))
        return value.replace(COMPOSE_URL, cluster.urls).replace("/data/", f"{data}/")

    service = compose["services"][name]
    # The image's entry point is the `ledger` CLI; a service may run `python -m ...` instead.
    given = service.get("entrypoint")
    entrypoint = [sys.executable, *given[1:]] if given else [LEDGER]
    argv = entrypoint + [local(arg) for arg in service["command"]]
    environment = {key: local(str(value)) for key, value in service["environment"].items()}
    # The image sets LEDGER_DATA_DIR=/data (Dockerfile).
    return argv, {**os.environ, "LEDGER_DATA_DIR": str(data), **environment}


async def test_intake_projector_and_notary_run_with_the_files_compose_gives_them(
    compose_cluster: Cluster, deploy_dir: Path, tmp_path: Path
) -> None:
    names = ("intake", "projector", "notary")
    processes: list[subprocess.Popen[str]] = []
    try:
        for name in names:
            argv, env = _as_process(name, deploy_dir, compose_cluster, tmp_path)
            log = (tmp_path / f"{name}.log").open("w")
            processes.append(
                subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            )
            log.close()
        deadline = time.monotonic() + 30
        while "intake ready" not in (tmp_path / "intake.log").read_text():
            assert processes[0].poll() is None, (tmp_path / "intake.log").read_text()
            assert time.monotonic() < deadline, "intake did not start"
            await asyncio.sleep(0.1)

        # Check an office reports through intake (which answers on its inbox only) ...
        kaz = await connect(
            compose_cluster.urls, "test-kaz", creds=compose_cluster.creds("office-KAZ")
        )
        try:
            client = OfficeClient(kaz, "KAZ", timeout=_TIMEOUT)
            accepted = await client.report(make_reported(activity_id="KAZ-COMPOSE-1", office="KAZ"))
        finally:
            await kaz.close()
        # ... and the projector, with its role's durable consumer, counts it.
        await wait_for_checkpoint(tmp_path / "ledger.db", accepted.sequence, timeout=30)
        # ... and the notary, with its role's user and the ledger key deploy init made, signs
        # a checkpoint that covers it.
        note = await _signed_checkpoint(compose_cluster, accepted.sequence, timeout=30)
        public = public_key_of((deploy_dir / "keys" / "ledger.nk").read_text().strip())
        signed = open_note(note, KEY_NAME, public)
        assert signed.origin == origin_of(DEFAULT, public)
        assert signed.size >= accepted.sequence
        # Check each one's health check passes with its own credentials.
        compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
        for name in names:
            _, env = _as_process(name, deploy_dir, compose_cluster, tmp_path)
            test = compose["services"][name]["healthcheck"]["test"]
            assert test[:2] == ["CMD", "ledger"]
            checked = subprocess.run(
                [LEDGER, *test[2:]], env=env, capture_output=True, text=True, timeout=60
            )
            assert checked.returncode == 0, checked.stderr
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(15)
    assert [process.returncode for process in processes] == [0, 0, 0], [
        (tmp_path / f"{name}.log").read_text() for name in names
    ]


async def _signed_checkpoint(cluster: Cluster, covering: int, timeout: float) -> bytes:
    """The newest checkpoint on the stream once one covers sequence ``covering``."""
    admin = await connect(cluster.urls, "test-admin", creds=cluster.creds("admin"))
    try:
        js = admin.jetstream(timeout=10)
        deadline = time.monotonic() + timeout
        while True:
            try:
                stored = await js.get_last_msg(DEFAULT.stream, DEFAULT.checkpoints)
            except nats.js.errors.NotFoundError:
                stored = None
            if stored is not None and stored.seq > covering:
                assert stored.data is not None
                return stored.data
            assert time.monotonic() < deadline, "no checkpoint was signed"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def test_the_api_runs_with_the_files_compose_gives_it(
    compose_cluster: Cluster, deploy_dir: Path, tmp_path: Path
) -> None:
    # Its files go where compose mounts them: the data directory's creds/ folder.
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    data = tmp_path / "data"
    for secret in compose["services"]["api"]["secrets"]:
        if isinstance(secret, dict):
            target = data / secret["target"].removeprefix("/data/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(deploy_dir.parent / compose["secrets"][secret["source"]]["file"])
    argv, env = _as_process("api", deploy_dir, compose_cluster, data)
    (port,) = free_ports(1)
    argv = [{"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(arg, arg) for arg in argv]
    env["LEDGER_API_TOKEN"] = "t0ken"
    log = tmp_path / "api.log"
    with log.open("w") as out:
        api = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C to stop." not in log.read_text():
            assert api.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        url = f"http://127.0.0.1:{port}/healthz"
        assert (
            urllib.request.urlopen(
                urllib.request.Request(url, headers={"Authorization": "Bearer t0ken"}), timeout=5
            ).status
            == 200
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 401
    finally:
        api.terminate()
        api.wait(30)
    assert api.returncode == 0, log.read_text()


def test_the_deploy_folder_is_never_committed() -> None:
    assert "/deploy/" in (ROOT / ".gitignore").read_text().splitlines()
