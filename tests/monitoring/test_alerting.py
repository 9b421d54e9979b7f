"""The shipped Prometheus rules and Alertmanager config: valid for promtool/amtool, unit-tested, and
every metric they use is one the pipeline exports."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus"


def run(*command: str) -> str:
    tool = shutil.which(command[0])
    assert tool, f"{command[0]} is not installed (Debian packages prometheus and prometheus-alertmanager; .ci/run installs them)"
    done = subprocess.run([tool, *command[1:]], cwd=HERE, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    assert "SUCCESS: 18 rules found" in run("promtool", "check", "rules", "alerts.yml")
    assert "SUCCESS" in run("promtool", "test", "rules", "alerts_test.yml")


def test_amtool_accepts_the_alertmanager_config():
    assert "SUCCESS" in run("amtool", "check-config", "alertmanager.yml")


def test_every_alert_of_the_manual_is_defined_with_its_runbook():
    groups = yaml.safe_load((HERE / "alerts.yml").read_text())["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert len(rules) == 18
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "high", "medium", "low", "info")
        assert rule["annotations"]["runbook"].startswith("runbook-")


@pytest.mark.django_db
def test_every_metric_the_rules_use_is_exported(viewer_client, apply_config):
    from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE

    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    exposition = viewer_client.get("/metrics").content.decode()
    # A counter family is typed without its _total suffix (`# TYPE alpha_records_ingested counter`).
    exported = {re.sub(r"_total$", "", n) for n in re.findall(r"^# TYPE (\w+) ", exposition, flags=re.M)}
    groups = yaml.safe_load((HERE / "alerts.yml").read_text())["groups"]
    used = set()
    for rule in (r for g in groups for r in g["rules"]):
        for name in re.findall(r"\b((?:alpha|beta|gamma|pipeline)_[a-z_]+)", rule["expr"]):
            used.add(re.sub(r"_(bucket|total)$", "", name))
    missing = sorted(n for n in used if n not in exported)
    assert missing == [], f"alert rules use metrics /metrics does not export: {missing}"
