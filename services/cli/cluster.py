"""``ledger cluster up``: a local JetStream cluster in the foreground, for development."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from services.cli.context import settings_of
from services.infra.cluster import DEFAULT_CLIENT_PORT, LocalCluster
from services.infra.credentials import creds_dir

__all__ = ["cluster"]


@click.group()
def cluster() -> None:
    """Run a NATS JetStream cluster of several nodes on this machine."""


@cluster.command()
@click.option(
    "--nodes", default=3, show_default=True, type=click.IntRange(1, 9), help="How many nodes."
)
@click.option(
    "--data-dir",
    "cluster_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where the nodes keep their stores [default: <ledger data dir>/cluster].",
)
@click.option(
    "--port",
    default=DEFAULT_CLIENT_PORT,
    show_default=True,
    help="Client port of the first node; the others follow it, routes are 2000 above and "
    "monitoring 4000 above. 0 picks free ports.",
)
@click.pass_context
def up(ctx: click.Context, nodes: int, cluster_dir: str | None, port: int) -> None:
    """Start the nodes on 127.0.0.1 and keep them running until Ctrl-C or SIGTERM.

    The nodes accept only the users of the ledger's data directory (<data dir>/creds, made
    at the first start, as `ledger up` does), and their routes only each other, with a
    password kept in <data dir>/creds/route.secret. Point the ledger at it with the printed
    LEDGER_NATS_URL, LEDGER_REPLICAS=3 and the same data directory.

    Example: ledger --data-dir .ledger cluster up --nodes 3
    """
    settings = settings_of(ctx)
    data_dir = Path(cluster_dir) if cluster_dir else settings.data_dir / "cluster"
    local = LocalCluster(
        data_dir,
        nodes,
        client_port=port or None,
        ledger_dir=settings.data_dir,
        namespace=settings.namespace,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # The nodes run in their own sessions, so Ctrl-C reaches only this process, which then
    # stops them one by one; installed before start so an early Ctrl-C is not lost.
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        local.start()
        _print_ready(local, data_dir, settings.data_dir)
        reported: set[int] = set()
        while not stop.wait(1.0):
            for i in range(nodes):
                if i not in reported and not local.is_running(i):
                    reported.add(i)
                    click.secho(f"node-{i} has exited; see {local.nodes[i].log_path}", err=True)
    finally:
        local.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("ledger cluster stopped.")


def _print_ready(local: LocalCluster, data_dir: Path, ledger_dir: Path) -> None:
    click.echo(
        f"ledger cluster: {len(local.nodes)} nodes, JetStream meta leader "
        f"{local.meta_leader()}, data in {data_dir}"
    )
    click.echo(f"  credentials in {creds_dir(ledger_dir)}; no client connects without one")
    for i, ports in enumerate(local.ports):
        click.echo(
            f"  node-{i}  {local.url_of(i)}  routes :{ports.cluster}  "
            f"monitoring http://127.0.0.1:{ports.http}"
        )
    replicas = min(3, len(local.nodes))
    click.echo("Point the ledger at it:")
    click.echo(f"  export LEDGER_NATS_URL={local.urls}")
    click.echo(f"  export LEDGER_REPLICAS={replicas}")
    # The commands find their role's credentials in the data directory's creds/ folder.
    click.echo(f"  export LEDGER_DATA_DIR={ledger_dir}")
    click.echo("Ctrl-C to stop.", nl=True)
