"""The production config's token authorization on a real TorchServe: no key, no cutout; the key from
key_file.json works over REST and gRPC, as the README shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoeseg.client import ImageRejectedError, ServiceError, predict_grpc, predict_rest
from shoeseg.serving import server as ts_server
from tests.serving_helpers import REPO, image_bytes, running_server

pytestmark = pytest.mark.integration


def test_production_config_needs_the_key(tmp_path: Path) -> None:
    config = REPO / "config.production.properties"
    with running_server(tmp_path, overrides={"disable_system_metrics": "true"}, config=config) as srv:
        keys = json.loads((srv.home / "key_file.json").read_text())
        data = image_bytes(48, 32)
        with pytest.raises(ImageRejectedError) as info:
            predict_rest(data, url=srv.inference_url, retries=0)
        assert (info.value.status, info.value.kind) == (400, "InvalidKeyException")  # TorchServe 0.12's answer
        status, body = ts_server.http_request(f"{srv.management_url}/models/resunet")
        assert status == 400 and b"InvalidKeyException" in body
        assert predict_rest(data, url=srv.inference_url, token=keys["inference"]["key"]).startswith(b"\x89PNG")
        with pytest.raises(ServiceError):
            predict_grpc(data, target=srv.grpc_inference, retries=0)
        assert predict_grpc(data, target=srv.grpc_inference, token=keys["inference"]["key"]).startswith(b"\x89PNG")
