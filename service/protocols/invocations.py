"""MLflow's scoring protocol: POST /invocations, answered as `mlflow models serve` answers.

The body holds one of `dataframe_split` ({columns, data[, index]}), `dataframe_records`
(records), `instances` or `inputs` (records, or a mapping of column -> values). The answer is
`{"predictions": [...]}` with what the bundle's pyfunc returns: each row's class
probabilities (`predict_proba`, classes in signature order) for a classifier, the value for a
regression. Same rules, metrics and drift window as /v1; no prediction ids (the answer has
nowhere to carry them). Errors: `{"error_code": ..., "message": ...}` as MLflow sends them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec

from service.metrics import VARIANT_KEY
from service.openapi import operation_with_body
from service.protocols.common import json_response
from service.serving import ServiceState
from service.validation import RequestCodec, RequestInvalid, record_json_schema

ROUTES = frozenset({"/invocations", "/ping"})
_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST", 503: "TEMPORARILY_UNAVAILABLE"}
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class MlflowError(msgspec.Struct):
    """MLflow's error body."""

    error_code: str
    message: str


class Invocation(msgspec.Struct, forbid_unknown_fields=True):
    # An absent format is an empty Raw (msgspec takes no Raw in a union).
    dataframe_split: msgspec.Raw = msgspec.Raw()
    dataframe_records: msgspec.Raw = msgspec.Raw()
    instances: msgspec.Raw = msgspec.Raw()
    inputs: msgspec.Raw = msgspec.Raw()
    params: dict[str, Any] | None = None


class Split(msgspec.Struct, forbid_unknown_fields=True):
    columns: list[str]
    data: msgspec.Raw
    index: list[Any] | None = None


_INVOCATION = msgspec.json.Decoder(Invocation)
_SPLIT = msgspec.json.Decoder(Split)
_COLUMNS = msgspec.json.Decoder(dict[str, msgspec.Raw])


class Refused(Exception):
    """A body MLflow's server would refuse with 400 (the message says why)."""


def _error(_: Request, exc: Exception) -> Response[bytes]:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = str(exc.detail) if isinstance(exc, HTTPException) else "internal error"
    return json_response(MlflowError(_CODES.get(status, "INTERNAL_ERROR"), detail), status,
                         headers=getattr(exc, "headers", None))


def decode(body: bytes, codec: RequestCodec) -> list[tuple[Any, ...]]:
    """Columns in signature order from any of MLflow's JSON input formats."""
    try:
        request = _INVOCATION.decode(body)
    except msgspec.ValidationError as exc:
        raise Refused(f"the body must hold one of {', '.join(FORMATS)} ({exc})") from None
    except msgspec.DecodeError as exc:
        raise Refused(f"the body is not valid JSON ({exc})") from None
    given = [(name, getattr(request, name)) for name in FORMATS if len(getattr(request, name))]
    if len(given) != 1:
        raise Refused(f"the body must hold exactly one of {', '.join(FORMATS)}, "
                      f"it holds {len(given)}")
    kind, raw = given[0]
    data = bytes(raw)
    try:
        if kind == "dataframe_split":
            try:
                split = _SPLIT.decode(data)
            except msgspec.MsgspecError as exc:
                raise Refused(f"dataframe_split must be {{columns, data[, index]}} ({exc})") \
                    from None
            return codec.decode_rows(tuple(split.columns), bytes(split.data))
        if data.lstrip().startswith(b"{") and kind != "dataframe_records":
            return _columns(data, codec)
        return codec.decode_records(data)
    except RequestInvalid as exc:
        raise Refused(f"{kind}: {exc.message}") from None


def _columns(data: bytes, codec: RequestCodec) -> list[tuple[Any, ...]]:
    """A mapping of column -> values (the columnar form of `instances` and `inputs`)."""
    by_name = _COLUMNS.decode(data)
    sig = codec.signature
    if unknown := [n for n in by_name if n not in sig.feature_names]:
        raise Refused(f"{unknown[0]} is not a feature of {sig.model}")
    if missing := [n for n in sig.feature_names if n not in by_name]:
        raise Refused(f"{missing[0]} is required")
    columns = [codec.decode_column(n, bytes(by_name[n])) for n in sig.feature_names]
    lengths = {len(c) for c in columns}
    if len(lengths) != 1 or not 1 <= lengths.pop() <= codec.max_rows:
        raise Refused(f"every column holds the same number of values, 1 to {codec.max_rows}")
    return columns


