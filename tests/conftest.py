"""The integration tests' shared TorchServe: the TINY model on free loopback ports, one per session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from shoeseg.serving import server as ts_server
from tests.serving_helpers import running_server

# Exported ONNX graphs of the tests' tiny checkpoints go to a folder of this run, not ~/.cache/shoeseg
# (set before any test runs, so subprocesses inherit it).
os.environ.setdefault("SHOESEG_CACHE", tempfile.mkdtemp(prefix="shoeseg-test-cache-"))

# Limits of the shared server, small enough that the corpus can exceed them cheaply: the handler refuses
# bodies above HANDLER_MAX_BYTES with a JSON 413, the frontend those above FRONTEND_MAX_BYTES (bare 413).
HANDLER_MAX_BYTES = 24 * 1024 * 1024
FRONTEND_MAX_BYTES = 32 * 1024 * 1024


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ts_server.Server]:
    root = tmp_path_factory.mktemp("serving")
    settings = {"max_request_bytes": HANDLER_MAX_BYTES}
    with running_server(root, settings, {"max_request_size": str(FRONTEND_MAX_BYTES)}) as srv:
        yield srv
