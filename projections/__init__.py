"""Read models: pure folds, the SQLite schema, the batch applier, and provenance.

This package imports only ``events``; services and replay build on it.
"""

from projections.apply import Applier, BatchResult
from projections.db import live_path, open_reader, open_writer, switch_live
from projections.fold import FoldError, add_footprint, fold_state
from projections.provenance import Contribution, contributions

__all__ = [
    "Applier",
    "BatchResult",
    "Contribution",
    "FoldError",
    "add_footprint",
    "contributions",
    "fold_state",
    "live_path",
    "open_reader",
    "open_writer",
    "switch_live",
]
