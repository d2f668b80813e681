"""TorchServe handler: a batch of image requests -> one RGBA PNG cutout each (alpha = foreground probability).

TorchServe loads this file as a top-level module and wants exactly one class in it. A bad image fails
only its own request, with a JSON body ``{"code", "type", "message"}`` and a 4xx status (REST; gRPC
carries the JSON body with status OK), while the rest of the batch is served.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler

from shoeseg.constants import DEFAULT_LOW_CONFIDENCE
from shoeseg.model import load_model
from shoeseg.model.sessions import archive_best_predictors, archive_predictor
from shoeseg.pipeline.cost import (
    DEFAULT_MAX_BATCH_COST,
    DEFAULT_MAX_REQUEST_COST,
    BusyError,
    CostLimitError,
    admit,
    request_cost,
)
from shoeseg.pipeline.image_io import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_PNG_LEVEL,
    InvalidImageError,
    LetterboxInfo,
    image_size,
    request_payload,
)
from shoeseg.pipeline.options import OptionError, Options, parse_options, split_request
from shoeseg.pipeline.remover import Cutout, Remover

logger = logging.getLogger(__name__)

CONFIDENCE_HEADER = "X-Cutout-Confidence"  # REST response header: the cutout's confidence, 0..1

# One entry per request: the decoded image, where it sits in the letterbox and the request's options
# (shoeseg/pipeline/options.py), or why it was refused.
Item = tuple[np.ndarray, LetterboxInfo, Options] | InvalidImageError
Decoded = tuple[np.ndarray, Options] | InvalidImageError  # a request's image and options, or why not
Parsed = tuple[bytes, Options, float] | InvalidImageError  # its body, options and cost (header only), or why not


def _internal(err: Exception, stage: str) -> InvalidImageError:
    """An unexpected failure on one image, answered as that request's 500 (logged with its traceback)."""
    logger.exception("%s failed", stage)
    return InvalidImageError(f"internal error while {stage} this image ({type(err).__name__}: {err})", 500)


def _heap_trimmer() -> ctypes._CFuncPtr | None:
    """glibc's ``malloc_trim`` (None elsewhere): called after each batch, it hands the freed image buffers
    back to the OS, so the worker's RSS does not creep up with fragmented heap arenas (reports/loadtest.md).

    The mmap threshold is left to glibc: pinning it at 1 MiB (each image buffer its own fresh mapping)
    made decoding 2.7x and letterboxing 1.6x slower from page faults on every new buffer.
    """
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _rows_per_item(probs: np.ndarray | None, items: list[Item]) -> list[np.ndarray | None]:
    """The batch's (N, S, S) probabilities handed out in request order: one per decoded request, None for
    a refused one (it had no row in the batch)."""
    rows = iter(probs if probs is not None else ())
    return [next(rows) if isinstance(item, tuple) else None for item in items]


