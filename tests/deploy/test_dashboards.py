"""The provisioned Grafana dashboards and datasource: well-formed for Grafana, on the
provisioned datasource, mounted where the provider looks, and reading only exposed metrics.
(Every query is run against a live Prometheus in test_prometheus_live.py.)"""

from __future__ import annotations

import yaml

from tests.deploy.promql import (
    DASHBOARD_FILES,
    DATASOURCE_FILES,
    GRAFANA_DIR,
    PROMETHEUS_CONFIG,
    REPO,
    all_exposed_names,
    dashboards,
    metric_names,
    panel_queries,
    panels,
    variable_queries,
    variable_selector,
)

# Sidecar health, latency, fallback levels, risk state, paper P&L and data freshness: the
# series each of those views must show.
VIEWS = {
    "sidecar health": "up",
    "event loop": "sidecar_event_loop_lag_seconds_bucket",
    "stream clients": "sidecar_ws_clients",
    "latency": "sidecar_prediction_latency_seconds_bucket",
    "fallback levels": "sidecar_fallback_level",
    "risk state": "sidecar_risk_state",
    "risk score": "sidecar_risk_score",
    "paper P&L": "sidecar_paper_pnl",
    "feature age": "sidecar_feature_age_seconds",
    "message lag": "sidecar_message_lag_seconds",
    "ingest lag": "trading_live_partition_ingest_lag_seconds",
}


def provisioned_datasource() -> dict:
    (path,) = DATASOURCE_FILES
    (datasource,) = yaml.safe_load(path.read_text())["datasources"]
    return datasource


def test_the_datasource_is_the_compose_prometheus():
    datasource = provisioned_datasource()
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())

    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    # $__rate_interval is computed from it.
    assert prometheus["global"]["scrape_interval"] == datasource["jsonData"]["timeInterval"]


def test_the_dashboard_provider_reads_the_folder_compose_mounts():
    (provider_file,) = (GRAFANA_DIR / "provisioning" / "dashboards").glob("*.yml")
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]

    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_every_dashboard_is_well_formed_and_on_the_provisioned_datasource():
    uid = provisioned_datasource()["uid"]
    boards = dashboards()

    assert len(boards) == len(DASHBOARD_FILES) >= 2
    assert len({board["uid"] for board in boards}) == len(boards)
    for board in boards:
        assert board["schemaVersion"] >= 39 and board["title"]
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), board["uid"]
        for panel in panels(board):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["description"], panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, panel["title"]
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] == uid
            variable_selector(variable["definition"])  # label_values(selector, label)


def test_no_two_panels_of_a_dashboard_overlap():
    for board in dashboards():
        cells: dict[tuple[int, int], str] = {}
        for panel in board["panels"]:
            grid = panel["gridPos"]
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                    cells[(x, y)] = panel["title"]


def test_the_dashboards_show_every_promised_view():
    used = {
        name
        for board in dashboards()
        for _, expr in panel_queries(board)
        for name in metric_names(expr)
    }

    assert {view: metric for view, metric in VIEWS.items() if metric not in used} == {}


def test_every_metric_a_dashboard_reads_is_exposed():
    exposed = all_exposed_names()
    queries = [
        query
        for board in dashboards()
        for query in [expr for _, expr in panel_queries(board)]
        + [variable_selector(q)[0] for _, q in variable_queries(board)]
    ]

    used = {name for query in queries for name in metric_names(query)}

    assert used - exposed == set()
    assert len(used) >= 20
