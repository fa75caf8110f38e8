"""The Litestar app: `create_app()` builds it from settings read from the environment."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import ratelimit
from service.auth import Authenticator
from service.metrics import Metrics, count_requests
from service.openapi import forget_document
from service.protocols import invocations, v1, v2
from service.protocols.common import error_specs, serving_or_503
from service.schemas import ErrorBody, Health, ModelDescription, Readiness
from service.serving import ServiceState
from service.settings import Settings, from_env

# Route labels of the request metrics: Litestar's path templates.
ROUTES = frozenset({"/v1/predict", "/v1/feedback", "/v1/model", "/health", "/ready", "/metrics",
                    *invocations.ROUTES, *v2.ROUTES})
SECURITY = [{"apiKey": []}, {"bearerToken": []}]
SECURITY_SCHEMES = {
    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header",
                             description="One of the keys in API_KEYS, with its scopes."),
    "bearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT",
                                  description="A JWT with the endpoint's scope "
                                              "(predict or feedback; admin for lineage) and "
                                              "exp, aud and iss."),
}


def build_handlers(state: ServiceState) -> list[Any]:
    """Every route: the three prediction protocols and the operations endpoints."""
    authenticator = Authenticator(state.settings)
    # Checked inside the handlers: a Litestar guard copies the handler on every call.
    check = authenticator.check if authenticator.enabled else None
    security = SECURITY if authenticator.enabled else None

    @get("/v1/model", operation_id="model", tags=["model"], responses=error_specs(401, 503),
         summary="The model in service: pin, digest, load time; lineage for the admin scope")
    async def describe_model(request: Request) -> ModelDescription:
        admin = authenticator.allows(request.headers, "admin")
        serving = serving_or_503(state)
        await state.refresh_quality()
        m = serving.model
        pin = m.pin
        promoted = pin.promoted.model_dump(mode="json") if pin.promoted else None
        if promoted is not None and not admin:
            promoted.pop("by", None)  # who promoted is an identity
        shadow = None
        if serving.shadow is not None:
            sm = serving.shadow.model
            shadow = {"uri": sm.ref.uri, "sha256": sm.ref.sha256, "runtime": sm.runtime,
                      "compared_rows": serving.shadow.compared, "dropped": serving.shadow.dropped}
        ab = None
        if serving.ab is not None:
            ab = serving.ab.describe(m)
            if state.feedback is not None:
                for name, variant in ab["variants"].items():
                    variant["live_quality"] = state.feedback.variant_quality.get(
                        (variant["version"], name))
        drift = {"enabled": serving.drift is not None,
                 "window_rows": serving.drift.rows if serving.drift else 0,
                 "window_size": state.settings.drift_window_rows}
        return ModelDescription(
            name=m.ref.name, version=m.ref.version, uri=m.ref.uri, sha256=m.ref.sha256,
            environment=serving.environment, runtime=m.runtime,
            loaded_at=m.loaded_at.isoformat(),
            lineage=pin.lineage.model_dump(mode="json") if pin.lineage and admin else None,
            metrics=dict(pin.metrics), promoted=promoted,
            pin_file=str(state.settings.model_pin), in_sync=state.in_sync, drift=drift,
            shadow=shadow, signature=m.signature.model_dump(mode="json", exclude_none=True),
            live_quality=({str(v): q for v, q in state.feedback.quality.items()}
                          if state.feedback is not None else None), ab=ab)

    @get("/health", operation_id="health", tags=["operations"], summary="Liveness")
    async def health() -> Health:
        return Health("ok")

    @get("/ready", operation_id="ready", tags=["operations"],
         responses={503: ResponseSpec(data_container=Readiness, description="Not ready.")},
         summary="Readiness: a pinned model is loaded and verified; the prediction log's state")
    async def ready() -> Response[Readiness]:
        serving = state.serving
        pinned = state.pin.model.uri if state.pin is not None and state.pin.model else None
        ref = serving.model.ref if serving else None
        body = Readiness(
            ready=serving is not None, reason=state.not_ready_reason(),
            model=ref.name if ref else None, version=ref.version if ref else None,
            sha256=ref.sha256 if ref else None, pinned=pinned, in_sync=state.in_sync,
            failure=state.describe_failure(), logging=state.logging_status())
        return Response(body, status_code=200 if serving is not None else 503)

    @get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response[bytes]:
        await asyncio.gather(state.refresh_quality(), state.refresh_slices())
        state.refresh_gauges()
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [*v1.build(state, check, security), *v2.build(state, check, security),
            *invocations.build(state, check, security),
            describe_model, health, ready, metrics_endpoint]


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the service; the model is loaded in the background once the app starts."""
    settings = settings or from_env()
    metrics = Metrics()
    state = ServiceState(settings, metrics)

    @asynccontextmanager
    async def follow_pin(app: Litestar) -> AsyncIterator[None]:
        signature_seen: list[Any] = [None]

        def on_swap() -> None:
            # A new signature (or A/B unit field) changes the documented request body.
            serving = state.serving
            sig = (serving.model.signature, serving.ab.field if serving.ab else None) \
                if serving else None
            if sig != signature_seen[0]:
                signature_seen[0] = sig
                forget_document(app)

        state.on_swap = on_swap
        state.start()
        task = asyncio.create_task(state.follow_pin(), name="follow-pin")
        try:
            yield
        finally:
            task.cancel()
            # After uvicorn's graceful shutdown (SIGTERM): the prediction log's buffer is
            # written before the process exits.
            await asyncio.to_thread(state.shutdown)

    def too_large(_: Request, __: Exception) -> Response[ErrorBody]:
        detail = f"the body is larger than {settings.max_body_bytes} bytes (MAX_BODY_BYTES)"
        return Response(ErrorBody(413, detail), status_code=413)

    app = Litestar(
        route_handlers=build_handlers(state),
        exception_handlers={413: too_large},
        lifespan=[follow_pin],
        middleware=[ratelimit.config(settings.rate_limit).middleware] if settings.rate_limit
        else [],
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
            disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 422, 429, 503},
            root={"level": settings.log_level.upper(), "handlers": ["queue_listener"]},
            # The prediction log's schema probe would log Alembic's every step.
            loggers={"litestar": {"level": "INFO", "handlers": ["queue_listener"],
                                  "propagate": False},
                     "alembic": {"level": "WARNING"}}),
        debug=False,
    )
    app.state.service = state
    app.asgi_handler = count_requests(app.asgi_handler, metrics, ROUTES)
    return app
