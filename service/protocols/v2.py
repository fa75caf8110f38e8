"""The Open Inference Protocol v2 over REST (KServe, Triton and MLServer clients).

The served model answers by its registered name, and by its pinned version under
`/versions/{version}/`; any other name or version is 404. Errors carry the protocol's body,
`{"error": "..."}`. Requests run through the same predictor as /v1: same rules, metrics, drift
window and prediction ids (returned in the response `parameters.prediction_ids`).

During an A/B test a request is routed by the unit header (or by the unit field when the model
takes it as an input), else at random; `parameters.variant` says which variant answered (`a`,
`b`, or `mixed` with `parameters.variants` per row); outside a test it is absent. The versioned
path of either variant's version asks for that variant.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException, NotFoundException, ServiceUnavailableException
from litestar.openapi import ResponseSpec

from contracts.signature import Signature
from service.ab import Routed
from service.inference import Answer
from service.metrics import VARIANT_KEY
from service.openapi import operation_with_body
from service.protocols.common import json_response
from service.protocols.tensors import TensorInvalid, columns, datatype, fast, parse
from service.serving import ServiceState, Serving
from service.validation import RequestInvalid, record_json_schema

PREFIX = "/v2"
_MODEL = "/models/{name:str}"
_VERSION = "/models/{name:str}/versions/{version:str}"
ROUTES = frozenset(PREFIX + p.replace(":str", "") for p in (
    "", "/health/live", "/health/ready", _MODEL, f"{_MODEL}/ready", f"{_MODEL}/infer",
    _VERSION, f"{_VERSION}/ready", f"{_VERSION}/infer"))
_HEADER_LENGTH = b"inference-header-content-length"


class ErrorV2(msgspec.Struct):
    """The protocol's error body."""

    error: str


def _error(_: Request, exc: Exception) -> Response[bytes]:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    if status == 413:
        detail = f"the body is larger than MAX_BODY_BYTES ({detail})"
    headers = getattr(exc, "headers", None)
    return json_response(ErrorV2(str(detail)), status, headers=headers)


def _specs(*codes: int) -> dict[int, ResponseSpec]:
    text = {400: "The request breaks the protocol or the model's input rules.",
            401: "Credentials are missing or not valid.",
            403: "The credentials do not grant this endpoint.",
            404: "No such model or version here.",
            413: "The body is larger than MAX_BODY_BYTES.", 503: "The model is not ready."}
    return {c: ResponseSpec(data_container=ErrorV2, description=text[c]) for c in codes}


def outputs_of(sig: Signature) -> list[dict[str, Any]]:
    """The output tensors of a task: the label and the probabilities, or the value."""
    if sig.task == "regression":
        return [{"name": "prediction", "datatype": "FP64", "shape": [-1]}]
    out = [{"name": "prediction", "datatype": "BYTES", "shape": [-1]}]
    if sig.task == "binary":
        return [*out, {"name": "probability", "datatype": "FP64", "shape": [-1]}]
    return [*out, {"name": "probabilities", "datatype": "FP64",
                   "shape": [-1, len(sig.classes or [])]}]


def metadata(serving: Serving) -> dict[str, Any]:
    """The model metadata: one input per feature with its datatype, and the outputs."""
    sig, ref = serving.model.signature, serving.model.ref
    parameters: dict[str, Any] = {"task": sig.task}
    if sig.is_classifier:
        parameters["classes"] = list(sig.classes or [])
    if sig.positive_class is not None:
        parameters["positive_class"] = sig.positive_class
    return {"name": ref.name, "versions": [str(m.ref.version) for m in serving.variants().values()],
            "platform": "onnxruntime_onnx" if serving.model.runtime == "onnxruntime"
            else "sklearn", "inputs": [{"name": f.name, "datatype": datatype(f),
                                        "shape": [-1, 1]} for f in sig.features],
            "outputs": outputs_of(sig), "parameters": parameters}


