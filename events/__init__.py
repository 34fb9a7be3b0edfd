"""The ledger's model: events, envelope, codec, reference data, subjects, decisions, the stores.

This package imports nothing else of the project; everything else imports it. Importing it
loads no NATS client: the JetStream store (``events.store``) is imported where it is used.
"""

from events.activity import ActivityState, apply_event, check_can_revise, check_can_withdraw
from events.codec import Codec, decode, encode
from events.envelope import Envelope, new_event_id, seal
from events.errors import (
    ActivityNotFoundError,
    ActivityWithdrawnError,
    Conflict,
    EventDecodeError,
    FieldIssue,
    InvalidEventError,
    LedgerError,
    StreamConfigError,
)
from events.model import (
    ActivityChanges,
    ActivityReported,
    ActivityRevised,
    ActivityWithdrawn,
    CountryShare,
    Event,
    Source,
)
from events.reference import Reference, load_reference
from events.stored import AppendOutcome, AppendResult, LoadedActivity, Recorded
from events.subjects import DEFAULT, Namespace
from events.validation import check_reason, check_reported

__all__ = [
    "DEFAULT",
    "ActivityChanges",
    "ActivityNotFoundError",
    "ActivityReported",
    "ActivityRevised",
    "ActivityState",
    "ActivityWithdrawn",
    "ActivityWithdrawnError",
    "AppendOutcome",
    "AppendResult",
    "Codec",
    "Conflict",
    "CountryShare",
    "Envelope",
    "Event",
    "EventDecodeError",
    "FieldIssue",
    "InvalidEventError",
    "LedgerError",
    "LoadedActivity",
    "Namespace",
    "Recorded",
    "Reference",
    "Source",
    "StreamConfigError",
    "apply_event",
    "check_can_revise",
    "check_can_withdraw",
    "check_reason",
    "check_reported",
    "decode",
    "encode",
    "load_reference",
    "new_event_id",
    "seal",
]
