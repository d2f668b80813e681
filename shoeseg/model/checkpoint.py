"""Checkpoint format shared by training, the handler, the CLI and the benchmarks.

A checkpoint is a dict: ``{"format": 1, "config": ModelConfig.to_dict(), "state_dict": ...,
"meta": {...}}``; ``meta`` holds metrics and provenance and is free-form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .resunet import ResUNet

FORMAT_VERSION = 1


def build_model(config: ModelConfig, pretrained_encoder: bool = False) -> ResUNet:
    """A fresh ResUNet for ``config``."""
    return ResUNet(config, pretrained_encoder=pretrained_encoder)


def save_checkpoint(path: str | Path, model: ResUNet, meta: dict[str, Any] | None = None, half: bool = False) -> None:
    """Write ``model`` with its config; ``half`` stores float tensors as fp16 (for shipping)."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in model.state_dict().items()
    }
    payload = {"format": FORMAT_VERSION, "config": model.config.to_dict(), "state_dict": state, "meta": meta or {}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load the raw checkpoint dict, with a clear error when the file is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train one with `make train` or pass WEIGHTS=")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise ValueError(f"{path} is not a ShoeSeg checkpoint (expected keys 'config' and 'state_dict')")
    return payload


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ResUNet:
    """Rebuild the model stored at ``path`` in eval mode, fp32, on ``device``."""
    payload = read_checkpoint(path)
    model = build_model(ModelConfig.from_dict(payload["config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
