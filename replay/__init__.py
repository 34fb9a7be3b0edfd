"""Replays of the stream: blue/green rebuild of the projections.

Depends on ``projections`` and ``events``; ``services`` builds on it.
"""

from replay.rebuild import RebuildResult, rebuild

__all__ = ["RebuildResult", "rebuild"]