def build(state: ServiceState, check: Callable[[Any, str], None] | None,
          security: list[dict[str, list[str]]] | None) -> list[Any]:
    """POST /invocations and GET /ping."""
    max_rows = state.settings.max_batch_rows

    def body_schema() -> dict[str, Any]:
        serving = state.serving
        if serving is None:
            return {"type": "object", "description": "No model is in service yet."}
        sig = serving.model.signature
        record = record_json_schema(sig)
        records = {"type": "array", "items": record, "minItems": 1, "maxItems": max_rows}
        split = {"type": "object", "required": ["columns", "data"], "properties": {
            "columns": {"type": "array", "items": {"type": "string",
                                                   "enum": sig.feature_names}},
            "data": {"type": "array", "minItems": 1, "maxItems": max_rows,
                     "items": {"type": "array"}}}}
        return {"oneOf": [
            {"type": "object", "required": [k], "additionalProperties": False,
             "properties": {k: schema}}
            for k, schema in (("dataframe_split", split), ("dataframe_records", records),
                              ("instances", records), ("inputs", records))]}

    def answer_schema() -> dict[str, Any]:
        serving = state.serving
        item: dict[str, Any] = {"type": "number"}
        if serving is not None and serving.model.signature.is_classifier:
            k = len(serving.model.signature.classes or [])
            item = {"type": "array", "items": {"type": "number"}, "minItems": k, "maxItems": k,
                    "description": f"P(class) in the order {serving.model.signature.classes}"}
        return {"type": "object", "required": ["predictions"],
                "properties": {"predictions": {"type": "array", "items": item}}}

    specs = {c: ResponseSpec(data_container=MlflowError, description=text) for c, text in {
        400: "Not JSON, or breaks the model's input rules.",
        401: "Credentials are missing or not valid.",
        403: "The credentials do not grant this endpoint.",
        413: "The body is larger than MAX_BODY_BYTES.", 503: "No model is in service."}.items()}

    @post("/invocations", operation_id="invocations", status_code=200, security=security,
          tags=["mlflow scoring protocol"], responses=specs,
          exception_handlers={HTTPException: _error, 413: _error},
          operation_class=operation_with_body(
              body_schema, "MLflow's input formats: dataframe_split, dataframe_records, "
                           "instances or inputs.",
              answer_schema, "What `mlflow models serve` answers for the same version."),
          summary="Predict (MLflow scoring protocol)")
    async def invocations(request: Request) -> Response[bytes]:
        if check is not None:
            check(request.headers, "predict")
        serving = state.serving
        if serving is None:
            return json_response(MlflowError("TEMPORARILY_UNAVAILABLE",
                                             f"not ready: {state.not_ready_reason()}"), 503)
        try:
            columns = decode(await request.body(), serving.codec)
        except Refused as exc:
            return json_response(MlflowError("BAD_REQUEST", str(exc)), 400)
        if serving.ab is None:
            answer = await serving.coalescer(columns, issue_ids=False)
        else:
            # MLflow's record formats have no room for a unit field: the unit header routes
            # (or the field when it is a feature), else the draw.
            try:
                routed = serving.ab.route(request.scope["headers"], columns,
                                          serving.codec.feature_units(columns), False,
                                          issue_ids=False)
            except RequestInvalid as exc:
                return json_response(MlflowError("BAD_REQUEST", exc.message), 400)
            request.scope[VARIANT_KEY] = routed.variant
            answer = routed.answer
        predictions = answer.values if answer.labels is None else answer.probabilities.tolist()
        return json_response({"predictions": predictions})

    @get("/ping", operation_id="ping", tags=["mlflow scoring protocol"], status_code=200,
         media_type=MediaType.TEXT, responses={503: specs[503]},
         summary="MLflow's health check: 200 while a model serves")
    async def ping() -> Response[str]:
        if state.serving is None:
            return json_response(MlflowError("TEMPORARILY_UNAVAILABLE", "no model in service"),
                                 503)
        return Response("\n", media_type=MediaType.TEXT)

    return [invocations, ping]
