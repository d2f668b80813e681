"""serving/server.py helpers and the serving configuration files (no server started here)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shoeseg.serving import server as ts_server
from tests.serving_helpers import REPO


def test_config_properties() -> None:
    props = ts_server.read_properties(REPO / "config.properties")
    for key in ("inference_address", "management_address", "metrics_address"):
        assert props[key].startswith("http://127.0.0.1:")
    assert props["grpc_inference_address"] == props["grpc_management_address"] == "127.0.0.1"
    assert (props["grpc_inference_port"], props["grpc_management_port"]) == ("7070", "7071")
    assert props["disable_token_authorization"] == "true" and props["enable_model_api"] == "false"
    assert props["metrics_mode"] == "prometheus" and (REPO / props["metrics_config"]).is_file()
    production = ts_server.read_properties(REPO / "config.production.properties")
    assert production["disable_token_authorization"] == "false"
    # the handler refuses (413) a cutout the frontend could not send back
    handler_cfg = yaml.safe_load((REPO / "model-config.yaml").read_text())["handler"]
    assert handler_cfg["max_response_bytes"] == int(props["max_response_size"]) >= 150 * 1024 * 1024


def test_metrics_yaml_declares_handler_metrics() -> None:
    declared = yaml.safe_load((REPO / "metrics.yaml").read_text())["model_metrics"]
    names = {kind: {m["name"] for m in items} for kind, items in declared.items()}
    assert {"ImagesProcessed", "InvalidImages"} <= names["counter"]
    assert {"DecodeTime", "PreprocessTime", "InferenceTime", "EncodeTime", "HandlerTime"} <= names["gauge"]
    assert names["histogram"] == {"BatchSize"} | {
        f"{s}Seconds" for s in ("Decode", "Preprocess", "Inference", "Encode", "Handler")
    }


def test_render_config(tmp_path: Path) -> None:
    props = ts_server.render_config(REPO / "config.properties", tmp_path / "c.properties", {"job_queue_size": "7"})
    assert Path(props["metrics_config"]).is_absolute() and Path(props["metrics_config"]).is_file()
    assert ts_server.read_properties(tmp_path / "c.properties") == props
    assert props["job_queue_size"] == "7"


def test_free_ports_distinct() -> None:
    ports = ts_server.free_ports(5)
    assert len(set(ports)) == 5


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(ts_server.ServerError, match="make train"):
        ts_server.build_mar(tmp_path / "nope.pth", tmp_path / "store")
    assert ts_server.stop(tmp_path / "no-server") == 0


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_serve_refuses_without_weights(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "serve", f"WEIGHTS={tmp_path}/missing.pth"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "no shipped model yet: train one (make train) or pass WEIGHTS=path" in result.stderr


def test_model_log_reads_the_files_log4j_rolled_over(tmp_path: Path) -> None:
    # TorchServe rolls model_log.log over at midnight and at 100 MB: a worker's start-up lines move to a .gz
    logs = tmp_path / "logs"
    logs.mkdir()
    older, newer = logs / "model_log.01-Dec.log.gz", logs / "model_log.02-Dec.log.gz"
    older.write_bytes(gzip.compress(b"loaded tiny.pth\n"))
    newer.write_bytes(gzip.compress(b"batch 1\n"))
    os.utime(older, (1_000, 1_000))
    (logs / "model_log.log").write_text("batch 2\n")
    assert ts_server.Server(tmp_path, {}).model_log() == "loaded tiny.pth\nbatch 1\nbatch 2\n"
    assert ts_server.Server(tmp_path / "none", {}).model_log() == ""
