"""The alert rules and dashboards on a real Prometheus scraping a real sidecar and exporter.

One setup for the module: the exchange simulator, a sidecar serving a registered @champion,
the metrics exporter on a Dagster instance where BTCUSDT's live partition was just ingested and
ETHUSDT's never was, and Prometheus on loopback scraping both every second with the rule files
of deploy/prometheus/rules. The one change made to those rules, in a temporary copy, is every
``for:`` shortened to :data:`FOR` so that a test sees an alert fire in seconds rather than
minutes; their expressions are the ones deployed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from streaming.simulator.server import SimulatorThread, run_simulator_in_thread
from tests.deploy.live_processes import SidecarThread, start_prometheus, terminate, wait_for
from tests.deploy.promql import (
    alert_rules,
    dashboards,
    metric_names,
    panel_queries,
    variable_queries,
    variable_selector,
)
from tests.integration.live_sidecar import (
    STALL_TEST_BUDGETS,
    STALL_TEST_TRADES_PER_DAY,
    register_decisive_model,
    trading_config,
)
from tests.services import free_port
from trading_assets.defs.ingest.partitions import partition_key
from trading_assets.metrics_exporter import LIVE_INGEST_ASSETS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SYMBOL = "BTCUSDT"  # the simulator's
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the sidecar's, ingested just now
UNFED = "BINANCE:ETHUSDT"  # the exporter's too, never ingested: its live partition is stale
FOR = "2s"
STALL_S = 12.0
# Grafana's $__rate_interval for a 1 s scrape: four scrape intervals, rounded up.
GRAFANA_VARIABLES = {"__rate_interval": "10s", "__interval": "5s", "__range": "1m"}
# As the stall test's (tests/integration/test_sidecar_stall.py): safe mode after 7 s of silence.
TRADES_PER_DAY = STALL_TEST_TRADES_PER_DAY
BUDGETS = STALL_TEST_BUDGETS
Json = dict[str, Any]


@dataclass
class Stack:
    prometheus: str  # its URL
    prometheus_process: subprocess.Popen[bytes]
    exporter_process: subprocess.Popen[bytes]
    sidecar: SidecarThread
    sidecar_target: str  # host:port, its instance label
    market: SimulatorThread
    champion: str  # the registered version the sidecar serves


def api(stack: Stack, path: str, **params: Any) -> Any:
    response = httpx.get(f"{stack.prometheus}/api/v1/{path}", params=params, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def query(stack: Stack, expr: str) -> list[Json]:
    return api(stack, "query", query=expr)["result"]


def alerts(stack: Stack, name: str, state: str | None = None, **labels: str) -> list[Json]:
    """The alerts named ``name`` Prometheus has now (pending or firing, or only ``state``) whose
    labels include ``labels``."""
    return [
        alert
        for alert in api(stack, "alerts")["alerts"]
        if alert["labels"]["alertname"] == name
        and (state is None or alert["state"] == state)
        and all(alert["labels"].get(k) == v for k, v in labels.items())
    ]


def start_exporter(root: Path, tracking_uri: str) -> tuple[str, subprocess.Popen]:
    """``python -m trading_assets.metrics_exporter`` on a Dagster instance in which today's
    partitions of INSTRUMENT were just materialized, and UNFED's never were."""
    home = root / "dagster_home"
    home.mkdir()
    day = partition_key(dt.datetime.now(dt.UTC).date(), INSTRUMENT)
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        for asset in LIVE_INGEST_ASSETS:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=asset, partition=str(day))
            )
    port = free_port()
    environment = os.environ | {
        "DAGSTER_HOME": str(home),
        "TRADING_ENV": "local",
        "TRADING_DATA_DIR": str(root / "data"),
        "TRADING_INSTRUMENTS": f"{INSTRUMENT},{UNFED}",
        "MLFLOW_TRACKING_URI": tracking_uri,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "trading_assets.metrics_exporter", "--host", "127.0.0.1",
         "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=(root / "exporter.log").open("wb"),
    )  # fmt: skip
    return f"127.0.0.1:{port}", process


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("observability")
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    champion = register_decisive_model(tracking, root / "artifacts", "champion")
    with contextlib.ExitStack() as cleanup:
        exporter, exporter_process = start_exporter(root, tracking)  # ready in seconds
        cleanup.callback(terminate, exporter_process)
        market = cleanup.enter_context(
            run_simulator_in_thread(symbols=[SYMBOL], seed=5, trades_per_day=TRADES_PER_DAY)
        )
        config = trading_config(root / "sidecar", market, (INSTRUMENT,), tracking,
                                fallback_budgets=BUDGETS)  # fmt: skip
        sidecar = SidecarThread(config)
        cleanup.callback(sidecar.stop)
        sidecar.start()
        target = f"{config.api_host}:{config.api_port}"
        prometheus, prometheus_process = start_prometheus(
            root / "prometheus", target, exporter, alert_for=FOR
        )
        cleanup.callback(terminate, prometheus_process)
        yield Stack(
            prometheus, prometheus_process, exporter_process, sidecar, target, market, champion
        )


def stall_the_stream(market: SimulatorThread) -> None:
    """Stall the sidecar's open connection for STALL_S once (the connection stays open)."""
    faults = f"{market.http_url}/_sim/faults"
    httpx.post(
        faults, json={"stall_after_messages": 1, "stall_seconds": STALL_S}
    ).raise_for_status()
    wait_for(
        "the stall starting",
        lambda: httpx.get(faults).json()["applied"].get("stalled") == 1,
        10,
    )
    httpx.delete(faults).raise_for_status()  # a reconnect would not stall again


