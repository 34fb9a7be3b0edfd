"""The body of every refusal the HTTP API sends, and the error responses its routes document."""

from __future__ import annotations

import msgspec
from litestar.openapi.datastructures import ResponseSpec

__all__ = ["ERRORS", "ErrorBody"]


class ErrorBody(msgspec.Struct, frozen=True):
    """What every refusal carries: a code, a message that says what to fix, and the field."""

    code: str
    message: str
    field: str = ""


ERRORS = {
    400: ResponseSpec(ErrorBody, description="A parameter is malformed, out of range or unknown"),
    404: ResponseSpec(ErrorBody, description="No such country, programme, metric or activity"),
    503: ResponseSpec(ErrorBody, description="Not yet at min_sequence, or no projection yet"),
}
"""The refusals every ``/v1`` route documents in the OpenAPI schema."""
