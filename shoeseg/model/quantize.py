"""Static int8 quantization of the exported graph: onnxruntime QDQ, per-channel int8 weights, uint8
activations whose ranges were calibrated once on training composites.

Calibration needs the training data, so it runs once per checkpoint (``python -m shoeseg.training.calibrate``)
and writes the activation ranges beside the weights (``ranges_file``: ``resunet.int8.json``, ~70 kB,
committed with them). Quantizing from those ranges needs nothing else: ``make mar`` and the library do it
on any machine, in seconds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from shoeseg.model.runtime import ONNX_INPUT

# The full-resolution refine conv and the classifier stay fp32: quantized, they coarsened the soft alpha
# (bench MAE 0.0080 against 0.0068, 45 white images) for ~10 % of the int8 speed-up.
FP32_TAIL_WEIGHT = "model.head.refine"
CALIBRATION_METHOD = "MinMax"  # the method the ranges were computed with (onnxruntime checks it on reuse)


class CalibrationError(RuntimeError):
    """No usable activation ranges for these weights; the message says how to make them."""


def weights_digest(weights: str | Path) -> str:
    """sha256 hex digest of a checkpoint file: ties cached graphs and ranges to the exact weights. Hashed once
    per file version (a Remover asks for it per graph and for the ranges check)."""
    stat = Path(weights).stat()
    return _file_digest(str(Path(weights).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ranges_file(weights: str | Path) -> Path:
    """Where the int8 activation ranges of ``weights`` live: ``<weights stem>.int8.json`` beside it."""
    return Path(weights).with_suffix(".int8.json")


def is_calibrated(weights: str | Path) -> bool:
    """Whether ``weights`` has int8 ranges beside it that were calibrated for exactly these weights."""
    path = ranges_file(weights)
    return path.is_file() and json.loads(path.read_text()).get("weights_sha256") == weights_digest(weights)


def _preprocessed(graph: Path, tmp: Path):
    """onnxruntime's recommended pre-pass (shape inference, graph fusions) -> (path, fp32 tail node names)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = tmp / "pre.onnx"
    # symbolic shape inference stops at the exporter's dynamic Resize sizes; ONNX's own inference suffices
    quant_pre_process(str(graph), str(out), skip_symbolic_shape=True)
    nodes = onnx.load(str(out)).graph.node
    first = next((i for i, n in enumerate(nodes) if any(x.startswith(FP32_TAIL_WEIGHT) for x in n.input)), len(nodes))
    return out, [n.name for n in nodes[first:]]


def _quantize(graph: Path, out: Path, cache: Path, inputs: Iterable[np.ndarray] | None = None) -> None:
    """``graph`` -> int8 ``out``; ranges from ``inputs`` (then saved to ``cache``), else loaded from ``cache``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(inputs)

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {ONNX_INPUT: np.ascontiguousarray(batch, np.float32)}

    with tempfile.TemporaryDirectory(prefix="shoeseg-int8-") as tmp:
        pre, fp32_tail = _preprocessed(graph, Path(tmp))
        quantize_static(
            str(pre),
            str(out),
            Reader() if inputs is not None else None,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,  # u8 activations x s8 weights: the VNNI / AVX2 kernels' pairing
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHOD),
            nodes_to_exclude=fp32_tail,
            calibration_cache_path=str(cache),
        )


def calibrate(graph: str | Path, inputs: Iterable[np.ndarray], weights: str | Path, note: str = "") -> dict:
    """Activation ranges of the fp32 ``graph`` (exported from ``weights``) over ``inputs``, each (1, 3, S, S)
    normalised float32 as the server feeds it -> the ``ranges_file`` content (JSON-ready dict)."""
    with tempfile.TemporaryDirectory(prefix="shoeseg-calibrate-") as tmp:
        counted = []

        def counting() -> Iterable[np.ndarray]:
            for batch in inputs:
                counted.append(len(batch))
                yield batch

        cache = Path(tmp, "ranges.json")
        _quantize(Path(graph), Path(tmp, "int8.onnx"), cache, counting())
        ranges = json.loads(cache.read_text())
    return {"weights_sha256": weights_digest(weights), "images": sum(counted), "note": note, "ranges": ranges}


def quantize_graph(graph: str | Path, out: str | Path, weights: str | Path, ranges: str | Path | None = None) -> Path:
    """The int8 QDQ graph of the fp32 ``graph`` exported from ``weights``, from their calibrated ``ranges``
    (default ``ranges_file(weights)``), written to ``out``. Raises ``CalibrationError`` when the ranges are
    missing or belong to other weights."""
    ranges = Path(ranges or ranges_file(weights))
    if not ranges.is_file():
        raise CalibrationError(
            f"no int8 calibration for {weights} ({ranges} is missing): run `make calibrate WEIGHTS={weights}` "
            "(needs the training data), or use runtime onnx"
        )
    saved = json.loads(ranges.read_text())
    if saved.get("weights_sha256") != weights_digest(weights):
        raise CalibrationError(
            f"{ranges} was calibrated for other weights than {weights}: run `make calibrate WEIGHTS={weights}` "
            "again, or use runtime onnx"
        )
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="shoeseg-int8-") as tmp:
        cache = Path(tmp, "ranges.json")
        cache.write_text(json.dumps(saved["ranges"]))
        _quantize(Path(graph), out, cache)
    return out
