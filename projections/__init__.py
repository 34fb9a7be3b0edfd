"""Read models: pure folds, the SQLite schema, the batch applier, and provenance.

This package imports only ``events``; services and replay build on it.
"""

from projections.apply import Applier, BatchResult
from projections.db import live_path, open_reader, open_writer, switch_live
from projections.fold import FoldError, fold_event, footprint
from projections.provenance import Contribution, contributions

__all__ = [
    "Applier",
    "BatchResult",
    "Contribution",
    "FoldError",
    "contributions",
    "fold_event",
    "footprint",
    "live_path",
    "open_reader",
    "open_writer",
    "switch_live",
]
