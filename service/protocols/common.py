"""What the protocol modules share: the model in service or a 503, refusals, JSON bodies."""
from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response
from litestar.exceptions import ClientException, ServiceUnavailableException
from litestar.openapi import ResponseSpec

from service.schemas import ErrorBody
from service.serving import ServiceState, Serving

JSON = "application/json"
_ENCODER = msgspec.json.Encoder()


class MalformedBody(ClientException):
    """The body is not JSON."""

    status_code = 400


class UnprocessableBody(ClientException):
    """The body is JSON but breaks a rule."""

    status_code = 422


class Conflict(ClientException):
    """The request repeats something already recorded."""

    status_code = 409


def serving_or_503(state: ServiceState) -> Serving:
    """The model in service (read once: a swap mid-request does not affect the request)."""
    serving = state.serving
    if serving is None:
        raise ServiceUnavailableException(f"not ready: {state.not_ready_reason()}")
    return serving


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None
                  ) -> Response[bytes]:
    """A JSON answer encoded here, once (msgspec), rather than by the framework."""
    return Response(_ENCODER.encode(body), media_type=JSON, status_code=status_code,
                    headers=headers)


_ERROR_TEXT = {
    400: "The body is not JSON, or (v2, /invocations) breaks a rule.",
    401: "Credentials are missing or not valid.",
    403: "The credentials do not grant this endpoint.", 404: "Unknown prediction id.",
    409: "Feedback for this prediction was already recorded.",
    413: "The body is larger than MAX_BODY_BYTES.",
    422: "The body breaks a rule; `extra.errors` names the field and the rule.",
    503: "No verified model is in service."}


def error_specs(*codes: int, container: type = ErrorBody,
                text: dict[int, str] | None = None) -> dict[int, ResponseSpec]:
    """Documented error answers."""
    words = {**_ERROR_TEXT, **(text or {})}
    return {c: ResponseSpec(data_container=container, description=words[c]) for c in codes}
