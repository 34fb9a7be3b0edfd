"""The AsyncAPI document of the ledger's NATS interface, and the API routes that serve it.

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

import jinja2
import msgspec
from litestar import MediaType, Response, Router, get

from events.codec import HEADER_TYPE, HEADER_VERSION
from events.commands import Reply, Request
from events.envelope import Envelope
from events.model import ActivityReported, ActivityRevised, ActivityWithdrawn
from events.subjects import DEFAULT, Namespace
from projections.answers import ActivityDetail, ActivityPage, CellList, Provenance, Status, Summary
from services.api import nats_queries

__all__ = [
    "QUERY_ANSWERS",
    "SERVER_URL",
    "asyncapi_router",
    "build_document",
    "document_html",
    "document_json",
    "main",
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
    envelopes = [Envelope[kind] for kind in _EVENT_TYPES]
    private = [
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


def _resolve(document: Mapping[str, Any], ref: str) -> Any:
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
    event = _resolve(document, channels["activity"]["messages"][event_key]["$ref"])
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


def _default_document() -> dict[str, Any]:
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
    return render_json(_default_document()).encode()


# -- the HTML page -----------------------------------------------------------------------------

_PAGE = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
    """\
{% macro kind(pieces) %}{% for text, anchor in pieces %}{% if anchor %}<a href="#{{ anchor }}">\
{{ text }}</a>{% else %}{{ text }}{% endif %}{% endfor %}{% endmacro %}
{% macro prose(spans) %}{% for text, code in spans %}{% if code %}<code>{{ text }}</code>\
{% else %}{{ text }}{% endif %}{% endfor %}{% endmacro %}
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ info.title }} · Activity Ledger</title>
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site"><div class="wrap"><a class="brand" href="/">Activity Ledger</a></div></header>
<main id="main" class="wrap">
<div class="page-head">
<p class="eyebrow">AsyncAPI {{ asyncapi }} · version {{ info.version }}</p>
<h1>{{ info.title }}</h1>
<p class="lede">This page is read from the AsyncAPI document, served as JSON at
<a href="/asyncapi.json">/asyncapi.json</a> for tools.</p>
</div>
<section class="panel">
<h2>About</h2>
{% for block in about %}
{% if block.bullets %}
<ul>
{% for item in block.bullets %}
<li>{{ prose(item) }}</li>
{% endfor %}
</ul>
{% else %}
<p>{{ prose(block.text) }}</p>
{% endif %}
{% endfor %}
<dl class="facts">
{% for name, server in servers %}
<dt>Server {{ name }}</dt>
<dd><code>{{ server.protocol }}://{{ server.host }}{{ server.pathname }}</code>:
{{ prose(server.description) }}</dd>
{% endfor %}
</dl>
</section>
<section class="panel">
<h2>Operations</h2>
<p class="hint">Actions are the ledger's: it receives commands and queries (a client sends
them) and sends events.</p>
<div class="table-wrap"><table>
<thead><tr><th>Operation</th><th>Action</th><th>Subject</th><th>Message</th><th>Reply</th></tr>
</thead>
<tbody>
{% for op in operations %}
<tr>
<th id="op-{{ op.key }}" scope="row">{{ op.key }}<br><span class="hint">{{ op.summary }}</span></th>
<td>{{ op.action }}</td>
<td><a href="#channel-{{ op.channel }}"><code>{{ op.address }}</code></a>
{% if op.queue %}<br><span class="hint">queue group <code>{{ op.queue }}</code></span>{% endif %}
</td>
<td>{% for pieces in op.messages %}{{ kind(pieces) }}{% if not loop.last %}<br>{% endif %}\
{% endfor %}</td>
<td>{% for pieces in op.replies %}{{ kind(pieces) }}{% if not loop.last %}<br>{% endif %}\
{% endfor %}</td>
</tr>
{% endfor %}
</tbody>
</table></div>
</section>
<section class="panel">
<h2>Channels</h2>
{% for channel in channels %}
<h3 id="channel-{{ channel.key }}">{{ channel.key }}: <code>{{ channel.address }}</code></h3>
<p>{{ prose(channel.description) }}</p>
{% if channel.parameters %}
<ul>
{% for name, text in channel.parameters %}
<li><code>{{ '{' ~ name ~ '}' }}</code>: {{ prose(text) }}</li>
{% endfor %}
</ul>
{% endif %}
{% if channel.headers %}
<p>Headers:</p>
<ul>
{% for name, text in channel.headers %}
<li><code>{{ name }}</code>: {{ prose(text) }}</li>
{% endfor %}
</ul>
{% endif %}
{% endfor %}
</section>
<section class="panel">
<h2>Message schemas</h2>
{% for schema in schemas %}
<h3 id="schema-{{ schema.name }}">{{ schema.name }}</h3>
{% if schema.description %}
<p>{{ prose(schema.description) }}</p>
{% endif %}
{% if schema.union %}
<p>One of {{ kind(schema.union) }}{% if schema.discriminator %}, told apart by
<code>{{ schema.discriminator }}</code>{% endif %}.</p>
{% endif %}
{% if schema.properties %}
<div class="table-wrap"><table class="compact">
<thead><tr><th>Field</th><th>Type</th><th>Required</th><th>Notes</th></tr></thead>
<tbody>
{% for field in schema.properties %}
<tr><th scope="row"><code>{{ field.name }}</code></th><td>{{ kind(field.kind) }}</td>
<td>{{ "yes" if field.required else "" }}</td><td>{{ field.notes }}</td></tr>
{% endfor %}
</tbody>
</table></div>
{% endif %}
{% endfor %}
</section>
</main>
</body>
</html>
"""
)

_LIMITS = ("minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "pattern")
_INBOX_ADDRESS = "(the requester's inbox)"


def _spans(text: str) -> list[tuple[str, bool]]:
    """Text as pieces, each marked whether it was a `code` span (between backticks)."""
    return [(piece, index % 2 == 1) for index, piece in enumerate(text.split("`")) if piece]


def _blocks(text: str) -> list[dict[str, Any]]:
    """A description's paragraphs and bullet lists (``- `` lines), each made of spans."""
    blocks: list[dict[str, Any]] = []
    for block in filter(None, (part.strip() for part in text.split("\n\n"))):
        if block.startswith("- "):
            items = [" ".join(item.split()) for item in ("\n" + block).split("\n- ") if item]
            blocks.append({"bullets": [_spans(item) for item in items]})
        else:
            blocks.append({"text": _spans(" ".join(block.split()))})
    return blocks


