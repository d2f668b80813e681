"""Safe defaults, checked on the files we ship: loopback only, no model registration or model URLs, token
authorization decided per config, the handler's limits inside the frontend's, pinned dependencies, no keys."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import tomllib
import urllib.parse

import pytest
import yaml

from shoeseg.serving.server import read_properties
from tests.serving_helpers import REPO

CONFIGS = ["config.properties", "config.production.properties"]


def java_value(value: str) -> str:
    """A .properties value as Java reads it (``\\\\`` -> ``\\``)."""
    return re.sub(r"\\(.)", r"\1", value)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_locked_down(name: str) -> None:
    props = read_properties(REPO / name)
    for key in ("inference_address", "management_address", "metrics_address"):
        host = urllib.parse.urlsplit(props[key]).hostname
        assert ipaddress.ip_address(host).is_loopback, f"{name}: {key}={props[key]}"
    for key in ("grpc_inference_address", "grpc_management_address"):
        assert ipaddress.ip_address(props[key]).is_loopback, f"{name}: {key}={props[key]}"
    assert props["enable_model_api"] == "false"
    assert props["install_py_dep_per_model"] == "false"
    assert props.get("enable_envvars_config", "false") == "false"
    allowed = [re.compile(p) for p in java_value(props["allowed_urls"]).split(",")]
    for url in (
        "https://example.com/evil.mar",
        "http://127.0.0.1/resunet.mar",
        "file:///tmp/resunet.mar",
        "s3://b/m.mar",
    ):
        assert not any(p.fullmatch(url) or p.search(url) for p in allowed), url


def test_token_authorization_decided_per_config() -> None:
    assert read_properties(REPO / "config.production.properties")["disable_token_authorization"] == "false"
    # local use (`make serve`) turns it off on purpose, and says so next to the setting
    local = (REPO / "config.properties").read_text()
    assert "disable_token_authorization=true" in local and "config.production.properties keeps it on" in local


@pytest.mark.parametrize("name", CONFIGS)
def test_handler_limits_inside_the_frontends(name: str) -> None:
    props = read_properties(REPO / name)
    handler = yaml.safe_load((REPO / "model-config.yaml").read_text())["handler"]
    assert handler["max_request_bytes"] < int(props["max_request_size"])  # JSON 413 before the frontend's bare one
    assert handler["max_response_bytes"] <= int(props["max_response_size"])  # 413, not a dropped worker
    assert 0 < handler["max_pixels"] <= 100_000_000


def test_dependencies_pinned() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    loose = [d for d in deps if not re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[0-9][0-9A-Za-z.+]*", d)]
    assert not loose, f"unpinned: {loose}"


def test_no_secret_or_key_file_committed() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False).stdout
    if not tracked:
        pytest.skip("not a git checkout")
    pattern = re.compile(r"(^|/)(key_file\.json|\.env|id_rsa|id_ed25519|.*\.pem|.*\.key|.*\.p12|credentials.*)$")
    assert not [f for f in tracked.splitlines() if pattern.search(f)]
    assert "key_file.json" in (REPO / ".gitignore").read_text()


@pytest.mark.parametrize("name", CONFIGS)
def test_frontend_heap_is_capped(name: str) -> None:
    # uncapped, the JVM took a quarter of the machine and the frontend's RSS grew to 6.5 GB in make soak
    assert re.fullmatch(r"-Xmx\d+[mg]", read_properties(REPO / name)["vmargs"])