def find_checkpoint(model_dir: str, serialized_file: str | None) -> Path:
    """The checkpoint passed to torch-model-archiver as ``--serialized-file``, else the only *.pth / *.pt."""
    if serialized_file:
        return Path(model_dir, serialized_file)
    found = sorted(Path(model_dir).glob("*.pth")) + sorted(Path(model_dir).glob("*.pt"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one checkpoint (*.pth) in {model_dir}, found {[p.name for p in found]}")
    return found[0]


def _cost_limits(settings: dict[str, Any]) -> tuple[float, float]:
    """handler.max_request_cost and max_batch_cost (shoeseg/pipeline/cost.py; 0: no limit), checked."""
    request = float(settings.get("max_request_cost", DEFAULT_MAX_REQUEST_COST))
    batch = float(settings.get("max_batch_cost", DEFAULT_MAX_BATCH_COST))
    if request < 0 or batch < 0 or (batch and not 0 < request <= batch):
        raise ValueError(
            f"handler.max_request_cost ({request:g}) and max_batch_cost ({batch:g}) in model-config.yaml: "
            "max_batch_cost must be 0 (no batch limit) or at least max_request_cost, which is then above 0"
        )
    return request, batch


class ResUNetHandler(BaseHandler):
    """Decode -> letterbox -> batched ResUNet forward -> un-letterbox -> RGBA PNG at the input's size.

    Each step is the pipeline's (``shoeseg.pipeline.Remover``); this class wires them to TorchServe's
    context, batching, metrics and per-request errors."""

    def initialize(self, context: Any) -> None:
        props = context.system_properties
        manifest = context.manifest or {}
        path = find_checkpoint(props["model_dir"], manifest.get("model", {}).get("serializedFile"))
        gpu_id = props.get("gpu_id")
        use_cuda = torch.cuda.is_available() and gpu_id is not None
        self.device = torch.device(f"cuda:{gpu_id}" if use_cuda else "cpu")
        model = load_model(path, self.device)
        settings = (getattr(context, "model_yaml_config", None) or {}).get("handler") or {}
        predictor = archive_predictor(
            model,
            Path(props["model_dir"]),
            settings.get("runtime", "auto"),
            bool(arena := settings.get("onnx_memory_arena", True)),
            int(settings.get("onnx_chunk", 1)),
        )
        # what a request without `quality` gets: fast (one pass) unless the operator prefers best for all
        try:
            self.defaults = parse_options({"quality": str(settings.get("quality", "fast"))})
        except OptionError as err:
            raise ValueError(f"handler.quality in model-config.yaml: {err.message}") from err
        self.remover = Remover(
            path,
            model=model,
            predictor=predictor,
            best_predictors=archive_best_predictors(model, Path(props["model_dir"]), predictor, bool(arena)),
            max_pixels=int(settings.get("max_pixels", DEFAULT_MAX_PIXELS)),
            png_level=int(settings.get("png_compress_level", DEFAULT_PNG_LEVEL)),
        )
        self.model, self.predictor = model, predictor
        self.max_request_bytes = int(settings.get("max_request_bytes", DEFAULT_MAX_BYTES))
        self.max_response_bytes = int(settings.get("max_response_bytes", 0))  # 0: not checked
        self.max_request_cost, self.max_batch_cost = _cost_limits(settings)
        # below this confidence a cutout is counted in LowConfidenceCutouts (worth a person's look)
        self.low_confidence = float(settings.get("low_confidence", DEFAULT_LOW_CONFIDENCE))
        # Photos of every size pass through one long-lived worker: without trimming, glibc keeps the pages
        # of the largest batch so far and the RSS ratchets up with the traffic's mix (measured: +17 % in 40 s).
        self.trim_heap = _heap_trimmer()
        # Decode / letterbox and un-letterbox / encode run per request on these threads: on a CPU they are
        # single-threaded and would otherwise leave the other cores idle between forward passes.
        threads = int(settings.get("prepost_threads", 0)) or max(1, torch.get_num_threads())
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="prepost")
        self.manifest = manifest
        self.context = context
        self.initialized = True
        cfg = self.model.config
        logger.info(
            "loaded %s (%s, input %d) on %s, running %s; packages from %s",
            path.name, cfg.encoder, cfg.input_size, self.device, self.predictor.name,
            Path(load_model.__code__.co_filename).parents[1],
        )  # fmt: skip

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[bytes]:
        """One response per request, in order; per-request status and content type set on ``context``."""
        self.context = context
        start = time.perf_counter()
        batch, items = self.preprocess(data)
        tta = [item[2].tta for item in items if isinstance(item, tuple)]
        t0 = time.perf_counter()
        probs = self.inference(batch, tta) if batch is not None else None
        rows = _rows_per_item(probs, items)
        best = self.best_quality(rows, items)
        if probs is not None:
            self._time("Inference", time.perf_counter() - t0)
        outputs = self.postprocess((rows, items, best))
        del batch, probs, rows, items, best
        if self.trim_heap is not None:
            self.trim_heap(0)
        self._time("Handler", time.perf_counter() - start)
        return outputs

    def preprocess(self, data: list[dict[str, Any]]) -> tuple[torch.Tensor | None, list[Item]]:
        """Parse each request's options and decode its image (bad ones become ``InvalidImageError``), letterbox
        the good ones; requests run in parallel on ``self.pool`` (OpenCV and Pillow release the GIL)."""
        t0 = time.perf_counter()
        content_types = [self._content_type(idx) for idx in range(len(data))]
        parsed = self._admit(list(self.pool.map(self._parse, data, content_types)))
        decoded = list(self.pool.map(self._decode, parsed))
        t1 = time.perf_counter()
        prepared = list(self.pool.map(self._letterbox, decoded))
        arrays = [item[3] for item in prepared if isinstance(item, tuple)]
        items: list[Item] = [item[:3] if isinstance(item, tuple) else item for item in prepared]
        batch = torch.from_numpy(np.stack(arrays)) if arrays else None
        self._time("Decode", t1 - t0)
        self._time("Preprocess", time.perf_counter() - t1)
        self._metric("BatchSize", len(data), unit="count", metric_type=MetricTypes.HISTOGRAM)
        return batch, items

    def _parse(self, request: dict[str, Any], content_type: str | None) -> Parsed:
        """One request -> (its body, options, cost from the image's header), or the error that refuses it;
        nothing is decoded yet, so a request over ``max_request_cost`` is refused before any work."""
        try:
            fields, options = split_request(request, content_type, self.defaults)
            payload = request_payload(fields, content_type, self.max_request_bytes)
            width, height = image_size(payload, self.remover.max_pixels)
            cost = request_cost(width * height, options)
            if self.max_request_cost and cost > self.max_request_cost:
                raise CostLimitError(width, height, options, cost, self.max_request_cost)
            return payload, options, cost
        except InvalidImageError as err:
            return err
        except Exception as err:  # noqa: BLE001 - an unforeseen failure still fails only this request
            return _internal(err, "reading")

    def _admit(self, parsed: list[Parsed]) -> list[Parsed]:
        """The batch's requests cheapest first while their cost fits ``max_batch_cost``; the others become 429
        Busy, untouched: cheap requests never wait behind more than that, and no batch grows past it."""
        costs = [item[2] if isinstance(item, tuple) else None for item in parsed]
        admission = admit(costs, self.max_batch_cost)
        return [
            BusyError(costs[idx], admission.total, self.max_batch_cost) if ok is False else item
            for idx, (item, ok) in enumerate(zip(parsed, admission.admitted, strict=True))
        ]

    def _decode(self, item: Parsed) -> Decoded:
        """(body, options, cost) -> (RGB image, its options), or the error that refuses it."""
        if isinstance(item, InvalidImageError):
            return item
        payload, options, _ = item
        try:
            return self.remover.decode(payload), options
        except InvalidImageError as err:
            return err
        except Exception as err:  # noqa: BLE001 - an unforeseen failure still fails only this request
            return _internal(err, "decoding")

    def _letterbox(self, item: Decoded) -> tuple | InvalidImageError:
        """(image, options) -> (image, letterbox info, options, (3, S, S) normalised array)."""
        if isinstance(item, InvalidImageError):
            return item
        image, options = item
        try:
            array, info = self.remover.prepare(image)
        except Exception as err:  # noqa: BLE001
            return _internal(err, "resizing")
        return image, info, options, array

    def inference(self, data: torch.Tensor, tta: list[bool] | bool = False, *args: Any, **kwargs: Any) -> np.ndarray:
        """(N, 3, S, S) normalised -> (N, S, S) float32 foreground probability (``tta`` per image)."""
        return self.remover.forward(data, tta)

    def best_quality(
        self, rows: list[np.ndarray | None], items: list[Item]
    ) -> dict[int, np.ndarray | InvalidImageError]:
        """For each ``quality=best`` request (by index): its alpha at the input's size, the most confident of
        its batch probability (``rows``) and the model's passes at the other sizes (``Remover.alpha``)."""
        best: dict[int, np.ndarray | InvalidImageError] = {}
        for idx, (item, prob) in enumerate(zip(items, rows, strict=True)):
            if prob is None or item[2].quality != "best":
                continue
            image, info, options = item
            try:
                best[idx] = self.remover.alpha(image, prob, info, options)
            except Exception as err:  # noqa: BLE001 - fails only this request
                best[idx] = _internal(err, "running quality=best on")
        return best

    def postprocess(self, data: tuple[list[np.ndarray | None], list[Item], dict[int, Any]]) -> list[bytes]:
        """Each request's (S, S) probability (None if refused) back at its input's size (or the ``best`` alpha
        already there) -> the result its options ask for (default RGBA PNG), rendered in parallel on
        ``self.pool``; refused requests -> JSON."""
        rows, items, best = data
        t0 = time.perf_counter()
        jobs = [(item, prob, best.get(idx)) for idx, (item, prob) in enumerate(zip(items, rows, strict=True))]
        rendered = list(self.pool.map(self._render, jobs))
        outputs: list[bytes] = []
        served = unsure = 0
        for idx, (item, result) in enumerate(zip(items, rendered)):
            if isinstance(result, InvalidImageError):
                outputs.append(self._error(idx, result))
                continue
            self.context.set_response_content_type(idx, item[2].content_type)
            self.context.set_response_header(idx, CONFIDENCE_HEADER, f"{result.confidence:.3f}")
            outputs.append(result.data)
            served += 1
            unsure += result.confidence < self.low_confidence
        if unsure:  # cutouts worth a person's look: alert on their share of ImagesProcessed
            self._metric("LowConfidenceCutouts", unsure, unit="count", metric_type=MetricTypes.COUNTER)
        if any(prob is not None for prob in rows):
            self._time("Encode", time.perf_counter() - t0)
        if served:
            self._metric("ImagesProcessed", served, unit="count", metric_type=MetricTypes.COUNTER)
        return outputs

    def _render(self, job: tuple[Item, np.ndarray | None, Any]) -> Cutout | InvalidImageError:
        """(item, its (S, S) probability, its (H, W) alpha if already made) -> the encoded result with its
        confidence, or the error that refuses it."""
        item, prob, alpha = job
        if isinstance(item, InvalidImageError):
            return item
        if isinstance(alpha, InvalidImageError):
            return alpha
        image, info, options = item
        try:
            alpha = self.remover.alpha(image, prob, info, options) if alpha is None else alpha
            out = Cutout(self.remover.render(image, alpha, options), self.remover.confidence(alpha))
        except InvalidImageError as err:  # e.g. crop=true on an image with no object: 422
            return err
        except Exception as err:  # noqa: BLE001
            return _internal(err, "encoding")
        if self.max_response_bytes and len(out.data) > self.max_response_bytes:
            return InvalidImageError(
                f"the result is {len(out.data):,} bytes, above the server's {self.max_response_bytes:,} "
                "byte response limit; downscale the image and retry",
                413,
            )
        return out

    def _content_type(self, idx: int) -> str | None:
        """Request ``idx``'s Content-Type header (header names keep the client's spelling)."""
        try:
            headers = self.context.get_all_request_header(idx) or {}
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
        return next((str(v) for k, v in headers.items() if str(k).lower() == "content-type"), None)

    def _error(self, idx: int, err: InvalidImageError) -> bytes:
        logger.info("request %d refused (%d): %s", idx, err.status, err.message)
        self.context.set_response_status(err.status, HTTPStatus(err.status).phrase, idx=idx)
        self.context.set_response_content_type(idx, "application/json")
        if isinstance(err, BusyError):  # clients and proxies wait this long before they retry
            self.context.set_response_header(idx, "Retry-After", str(err.retry_after))
        doc = err.to_json()
        self._metric("InvalidImages", 1, unit="count", metric_type=MetricTypes.COUNTER)
        # by the JSON body's type (InvalidImage, ImageTooLarge, CostLimit, Busy ...): alert on a kind's rate
        self._metric("RejectedRequests", 1, "count", MetricTypes.COUNTER, {"ErrorType": str(doc.get("type"))})
        return json.dumps(doc).encode("utf-8")

    def _time(self, step: str, seconds: float) -> None:
        """One batch's time of ``step`` (Decode, Preprocess, Inference, Encode, Handler): the ``<step>Time``
        gauge in ms (the last batch's) and the ``<step>Seconds`` histogram, whose Prometheus default buckets
        (5 ms .. 10 s) give p95; a batch above 10 s counts only in +Inf."""
        self._metric(f"{step}Time", seconds * 1000)
        self._metric(f"{step}Seconds", seconds, "s", MetricTypes.HISTOGRAM)

    def _metric(
        self,
        name: str,
        value: float,
        unit: str = "ms",
        metric_type: MetricTypes = MetricTypes.GAUGE,
        extra: dict[str, str] | None = None,
    ) -> None:
        """Emit a model metric declared in metrics.yaml: dimensions ModelName, Level, then ``extra``'s in the
        order metrics.yaml declares them."""
        metrics = getattr(self.context, "metrics", None)
        if metrics is None:
            return
        dims = [Dimension("ModelName", self.context.model_name), Dimension("Level", "Model")]
        dims += [Dimension(key, label) for key, label in (extra or {}).items()]
        digits = 6 if unit == "s" else 2  # seconds: keep the millisecond buckets' resolution
        metrics.add_metric(name, round(value, digits), unit, dimensions=dims, metric_type=metric_type)
