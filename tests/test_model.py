"""Model shapes, config round-trip and the shared checkpoint loader."""

from __future__ import annotations

import pytest
import torch

from shoeseg.model import ModelConfig, build_model, load_model, read_checkpoint, save_checkpoint
from tests.serving_helpers import TINY


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(TINY).eval()


@pytest.mark.parametrize("size", [(64, 64), (128, 96), (96, 160), (224, 224)])
def test_logits_match_input_size(tiny_model: torch.nn.Module, size: tuple[int, int]) -> None:
    with torch.inference_mode():
        out = tiny_model(torch.randn(2, 3, *size))
    assert out.shape == (2, 2, *size)
    assert torch.isfinite(out).all()


def test_input_not_divisible_by_32_is_rejected(tiny_model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="divisible by 32"):
        tiny_model(torch.randn(1, 3, 100, 128))


def test_decoder_widths_follow_encoder_feature_info() -> None:
    model = build_model(TINY)
    assert model.encoder.channels == list(model.encoder.model.feature_info.channels())
    assert [r.out_channels for r in (m[0] for m in model.decoder.reduce)] == [TINY.skip_channels] * 5


def test_config_round_trip_and_unknown_keys() -> None:
    assert ModelConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        ModelConfig.from_dict({"encoder": "x", "colour": 1})
    with pytest.raises(ValueError, match="divisible by 32"):
        ModelConfig(input_size=500)


def test_checkpoint_round_trip_fp16(tmp_path, tiny_model: torch.nn.Module) -> None:
    path = tmp_path / "ckpt.pth"
    save_checkpoint(path, tiny_model, {"note": "test"}, half=True)
    payload = read_checkpoint(path)
    assert payload["meta"] == {"note": "test"}
    assert all(v.dtype == torch.float16 for v in payload["state_dict"].values() if v.is_floating_point())
    loaded = load_model(path)
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        ref = torch.softmax(tiny_model(x), 1)[:, 1]
        got = torch.softmax(loaded(x), 1)[:, 1]
    assert loaded.config == TINY
    assert (ref - got).abs().max() < 1e-2


def test_load_model_errors_are_clear(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="make train"):
        load_model(tmp_path / "missing.pth")
    bogus = tmp_path / "bogus.pth"
    torch.save({"weights": 1}, bogus)
    with pytest.raises(ValueError, match="not a ShoeSeg checkpoint"):
        load_model(bogus)
