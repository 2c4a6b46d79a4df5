"""The Prometheus configuration and alert rules: promtool accepts them, their unit tests pass,
every alert is tested firing, and every metric a rule reads is one the system exposes."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.deploy.promql import (
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    REPO,
    RULE_FILES,
    RULE_TESTS,
    alert_rules,
    all_exposed_names,
    metric_names,
    require_binary,
)
from trading_assets.lib.settings import BY_NAME
from trading_assets.metrics_exporter import DEFAULT_PORT

DURATION = re.compile(r"^(\d+[smh])+$")
SEVERITIES = {"critical", "warning"}
# The conditions the product promises alerts for, and the series each must be computed from.
PROMISED = {
    "feature staleness over 60 s": ("sidecar_feature_age_seconds", "> 60"),
    "inference latency p95 over 100 ms": ("sidecar_prediction_latency_seconds_bucket", "0.95"),
    "WebSocket disconnected": ("sidecar_feed_connected", "== 0"),
    "the sidecar in safe mode": ("sidecar_fallback_level", "== 5"),
    "the risk engine halted": ("sidecar_risk_state", "HALTED"),
    "a served model that is not the champion": ("trading_model_alias_info", "champion"),
    "a live partition not ingested for N minutes": (
        "trading_live_partition_ingest_lag_seconds",
        ">",
    ),
    "the landing disk nearly full": ("sidecar_landing_free_bytes", "sidecar_landing_min_free"),
    "the sidecar down": ("up", 'job="sidecar"'),
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_promtool_accepts_every_rule_file():
    result = promtool("check", "rules", *(str(path) for path in RULE_FILES))

    assert result.returncode == 0, result.stdout + result.stderr
    counts = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", result.stdout)]
    assert len(counts) == len(RULE_FILES) >= 2 and all(counts)


def test_promtool_accepts_the_compose_config_and_finds_its_rules():
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_the_rules_unit_tests_pass():
    assert RULE_TESTS, "no promtool unit tests in deploy/prometheus/tests"

    result = promtool("test", "rules", *(str(path) for path in RULE_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_is_unit_tested_firing():
    fired = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])

    assert {rule["alert"] for rule in alert_rules()} - fired == set()


def test_every_alert_has_a_severity_a_summary_a_description_and_a_for_duration():
    rules = alert_rules()

    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert DURATION.match(rule["for"]), rule["alert"]


def test_every_promised_condition_has_an_alert():
    expressions = [rule["expr"] for rule in alert_rules()]

    for condition, (metric, detail) in PROMISED.items():
        assert any(metric in metric_names(expr) and detail in expr for expr in expressions), (
            condition
        )


def test_every_metric_a_rule_reads_is_exposed():
    exposed = all_exposed_names()

    used = {name for rule in alert_rules() for name in metric_names(rule["expr"])}

    assert used - exposed == set()
    assert len(used) >= 10


def test_the_compose_scrape_jobs_name_the_services_and_their_ports():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    jobs = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    sidecar_port = BY_NAME["SIDECAR_PORT"].prod

    assert jobs["sidecar"] == [f"sidecar-btc:{sidecar_port}", f"sidecar-eth:{sidecar_port}"]
    assert jobs["dagster"] == [f"metrics-exporter:{DEFAULT_PORT}"]
    for job in ("sidecar", "dagster"):
        for target in jobs[job]:
            assert target.split(":")[0] in compose["services"], target


def test_metric_names_are_read_out_of_promql():
    expr = (
        'histogram_quantile(0.95, sum by (instance, le) (rate(a_bucket{x="y", z=~"$v"}'
        "[$__rate_interval]))) > 0.1 and on () count(b:rate5m) > 1e9 unless ignoring (j) c * 2"
    )

    assert metric_names(expr) == {"a_bucket", "b:rate5m", "c"}
