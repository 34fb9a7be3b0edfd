"""The AsyncAPI document of the ledger's NATS interface (``asyncapi_page.py`` serves it).

A field office's developer reads here what to send where and what comes back: commands on
``ledger.intake.<office>``, queries on ``ledger.query.<name>``, and the stored events on
``ledger.activity.<office>.<activity_id>``. The document is AsyncAPI 3.0, served as JSON at
``/asyncapi.json`` and as a plain HTML page at ``/asyncapi``; a copy is checked in as
``docs/asyncapi.json``, and ``tests/unit/test_asyncapi.py`` fails when it is stale. Regenerate
it with::

    python -m services.api.asyncapi > docs/asyncapi.json

How it is built. FastStream's own generator (:class:`faststream.specification.AsyncAPI`) writes
the document from a :class:`~faststream.nats.NatsBroker` on which the interface is declared:
a subscriber for intake and for each query (what the ledger receives) and a publisher for the
activity subject (what intake sends). The broker is never started, so declaring them connects
nowhere; the handlers are stubs that never run.

FastStream derives payload schemas through pydantic, which does not understand msgspec
Structs. So each declared payload is a placeholder that pydantic can take (``Any``, carrying
only a title), and FastStream names it, places it in ``components.schemas`` and references it
from its message as for any model. The bodies come from :func:`msgspec.json.schema_components`
over the very types intake and the queries decode and encode (:mod:`events.commands`,
:mod:`events.envelope`, :mod:`services.api.nats_queries`, :mod:`projections.answers`): they
replace the placeholders and join ``components.schemas`` with every type they refer to. On the
way, msgspec's OpenAPI-style ``discriminator`` objects become AsyncAPI's property-name strings,
and the query parameter Structs (private to their module) are named ``Query<Name>``.

A few things FastStream 0.7.8 does not write are added to its output afterwards: the replies
(AsyncAPI 3's ``reply`` on the intake and query operations, on an ``inbox`` channel whose
address is the requester's reply subject), the parameters of templated addresses, the stored
events' headers, and the receive side of the activity subject (the projector, auditors).
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import unquote

import msgspec

from events.codec import HEADER_TYPE, HEADER_VERSION
from events.commands import Reply, Request
from events.envelope import Envelope
from events.model import ActivityReported, ActivityRevised, ActivityWithdrawn
from events.subjects import DEFAULT, Namespace
from projections.answers import (
    ActivityDetail,
    ActivityPage,
    CellList,
    Provenance,
    ReleaseList,
    Status,
    Summary,
)
from services.api import nats_queries

__all__ = [
    "QUERY_ANSWERS",
    "SERVER_URL",
    "build_document",
    "default_document",
    "document_json",
    "main",
    "resolve_ref",
]

SERVER_URL = "nats://127.0.0.1:4222"
"""The server the document names: the one ``ledger up`` starts by default."""

QUERY_ANSWERS: dict[str, type[msgspec.Struct]] = {
    "countries": CellList,
    "country": Summary,
    "programmes": CellList,
    "programme": Summary,
    "years": CellList,
    "year": Summary,
    "documents": CellList,
    "releases": ReleaseList,
    "activities": ActivityPage,
    "activity": ActivityDetail,
    "provenance": Provenance,
    "status": Status,
}
"""What each NATS query answers with (the same Struct its HTTP route returns)."""

_EVENT_TYPES = (ActivityReported, ActivityRevised, ActivityWithdrawn)
_REFS = "#/components/schemas/"
_INBOX = "inbox"
_REFUSAL = "query.refusal"


def _description(ns: Namespace) -> str:
    """The document's overview, in CommonMark as AsyncAPI's ``info.description`` takes it."""
    return f"""\
The ledger's NATS interface. Every body is JSON.

- Commands: a field office sends a request to `{ns.intake("<office>")}` (its own office
  code) and gets one reply on its inbox. A retried command (same `command_id` and
  `issued_at`) is recognised and stores nothing new. `ReportActivities` sends many reports in
  one request and gets one reply per report.
