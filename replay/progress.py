"""Progress of long work: a rich bar in a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["EVERY", "ProgressReporter"]

EVERY = 5.0
"""Seconds between plain lines, and before the first: work shorter than this shows none."""


class _EventsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="cyan")


class ProgressReporter:
    """Counts events done out of a total, and shows it with events/s and the time left.

    Use it as a context manager, or call :meth:`close` at the end.
    """

    def __init__(
        self,
        total: int,
        bar: bool | None = None,
        label: str = "rebuild",
        every: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        """
        :param total: how many events there are to do (it may grow: set ``total``).
        :param bar: a rich bar when true, plain lines when false; by default, a bar when the
            stream is a terminal.
        :param label: the word each display starts with.
        :param every: seconds between plain lines (:data:`EVERY` by default).
        :param stream: where to write; standard error by default.
        """
        self.total = total
        self.label = label
        self.done = 0
        self.started = time.perf_counter()
        self._stream = stream or sys.stderr
        self._every = EVERY if every is None else every
        self._next_line = self.started + self._every
        self._progress: Progress | None = None
        self._closed = False
        if self._stream.isatty() if bar is None else bar:
            self._progress = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                _EventsPerSecond(),
                TimeRemainingColumn(),
                # On the stream whose terminal chose the bar, not rich's standard output,
                # which may be a pipe for the command's own answer.
                console=Console(file=self._stream),
                transient=False,
            )
            self._task = self._progress.add_task(label, total=total)
            self._progress.start()

    def advance(self, count: int) -> None:
        """Count ``count`` more events as done."""
        self.done += count
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, total=max(self.total, self.done))
            return
        now = time.perf_counter()
        if now >= self._next_line:
            self._next_line = now + self._every
            rate = self.done / (now - self.started)
            left = (self.total - self.done) / rate if rate else 0.0
            print(
                f"{self.label}: {self.done:,}/{self.total:,} events, {rate:,.0f} events/s, "
                f"about {left:.0f}s left",
                file=self._stream,
                flush=True,
            )

    def stage(self, text: str) -> None:
        """Say that the work has moved on to a step that counts no events, such as creating
        indexes: at 1M events a rebuild spends ~40 s after its last event is read, which
        should not look like a hang. Only once the work has run for ``every`` seconds, as
        the first plain line: short work stays as quiet as before."""
        if time.perf_counter() - self.started < self._every:
            return
        line = f"{self.label}: {text}"
        if self._progress is not None and not self._closed:
            self._progress.console.print(line)
        else:
            print(line, file=self._stream, flush=True)

    def close(self) -> None:
        """Stop the bar."""
        if self._progress is not None and not self._closed:
            self._progress.stop()
        self._closed = True

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
