"""Fault test: SIGKILL the worker under load; TorchServe restarts it and our client (timeout + retries) gets
every image back. Its own server, since it kills the worker (the shared one's PID must not change)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks import loadtest
from tests.serving_helpers import running_server

pytestmark = pytest.mark.integration


def test_worker_killed_under_load_every_image_returned(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = argparse.Namespace(
        photos=None, clients=4, warmup=0, duration=15, max_requests=5000, timeout=60, kill_worker_after=4, retries=6
    )
    with running_server(tmp_path) as srv:
        result = loadtest.run(args, srv.inference_url, srv.management_url, log=lambda _: None)
    summary, fault = result["summary"], result["fault"]
    assert summary["good"] > 0 and summary["bad"] > 0
    assert summary["good_correct"] == summary["good"], summary["failure_examples"]
    assert summary["failures"] == 0 and summary["no_answer"] == 0, summary["failure_examples"]
    assert fault["new_pid"] is not None and fault["new_pid"] != fault["killed_pid"]
    assert fault["first_answer_after_kill_s"] is not None
    with capsys.disabled():
        print("\n" + loadtest.render_markdown(result))