- Queries: a request to `{ns.query("<name>")}` with the parameters as a JSON object (an
  empty body for none) gets the same JSON as the HTTP API's route, or a refusal
  `{{code, message, field}}` with the header `Ledger-Error`.
- Events: each accepted command becomes one event on
  `{ns.activity("<office>", "<activity_id>")}` in the JetStream stream `{ns.stream}`; the
  projector and auditors read them back.

Replies go only to the requester's inbox: `_INBOX.…` on a server without authentication,
`_INBOX_<the user's public nkey>.…` with it (nats-py's `inbox_prefix`). A request whose reply
subject is anything else is dropped unanswered.
"""


# -- the payload schemas, from msgspec ---------------------------------------------------------


def _query_params(name: str) -> type[msgspec.Struct]:
    """The parameters the named query decodes its request body into."""
    known = nats_queries._QUERIES.get(name)
    # ``status`` is answered outside the table, with only the common parameters.
    return known[0] if known is not None else nats_queries._Params


def _walk(node: Any, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to every object in a JSON value, depth first."""
    if isinstance(node, dict):
        for value in node.values():
            _walk(value, change)
        change(node)
    elif isinstance(node, list):
        for value in node:
            _walk(value, change)


def _schemas(queries: tuple[str, ...]) -> dict[str, Any]:
    """Every payload's schema and every schema they refer to, as ``components.schemas``.

    :param queries: the query names to cover.
    """
    # A generic parametrised by a class known only at run time: mypy cannot check it.
    envelopes: list[Any] = [Envelope[kind] for kind in _EVENT_TYPES]  # type: ignore[valid-type]
    private: list[type[msgspec.Struct]] = [
        *(_query_params(name) for name in queries),
        nats_queries._Error,
    ]
    types = [Request, Reply, *envelopes, *private, *(QUERY_ANSWERS[name] for name in queries)]
    tops, components = msgspec.json.schema_components(types, ref_template=_REFS + "{name}")
    request, reply, *_ = tops
    # The query modules' Structs are private (``_Country``); give them public, unique names.
    renamed = {kind.__name__: _component_name(kind) for kind in private}
    components = {renamed.get(name, name): body for name, body in components.items()}

    def to_asyncapi(node: dict[str, Any]) -> None:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REFS):
            name = ref.removeprefix(_REFS)
            node["$ref"] = _REFS + renamed.get(name, name)
        if isinstance(node.get("title"), str) and node["title"] in renamed:
            node["title"] = renamed[node["title"]]
        # AsyncAPI's Schema Object takes the discriminating property's name, not OpenAPI's
        # object with a mapping; each variant's tag is in its own schema anyway.
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict):
            node["discriminator"] = discriminator["propertyName"]

    _walk([request, reply, components], to_asyncapi)
    for kind in _EVENT_TYPES:
        # The envelope's ``type`` names its payload's type (events.envelope.seal): saying so
        # makes the stored-event union as easy to tell apart as the tagged ones.
        components[_generic_name(kind)]["properties"]["type"]["const"] = kind.__name__
    unions = {
        "IntakeRequest": {
            **request,
            "title": "IntakeRequest",
            "description": "Anything an office may send to intake: one command, or a batch of "
            "reports. `command` tells which.",
        },
        "IntakeReply": {
            **reply,
            "title": "IntakeReply",
            "description": "Intake's answer: `outcome` tells which. A batch of reports is "
            "answered with `Replies`, one reply per report in the same order.",
        },
        "StoredEvent": {
            "title": "StoredEvent",
            "description": "One stored event: an envelope around the payload its `type` "
            f"names. Its headers repeat the type and version ({HEADER_TYPE}, "
            f"{HEADER_VERSION}).",
            "oneOf": [{"$ref": _REFS + _generic_name(kind)} for kind in _EVENT_TYPES],
            "discriminator": "type",
        },
    }
    return components | unions


