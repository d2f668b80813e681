"""Clients for the ShoeSeg TorchServe: REST (standard library only) and gRPC (generated stubs).

Both return the cutout PNG bytes or raise ``ImageRejectedError`` (the server refused this image: do not
retry) / ``ServiceError`` (the service failed or could not be reached, after the retries).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_GRPC = "127.0.0.1:7070"
MODEL = "resunet"
# Above the server's max_response_size (256 MiB) and max_request_size (150 MiB).
GRPC_MAX_MESSAGE = 300 * 1024 * 1024
RETRY_HTTP = {502, 503, 504, 507}  # worker busy / restarting / out of resources

T = TypeVar("T")


class ServiceError(RuntimeError):
    """The service failed or was unreachable (after retries)."""


class ImageRejectedError(ServiceError):
    """The server answered with a client error for this image (e.g. 400 InvalidImage); retrying won't help."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"server refused the image ({status} {kind}): {message}")
        self.status, self.kind, self.message = status, kind, message


def _rejection(status: int, body: bytes) -> ImageRejectedError:
    try:
        doc = json.loads(body)
        return ImageRejectedError(int(doc.get("code", status)), str(doc.get("type", "Error")), str(doc.get("message")))
    except (ValueError, AttributeError):
        return ImageRejectedError(status, "Error", body[:300].decode("utf-8", "replace"))


class _RetryableError(Exception):
    pass


def _with_retries(call: Callable[[], T], retries: int, backoff: float = 0.5) -> T:
    for attempt in range(retries + 1):
        try:
            return call()
        except _RetryableError as err:
            if attempt == retries:
                raise ServiceError(f"{err} (after {retries + 1} attempts)") from err
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def predict_rest(
    data: bytes,
    url: str = DEFAULT_URL,
    model: str = MODEL,
    timeout: float = 120,
    retries: int = 2,
    token: str | None = None,
) -> bytes:
    """POST the image bytes to ``{url}/predictions/{model}``; returns the RGBA PNG."""
    headers = {"Content-Type": "application/octet-stream"}  # not form-urlencoded: TorchServe would parse it
    if token:
        headers["Authorization"] = f"Bearer {token}"
    endpoint = f"{url.rstrip('/')}/predictions/{model}"

    def call() -> bytes:
        request = urllib.request.Request(endpoint, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            body = err.read()
            if err.code in RETRY_HTTP:
                raise _RetryableError(f"HTTP {err.code} from {endpoint}: {body[:200]!r}") from err
            raise _rejection(err.code, body) from err
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            raise _RetryableError(f"cannot reach {endpoint}: {getattr(err, 'reason', err)}") from err
        if not body.startswith(PNG_MAGIC):
            raise ServiceError(f"expected a PNG from {endpoint}, got {body[:100]!r}")
        return body

    return _with_retries(call, retries)


def grpc_stubs() -> tuple[Any, Any]:
    """(inference_pb2, inference_pb2_grpc), generating them first if `make protos` was not run."""
    try:
        from shoeseg_client.proto_gen import inference_pb2, inference_pb2_grpc
    except ImportError:
        from shoeseg_client.protos import generate

        generate()
        from shoeseg_client.proto_gen import inference_pb2, inference_pb2_grpc
    return inference_pb2, inference_pb2_grpc


def grpc_channel(target: str = DEFAULT_GRPC) -> Any:
    """An insecure channel whose message limits fit big photos and their cutouts."""
    import grpc

    options = [
        ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE),
        ("grpc.max_send_message_length", GRPC_MAX_MESSAGE),
    ]
    return grpc.insecure_channel(target, options=options)


def ping_grpc(target: str = DEFAULT_GRPC, timeout: float = 10) -> str:
    """TorchServe's health string over gRPC (e.g. ``{"status": "Healthy"}``)."""
    from google.protobuf import empty_pb2

    _, pb2_grpc = grpc_stubs()
    with grpc_channel(target) as channel:
        return pb2_grpc.InferenceAPIsServiceStub(channel).Ping(empty_pb2.Empty(), timeout=timeout).health


def predict_grpc(
    data: bytes,
    target: str = DEFAULT_GRPC,
    model: str = MODEL,
    timeout: float = 120,
    retries: int = 2,
    token: str | None = None,
) -> bytes:
    """Predictions over gRPC; returns the RGBA PNG.

    TorchServe 0.12 does not carry a handler's per-request status over gRPC: a refused image comes back
    with status OK and the handler's JSON error as the prediction, which is raised as ``ImageRejectedError``.
    """
    import grpc

    pb2, pb2_grpc = grpc_stubs()
    metadata = [("authorization", f"Bearer {token}")] if token else None
    request = pb2.PredictionsRequest(model_name=model, input={"data": data})

    def call() -> bytes:
        with grpc_channel(target) as channel:
            try:
                reply = pb2_grpc.InferenceAPIsServiceStub(channel).Predictions(
                    request, timeout=timeout, metadata=metadata
                )
            except grpc.RpcError as err:
                code = err.code()
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                    raise _RetryableError(f"gRPC {code.name} from {target}: {err.details()}") from err
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise ImageRejectedError(400, code.name, str(err.details())) from err
                raise ServiceError(f"gRPC {code.name} from {target}: {err.details()}") from err
        body = reply.prediction
        if not body.startswith(PNG_MAGIC):
            raise _rejection(400, body)
        return body

    return _with_retries(call, retries)