def _kind(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A short reading of a JSON Schema: text pieces, each with the anchor it links to or ''."""
    if "$ref" in schema:
        name = schema["$ref"].rpartition("/")[2]
        return [(name, f"schema-{name}")]
    for union in ("anyOf", "oneOf"):
        if union in schema:
            pieces: list[tuple[str, str]] = []
            for index, option in enumerate(schema[union]):
                pieces += [(" | ", "")] if index else []
                pieces += _kind(option)
            return pieces
    if "const" in schema:
        return [(json.dumps(schema["const"]), "")]
    if "enum" in schema:
        return [(" | ".join(json.dumps(value) for value in schema["enum"]), "")]
    kind = schema.get("type")
    if kind == "array":
        return [("array of ", ""), *_kind(schema.get("items", {}))]
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return [("object of ", ""), *_kind(schema["additionalProperties"])]
    if kind is None:
        return [("any", "")]
    text = " | ".join(kind) if isinstance(kind, list) else str(kind)
    return [(f"{text} ({schema['format']})" if "format" in schema else text, "")]


def _notes(schema: Mapping[str, Any]) -> str:
    limits = [f"{key} {schema[key]}" for key in _LIMITS if key in schema]
    if "default" in schema:
        limits.append(f"default {json.dumps(schema['default'])}")
    return "; ".join(filter(None, [schema.get("description", ""), ", ".join(limits)]))


def _page_data(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the HTML page shows, read from the document alone."""

    def message_of(ref: str) -> Any:
        message = _resolve(document, ref)
        # A channel's message is a reference to the component message.
        return _resolve(document, message["$ref"]) if "$ref" in message else message

    def payloads(refs: list[dict[str, str]]) -> list[list[tuple[str, str]]]:
        return [_kind(message_of(ref["$ref"])["payload"]) for ref in refs]

    operations = []
    for key, operation in sorted(document["operations"].items()):
        channel_ref = operation["channel"]["$ref"]
        channel = _resolve(document, channel_ref)
        operations.append(
            {
                "key": key,
                "summary": operation.get("summary", ""),
                "action": operation["action"],
                "channel": channel_ref.rpartition("/")[2],
                "address": channel.get("address") or _INBOX_ADDRESS,
                "queue": channel.get("bindings", {}).get("nats", {}).get("queue"),
                "messages": payloads(operation.get("messages", [])),
                "replies": payloads(operation.get("reply", {}).get("messages", [])),
            }
        )
    channels = []
    for key, channel in sorted(document["channels"].items()):
        headers: dict[str, Any] = {}
        for ref in channel.get("messages", {}).values():
            headers |= message_of(ref["$ref"]).get("headers", {}).get("properties", {})
        channels.append(
            {
                "key": key,
                "address": channel.get("address") or _INBOX_ADDRESS,
                "description": _spans(channel.get("description", "")),
                "parameters": [
                    (name, _spans(parameter.get("description", "")))
                    for name, parameter in channel.get("parameters", {}).items()
                ],
                "headers": [
                    (name, _spans(header.get("description", "")))
                    for name, header in headers.items()
                ],
            }
        )
    schemas = []
    for name, schema in sorted(document["components"]["schemas"].items()):
        required = set(schema.get("required", []))
        union = "anyOf" in schema or "oneOf" in schema
        schemas.append(
            {
                "name": name,
                "description": _spans(schema.get("description", "")),
                "union": _kind(schema) if union else [],
                "discriminator": schema.get("discriminator", ""),
                "properties": [
                    {
                        "name": field,
                        "kind": _kind(body),
                        "required": field in required,
                        "notes": _notes(body),
                    }
                    for field, body in schema.get("properties", {}).items()
                ],
            }
        )
    info = document["info"]
    return {
        "asyncapi": document["asyncapi"],
        "info": info,
        "about": _blocks(info.get("description", "")),
        "servers": [
            (name, {**server, "description": _spans(server.get("description", ""))})
            for name, server in sorted(document.get("servers", {}).items())
        ],
        "operations": operations,
        "channels": channels,
        "schemas": schemas,
    }


def render_html(document: Mapping[str, Any]) -> str:
    """The document as a page that loads nothing but the dashboard's stylesheet, runs no script.

    The API's Content-Security-Policy allows no script and no inline style, so the page is
    rendered here from the JSON (escaped by Jinja), not by AsyncAPI's JavaScript viewer.
    """
    return _PAGE.render(**_page_data(document))


@functools.cache
def document_html() -> bytes:
    """The served HTML page of the deployed namespace's document."""
    # From the document as built, not from the sorted JSON: fields keep their Structs' order.
    return render_html(_default_document()).encode()


# -- the routes --------------------------------------------------------------------------------

# Both run in a worker thread: the first call builds the document (FastStream and pydantic
# included), which would otherwise hold the event loop for a moment.


@get("/asyncapi.json", include_in_schema=False, opt={"query": frozenset()}, sync_to_thread=True)
def asyncapi_json() -> Response[bytes]:
    """The AsyncAPI document of the NATS interface."""
    return Response(document_json(), media_type=MediaType.JSON)


@get("/asyncapi", include_in_schema=False, opt={"query": frozenset()}, sync_to_thread=True)
def asyncapi_page() -> Response[bytes]:
    """The AsyncAPI document as a plain HTML page."""
    return Response(document_html(), media_type=MediaType.HTML)


def asyncapi_router() -> Router:
    """The two routes, served from ``/``; outside the OpenAPI document, which is HTTP's."""
    return Router(path="/", route_handlers=[asyncapi_json, asyncapi_page])


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
