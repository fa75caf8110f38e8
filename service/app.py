"""The Litestar app: `create_app()` builds it from settings read from the environment."""
from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import (
    ClientException,
    NotFoundException,
    ServiceUnavailableException,
)
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.auth import Authenticator
from service.feedback import AlreadyAnswered, UnknownPrediction
from service.metrics import Metrics, count_requests
from service.openapi import forget_document, operation_with_body
from service.schemas import (
    BatchPredictResponse,
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    ModelDescription,
    Prediction,
    PredictResponse,
    Readiness,
)
from service.serving import ServiceState
from service.settings import Settings, from_env
from service.validation import RequestInvalid, record_json_schema

ROUTES = frozenset({"/v1/predict", "/v1/feedback", "/v1/model", "/health", "/ready", "/metrics"})
_FEEDBACK_DECODER = msgspec.json.Decoder(FeedbackRequest)
SECURITY = [{"apiKey": []}, {"bearerToken": []}]
SECURITY_SCHEMES = {
    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header",
                             description="One of the keys in API_KEYS."),
    "bearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT",
                                  description="A JWT with the endpoint's scope "
                                              "(predict or feedback) and an exp claim."),
}


class MalformedBody(ClientException):
    """The body is not JSON."""

    status_code = 400


class UnprocessableBody(ClientException):
    """The body is JSON but breaks a rule."""

    status_code = 422


class Conflict(ClientException):
    """The request repeats something already recorded."""

    status_code = 409


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    text = {400: "The body is not JSON.", 401: "Credentials are missing or not valid.",
            403: "The credentials do not grant this endpoint.", 404: "Unknown prediction id.",
            409: "Feedback for this prediction was already recorded.",
            413: "The body is larger than MAX_BODY_BYTES.",
            422: "The body breaks a rule; `extra.errors` names the field and the rule.",
            503: "No verified model is in service."}
    return {c: ResponseSpec(data_container=ErrorBody, description=text[c]) for c in codes}


def _serving_or_503(state: ServiceState):
    serving = state.serving
    if serving is None:
        raise ServiceUnavailableException(f"not ready: {state.not_ready_reason()}")
    return serving


def _decode_error(exc: RequestInvalid) -> ClientException:
    kind = MalformedBody if exc.status == 400 else UnprocessableBody
    return kind(detail=exc.message, extra={"errors": exc.errors})