def encode(answer: Answer, serving: Serving, request_id: str | None,
           wanted: list[str] | None, routed: Routed | None = None) -> dict[str, Any]:
    """The inference response: the task's outputs (those asked for), the prediction ids and
    the A/B variant that answered."""
    ref = serving.model.ref
    n = len(answer.ids)
    if answer.labels is None:
        tensors = [{"name": "prediction", "datatype": "FP64", "shape": [n],
                    "data": answer.values}]
    else:
        tensors = [{"name": "prediction", "datatype": "BYTES", "shape": [n],
                    "data": answer.labels}]
        if answer.values is not None:
            tensors.append({"name": "probability", "datatype": "FP64", "shape": [n],
                            "data": answer.values})
        else:
            p = answer.probabilities
            tensors.append({"name": "probabilities", "datatype": "FP64", "shape": list(p.shape),
                            "data": p.ravel().tolist()})
    if wanted is not None:
        tensors = [t for t in tensors if t["name"] in wanted]
    # Only during an A/B test: a null parameter is outside the protocol's types.
    parameters: dict[str, Any] = {"prediction_ids": answer.ids}
    version = ref.version
    if routed is not None:
        parameters["variant"], version = routed.variant, routed.version
        if routed.variant == "mixed":
            parameters["variants"] = routed.variants
    body: dict[str, Any] = {"model_name": ref.name, "model_version": str(version),
                            "parameters": parameters, "outputs": tensors}
    if request_id is not None:
        body["id"] = request_id
    return body


