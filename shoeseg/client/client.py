"""Clients for the ShoeSeg TorchServe: REST (standard library only) and gRPC (generated stubs).

Both return the encoded result: the cutout PNG by default, or what ``options`` ask for (e.g.
``{"output": "mask"}``, ``{"format": "webp"}``; see the README's request options). They raise
``ImageRejectedError`` (the server refused this image or option: do not retry) or ``ServiceError`` (the
service failed or could not be reached, after the retries).
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from shoeseg.constants import DEFAULT_GRPC_TARGET, DEFAULT_INFERENCE_URL, MODEL_NAME, is_png, is_webp
from shoeseg.pipeline.options import option_text

Options = Mapping[str, str | int | float | bool]
DEFAULT_URL = DEFAULT_INFERENCE_URL
DEFAULT_GRPC = DEFAULT_GRPC_TARGET
MODEL = MODEL_NAME
# Above the server's max_response_size (256 MiB) and max_request_size (150 MiB).
GRPC_MAX_MESSAGE = 300 * 1024 * 1024
# Worker busy / restarting / out of resources: TorchServe answers 507 "Worker died." to the requests a
# crashed worker held, 503 while the queue is full or no worker is up.
RETRY_HTTP = {502, 503, 504, 507}
# 429 Busy: the batch's cost budget was spent before this request's turn; nothing was done and the answer
# says when to come back (Retry-After, s), which the retry waits for instead of the backoff.
BUSY_HTTP = 429

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
    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # the server's Retry-After, s (0: use the backoff)


def _busy_wait(body: bytes) -> float | None:
    """A JSON 429 Busy answer's ``retry_after`` (s; 0 when it names none), None for any other body."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("code") != BUSY_HTTP:
        return None
    try:
        return max(0.0, float(doc.get("retry_after") or 0))
    except (TypeError, ValueError):
        return 0.0


def _result(body: bytes, where: str) -> bytes:
    """The server's answer if it is an image (PNG or WebP); a JSON 429 Busy as retryable after its
    ``retry_after`` (over gRPC the status is not carried, only this body), any other JSON error as
    ``ImageRejectedError``."""
    if is_png(body) or is_webp(body):
        return body
    if body.lstrip()[:1] == b"{":
        wait = _busy_wait(body)
        if wait is not None:
            raise _RetryableError(f"429 Busy from {where}: {body[:200]!r}", retry_after=wait)
        raise _rejection(400, body)
    raise ServiceError(f"expected a PNG or WebP image from {where}, got {body[:100]!r}")


# Called before each retry with the attempt that failed (1-based) and why: count or log retries.
OnRetry = Callable[[int, Exception], None]


def _with_retries(
    call: Callable[[], T], retries: int, backoff: float = 0.5, on_retry: OnRetry | None = None, max_delay: float = 8.0
) -> T:
    """``call()`` up to ``retries + 1`` times, sleeping ``backoff * 2**attempt`` (jittered, at most
    ``max_delay`` s) after each retryable failure. Predictions are idempotent, so a retry is always safe."""
    for attempt in range(retries + 1):
        try:
            return call()
        except _RetryableError as err:
            if attempt == retries:
                raise ServiceError(f"{err} (after {retries + 1} attempts)") from err
            if on_retry is not None:
                on_retry(attempt + 1, err)
            jittered = min(max_delay, backoff * 2**attempt) * random.uniform(0.5, 1.0)
            time.sleep(err.retry_after or jittered)
    raise AssertionError("unreachable")