def build_handlers(state: ServiceState) -> list[Any]:
    """The route handlers, with request bodies documented from the model in service."""
    max_rows = state.settings.max_batch_rows

    def predict_body() -> dict[str, Any]:
        serving = state.serving
        if serving is None:
            record: dict[str, Any] = {"type": "object",
                                      "description": "No model is in service yet."}
        else:
            record = record_json_schema(serving.model.signature)
        return {"oneOf": [record, {"type": "array", "items": record, "minItems": 1,
                                   "maxItems": max_rows}]}

    def feedback_body() -> dict[str, Any]:
        serving = state.serving
        label: dict[str, Any] = {"type": "string"}
        if serving is not None:
            label["enum"] = list(serving.model.signature.classes)
        return {"type": "object", "additionalProperties": False,
                "required": ["prediction_id", "label"],
                "properties": {"prediction_id": {"type": "string"}, "label": label}}

    authenticator = Authenticator(state.settings)
    # Checked inside the handlers: a Litestar guard copies the handler on every call.
    check = authenticator.check if authenticator.enabled else None
    security = SECURITY if authenticator.enabled else None

    @post("/v1/predict", operation_id="predict", status_code=200, security=security,
          tags=["predictions"], responses=_errors(400, 401, 403, 413, 422, 503),
          operation_class=operation_with_body(
              predict_body, f"One record, or an array of 1 to {max_rows} records."),
          summary="Predict churn for one record or a batch")
    async def predict(request: Request) -> PredictResponse | BatchPredictResponse:
        if check is not None:
            check(request.headers, "predict")
        serving = _serving_or_503(state)  # read once: a swap mid-request does not affect it
        body = await request.body()
        try:
            batch = serving.codec.decode(body)
        except RequestInvalid as exc:
            raise _decode_error(exc) from None
        model = serving.model
        labels, proba = model.predict(batch.columns)
        ids = state.feedback.issue(labels, model.ref.version, serving.classes)
        probabilities = proba.tolist()
        observe = serving.probability.observe
        for p in probabilities:
            observe(p)
        if batch.single:
            serving.predicted[labels[0]].inc()
        else:
            for label, n in Tally(labels).items():
                serving.predicted[label].inc(n)
        if serving.drift is not None:
            serving.drift.observe(batch.columns)
        if serving.shadow is not None:
            serving.shadow.submit(batch.columns, labels)
        if batch.single:
            return PredictResponse(model.ref.name, model.ref.version, labels[0],
                                   probabilities[0], ids[0])
        return BatchPredictResponse(model.ref.name, model.ref.version, [
            Prediction(lab, p, i) for lab, p, i in zip(labels, probabilities, ids)])

    @post("/v1/feedback", operation_id="feedback", status_code=200, security=security,
          tags=["predictions"], responses=_errors(400, 401, 403, 404, 409, 413, 422),
          operation_class=operation_with_body(feedback_body, "The true label of a prediction."),
          summary="Report the true label of an earlier prediction")
    async def feedback(request: Request) -> FeedbackResponse:
        if check is not None:
            check(request.headers, "feedback")
        body = await request.body()
        try:
            data = _FEEDBACK_DECODER.decode(body)
        except msgspec.ValidationError as exc:
            raise UnprocessableBody(detail=f"invalid feedback: {exc}") from None
        except msgspec.DecodeError as exc:
            raise MalformedBody(detail=f"the body is not valid JSON ({exc})") \
                from None
        book = state.feedback
        try:
            correct, predicted, version = book.record(data.prediction_id, data.label)
        except UnknownPrediction:
            raise NotFoundException(
                detail=f"unknown prediction id {data.prediction_id!r}: it was not issued by this "
                       f"replica or is older than the last {book.memory} predictions") from None
        except AlreadyAnswered:
            raise Conflict(detail="feedback for prediction "
                                f"{data.prediction_id!r} was already recorded") from None
        except ValueError as exc:
            raise UnprocessableBody(detail=str(exc)) from None
        outcome = "correct" if correct else "incorrect"
        metrics = state.metrics
        metrics.feedback.labels(outcome=outcome).inc()
        accuracy = book.accuracy or 0.0
        metrics.feedback_accuracy.set(accuracy)
        return FeedbackResponse(data.prediction_id, data.label, predicted, version, outcome,
                                accuracy, book.window_rows)

    @get("/v1/model", operation_id="model", tags=["model"], responses=_errors(503),
         summary="The model in service: pin, digest, lineage, load time")
    async def describe_model() -> ModelDescription:
        serving = _serving_or_503(state)
        m = serving.model
        pin = m.pin
        shadow = None
        if serving.shadow is not None:
            sm = serving.shadow.model
            shadow = {"uri": sm.ref.uri, "sha256": sm.ref.sha256, "runtime": sm.runtime,
                      "compared_rows": serving.shadow.compared, "dropped": serving.shadow.dropped}
        drift = {"enabled": serving.drift is not None,
                 "window_rows": serving.drift.rows if serving.drift else 0,
                 "window_size": state.settings.drift_window_rows}
        return ModelDescription(
            name=m.ref.name, version=m.ref.version, uri=m.ref.uri, sha256=m.ref.sha256,
            environment=serving.environment, runtime=m.runtime,
            loaded_at=m.loaded_at.isoformat(),
            lineage=pin.lineage.model_dump(mode="json") if pin.lineage else None,
            metrics=dict(pin.metrics),
            promoted=pin.promoted.model_dump(mode="json") if pin.promoted else None,
            pin_file=str(state.settings.model_pin), in_sync=state.in_sync, drift=drift,
            shadow=shadow, signature=m.signature.model_dump(mode="json", exclude_none=True))

    @get("/health", operation_id="health", tags=["operations"], summary="Liveness")
    async def health() -> Health:
        return Health("ok")

    @get("/ready", operation_id="ready", tags=["operations"],
         responses={503: ResponseSpec(data_container=Readiness, description="Not ready.")},
         summary="Readiness: a pinned model is loaded and verified")
    async def ready() -> Response[Readiness]:
        serving = state.serving
        pinned = state.pin.model.uri if state.pin is not None and state.pin.model else None
        ref = serving.model.ref if serving else None
        body = Readiness(
            ready=serving is not None, reason=state.not_ready_reason(),
            model=ref.name if ref else None, version=ref.version if ref else None,
            sha256=ref.sha256 if ref else None, pinned=pinned, in_sync=state.in_sync,
            failure=state.describe_failure())
        return Response(body, status_code=200 if serving is not None else 503)

    @get("/metrics", include_in_schema=False, sync_to_thread=False)
    def metrics_endpoint() -> Response[bytes]:
        state.refresh_gauges()
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [predict, feedback, describe_model, health, ready, metrics_endpoint]


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the service; the model is loaded in the background once the app starts."""
    settings = settings or from_env()
    metrics = Metrics()
    state = ServiceState(settings, metrics)

    @asynccontextmanager
    async def follow_pin(app: Litestar) -> AsyncIterator[None]:
        signature_seen: list[Any] = [None]

        def on_swap() -> None:
            # A new signature changes the documented request body.
            sig = state.serving.model.signature if state.serving else None
            if sig != signature_seen[0]:
                signature_seen[0] = sig
                forget_document(app)

        state.on_swap = on_swap
        task = asyncio.create_task(state.follow_pin(), name="follow-pin")
        try:
            yield
        finally:
            task.cancel()
            state.shutdown()

    def too_large(_: Request, __: Exception) -> Response[ErrorBody]:
        detail = f"the body is larger than {settings.max_body_bytes} bytes (MAX_BODY_BYTES)"
        return Response(ErrorBody(413, detail), status_code=413)

    app = Litestar(
        route_handlers=build_handlers(state),
        exception_handlers={413: too_large},
        lifespan=[follow_pin],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="gitops-ml inference", version="1",
            description="Predictions from exactly the model version pinned for this environment.",
            path="/schema", render_plugins=[SwaggerRenderPlugin(), JsonRenderPlugin()],
            components=Components(
                security_schemes=SECURITY_SCHEMES if settings.auth_enabled else None)),
        # Unexpected errors are logged with their trace (never sent to the client);
        # refusals are expected and only counted.
        logging_config=LoggingConfig(
            log_exceptions="always",
            disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 422, 503},
            root={"level": settings.log_level.upper(), "handlers": ["queue_listener"]}),
        debug=False,
    )
    app.state.service = state
    app.asgi_handler = count_requests(app.asgi_handler, metrics, ROUTES)
    return app
