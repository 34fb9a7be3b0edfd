"""Intake's decisions: a command and its activity's stored events in, an event or a reply out.

Pure: no clock (``now`` is a parameter), no NATS. Intake loads, calls :func:`decide`, appends
what it is given, and replies; the unit tests call :func:`decide` directly.

Every refusal is bounded in size whatever the input: :func:`rejection_for` spells out a few
issues and counts the rest, and :func:`split_validation_error` cuts what it quotes, so no reply
can outgrow what NATS will carry (:mod:`events.limits`).

The order of the checks matters for retries. A command whose event is already in the activity
(found by its command id, which every event keeps as ``causation_id``) gets the first outcome
back before any other rule is applied, so a retry never turns into "changes nothing".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from events.activity import ActivityState, check_can_revise, check_can_withdraw, fold_activity
from events.codec import decode, encode
from events.commands import (
    Accepted,
    Command,
    DescribeActivity,
    Described,
    Rejected,
    ReleaseFigures,
    ReportActivity,
    Request,
    ReviseActivity,
    WithdrawActivity,
    decode_command,
    event_id_for,
)
from events.envelope import Envelope, seal
from events.error_kinds import reply_code
from events.errors import (
    ActivityNotFoundError,
    ActivityWithdrawnError,
    FieldIssue,
    InvalidEventError,
    LedgerError,
    clip,
)
from events.integrity import content_hash
from events.keys import KeyRegistry
from events.limits import MAX_ISSUES, MAX_MESSAGE
from events.model import (
    ActivityChanges,
    ActivityReported,
    ActivityRevised,
    ActivityWithdrawn,
    FiguresReleased,
)
from events.reference import Reference, latest_year
from events.release import RELEASING_OFFICE
from events.signing import signature_is_valid
from events.stored import LoadedActivity, Recorded
from events.subjects import is_token
from events.validation import check_actor, check_reason, check_reported

__all__ = [
    "REVISABLE_FIELDS",
    "Append",
    "Decision",
    "apply_edits",
    "decide",
    "decide_release",
    "rejection_for",
    "split_validation_error",
]

REVISABLE_FIELDS: tuple[str, ...] = ActivityChanges.__struct_fields__
"""The fields a revision may set; ``activity_id`` and ``office`` never change."""


_NAMED_FIELD = re.compile(r"field `([^`]+)`")
_WHERE = re.compile(r" - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`$")
"""msgspec's suffix naming where an error is: ``at `$.a[0].b` `` or, for a mapping's key,
``at `key` in `$.a` ``."""
_TOO_LONG = re.compile(r"^Expected `(?P<kind>str|array|object)` of length <= (?P<limit>\d+)$")
_OUT_OF_RANGE = re.compile(r"^Expected `(?:int|float)` (?P<op><=|>=) (?P<bound>\S+)$")
_TOO_LONG_WORDS = {
    "str": "too long: at most {limit} characters",
    "array": "too many entries: at most {limit}",
    "object": "too many entries: at most {limit}",
}


@dataclass(frozen=True)
class Append:
    """Store ``event`` if the activity is still at ``expected_sequence``; reply ``version``."""

    event: Envelope[Any]
    expected_sequence: int
    version: int


Decision = Append | Accepted | Rejected | Described


def decide(
    command: Command,
    office: str,
    loaded: LoadedActivity,
    ref: Reference,
    now: dt.datetime,
    keys: KeyRegistry | None = None,
) -> Decision:
    """What intake does with a command sent on ``office``'s intake subject.

    :param command: the decoded command.
    :param office: the office token of the subject the command came on.
    :param loaded: the activity's stored events (none for an activity not yet reported).
    :param ref: the catalogues to validate against.
    :param now: the time to record the event at; also bounds the acceptable year.
    :param keys: the offices' public keys; an office with a key must sign its commands.
    :returns: an :class:`Append` to perform, or the reply to send as is.
    """
    try:
        check_actor(command.actor)
        match command:
            case ReportActivity():
                decision = _decide_report(command, office, loaded, ref, now)
            case ReviseActivity():
                decision = _decide_revise(command, office, loaded, ref, now)
            case WithdrawActivity():
                decision = _decide_withdraw(command, office, loaded, now)
            case DescribeActivity():
                return _describe(command, office, loaded)
            case _:
                return Rejected(code="invalid", message="unknown command", field="command")
    except LedgerError as exc:
        return rejection_for(exc)
    if isinstance(decision, Append) and keys is not None:
        return _check_signature(decision, command, office, keys)
    return decision


def decide_release(
    command: ReleaseFigures, office: str, now: dt.datetime, keys: KeyRegistry | None = None
) -> Append | Rejected:
    """What intake does with a release sent on ``office``'s intake subject: only
    headquarters may release, under a name that is a subject token; the event is signed as an
    activity's is. Whether the name is free is the stream's to say (the append expects the
    subject empty).
    """
    if office != RELEASING_OFFICE:
        return Rejected(
            code="forbidden",
            message=f"only {RELEASING_OFFICE} may release figures; office {office} may not",
            field="office",
        )
    try:
        check_actor(command.actor)
    except LedgerError as exc:
        return rejection_for(exc)
    if not is_token(command.name):
        return Rejected(
            code="invalid",
            message=f"{command.name!r} is not a valid release name; use 1-64 letters, digits, "
            "'_' or '-', e.g. SG-2021",
            field="name",
        )
    payload = FiguresReleased(
        name=command.name, sequence=command.sequence, digest=command.digest, note=command.note
    )
    decision = Append(_seal(payload, command, office, now, prev=""), 0, 1)
    return _check_signature(decision, command, office, keys) if keys is not None else decision


def _check_signature(
    decision: Append, command: Command | ReleaseFigures, office: str, keys: KeyRegistry
) -> Append | Rejected:
    registered = keys.keys_for(office)
    if not registered and not command.signature:
        return decision
    digest = content_hash(decision.event)
    if not any(signature_is_valid(key, digest, command.signature) for key in registered):
        why = "is not signed" if not command.signature else "has a signature that does not verify"
        return Rejected(
            code="forbidden",
            message=f"the command {why} with a key registered for office {office}; sign it "
            f"with the office's key (`ledger keys new {office}` makes one)",
            field="signature",
        )
    signed = msgspec.structs.replace(decision.event, signature=command.signature)
    return Append(signed, decision.expected_sequence, decision.version)


def _describe(command: DescribeActivity, office: str, loaded: LoadedActivity) -> Decision:
    state = _existing(command.activity_id, loaded)
    if state.activity.office != office:
        return _forbidden(office, state.activity.office, command.activity_id)
    return Described(
        activity_id=command.activity_id,
        version=state.version,
        sequence=state.last_sequence,
        events=[msgspec.Raw(encode(r.event)) for r in loaded.events],
        sequences=[r.sequence for r in loaded.events],
    )


def loaded_from(described: Described, subject: str) -> LoadedActivity:
    """The activity as intake described it, in the shape :func:`decide` takes.

    The office decides a revision or withdrawal once, on this, to know the event it signs;
    intake decides again on the stream itself, which is the decision that counts.

    :param subject: the activity's stream subject, which a description leaves out.
    """
    return LoadedActivity(
        [
            Recorded(sequence=sequence, time=event.recorded_at, subject=subject, event=event)
            for sequence, event in zip(
                described.sequences,
                (decode(bytes(raw)) for raw in described.events),
                strict=True,
            )
        ]
    )


def decode_request(data: bytes) -> Request | Rejected:
    """The request in an office's message, or the ``invalid`` refusal that answers it.

    Whatever the bytes hold, the answer is one of the two: size, depth, JSON and field errors
    all become ``invalid`` with the field, never an exception.
    """
    try:
        return decode_command(data)
    except msgspec.ValidationError as exc:
        field, message = split_validation_error(exc)
        return Rejected(code="invalid", message=message, field=field)
    except msgspec.DecodeError as exc:
        return Rejected(code="invalid", message=f"the command is not JSON: {exc}")
    except LedgerError as exc:
        return rejection_for(exc)


def rejection_for(exc: LedgerError) -> Rejected:
    """The reply that stands for one of the ledger's errors.

    The code is the one of the error's kind (:func:`events.error_kinds.reply_code`). An invalid
    input's reply names its first issue's field and lists at most
    :data:`~events.limits.MAX_ISSUES` issues in :data:`~events.limits.MAX_MESSAGE` characters,
    counting the rest: 50,000 duplicate countries must not make a reply larger than NATS
    carries, which the office would then never receive.
    """
    code = reply_code(exc)
    if code == "unavailable":
        return Rejected(code=code, message=f"{_bounded(exc)}; retrying the same command is safe")
    if isinstance(exc, InvalidEventError):
        first, *rest = exc.issues or [FieldIssue("", str(exc))]
        return Rejected(code=code, message=_listed(first, rest), field=first.field)
    # unknown_activity and withdrawn: the activity's id is what the office has to check.
    return Rejected(code=code, message=_bounded(exc), field="activity_id")


_COUNT_ROOM = len("; and 99999 more")
"""Room kept at the end of a rejection's message for the count of issues left out."""


