"""OpenAPI request bodies that depend on the model in service (its signature).

Litestar builds the document the first time /schema is read, after the model has loaded;
when a swap changes the signature the cached document is dropped so it is rebuilt.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

_SCALARS = ("title", "description", "enum", "minimum", "maximum", "required", "examples",
            "const")


def to_spec(schema: dict[str, Any]) -> Schema:
    """A Litestar Schema object from a plain JSON Schema dict (the subset used here)."""
    kwargs: dict[str, Any] = {k: schema[k] for k in _SCALARS if k in schema}
    if "type" in schema:
        kind = schema["type"]
        kwargs["type"] = [OpenAPIType(k) for k in kind] if isinstance(kind, list) \
            else OpenAPIType(kind)
    if "properties" in schema:
        kwargs["properties"] = {k: to_spec(v) for k, v in schema["properties"].items()}
    if "items" in schema:
        kwargs["items"] = to_spec(schema["items"])
    if "oneOf" in schema:
        kwargs["one_of"] = [to_spec(s) for s in schema["oneOf"]]
    if "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        kwargs["additional_properties"] = to_spec(extra) if isinstance(extra, dict) else extra
    if "anyOf" in schema:
        kwargs["any_of"] = [to_spec(s) for s in schema["anyOf"]]
    for src, dst in (("minItems", "min_items"), ("maxItems", "max_items"),
                     ("minLength", "min_length"), ("maxLength", "max_length")):
        if src in schema:
            kwargs[dst] = schema[src]
    return Schema(**kwargs)


def operation_with_body(body_schema: Callable[[], dict[str, Any]], description: str,
                        answer_schema: Callable[[], dict[str, Any]] | None = None,
                        answer: str = "") -> type[Operation]:
    """An Operation class whose JSON request body is `body_schema()` (and 200 answer
    `answer_schema()`) when the document is built, so both follow the model in service."""

    @dataclass
    class BodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=to_spec(body_schema()))},
                description=description, required=True)
            if answer_schema is not None:
                responses = dict(self.responses or {})
                responses["200"] = OpenAPIResponse(description=answer, content={
                    "application/json": OpenAPIMediaType(schema=to_spec(answer_schema()))})
                self.responses = responses

    return BodyOperation


def forget_document(app: Litestar) -> None:
    """Drop Litestar's cached OpenAPI document so the next read reflects the new model."""
    from litestar._openapi.plugin import OpenAPIPlugin

    plugin = app.plugins.get(OpenAPIPlugin)
    # Private attributes: Litestar has no public way to rebuild the document.
    plugin._openapi = None
    plugin._openapi_schema = None
