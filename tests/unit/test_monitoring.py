"""Monitoring as shipped: the alert rules (promtool), Prometheus's configurations, and that the
rules, the Grafana dashboard and what the jobs push name the same series."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jobs.adapters import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "conf" / "prometheus"
DASHBOARD = ROOT / "conf" / "grafana" / "spark-enrich-dashboard.json"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool not found: make setup installs Debian's prometheus package"
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False, cwd=ROOT)


def test_the_alert_rules_fire_when_and_only_when_they_should() -> None:
    result = promtool("test", "rules", str(PROMETHEUS / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_prometheus_configurations_are_valid(config: str) -> None:
    result = promtool("check", "config", str(PROMETHEUS / config))
    assert result.returncode == 0, result.stdout + result.stderr


def enrich_series(text: str) -> set[str]:
    return set(re.findall(r"\benrich_([a-z_]+)\b", text)) - {"bench"}


def test_rules_and_dashboard_name_only_series_the_jobs_push() -> None:
    rules = enrich_series((PROMETHEUS / "alerts.yml").read_text())
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = " ".join(target["expr"] for panel in panels for target in panel["targets"])
    shown = enrich_series(exprs)
    assert rules and shown
    assert rules <= set(metrics.HELP), rules - set(metrics.HELP)
    assert shown <= set(metrics.HELP), shown - set(metrics.HELP)
    assert set(metrics.HELP) <= rules | shown, "a pushed series nobody looks at"
    assert "pg_up" in exprs and "pg_up" in (PROMETHEUS / "alerts.yml").read_text()


def test_the_exposition_format_and_a_missing_pushgateway(caplog: pytest.LogCaptureFixture) -> None:
    text = metrics.exposition({"run_success": 1, "run_rows_read": 20000})
    assert text.splitlines() == [
        f"# HELP enrich_run_success {metrics.HELP['run_success']}",
        "# TYPE enrich_run_success gauge",
        "enrich_run_success 1.0",
        f"# HELP enrich_run_rows_read {metrics.HELP['run_rows_read']}",
        "# TYPE enrich_run_rows_read gauge",
        "enrich_run_rows_read 20000.0",
    ]
    assert not metrics.push(None, "batch_enrich", "s3a://b/t", {"run_success": 1})
    with caplog.at_level(logging.INFO, logger="enrich.metrics"):
        assert not metrics.push(
            "http://127.0.0.1:9", "batch_enrich", "s3a://b/t", {"run_success": 1}
        )
    assert "metrics not pushed: no Pushgateway at http://127.0.0.1:9" in caplog.text
    assert all(record.levelno < logging.WARNING for record in caplog.records)


def test_a_missing_pushgateway_is_said_once_per_process(caplog: pytest.LogCaptureFixture) -> None:
    url = "http://127.0.0.1:7"  # no server: each push is refused at once
    with caplog.at_level(logging.INFO, logger="enrich.metrics"):
        for _ in range(3):  # a stream pushes after every micro-batch
            assert not metrics.push(url, "stream_enrich", "s3a://b/t", {"run_success": 1})
    said = [record for record in caplog.records if "metrics not pushed" in record.getMessage()]
    assert len(said) == 1 and url in said[0].getMessage()
