"""The service's own protocol: POST /v1/predict and POST /v1/feedback, shaped by the task.

binary {prediction, probability (of the positive class)}; multiclass {prediction,
probabilities: {class: p}}; regression {prediction: number}. Feedback is the true class of a
classifier's prediction (live accuracy) or the true value of a regressor's (live MAE).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import repeat
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import NotFoundException, ServiceUnavailableException

from contracts.prediction_log.store import Outcome
from contracts.signature import Signature
from service.ab import Routed
from service.feedback import (
    AlreadyAnswered,
    InvalidTruth,
    LogUnavailable,
    UnknownPrediction,
    check_truth,
)
from service.inference import Answer
from service.metrics import VARIANT_KEY
from service.openapi import operation_with_body
from service.protocols.common import (
    Conflict,
    MalformedBody,
    UnprocessableBody,
    error_specs,
    json_response,
    serving_or_503,
)
from service.schemas import (
    BatchFeedbackResponse,
    BatchResponse,
    BinaryResponse,
    BinaryRow,
    FeedbackRequest,
    FeedbackResponse,
    MulticlassResponse,
    MulticlassRow,
    RegressionFeedbackResponse,
    RegressionResponse,
    RegressionRow,
)
from service.serving import ServiceState
from service.validation import RequestInvalid, record_json_schema

_FEEDBACK_DECODER = msgspec.json.Decoder(
    FeedbackRequest | Annotated[list[FeedbackRequest], msgspec.Meta(min_length=1)])


def refusal(exc: RequestInvalid) -> MalformedBody | UnprocessableBody:
    """The HTTP refusal of a body that is not JSON (400) or breaks a rule (422)."""
    kind = MalformedBody if exc.status == 400 else UnprocessableBody
    return kind(detail=exc.message, extra={"errors": exc.errors})


def encode(answer: Answer, name: str, version: int, task: str, classes: tuple[str, ...],
           single: bool, routed: Routed | None = None) -> Any:
    """The /v1 body for an answer (`routed`: which A/B variant answered each row)."""
    labels, ids = answer.labels, answer.ids
    if single:
        variant = routed.variant if routed is not None else None
        if task == "binary":
            return BinaryResponse(name, version, labels[0], answer.values[0], ids[0], variant)
        if task == "multiclass":
            return MulticlassResponse(name, version, labels[0],
                                      dict(zip(classes, answer.probabilities[0].tolist())), ids[0],
                                      variant)
        return RegressionResponse(name, version, answer.values[0], ids[0], variant)
    if routed is None:
        versions, variants = repeat(version), repeat(None)
    else:
        versions, variants = routed.versions, routed.variants
    if task == "binary":
        rows: list[Any] = [BinaryRow(lab, p, i, n, v) for lab, p, i, n, v
                           in zip(labels, answer.values, ids, versions, variants)]
    elif task == "multiclass":
        rows = [MulticlassRow(lab, dict(zip(classes, p)), i, n, v) for lab, p, i, n, v
                in zip(labels, answer.probabilities.tolist(), ids, versions, variants)]
    else:
        rows = [RegressionRow(value, i, n, v)
                for value, i, n, v in zip(answer.values, ids, versions, variants)]
    return BatchResponse(name, version, rows)


def row_json_schema(signature: Signature) -> dict[str, Any]:
    """One row's result, as /v1/predict answers it for this signature's task."""
    props: dict[str, Any] = {"prediction_id": {"type": "string"}, "variant": {
        "type": ["string", "null"], "enum": ["a", "b", None],
        "description": "The A/B variant that answered (null outside a test)."}}
    if signature.task == "regression":
        props["prediction"] = {"type": "number"}
    else:
        props["prediction"] = {"type": "string", "enum": list(signature.classes or [])}
    if signature.task == "binary":
        props["probability"] = {"type": "number", "minimum": 0, "maximum": 1,
                                "description": f"P({signature.target} = "
                                               f"{signature.positive_class})"}
    if signature.task == "multiclass":
        classes = list(signature.classes or [])
        props["probabilities"] = {
            "type": "object", "required": classes, "additionalProperties": False,
            "properties": {c: {"type": "number", "minimum": 0, "maximum": 1} for c in classes}}
    return {"type": "object", "properties": props, "required": list(props)}


def build(state: ServiceState, check: Callable[[Any, str], None] | None,
          security: list[dict[str, list[str]]] | None) -> list[Any]:
    """The /v1 handlers, their bodies documented from the model in service."""
    max_rows = state.settings.max_batch_rows

    def predict_body() -> dict[str, Any]:
        serving = state.serving
        if serving is None:
            record: dict[str, Any] = {"type": "object",
                                      "description": "No model is in service yet."}
        else:
            record = record_json_schema(serving.model.signature)
            field = serving.ab.field if serving.ab is not None else None
            if field and field not in record["properties"]:
                record["properties"][field] = {
                    "type": ["string", "integer", "null"],
                    "description": "The A/B test's unit id (a customer, an account): not a "
                                   "feature, not logged; the unit header wins over it."}
        return {"oneOf": [record, {"type": "array", "items": record, "minItems": 1,
                                   "maxItems": max_rows}]}

    def predict_answer() -> dict[str, Any]:
        serving = state.serving
        if serving is None:
            return {"type": "object"}
        row = row_json_schema(serving.model.signature)
        head = {"model": {"type": "string"}, "version": {"type": "integer"}}
        single = {"type": "object", "properties": {**head, **row["properties"]},
                  "required": [*head, *row["required"]]}
        row = {**row, "properties": {**row["properties"], "version": {"type": "integer"}},
               "required": [*row["required"], "version"]}
        batch = {"type": "object", "properties": {**head, "predictions": {
            "type": "array", "items": row}}, "required": [*head, "predictions"]}
        return {"oneOf": [single, batch]}

    def feedback_body() -> dict[str, Any]:
        serving = state.serving
        label: dict[str, Any] = {"type": "string"}
        if serving is not None:
            sig = serving.model.signature
            label = {"type": "string", "enum": list(sig.classes or [])} if sig.is_classifier \
                else {"type": "number", "description": "The true value."}
        item = {"type": "object", "additionalProperties": False,
                "required": ["prediction_id", "label"],
                "properties": {"prediction_id": {"type": "string"}, "label": label}}
        return {"oneOf": [item, {"type": "array", "items": item, "minItems": 1,
                                 "maxItems": max_rows}]}

    def feedback_answer() -> dict[str, Any]:
        serving = state.serving
        regression = serving is not None and not serving.model.signature.is_classifier
        common = {"prediction_id": {"type": "string"}, "version": {"type": "integer"},
                  "variant": {"type": ["string", "null"], "enum": ["a", "b", None]}}
        if regression:
            item = {"type": "object", "properties": {
                **common, "label": {"type": "number"}, "predicted": {"type": "number"},
                "error": {"type": "number"}}}
        else:
            item = {"type": "object", "properties": {
                **common, "label": {"type": "string"}, "predicted": {"type": "string"},
                "outcome": {"type": "string", "enum": ["correct", "incorrect"]}}}
        item["required"] = list(item["properties"])
        batch = {"type": "object", "required": ["feedback"], "properties": {
            "feedback": {"type": "array", "items": item}}}
        return {"oneOf": [item, batch]}

    @post("/v1/predict", operation_id="predict", status_code=200, security=security,
          tags=["predictions"], responses=error_specs(400, 401, 403, 413, 422, 503),
          operation_class=operation_with_body(
              predict_body, f"One record, or an array of 1 to {max_rows} records.",
              predict_answer, "The prediction for the record, or for each record in order."),
          summary="Predict for one record or a batch")
    async def predict(request: Request) -> Response[bytes]:
        if check is not None:
            check(request.headers, "predict")
        serving = serving_or_503(state)
        body = await request.body()
        try:
            batch = serving.codec.decode(body)
        except RequestInvalid as exc:
            raise refusal(exc) from None
        predictor = serving.predictor
        ref = serving.model.ref
        ab = serving.ab
        if ab is None:
            answer = await serving.coalescer(batch.columns)
            return json_response(encode(answer, ref.name, ref.version, predictor.task,
                                        predictor.classes, batch.single))
        try:
            routed = ab.route(request.scope["headers"], batch.columns, batch.units,
                              batch.single)
        except RequestInvalid as exc:
            raise refusal(exc) from None
        request.scope[VARIANT_KEY] = routed.variant
        return json_response(encode(routed.answer, ref.name, routed.version, predictor.task,
                                    predictor.classes, batch.single, routed))

    @post("/v1/feedback", operation_id="feedback", status_code=200, security=security,
          tags=["predictions"], responses=error_specs(
              400, 401, 403, 404, 409, 413, 422, 503,
              text={422: "The label is not a class of the model (regression: not a number).",
                    503: "No model is in service, or the prediction log cannot be reached: "
                         "nothing was stored (send it again)."}),
          operation_class=operation_with_body(
              feedback_body, "The true class (regression: the true value) of a prediction, "
                             "or an array of them (all stored, or none).",
              feedback_answer, "Stored: how each prediction fared."),
          summary="Report the truth about an earlier prediction")
    async def feedback(request: Request) -> Response[bytes]:
        if check is not None:
            check(request.headers, "feedback")
        serving = serving_or_503(state)
        desk = state.feedback
        if desk is None:
            raise ServiceUnavailableException("feedback needs the prediction log, and this "
                                              "service runs with PREDICTION_LOG=off")
        body = await request.body()
        try:
            data = _FEEDBACK_DECODER.decode(body)
        except msgspec.ValidationError as exc:
            raise UnprocessableBody(detail=f"invalid feedback: {exc}") from None
        except msgspec.DecodeError as exc:
            raise MalformedBody(detail=f"the body is not valid JSON ({exc})") from None
        items = data if isinstance(data, list) else [data]
        if len(items) > max_rows:
            raise UnprocessableBody(detail=f"a batch holds at most {max_rows} items")
        batch = isinstance(data, list)
        where = {i.prediction_id: f"item {k}: " if batch else "" for k, i in
                 reversed(list(enumerate(items)))}
        sig = serving.model.signature
        classes = tuple(sig.classes or ()) if sig.is_classifier else None
        for item in items:  # all or nothing: check every label before storing any
            try:
                check_truth(item.label, classes)
            except InvalidTruth as exc:
                raise UnprocessableBody(detail=f"{where[item.prediction_id]}{exc}") from None
        model = serving.model.ref.name
        try:
            outcomes = await asyncio.to_thread(
                desk.record, model, [(i.prediction_id, i.label) for i in items],
                classes is None)
        except UnknownPrediction as exc:
            raise NotFoundException(
                detail=f"{where[exc.prediction_id]}unknown prediction id {exc.prediction_id!r}: "
                       f"no prediction of {model} has it") from None
        except AlreadyAnswered as exc:
            raise Conflict(detail=f"{where[exc.prediction_id]}{exc.message}; nothing was "
                                  "stored") from None
        except LogUnavailable as exc:
            raise ServiceUnavailableException(f"{exc}; nothing was stored") from None
        # A label counts under its variant while that variant serves (a finished test
        # leaves no series behind); the answer names it whenever.
        serving_now = state.serving
        serving_pairs = {(m.ref.version, v) for v, m in serving_now.variants().items()} \
            if serving_now is not None else set()
        answers = [_answer(o, i, classes is None, serving_pairs)
                   for o, i in zip(outcomes, items)]
        return json_response(BatchFeedbackResponse(answers) if batch else answers[0])

    def _answer(outcome: Outcome, item: FeedbackRequest, regression: bool,
                serving_pairs: set[tuple[int, str]]
                ) -> FeedbackResponse | RegressionFeedbackResponse:
        counted = outcome.status == "stored"  # a repeat is answered again, not counted again
        variant = outcome.variant or ""
        if (outcome.version, variant) not in serving_pairs:
            variant = ""
        if regression:
            if counted:
                state.metrics.feedback.labels(outcome="scored", variant=variant).inc()
            return RegressionFeedbackResponse(item.prediction_id, float(item.label),
                                              outcome.predicted, outcome.version,
                                              outcome.abs_error, outcome.variant)
        verdict = "correct" if outcome.correct else "incorrect"
        if counted:
            state.metrics.feedback.labels(outcome=verdict, variant=variant).inc()
        return FeedbackResponse(item.prediction_id, item.label, outcome.predicted,
                                outcome.version, verdict, outcome.variant)

    return [predict, feedback]
