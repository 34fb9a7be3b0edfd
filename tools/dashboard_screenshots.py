#!/usr/bin/env python3
"""Take the README's dashboard screenshots from the seed data: docs/overview.png, docs/country.png.

It folds data/activities.jsonl into a projection in a temporary directory with the projector's
own applier (no NATS server: the applier is what a rebuild runs), serves the dashboard on a free
loopback port, and photographs two pages with the system Chromium through Playwright.

Usage: python tools/dashboard_screenshots.py [--out docs] [--country KAZ]
Needs Debian's chromium (/usr/bin/chromium) and `pip install playwright`; it never downloads
a browser.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from events.codec import encode, headers_for
from events.envelope import seal
from events.stored import RawMessage
from projections.apply import Applier
from projections.db import ensure_live, open_writer
from services.api.app import create_app
from services.cli.demo import read_dataset

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
_REPORT_DATE = dt.datetime(2021, 6, 30, tzinfo=dt.UTC)


def build_seed_projection(live: Path) -> None:
    """The seed dataset's activities as a live projection at ``live``, one event each."""
    real = ensure_live(live)
    start_ns = int(_REPORT_DATE.timestamp()) * 1_000_000_000
    batch = []
    for sequence, activity in enumerate(read_dataset(), start=1):
        event = seal(
            activity,
            office=activity.office,
            actor="import",
            occurred_at=_REPORT_DATE,
            recorded_at=_REPORT_DATE,
        )
        batch.append(
            RawMessage(
                sequence,
                f"ledger.activity.{event.office}.{event.activity_id}",
                start_ns + sequence * 1_000_000_000,
                headers_for(event),
                encode(event),
            )
        )
    conn = open_writer(real)
    try:
        Applier(conn).apply(batch)
    finally:
        conn.close()


def serve(live: Path) -> tuple[str, uvicorn.Server, threading.Thread]:
    """The dashboard over ``live`` on a free loopback port, in a thread of its own."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(live), lifespan="off", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def main() -> None:
    """Build, serve, photograph, stop."""
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--country", default="KAZ")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ledger-shots-") as tmp:
        live = Path(tmp) / "projections" / "ledger.db"
        build_seed_projection(live)
        url, server, thread = serve(live)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                shots = (
                    ("overview", "/", 1000),
                    # Tall enough to show the multi-country activities listed apart.
                    ("country", f"/countries/{args.country}", 1250),
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
            server.should_exit = True
            thread.join(10)


if __name__ == "__main__":
    main()