def _generic_name(kind: type) -> str:
    """msgspec's component name for ``Envelope[kind]``."""
    return f"Envelope_{kind.__name__}_"


def _component_name(kind: type[msgspec.Struct]) -> str:
    """The component name of a Struct in this document (see :func:`_schemas`)."""
    if kind is nats_queries._Error:
        return "QueryRefusal"
    return f"Query{kind.__name__[1:]}" if kind.__name__.startswith("_") else kind.__name__


# -- the interface, declared on a FastStream broker --------------------------------------------


def _payload(name: str) -> Any:
    """A parameter type FastStream documents as the payload named ``name``.

    pydantic takes ``Any`` without looking further; the title is what FastStream names the
    payload's schema by, so that :func:`_complete` can put msgspec's body in its place.
    """
    from pydantic import Field, WithJsonSchema

    return Annotated[Any, WithJsonSchema({"title": name}), Field(title=name)]


def _stub(name: str, payload: str, doc: str) -> Callable[..., Any]:
    """A handler that is declared, documented and never called."""

    async def handler(body: Any) -> None:
        raise NotImplementedError("declared for the AsyncAPI document only")

    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = doc
    # Set after the fact: this module's annotations are strings, and the payload's type is
    # made at run time.
    handler.__annotations__ = {"body": _payload(payload), "return": None}
    return handler


def _declare(ns: Namespace, queries: tuple[str, ...]) -> Any:
    """A broker with the ledger's NATS interface declared on it; never started."""
    from faststream.nats import NatsBroker

    broker = NatsBroker(
        SERVER_URL,
        description="A local nats-server, as `ledger up` starts it; a deployment gives its own "
        "URL and each user's credentials (docs/deployment.md).",
        protocol_version=None,
    )
    intake = _stub(
        "intake",
        "IntakeRequest",
        "A field office's commands, on the subject of its own office code. Each is answered "
        "once, on the sender's inbox, with an `IntakeReply`. Intake instances share the "
        "subject in a queue group.",
    )
    # The queue group run_intake subscribes in: "<prefix>-intake".
    broker.subscriber(ns.intake("{office}"), queue=f"{ns.prefix}-intake", title="intake")(intake)
    for name in queries:
        answer = QUERY_ANSWERS[name].__name__
        query = _stub(
            f"query_{name}",
            _component_name(_query_params(name)),
            f"The `{name}` query: its parameters as a JSON object (an empty body for none). "
            f"Answered on the sender's inbox with `{answer}`, the same JSON as the HTTP API "
            "gives, or with a `QueryRefusal`. `min_sequence` waits (a few seconds at most) "
            "until the projection has applied that stream sequence.",
        )
        broker.subscriber(ns.query(name), queue=nats_queries.QUEUE, title=f"query.{name}")(query)
    broker.publisher(
        ns.activity("{office}", "{activity_id}"),
        title="activity",
        description="The events of one activity, oldest first, in the JetStream stream "
        f"`{ns.stream}`: intake appends one per accepted command, with the activity's expected "
        "last sequence, so a stale writer is refused. The projector (a durable pull consumer "
        f"on `{ns.activities}`) and auditors read them; nothing else writes here.",
        schema=_payload("StoredEvent"),
    )
    return broker


# -- what FastStream does not write --------------------------------------------------------------


def resolve_ref(document: Mapping[str, Any], ref: str) -> Any:
    """The value a local ``$ref`` (``#/a/b``) points at."""
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
    return node


def _message(name: str, title: str, payload: str, description: str, **extra: Any) -> Any:
    return {
        "name": name,
        "title": title,
        "contentType": "application/json",
        "description": description,
        "payload": {"$ref": _REFS + payload},
        **extra,
    }


