#!/usr/bin/env python3
"""Take the README's dashboard screenshots from the seed data: docs/overview.png, docs/country.png
and docs/map.png.

It runs ``ledger demo`` in a temporary data directory (the embedded nats-server, intake, the
projector and the API, the seed report imported through intake), waits until the projection
has caught up with the stream, and photographs three pages with the system Chromium through
Playwright: what a reader of a running ledger sees, lag badge included.

Usage: python tools/dashboard_screenshots.py [--out docs] [--country KAZ]
Needs Debian's chromium (/usr/bin/chromium) and `pip install playwright`; it never downloads
a browser.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# tests/e2e/test_dashboard_browser.py launches Chromium the same way, from these.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_READY_SECONDS = 120


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_demo(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """``ledger demo`` on ``port``, its output in ``data_dir``/demo.log."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "demo.log").open("wb")
    ledger = Path(sys.executable).with_name("ledger")
    argv = [str(ledger), "--data-dir", str(data_dir), "demo", "--port", str(port)]
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())


def wait_caught_up(url: str, demo: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the API answers and its projection has every stored event."""
    deadline = time.monotonic() + _READY_SECONDS
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise SystemExit(f"ledger demo stopped:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/v1/status", timeout=2) as answer:
                status = json.load(answer)
        except OSError:
            time.sleep(0.5)
            continue
        lags = [p.get("lag") for p in status.get("projections", [])]
        if status.get("stream_last_sequence") and lags and all(lag == 0 for lag in lags):
            return
        time.sleep(0.5)
    raise SystemExit(f"the demo did not catch up in {_READY_SECONDS} s:\n{log.read_text()}")


def main() -> None:
    """Start the demo, photograph, stop."""
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--country", default="KAZ")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ledger-shots-") as tmp:
        data_dir = Path(tmp) / "ledger"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        demo = start_demo(data_dir, port)
        try:
            wait_caught_up(url, demo, data_dir / "demo.log")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                shots = (
                    ("overview", "/", 1000),
                    # Tall enough to show the multi-country activities listed apart.
                    ("country", f"/countries/{args.country}", 1250),
                    # The world map of people trained, and the sorted table under it.
                    ("map", "/countries?metric=people_trained", 1000),
                )
                page = browser.new_page(viewport={"width": 1200, "height": 1000})
                for name, path, height in shots:
                    page.set_viewport_size({"width": 1200, "height": height})
                    page.goto(url + path)
                    target = args.out / f"{name}.png"
                    page.screenshot(path=str(target))
                    print(f"{target}: {target.stat().st_size // 1024} KB")
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(30)
            except subprocess.TimeoutExpired:
                demo.kill()


if __name__ == "__main__":
    main()