def predict_rest(
    data: bytes,
    url: str = DEFAULT_URL,
    model: str = MODEL,
    timeout: float = 120,
    retries: int = 2,
    token: str | None = None,
    backoff: float = 0.5,
    on_retry: OnRetry | None = None,
    options: Options | None = None,
) -> bytes:
    """POST the image bytes to ``{url}/predictions/{model}``; returns the RGBA PNG (or what ``options`` ask
    for: they go as the query string of ``{url}/{model}/predict``, since TorchServe drops the query string
    of ``/predictions``).

    Each attempt may take ``timeout`` seconds; connection errors, timeouts and ``RETRY_HTTP`` statuses are
    retried ``retries`` times with exponential backoff starting at ``backoff`` seconds, 429 Busy after the
    server's Retry-After.
    """
    headers = {"Content-Type": "application/octet-stream"}  # not form-urlencoded: TorchServe would parse it
    if token:
        headers["Authorization"] = f"Bearer {token}"
    endpoint = f"{url.rstrip('/')}/predictions/{model}"
    if options:
        query = urllib.parse.urlencode({k: option_text(v) for k, v in options.items()})
        endpoint = f"{url.rstrip('/')}/{model}/predict?{query}"
    parts = urllib.parse.urlsplit(endpoint)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection

    def call() -> bytes:
        # http.client keeps the connection alive (urllib sends "Connection: close"): then TorchServe answers a
        # body above its max_request_size with a readable 413 instead of resetting the connection mid-upload.
        conn = connection(parts.netloc, timeout=timeout)
        try:
            conn.request("POST", target, body=data, headers=headers)
            response = conn.getresponse()
            status, body, retry_after = response.status, response.read(), response.getheader("Retry-After", "")
        except (http.client.HTTPException, OSError) as err:  # refused, reset, timed out
            raise _RetryableError(f"cannot reach {endpoint}: {type(err).__name__}: {err}") from err
        finally:
            conn.close()
        if status in RETRY_HTTP:
            raise _RetryableError(f"HTTP {status} from {endpoint}: {body[:200]!r}")
        if status == BUSY_HTTP:
            wait = float(retry_after) if retry_after.isdigit() else backoff
            raise _RetryableError(f"HTTP 429 from {endpoint}: {body[:200]!r}", retry_after=wait)
        if status == 413 and not body:  # TorchServe's frontend: above max_request_size, no JSON
            message = f"the body ({len(data):,} bytes) is above the server's request size limit (max_request_size)"
            raise ImageRejectedError(413, "RequestTooLarge", message)
        if status != 200:
            raise _rejection(status, body)
        return _result(body, endpoint)

    return _with_retries(call, retries, backoff, on_retry)


def grpc_stubs() -> tuple[Any, Any]:
    """(inference_pb2, inference_pb2_grpc), generating them first if `make protos` was not run."""
    try:
        from shoeseg.client.proto_gen import inference_pb2, inference_pb2_grpc
    except ImportError:
        from shoeseg.client.protos import generate

        generate()
        from shoeseg.client.proto_gen import inference_pb2, inference_pb2_grpc
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
    backoff: float = 0.5,
    on_retry: OnRetry | None = None,
    options: Options | None = None,
) -> bytes:
    """Predictions over gRPC; returns the RGBA PNG, or what ``options`` ask for (extra keys of the input
    map). Timeout and retries as ``predict_rest``.

    TorchServe 0.12 does not carry a handler's per-request status over gRPC: a refused image comes back
    with status OK and the handler's JSON error as the prediction, which is raised as ``ImageRejectedError``.
    """
    import grpc

    pb2, pb2_grpc = grpc_stubs()
    retry_codes = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
    metadata = [("authorization", f"Bearer {token}")] if token else None
    fields = {k: option_text(v).encode() for k, v in (options or {}).items()}
    request = pb2.PredictionsRequest(model_name=model, input={**fields, "data": data})

    def call() -> bytes:
        with grpc_channel(target) as channel:
            try:
                reply = pb2_grpc.InferenceAPIsServiceStub(channel).Predictions(
                    request, timeout=timeout, metadata=metadata
                )
            except grpc.RpcError as err:
                code, details = err.code(), str(err.details())
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
                    raise ImageRejectedError(413, "RequestTooLarge", details) from err
                if code == grpc.StatusCode.CANCELLED and "RST_STREAM" in details:
                    # TorchServe resets the stream of a message above its max_request_size
                    message = f"the server reset the stream: the body ({len(data):,} bytes) is likely above its "
                    raise ImageRejectedError(413, "RequestTooLarge", message + "max_request_size") from err
                if code in retry_codes or (code == grpc.StatusCode.INTERNAL and "Worker died" in details):
                    raise _RetryableError(f"gRPC {code.name} from {target}: {details}") from err
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise ImageRejectedError(400, code.name, details) from err
                raise ServiceError(f"gRPC {code.name} from {target}: {details}") from err
        return _result(reply.prediction, target)

    return _with_retries(call, retries, backoff, on_retry)