def _complete(
    document: dict[str, Any],
    components: dict[str, Any],
    ns: Namespace,
    queries: tuple[str, ...],
) -> None:
    """Fill in the payload bodies, replies, parameters and headers (see the module docstring)."""
    schemas = document["components"]["schemas"]
    declared = {
        "IntakeRequest",
        "StoredEvent",
        *(_component_name(_query_params(q)) for q in queries),
    }
    if set(schemas) != declared or any(body != {"title": name} for name, body in schemas.items()):
        raise RuntimeError(
            f"FastStream documented the payloads {sorted(schemas)}, not the placeholders of "
            f"{sorted(declared)}"
        )
    document["components"]["schemas"] = dict(components)

    messages = document["components"]["messages"]
    channels = document["channels"]
    operations = document["operations"]
    # FastStream gives every message a correlation id in a header no client of the ledger sets;
    # a request is matched to its reply by the reply subject, and an event by its payload.
    for message in messages.values():
        message.pop("correlationId", None)
        message["contentType"] = "application/json"

    inbox: dict[str, Any] = {}
    messages["intake.reply"] = _message(
        "IntakeReply",
        "Intake's reply",
        "IntakeReply",
        "The outcome of a command: `accepted`, `rejected` (with a code; `unavailable` is "
        "transient, retry as is), `described`, or `replies` for a batch.",
    )
    inbox["intake.reply"] = {"$ref": "#/components/messages/intake.reply"}
    messages[_REFUSAL] = _message(
        "QueryRefusal",
        "A refused query",
        "QueryRefusal",
        "A query that could not be answered; `field` names the parameter to blame.",
        headers={
            "type": "object",
            "properties": {
                "Ledger-Error": {
                    "type": "string",
                    # The codes nats_queries._error_for gives: those of the error table
                    # (services.errors.ANSWERS), "invalid" for a body msgspec refuses, and
                    # "internal"; tests/unit/test_asyncapi.py compares them.
                    "enum": ["invalid", "unknown", "unavailable", "internal"],
                    "description": "The refusal's code, so a reader can tell without decoding.",
                }
            },
            "required": ["Ledger-Error"],
        },
    )
    inbox[_REFUSAL] = {"$ref": f"#/components/messages/{_REFUSAL}"}
    for name in queries:
        key = f"query.{name}.answer"
        answer = QUERY_ANSWERS[name].__name__
        messages[key] = _message(
            answer, f"The {name} query's answer", answer, f"The `{name}` query's answer."
        )
        inbox[key] = {"$ref": f"#/components/messages/{key}"}
    channels[_INBOX] = {
        "address": None,
        "title": "The requester's inbox",
        "description": "Where each reply goes: the reply subject the request carried "
        "(nats-py sets it). Only the requester's own inbox is answered: `_INBOX.…` on a server "
        "without authentication, `_INBOX_<public nkey>.…` with it.",
        "messages": inbox,
    }

    def reply(*keys: str) -> dict[str, Any]:
        return {
            "channel": {"$ref": f"#/channels/{_INBOX}"},
            "messages": [{"$ref": f"#/channels/{_INBOX}/messages/{key}"} for key in keys],
        }

    operations["intake"]["reply"] = reply("intake.reply")
    operations["intake"]["summary"] = "Send a command to intake"
    for name in queries:
        operations[f"query.{name}"]["reply"] = reply(f"query.{name}.answer", _REFUSAL)
        operations[f"query.{name}"]["summary"] = f"Ask the {name} query"

    office = {
        "description": "The office's code, one subject token (letters, digits, `_`, `-`), "
        "e.g. `KAZ`. Under authentication an office may send only on its own.",
    }
    channels["intake"]["parameters"] = {"office": office}
    channels["activity"]["parameters"] = {
        "office": {"description": "The code of the office the activity belongs to."},
        "activity_id": {
            "description": "The activity's id, chosen by its office: 1-64 letters, digits, "
            "`_` or `-`."
        },
    }

    (event_key,) = channels["activity"]["messages"]
    event = resolve_ref(document, channels["activity"]["messages"][event_key]["$ref"])
    event["correlationId"] = {
        "description": "Shared by every event of one piece of work, e.g. one import run.",
        "location": "$message.payload#/correlation_id",
    }
    event["headers"] = {
        "type": "object",
        "properties": {
            HEADER_TYPE: {"type": "string", "description": "The envelope's `type`."},
            HEADER_VERSION: {
                "type": "string",
                "description": "The envelope's schema `version`, as digits; older versions "
                "are upcast on read.",
            },
            "Nats-Msg-Id": {
                "type": "string",
                "description": "The event id: JetStream stores a retried append once.",
            },
            "Nats-Expected-Last-Subject-Sequence": {
                "type": "string",
                "description": "The activity's last stream sequence as intake saw it (0 for a "
                "new activity): a stale append is refused.",
            },
            "Nats-Expected-Last-Subject-Sequence-Subject": {
                "type": "string",
                "description": "The subjects that sequence is of: every subject the activity "
                f"id could live on, `{ns.activity_filter('<activity_id>')}`.",
            },
        },
        "required": [HEADER_TYPE, HEADER_VERSION, "Nats-Msg-Id"],
    }
    operations["activity"]["summary"] = "Intake appends an accepted command's event"
    operations["activity.read"] = {
        "action": "receive",
        "summary": "The projector and auditors read the stored events",
        "description": "Read from the stream: the projector through its durable pull "
        f"consumer on `{ns.activities}`, auditors (`ledger audit`) by activity.",
        "channel": {"$ref": "#/channels/activity"},
        "messages": operations["activity"]["messages"],
    }