def _listed(first: FieldIssue, rest: list[FieldIssue]) -> str:
    """The first issue's message (its field travels apart), then others while there is room."""
    budget = MAX_MESSAGE - _COUNT_ROOM
    message = clip(_printable(first.message), budget)
    shown = 0
    for issue in rest[: MAX_ISSUES - 1]:
        part = ("; also " if not shown else "; ") + _printable(str(issue))
        if len(message) + len(part) > budget:
            break
        message += part
        shown += 1
    if len(rest) > shown:
        message += f"; and {len(rest) - shown} more"
    return message


def _bounded(exc: LedgerError) -> str:
    return clip(_printable(str(exc)), MAX_MESSAGE)


def _printable(text: str) -> str:
    """``text`` with any character that is not printable written as its escape.

    JSON writes a control character as six bytes (``\\u0001``); as ``\\x01`` it takes four,
    like any other character at worst, which keeps a reply's size bound simple.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _decide_report(
    command: ReportActivity, office: str, loaded: LoadedActivity, ref: Reference, now: dt.datetime
) -> Decision:
    activity = command.activity
    if activity.office != office:
        return _forbidden(office, activity.office, activity.activity_id)
    if previous := _previous_outcome(command, office, loaded):
        return previous
    if loaded.events:
        state = _fold(loaded)
        return Rejected(
            code="conflict",
            message=f"activity {activity.activity_id!r} was already reported (now at version "
            f"{state.version}); to change it use `ledger revise {activity.activity_id}`",
            field="activity_id",
            version=state.version,
            sequence=state.last_sequence,
        )
    checked = check_reported(activity, ref, max_year=latest_year(now))
    return Append(_seal(checked, command, office, now, prev=""), expected_sequence=0, version=1)


def _decide_revise(
    command: ReviseActivity, office: str, loaded: LoadedActivity, ref: Reference, now: dt.datetime
) -> Decision:
    state = _changeable(command, office, loaded)
    if not isinstance(state, ActivityState):
        return state
    if state.withdrawn:
        raise ActivityWithdrawnError(command.activity_id)
    candidate = apply_edits(state.activity, command.changes)
    checked = check_reported(candidate, ref, max_year=latest_year(now))
    touched = {_top_field(path) for path in command.changes}
    changes = ActivityChanges(**{name: getattr(checked, name) for name in touched})
    effective = check_can_revise(state, changes)
    payload = ActivityRevised(
        activity_id=command.activity_id, changes=effective, reason=command.reason
    )
    return _next_event(payload, command, office, now, state)


def _decide_withdraw(
    command: WithdrawActivity, office: str, loaded: LoadedActivity, now: dt.datetime
) -> Decision:
    state = _changeable(command, office, loaded)
    if not isinstance(state, ActivityState):
        return state
    check_can_withdraw(state)
    payload = ActivityWithdrawn(activity_id=command.activity_id, reason=command.reason)
    return _next_event(payload, command, office, now, state)


def _changeable(
    command: ReviseActivity | WithdrawActivity, office: str, loaded: LoadedActivity
) -> ActivityState | Accepted | Rejected:
    """The activity a revision or withdrawal may change, or the reply that ends it here.

    The order matters: the office's right first, then a retry's first outcome (before any
    rule that the retry's own earlier success would now break), then the reason and version.
    """
    state = _existing(command.activity_id, loaded)
    if state.activity.office != office:
        return _forbidden(office, state.activity.office, command.activity_id)
    if previous := _previous_outcome(command, office, loaded):
        return previous
    check_reason(command.reason)
    if stale := _stale(command.expected_version, state):
        return stale
    return state


def _next_event(
    payload: Any, command: Command, office: str, now: dt.datetime, state: ActivityState
) -> Append:
    """Append ``payload`` as the activity's next event, chained to its last one."""
    return Append(
        _seal(payload, command, office, now, prev=state.last_hash),
        expected_sequence=state.last_sequence,
        version=state.version + 1,
    )


def apply_edits(activity: ActivityReported, edits: dict[str, Any]) -> ActivityReported:
    """The activity with a revision's edits applied, not yet checked against the catalogues.

    :param edits: new values by top-level field, or ``metrics.<name>`` for one figure, where
        ``None`` removes the figure.
    :raises InvalidEventError: for an empty revision, a field that cannot be revised, or a
        value of the wrong type.
    """
    if not edits:
        raise InvalidEventError(
            [FieldIssue("changes", "the revision changes nothing; give at least one new value")]
        )
    data = msgspec.to_builtins(activity)
    issues: list[FieldIssue] = []
    for path, value in edits.items():
        field, _, metric = path.partition(".")
        if field == "metrics" and metric:
            metrics = dict(data["metrics"])
            if value is None:
                metrics.pop(metric, None)
            else:
                metrics[metric] = value
            data["metrics"] = metrics
        elif path in REVISABLE_FIELDS:
            data[path] = value
        else:
            issues.append(
                FieldIssue(
                    path,
                    "this field cannot be revised; revisable fields are "
                    + ", ".join(REVISABLE_FIELDS)
                    + " and metrics.<name>",
                )
            )
    if issues:
        raise InvalidEventError(issues)
    try:
        return msgspec.convert(data, ActivityReported)
    except msgspec.ValidationError as exc:
        field, message = split_validation_error(exc)
        raise InvalidEventError([FieldIssue(field, message)]) from None


def split_validation_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """The dotted field path and the message of a msgspec validation error.

    ``Expected `str` of length <= 300 - at `$.activity.title` `` becomes ``("title", "too long:
    at most 300 characters")``. A mapping's entries are not named by msgspec (``[...]``) and
    neither is an offending key, so those errors name the mapping (``metrics``). The path drops
    the ``activity.`` and ``changes.`` wrappers, and both parts are cut to the sizes of
    :class:`~events.errors.FieldIssue`.
    """
    text = str(exc)
    where = _WHERE.search(text)
    message, path = (text[: where.start()], where["path"]) if where else (text, "")
    path = path.replace("[...]", "").replace("[", ".").replace("]", "").lstrip(".")
    for prefix in ("activity.", "changes."):
        path = path.removeprefix(prefix)
    named = _NAMED_FIELD.search(message)
    if named and named.group(1) not in path.split("."):
        # "Object missing required field `reason`" is reported at the object, not the field.
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    if too_long := _TOO_LONG.match(message):
        message = _TOO_LONG_WORDS[too_long["kind"]].format(limit=too_long["limit"])
    elif out_of_range := _OUT_OF_RANGE.match(message):
        side = "large: at most" if out_of_range["op"] == "<=" else "small: at least"
        message = f"too {side} {out_of_range['bound']}"
    if where and where["key"]:
        message = f"a name in it is {message}" if too_long else f"a name in it: {message}"
    issue = FieldIssue(path, _printable(message))
    return issue.field, issue.message


def _top_field(path: str) -> str:
    return path.partition(".")[0]


def _fold(loaded: LoadedActivity) -> ActivityState:
    state = fold_activity([(r.sequence, r.event) for r in loaded.events])
    if state is None:  # only reached with no events, which callers exclude
        raise ActivityNotFoundError("")
    return state


def _existing(activity_id: str, loaded: LoadedActivity) -> ActivityState:
    if not loaded.events:
        raise ActivityNotFoundError(activity_id)
    return _fold(loaded)


def _previous_outcome(command: Command, office: str, loaded: LoadedActivity) -> Accepted | None:
    if not loaded.events:
        return None
    event_id = event_id_for(command, office)
    for version, recorded in enumerate(loaded.events, start=1):
        event = recorded.event
        if event.causation_id == command.command_id or event.event_id == event_id:
            return Accepted(
                event_id=event.event_id,
                activity_id=event.activity_id,
                sequence=recorded.sequence,
                version=version,
                duplicate=True,
            )
    return None


def _stale(expected_version: int | None, state: ActivityState) -> Rejected | None:
    if expected_version is None or expected_version == state.version:
        return None
    activity_id = state.activity.activity_id
    return Rejected(
        code="conflict",
        message=f"activity {activity_id!r} is at version {state.version}, not "
        f"{expected_version}: someone changed it since you read it; check that your change "
        f"still applies and retry with expected version {state.version}",
        field="expected_version",
        version=state.version,
        sequence=state.last_sequence,
    )


def _forbidden(office: str, owner: str, activity_id: str) -> Rejected:
    return Rejected(
        code="forbidden",
        message=f"office {office} may not write activity {activity_id!r} of office {owner}; "
        f"send it as office {owner}",
        field="office",
    )


def _seal(
    payload: Any, command: Command | ReleaseFigures, office: str, now: dt.datetime, prev: str
) -> Envelope[Any]:
    return seal(
        payload,
        office=office,
        actor=command.actor,
        event_id=event_id_for(command, office),
        occurred_at=command.issued_at,
        recorded_at=now,
        correlation_id=command.correlation_id,
        causation_id=command.command_id,
        prev=prev,
    )