def build(state: ServiceState, check: Callable[[Any, str], None] | None,
          security: list[dict[str, list[str]]] | None) -> list[Any]:
    """The /v2 routes, as one router whose errors use the protocol's body."""
    max_rows = state.settings.max_batch_rows

    def model(name: str, version: str | None) -> Serving:
        serving = state.serving
        if serving is not None:
            known = serving.model.ref.name
        else:  # nothing serves yet: the pin says which model this server is for
            pinned = state.pin.model if state.pin is not None else None
            known = pinned.name if pinned else None
        if name != known:
            raise NotFoundException(f"unknown model {name!r}" + (
                f": this server serves {known!r}" if known else ""))
        if serving is None:
            raise ServiceUnavailableException(f"model {name!r} is not ready: "
                                              f"{state.not_ready_reason()}")
        if version is not None:
            served = [str(m.ref.version) for m in serving.variants().values()]
            if version not in served:
                raise NotFoundException(f"unknown version {version!r} of {name!r}: this "
                                        f"server serves version {' and '.join(served)}")
        return serving

    def infer_body() -> dict[str, Any]:
        serving = state.serving
        if serving is None:
            return {"type": "object", "description": "No model is in service yet."}
        record = record_json_schema(serving.model.signature)
        tensors = [{"type": "object", "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string", "enum": [name]},
                        "datatype": {"type": "string", "enum": [datatype(f)]},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "data": {"type": "array", "items": record["properties"][name]}}}
                   for f in serving.model.signature.features for name in [f.name]]
        return {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": {"oneOf": tensors}},
            "outputs": {"type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}}}}}}

    def infer_answer() -> dict[str, Any]:
        tensor = {"type": "object", "required": ["name", "datatype", "shape", "data"],
                  "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                                 "shape": {"type": "array", "items": {"type": "integer"}},
                                 "data": {"type": "array"}}}
        return {"type": "object", "required": ["model_name", "outputs", "parameters"],
                "properties": {"model_name": {"type": "string"},
                               "model_version": {"type": "string"}, "id": {"type": "string"},
                               "parameters": {"type": "object", "properties": {
                                   "prediction_ids": {"type": "array",
                                                      "items": {"type": "string"}}}},
                               "outputs": {"type": "array", "items": tensor}}}

    def prepare(request: Request, name: str, version: str | None, body: bytes
                ) -> Response[bytes] | tuple[Serving, Any, list[Any], list[str] | None]:
        """The model, the request, its columns and the outputs asked for; or the answer to a
        request that breaks the protocol."""
        serving = model(name, version)
        # The raw scope, not request.headers: that builds a multidict for one lookup.
        header = next((v.decode("latin-1") for k, v in request.scope["headers"]
                       if k == _HEADER_LENGTH), None)
        try:
            quick = fast(body, serving.codec, max_rows) if header is None else None
            if quick is not None:
                parsed, cols, _ = quick
            else:
                parsed, binary = parse(body, header)
                cols, _ = columns(parsed, binary, serving.model.signature, serving.codec,
                                  max_rows)
        except TensorInvalid as exc:
            return json_response(ErrorV2(str(exc)), 400)
        wanted = None
        if parsed.outputs is not None:
            wanted = [o.name for o in parsed.outputs]
            known = {o["name"] for o in outputs_of(serving.model.signature)}
            if unknown := [w for w in wanted if w not in known]:
                return json_response(ErrorV2(f"unknown output {unknown[0]!r}: the outputs are "
                                             f"{', '.join(sorted(known))}"), 400)
        return serving, parsed, cols, wanted

    def during_ab_test(request: Request, version: str | None, serving: Serving, parsed: Any,
                       cols: list[Any], wanted: list[str] | None) -> Response[bytes]:
        """The answer during an A/B test: the variant the version or the unit chooses."""
        ab = serving.ab
        try:
            if version is not None:  # the caller asks for one variant by its version
                chosen = next(v for v, n in ab.versions.items() if str(n) == version)
                routed = ab.predict(cols, [chosen] * len(cols[0]))
            else:
                routed = ab.route(request.scope["headers"], cols,
                                  serving.codec.feature_units(cols), False)
        except RequestInvalid as exc:
            return json_response(ErrorV2(exc.message), 400)
        request.scope[VARIANT_KEY] = routed.variant
        return json_response(encode(routed.answer, serving, parsed.id, wanted, routed))

    async def infer(request: Request) -> Response[bytes]:
        # The handler awaits the body and the model itself: a coroutine more between the loop
        # and the model's answer cost a few microseconds a request. The name and version from
        # the scope: parameters in the signature cost a parse per request.
        if check is not None:
            check(request.headers, "predict")
        path = request.scope["path_params"]
        version = path.get("version")
        ready = prepare(request, path["name"], version, await request.body())
        if isinstance(ready, Response):
            return ready
        serving, parsed, cols, wanted = ready
        if serving.ab is not None:
            return during_ab_test(request, version, serving, parsed, cols, wanted)
        return json_response(encode(await serving.coalescer(cols), serving, parsed.id, wanted))

    infer_doc = operation_with_body(
        infer_body, "One input tensor per feature, the batch as the first dimension "
                    "(JSON data, or the binary tensor extension).",
        infer_answer, "The outputs of the task, and a prediction id per row.")
    infer_specs = _specs(400, 401, 403, 404, 413, 503)
    infer_latest = post(
        f"{_MODEL}/infer", operation_id="v2_infer", status_code=200, security=security,
        tags=["open inference protocol"], responses=infer_specs, operation_class=infer_doc,
        summary="Infer (Open Inference Protocol v2)")(infer)
    infer_version = post(
        f"{_VERSION}/infer", operation_id="v2_infer_version", status_code=200,
        security=security, tags=["open inference protocol"], responses=infer_specs,
        operation_class=infer_doc, summary="Infer with the pinned version")(infer)

    @get(_MODEL, operation_id="v2_model_metadata", tags=["open inference protocol"],
         responses=_specs(404, 503), summary="Model metadata: inputs, datatypes, outputs")
    async def model_metadata(name: str) -> dict[str, Any]:
        return metadata(model(name, None))

    @get(_VERSION, operation_id="v2_model_version_metadata", tags=["open inference protocol"],
         responses=_specs(404, 503), summary="Model metadata of the pinned version")
    async def model_version_metadata(name: str, version: str) -> dict[str, Any]:
        return metadata(model(name, version))

    @get(f"{_MODEL}/ready", operation_id="v2_model_ready", tags=["open inference protocol"],
         responses=_specs(404, 503), summary="Model readiness")
    async def model_ready(name: str) -> dict[str, Any]:
        return {"name": model(name, None).model.ref.name, "ready": True}

    @get(f"{_VERSION}/ready", operation_id="v2_model_version_ready",
         tags=["open inference protocol"], responses=_specs(404, 503),
         summary="Readiness of the pinned version")
    async def model_version_ready(name: str, version: str) -> dict[str, Any]:
        return {"name": model(name, version).model.ref.name, "ready": True}

    @get("/health/live", operation_id="v2_live", tags=["open inference protocol"],
         summary="Server liveness")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @get("/health/ready", operation_id="v2_ready", tags=["open inference protocol"],
         responses=_specs(503), summary="Server readiness: the pinned model serves")
    async def ready() -> dict[str, bool]:
        if state.serving is None:
            raise ServiceUnavailableException(f"not ready: {state.not_ready_reason()}")
        return {"ready": True}

    @get("", operation_id="v2_server_metadata", tags=["open inference protocol"],
         summary="Server metadata")
    async def server() -> dict[str, Any]:
        return {"name": "gitops-ml", "version": "1", "extensions": ["binary_tensor_data"]}

    return [Router(path=PREFIX, exception_handlers={HTTPException: _error, 413: _error}, route_handlers=[
        infer_latest, infer_version, model_metadata, model_version_metadata, model_ready,
        model_version_ready, live, ready, server])]