# -- the document ------------------------------------------------------------------------------


def _package_version() -> str:
    try:
        return importlib.metadata.version("activity-ledger")
    except importlib.metadata.PackageNotFoundError:  # run from a tree that is not installed
        return "0+unknown"


def build_document(ns: Namespace = DEFAULT) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the ledger's NATS interface, as JSON-ready data.

    :param ns: the namespace whose subjects the document names; the deployed ``ledger`` one by
        default.
    :raises RuntimeError: when FastStream's output is not what this module expects of it (a
        FastStream upgrade may do that): better no document than a wrong one.
    """
    # FastStream (and pydantic) are imported here, not with the module: the API imports this
    # module at start, and need not pay their 0.4 s until the document is first asked for.
    from faststream.specification import AsyncAPI

    queries = tuple(nats_queries.QUERY_NAMES)
    unknown = set(queries) - set(QUERY_ANSWERS)
    if unknown:
        raise RuntimeError(f"no answer type is known for the queries {sorted(unknown)}")
    components = _schemas(queries)
    spec = AsyncAPI(
        _declare(ns, queries),
        title="Activity Ledger NATS interface",
        version=_package_version(),
        description=_description(ns),
        schema_version="3.0.0",
    ).to_specification()
    document = spec.to_jsonable()
    _complete(document, components, ns, queries)
    return document


def render_json(document: Mapping[str, Any]) -> str:
    """The document as the checked-in file holds it: indented, keys sorted, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


_building = threading.Lock()


def default_document() -> dict[str, Any]:
    """The deployed namespace's document, built once per process (and never changed)."""
    # The routes run in worker threads: two first requests at once still build it once.
    with _building:
        return _built()


@functools.cache
def _built() -> dict[str, Any]:
    return build_document()


@functools.cache
def document_json() -> bytes:
    """The served (and checked-in) JSON of the deployed namespace's document."""
    return render_json(default_document()).encode()


def main(argv: list[str] | None = None) -> None:
    """Write the document (``docs/asyncapi.json`` holds its output) to stdout or a file."""
    parser = argparse.ArgumentParser(
        prog="python -m services.api.asyncapi", description="Print the NATS AsyncAPI document."
    )
    parser.add_argument("--output", "-o", help="write to this file instead of stdout")
    args = parser.parse_args(argv)
    text = render_json(build_document())
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
    else:
        sys.stdout.buffer.write(text.encode())
        sys.stdout.flush()


if __name__ == "__main__":
    main()
