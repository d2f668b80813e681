"""Shared by the serving tests: a tiny random-weight checkpoint and generated images."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import torch
import yaml
from PIL import Image

from benchmarks.bad_inputs import png_header_only  # noqa: F401 - re-exported for the older tests
from shoeseg.constants import REPO_ROOT
from shoeseg.model import ModelConfig, build_model, save_checkpoint
from shoeseg.serving import server as ts_server

REPO = REPO_ROOT
TINY = ModelConfig(
    encoder="tf_efficientnet_lite0",
    decoder_channels=(32, 24, 16, 16),
    skip_channels=8,
    refine_channels=8,
    input_size=128,
)


def tiny_checkpoint(path: Path, seed: int | None = None) -> Path:
    """Save a small random-weight ResUNet as a shipped (fp16) checkpoint; serving doesn't need trained weights.
    ``seed``: the same weights every run (tests that compare numbers), without touching torch's global RNG."""
    with torch.random.fork_rng():
        if seed is not None:
            torch.manual_seed(seed)
        save_checkpoint(path, build_model(TINY), half=True)
    return path


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    """A ``width`` x ``height`` test pattern encoded as ``fmt``."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx % 256, yy % 256, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


@contextlib.contextmanager
def running_server(
    root: Path,
    handler_settings: dict | None = None,
    overrides: dict[str, str] | None = None,
    config: Path = REPO / "config.properties",
) -> Iterator[ts_server.Server]:
    """A TorchServe with the TINY model on free loopback ports under ``root``, stopped on exit (also when the
    start or the block fails); checks that none of its processes outlive it.

    ``handler_settings`` override model-config.yaml's ``handler:`` entries, ``overrides`` the server ``config``.
    """
    model_config = yaml.safe_load((REPO / "model-config.yaml").read_text())
    model_config["handler"] = {**model_config.get("handler", {}), **(handler_settings or {})}
    (root / "model-config.yaml").write_text(yaml.safe_dump(model_config, sort_keys=False))
    mar = ts_server.build_mar(
        tiny_checkpoint(root / "tiny.pth"), root / "store", config_file=root / "model-config.yaml"
    )
    props = {
        **ts_server.free_port_overrides(),
        "disable_system_metrics": "true",  # keep the test lean: no metrics collector process every minute
        **(overrides or {}),
    }
    home = root / "home"
    procs: list[psutil.Process] = []
    try:
        srv = ts_server.start(home, mar.parent, config, overrides=props)
        frontend = psutil.Process(srv.pid())
        ts_server.wait_ready(srv, timeout=240)
        procs = [frontend, *frontend.children(recursive=True)]
        yield srv
    finally:
        ts_server.stop(home)
    alive = [p.pid for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes left: {alive}"