def test_the_live_partition_nothing_ingests_fires_and_the_fed_one_does_not(stack: Stack):
    firing = wait_for(
        "LivePartitionNotIngested firing for every live-ingest asset of the unfed symbol",
        lambda: (
            found
            if len(found := alerts(stack, "LivePartitionNotIngested", "firing", symbol=UNFED))
            == len(LIVE_INGEST_ASSETS)
            else None
        ),
        30,
    )

    assert {alert["labels"]["asset"] for alert in firing} == set(LIVE_INGEST_ASSETS)
    assert alerts(stack, "LivePartitionNotIngested", symbol=INSTRUMENT) == []
    lags = query(stack, f'trading_live_partition_ingest_lag_seconds{{symbol="{INSTRUMENT}"}}')
    assert len(lags) == len(LIVE_INGEST_ASSETS)
    assert all(0 <= float(lag["value"][1]) < 600 for lag in lags)


def test_every_rule_evaluates_without_error(stack: Stack):
    def evaluated() -> list[Json] | None:
        groups = api(stack, "rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if all(rule["health"] != "unknown" for rule in rules) else None

    rules = wait_for("every rule evaluated", evaluated, 10)

    assert {rule["name"] for rule in rules} == {rule["alert"] for rule in alert_rules()}
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


def test_a_stalled_stream_fires_safe_mode_and_it_resolves_once_data_flows(stack: Stack):
    instance = {"instance": stack.sidecar_target}
    served = wait_for(
        "the champion served on fresh data",
        lambda: (
            query(stack, 'sidecar_model_version_info{role="champion"}')
            and query(stack, f'sidecar_fallback_level{{symbol="{INSTRUMENT}"}} < 5')
        ),
        60,
    )
    assert served
    (version,) = query(stack, 'sidecar_model_version_info{role="champion"}')
    assert version["metric"]["version"] == stack.champion
    for name in ("SidecarSafeMode", "SidecarServesNoChampion", "ServedModelNotChampion"):
        wait_for(f"no {name} before the stall", lambda n=name: not alerts(stack, n), 15)

    stall_the_stream(stack.market)
    (fired,) = wait_for(
        "SidecarSafeMode firing",
        lambda: alerts(stack, "SidecarSafeMode", "firing", symbol=INSTRUMENT, **instance),
        STALL_S + 5,
    )
    # A stall, not a drop: the stream stayed open, and no disconnection alert went out.
    connected = query(stack, "sidecar_feed_connected")
    quiet_connection = alerts(stack, "SidecarMarketFeedDisconnected")
    wait_for("SidecarSafeMode resolved", lambda: not alerts(stack, "SidecarSafeMode"), 45)

    assert fired["labels"]["severity"] == "critical"
    assert (
        fired["annotations"]["summary"] == f"{INSTRUMENT} is in safe mode on {stack.sidecar_target}"
    )
    assert [sample["value"][1] for sample in connected] == ["1"]
    assert quiet_connection == []
    (level,) = query(stack, f'sidecar_fallback_level{{symbol="{INSTRUMENT}"}}')
    assert float(level["value"][1]) < 5


def substitute(expr: str, values: dict[str, str]) -> str:
    for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expr, f"unresolved variable in {expr}"
    return expr


def variable_values(stack: Stack, dashboard: Json) -> dict[str, str]:
    """Each template variable as Grafana resolves "All" of its label_values(...) query: the
    values Prometheus has for the label, as a regex alternation (escaped for a PromQL string,
    as Grafana escapes it)."""
    values = dict(GRAFANA_VARIABLES)
    for name, definition in variable_queries(dashboard):
        selector, label = variable_selector(definition)
        series = api(stack, "series", **{"match[]": substitute(selector, values)})
        found = sorted({s[label] for s in series if label in s})
        assert found, f"variable {name}: no values for {definition}"
        alternation = "|".join(re.escape(v) for v in found)
        values[name] = "(" + alternation.replace("\\", "\\\\") + ")"
    return values


def test_every_dashboard_query_returns_data(stack: Stack):
    empty = []
    checked = 0
    for dashboard in dashboards():
        values = variable_values(stack, dashboard)
        for title, expr in panel_queries(dashboard):
            result = query(stack, substitute(expr, values))
            numbers = [float(sample["value"][1]) for sample in result]
            if not any(math.isfinite(n) for n in numbers):
                empty.append((dashboard["uid"], title, expr, numbers))
            checked += 1

    assert empty == []
    assert checked >= 30


def test_every_metric_the_rules_and_dashboards_use_is_scraped(stack: Stack):
    scraped = set(api(stack, "label/__name__/values"))
    queries = [rule["expr"] for rule in alert_rules()]
    for dashboard in dashboards():
        queries += [expr for _, expr in panel_queries(dashboard)]
        queries += [variable_selector(q)[0] for _, q in variable_queries(dashboard)]

    used = {name for expr in queries for name in metric_names(expr)}

    assert used - scraped == set()


def test_a_stopped_sidecar_fires_sidecar_down(stack: Stack):
    assert alerts(stack, "SidecarDown") == []

    stack.sidecar.stop()

    (down,) = wait_for(
        "SidecarDown firing",
        lambda: alerts(stack, "SidecarDown", "firing", instance=stack.sidecar_target),
        20,
    )
    assert down["labels"]["severity"] == "critical"


def test_the_exporter_and_prometheus_stop_cleanly_on_sigterm(stack: Stack):
    assert terminate(stack.exporter_process) == 0
    assert terminate(stack.prometheus_process) == 0
