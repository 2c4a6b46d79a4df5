"""What the deploy/ tests read of the alert rules and dashboards: their PromQL, the metric names
it uses, and the names the sidecar and the metrics exporter actually expose."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.core import Metric

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
DATASOURCE_FILES = sorted((GRAFANA_DIR / "provisioning" / "datasources").glob("*.yml"))
Json = dict[str, Any]

# Words of PromQL itself, and Prometheus' own series, that are not metrics of the project.
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
_SYNTHETIC = {"up"}


def require_binary(name: str) -> str:
    """The path of ``name`` (a Prometheus binary); fails the test, saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found on PATH: `make services` installs it "
            "(Debian's prometheus package: apt-get install prometheus)"
        )
    return path


def alert_rules() -> list[Json]:
    """Every alerting rule of deploy/prometheus/rules, each with its ``group``."""
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [rule | {"group": group["name"]} for rule in group["rules"] if "alert" in rule]
    return rules


def dashboards() -> list[Json]:
    return [json.loads(path.read_text()) for path in DASHBOARD_FILES]


def panels(dashboard: Json) -> Iterator[Json]:
    """Every panel, those inside collapsed rows too (rows themselves excluded)."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: Json) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query target of the dashboard."""
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]


def variable_queries(dashboard: Json) -> list[tuple[str, str]]:
    """(variable name, query) of the dashboard's template variables, in their order."""
    found = []
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        found.append((variable["name"], query["query"] if isinstance(query, dict) else query))
    return found


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def variable_selector(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` (Grafana's variable query) → (selector, label)."""
    match = LABEL_VALUES.match(query.strip())
    if match is None:
        raise ValueError(f"not a label_values(selector, label) query: {query}")
    return match["selector"], match["label"]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label names,
    durations, numbers and Grafana's variables left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(_GROUPING, " ", text)  # by (...), on (...), ...
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before in ".$":  # 1e9, 0.5e-3, $symbol
            continue
        if text[match.end() :].lstrip().startswith("("):  # a function or an aggregation
            continue
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def exposed_names(families: list[Metric]) -> set[str]:
    """The sample names Prometheus stores for these metric families."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("", "_count", "_sum"),
        "info": ("_info",),
    }
    return {
        family.name + suffix for family in families for suffix in suffixes.get(family.type, ("",))
    }


def sidecar_families() -> list[Metric]:
    """Every metric family a running sidecar registers: its metrics object with the feed and
    the risk engine shown, the loop watch and the online store's health (as Sidecar does)."""
    from streaming.ingest import MarketFeed
    from streaming.loop_watch import LoopWatch
    from streaming.metrics import SidecarMetrics
    from streaming.online.bounded import OnlineStoreHealth
    from trading_assets.lib.risk import RiskEngine

    metrics = SidecarMetrics()
    LoopWatch(metrics.registry)
    OnlineStoreHealth(metrics.registry)
    metrics.paper.show(RiskEngine())
    feed = MarketFeed("ws://127.0.0.1:9", "http://127.0.0.1:9", ["BTCUSDT"], dead_letter_path="x")
    metrics.market_feed.show({"BINANCE": feed})
    return list(metrics.registry.collect())


def exporter_families() -> list[Metric]:
    """Every metric family the metrics exporter serves (described, not read: no store is
    touched), its process series included."""
    import dagster as dg
    from prometheus_client import ProcessCollector

    from trading_assets.metrics_exporter import LiveIngestCollector, ModelAliasCollector

    return [
        *LiveIngestCollector(dg.DagsterInstance.ephemeral(), ["BINANCE:BTCUSDT"]).describe(),
        *ModelAliasCollector("http://127.0.0.1:9", "signal").describe(),
        *ProcessCollector(registry=None).collect(),
    ]


def all_exposed_names() -> set[str]:
    """Names the rules and dashboards may use: the sidecar's, the exporter's and ``up``."""
    return exposed_names(sidecar_families()) | exposed_names(exporter_families()) | _SYNTHETIC
