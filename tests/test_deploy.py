"""deploy/: Kubernetes manifests checked offline against the Kubernetes 1.37 schemas (kubernetes-validate)
and against each other, the TorchServe config, metrics.yaml and the Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from shoeseg.serving.readiness import main as readiness_main
from shoeseg.serving.server import free_ports, read_properties
from tests.serving_helpers import REPO

K8S = REPO / "deploy" / "k8s"
VERSION = "1.37.0"


def load(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


def manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_manifest_matches_the_kubernetes_schema(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, VERSION, strict=True)  # raises on unknown or mistyped fields


def test_schema_check_catches_mistakes() -> None:
    deployment = load("deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)


def test_kustomization_lists_every_cluster_manifest() -> None:
    listed = set(load("kustomization.yaml")["resources"])
    assert listed == {p.name for p in manifests()} - {"prometheus-adapter-rules.yaml"}


def config() -> dict[str, str]:
    text = load("configmap.yaml")["data"]["config.properties"]
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_configmap_follows_the_production_config() -> None:
    pod, production = config(), read_properties(REPO / "config.production.properties")
    # the same settings, except: token auth off (per-process keys cannot span replicas), the pod's interfaces,
    # absolute paths, the model loaded at start
    deltas = {"disable_token_authorization", "metrics_config", "inference_address", "metrics_address"}
    deltas |= {"grpc_inference_address"}
    assert {k: v for k, v in pod.items() if k in production and k not in deltas} == {
        k: v for k, v in production.items() if k not in deltas
    }
    assert pod["disable_token_authorization"] == "true" and pod["grpc_inference_address"] == "0.0.0.0"
    assert pod["management_address"].startswith("http://127.0.0.1:")  # only the in-pod probe uses it
    assert pod["load_models"] == "resunet=resunet.mar" and pod["model_store"] == "/home/model-server/model-store"


def port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_ports_probes_and_scrape_annotations_agree() -> None:
    pod = config()
    template = load("deployment.yaml")["spec"]["template"]
    container = template["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "http": port(pod["inference_address"]),
        "grpc": int(pod["grpc_inference_port"]),
        "metrics": port(pod["metrics_address"]),
    }
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and int(annotations["prometheus.io/port"]) == ports["metrics"]
    for probe in ("startupProbe", "readinessProbe"):  # worker status, not /ping (healthy before the model loads)
        assert container[probe]["exec"]["command"] == ["python", "-m", "shoeseg.serving.readiness"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")["mountPath"]
    assert container["args"][-1] == f"{mount}/config.properties"
    service = load("service.yaml")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    assert service["spec"]["selector"] == template["metadata"]["labels"]


def test_autoscaling_rule_uses_exported_torchserve_metrics() -> None:
    hpa = load("hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == load("deployment.yaml")["metadata"]["name"]
    custom = next(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    rule = yaml.safe_load(load("prometheus-adapter-rules.yaml")["data"]["config.yaml"])["rules"][0]
    assert rule["name"]["as"] == custom
    used = set(re.findall(r"\b(ts_[a-z_]+)\{", rule["seriesQuery"] + rule["metricsQuery"]))
    declared = yaml.safe_load((REPO / "metrics.yaml").read_text())["ts_metrics"]
    exported = {m["name"] for kind in declared.values() for m in kind}
    assert used == {"ts_queue_latency_microseconds", "ts_inference_requests_total"} and used <= exported


def test_dockerfile_copies_what_exists_and_serves_the_mounted_config() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.split()[:-1]:
            if not source.startswith("${"):
                assert (REPO / source).exists(), source
    assert "ARG WEIGHTS=shoeseg/weights/resunet.pth" in text
    deployment_args = load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"CMD {str(deployment_args).replace(chr(39), chr(34))}" in text


def test_readiness_fails_without_a_server() -> None:
    assert readiness_main(["--url", f"http://127.0.0.1:{free_ports(1)[0]}"]) == 1
