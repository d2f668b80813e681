"""proto/*.proto are TorchServe 0.12's own gRPC interface, and the generated stubs match them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import ts

from shoeseg.client.client import grpc_stubs
from shoeseg.constants import REPO_ROOT

REPO = REPO_ROOT


@pytest.mark.parametrize("name", ["inference.proto", "management.proto"])
def test_protos_match_installed_torchserve(name: str) -> None:
    jar = Path(ts.__file__).parent / "frontend" / "model-server.jar"
    with zipfile.ZipFile(jar) as archive:
        upstream = archive.read(f"proto/{name}").decode()
    ours = (REPO / "proto" / name).read_text()
    body = ours[ours.index("syntax = ") :]  # our copy adds a provenance comment on top
    assert body == upstream


def test_generated_stubs() -> None:
    pb2, pb2_grpc = grpc_stubs()
    fields = {f.name: f.number for f in pb2.PredictionsRequest.DESCRIPTOR.fields}
    assert fields == {"model_name": 1, "model_version": 2, "input": 3, "sequence_id": 4}
    assert pb2.PredictionResponse.DESCRIPTOR.fields_by_name["prediction"].number == 1
    assert pb2.TorchServeHealthResponse.DESCRIPTOR.fields_by_name["health"].number == 1
    service = pb2.DESCRIPTOR.services_by_name["InferenceAPIsService"]
    assert service.full_name == "org.pytorch.serve.grpc.inference.InferenceAPIsService"
    assert {m.name for m in service.methods} == {"Ping", "Predictions", "StreamPredictions", "StreamPredictions2"}
    assert hasattr(pb2_grpc, "InferenceAPIsServiceStub")
