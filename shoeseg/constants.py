"""The one home of the names, paths and numbers that several parts of ShoeSeg share.

Standard library only: the client imports it without torch.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The checkout holding config.properties, model-config.yaml and metrics.yaml (what `shoeseg serve` and
# `make serve` start TorchServe with); in a site-packages install this folder has none of them.
REPO_ROOT = PACKAGE_DIR.parent

MODEL_NAME = "resunet"  # the model's name in TorchServe's URLs and its .mar
DEFAULT_WEIGHTS = PACKAGE_DIR / "weights" / "resunet.pth"  # the shipped fp16 checkpoint (package data)
DEFAULT_DATA_ROOT = "../shared/data"  # beside the checkout; $SHOESEG_DATA overrides it
# Forward paths (library, command, handler.runtime): auto is onnxruntime on a CPU, PyTorch on CUDA; onnx-int8
# the int8 graph calibrated for the weights (shoeseg.model.quantize).
RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")

# Where config.properties puts each API (loopback only by default).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_INFERENCE_PORT = 8080
DEFAULT_MANAGEMENT_PORT = 8081
DEFAULT_METRICS_PORT = 8082
DEFAULT_GRPC_INFERENCE_PORT = 7070
DEFAULT_GRPC_MANAGEMENT_PORT = 7071
DEFAULT_INFERENCE_URL = f"http://{DEFAULT_HOST}:{DEFAULT_INFERENCE_PORT}"
DEFAULT_MANAGEMENT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_MANAGEMENT_PORT}"
DEFAULT_GRPC_TARGET = f"{DEFAULT_HOST}:{DEFAULT_GRPC_INFERENCE_PORT}"

# Cutouts less confident than this (shoeseg.model.inference.cutout_confidence) are flagged for a person's look:
# the command's CHECK lines, the server's LowConfidenceCutouts counter (model-config.yaml handler.low_confidence).
DEFAULT_LOW_CONFIDENCE = 0.5

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(data: bytes) -> bool:
    """Whether ``data`` starts like a PNG file."""
    return bytes(data[:8]) == PNG_MAGIC


def is_webp(data: bytes) -> bool:
    """Whether ``data`` starts like a WebP file (a RIFF container of kind WEBP)."""
    return bytes(data[:4]) == b"RIFF" and bytes(data[8:12]) == b"WEBP"
