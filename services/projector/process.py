"""The projector in a process of its own, started and stopped by ``ledger up``.

In one process, the projector, intake and the API share a core: at 1,000 reports a second the
process ran at 100% of it, and every part waited for the others (docs/performance.md, "Live
path"). ``ledger up --projector-process`` runs ``python -m services.projector`` on the same
data directory instead, as the compose file does. It connects as the projector role, follows
the same live link and durable consumer, and is told to stop (SIGTERM) with the stack; if it
ends on its own, the stack stops too, as it does for any component. The kernel stops it if
``ledger up`` is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from events.errors import LedgerError
from projections.db import live_path
from services.infra.embedded import die_with_parent
from services.infra.stack import Ledger
from services.projector.service import durable_name

__all__ = ["ProjectorExitedError", "projector_process_component"]

STOP_GRACE = 10.0
"""Seconds the projector has to finish its batch and close after SIGTERM, before SIGKILL."""


class ProjectorExitedError(LedgerError):
    """Raised when the projector's process ends while the stack runs."""


async def projector_process_component(ledger: Ledger, stop: asyncio.Event) -> None:
    """The projector as a child process, for as long as the stack runs.

    :raises ProjectorExitedError: when the process ends before the stack is told to stop; its
        own log, on the stack's standard error, says why.
    """
    ns = ledger.settings.namespace
    command = [
        *(sys.executable, "-m", "services.projector"),
        *("--nats-url", ledger.url, "--db", str(live_path(ledger.settings.data_dir))),
        *("--durable", durable_name(), "--stream", ns.stream, "--prefix", ns.prefix),
    ]
    creds = ledger.credentials_for("projector")
    if creds is not None:
        command += ["--creds", str(creds.path)]
    process = await asyncio.create_subprocess_exec(*command, preexec_fn=die_with_parent)
    ended = asyncio.create_task(process.wait())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            raise ProjectorExitedError(
                f"the projector's process exited with code {process.returncode}; "
                "its log above says why"
            )
    finally:
        stopping.cancel()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(ended), STOP_GRACE)
            except TimeoutError:
                process.kill()
                await ended
