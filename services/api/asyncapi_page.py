"""The AsyncAPI document as the API serves it: ``/asyncapi.json``, and a page at ``/asyncapi``.

The page is rendered on the server, with no script and no inline style, so that it works under
the API's Content-Security-Policy; it lists the operations, the channels with their parameters
and headers, and every message schema as a table of fields.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import jinja2
from litestar import MediaType, Response, Router, get

from services.api.asyncapi import default_document, document_json, resolve_ref

__all__ = ["asyncapi_router", "document_html", "render_html"]


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
        message = resolve_ref(document, ref)
        # A channel's message is a reference to the component message.
        return resolve_ref(document, message["$ref"]) if "$ref" in message else message

    def payloads(refs: list[dict[str, str]]) -> list[list[tuple[str, str]]]:
        return [_kind(message_of(ref["$ref"])["payload"]) for ref in refs]

    operations = []
    for key, operation in sorted(document["operations"].items()):
        channel_ref = operation["channel"]["$ref"]
        channel = resolve_ref(document, channel_ref)
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
    return render_html(default_document()).encode()


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
