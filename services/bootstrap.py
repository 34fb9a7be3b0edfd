"""The composition root: what ``ledger up`` runs, wired in one place.

:func:`stack_components` names the long-running parts (intake, the projector, the NATS
queries, the notary); :func:`run_stack` holds the data directory, starts the embedded NATS
server unless given a URL, makes sure the stream exists, writes ``runtime.json`` for the other
commands, and runs each component as a task until it is told to stop. The CLI, the demo and the
tests start the stack through these two functions and nothing else.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from events.envelope import utc_now
from services.api.nats_queries import query_component
from services.client.outbox import outbox_depth
from services.infra.config import Settings
from services.infra.metrics import count_outbox
from services.infra.runtime import Runtime
from services.infra.stack import Ledger, open_ledger
from services.intake.service import intake_component
from services.notary.service import notary_component
from services.projector.process import projector_process_component
from services.projector.service import projector_component

if TYPE_CHECKING:
    from services.api.server import ApiServer

__all__ = ["Component", "run_stack", "stack_components"]

Component = Callable[[Ledger, asyncio.Event], Coroutine[Any, Any, None]]
"""A long-running part of the stack: runs until the event is set, then returns."""


def stack_components(settings: Settings, *, projector_process: bool = False) -> list[Component]:
    """The components ``ledger up`` starts, in order, for these settings.

    :param projector_process: run the projector as a process of its own
        (``services/projector/process.py``) rather than on the stack's event loop.
    """
    projector = projector_process_component if projector_process else projector_component
    return [intake_component, projector, query_component, notary_component]


async def run_stack(
    settings: Settings,
    components: Sequence[Component] = (),
    *,
    on_ready: Callable[[Runtime], None] | None = None,
    stop: asyncio.Event | None = None,
    api: ApiServer | None = None,
) -> None:
    """Run the stack until ``stop`` is set, SIGINT or SIGTERM arrives, or a component fails.

    :param api: the query API to serve; it is bound once the data directory is held, so that
        its URL goes into ``runtime.json``.
    :raises AlreadyRunningError: when another stack runs on the same data directory.
    :raises PortInUseError: when the API's address cannot be bound.
    """
    stop = stop or asyncio.Event()
    # The outbox is the client's; the metrics read its depth at scrape time.
    count_outbox(functools.partial(outbox_depth, settings.data_dir))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with open_ledger(settings, hold_data_dir=True, name="ledger-up") as ledger:
            components = list(components)
            if api is not None:
                api.bind()
                components.append(api.component())
            runtime = Runtime(
                pid=os.getpid(),
                nats_url=ledger.url,
                api_url=api.url if api is not None else "",
                started_at=utc_now(),
                embedded=ledger.server is not None,
                nats_pid=ledger.server.pid if ledger.server else None,
                nats_monitor_url=ledger.server.monitor_url if ledger.server else "",
            )
            assert ledger.lock is not None  # hold_data_dir always takes it
            ledger.lock.publish(runtime)
            tasks = [asyncio.create_task(component(ledger, stop)) for component in components]
            if on_ready:
                on_ready(runtime)
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            stopper.cancel()
            for task in done:
                error = task.exception() if task is not stopper else None
                if error:
                    raise error
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
