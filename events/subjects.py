"""Subject and stream names: one subject per activity, so the activity is the aggregate.

``ledger.activity.<office>.<activity_id>`` holds an activity's events, ``ledger.release.<name>``
a release, ``ledger.checkpoint`` the notary's checkpoints; ``ledger.intake.<office>`` takes an
office's commands, ``ledger.query.<name>`` answers readers. A namespace other than
``ledger`` lets tests and benchmarks run side by side on one server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT", "Namespace", "is_token"]

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_token(value: str) -> bool:
    """Whether ``value`` can stand as one subject token: letters, digits, ``_``, ``-``; 1-64 long.

    Stricter than NATS needs (which only forbids ``.``, ``*``, ``>`` and whitespace), so the same
    ids are also safe in file names, URLs and CSV.
    """
    return _TOKEN.fullmatch(value) is not None


@dataclass(frozen=True)
class Namespace:
    """The names of one ledger: its stream and the subjects around it."""

    prefix: str = "ledger"
    stream: str = "LEDGER"

    @property
    def activities(self) -> str:
        """Wildcard of every activity subject: what the fold reads."""
        return f"{self.prefix}.activity.>"

    @property
    def releases(self) -> str:
        """Wildcard of every release subject, the stream's other subject."""
        return f"{self.prefix}.release.>"

    @property
    def checkpoints(self) -> str:
        """The subject of the notary's signed checkpoints of the stream's Merkle tree
        (events/checkpoint.py): on the stream itself, so that they are leaves of the log
        they certify and travel with it."""
        return f"{self.prefix}.checkpoint"

    @property
    def everything(self) -> str:
        """Wildcard of every subject the stream holds: what the Merkle tree covers."""
        return f"{self.prefix}.>"

    def release(self, name: str) -> str:
        """The subject that holds one release (events/release.py)."""
        return f"{self.prefix}.release.{name}"

    def activity(self, office: str, activity_id: str) -> str:
        """The subject that holds one activity's events."""
        return f"{self.prefix}.activity.{office}.{activity_id}"

    def activity_filter(self, activity_id: str) -> str:
        """Every subject an activity id could live on, whatever its office."""
        return f"{self.prefix}.activity.*.{activity_id}"

    def intake(self, office: str) -> str:
        """Where an office sends its commands."""
        return f"{self.prefix}.intake.{office}"

    def query(self, name: str) -> str:
        """Where readers ask the named query."""
        return f"{self.prefix}.query.{name}"

    @classmethod
    def for_tests(cls, tag: str) -> Namespace:
        """A namespace of its own for one test or benchmark run."""
        return cls(prefix=f"t_{tag}".lower(), stream=f"T_{tag}".upper())


DEFAULT = Namespace()
