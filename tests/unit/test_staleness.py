"""The pure staleness checks: heartbeat answers, online row ages, repair cooldown and cursor."""

from __future__ import annotations

import datetime as dt

import pytest

from trading_assets.lib.feature_store import staleness
from trading_assets.lib.feature_store.staleness import (
    NS_PER_S,
    Heartbeat,
    RepairCursor,
    assess,
    parse_health,
    plan_repairs,
    repair_run_key,
    silver_blocker,
    unreachable,
)

NOW_NS = 1_709_294_400 * NS_PER_S  # 2024-03-01 12:00:00 UTC
HEALTHY = Heartbeat(True, "ok (up 30 s)", 30.0)


def seconds_ago(seconds: float) -> int:
    return NOW_NS - int(seconds * NS_PER_S)


def test_health_is_ok_only_for_200_with_status_ok():
    alive = parse_health(200, {"status": "ok", "uptime_s": 12.5})
    wrong_body = parse_health(200, {"status": "starting"})
    server_error = parse_health(503, {"status": "ok"})

    assert alive == Heartbeat(True, "ok (up 12 s)", 12.5)
    assert not wrong_body.ok and "starting" in wrong_body.detail
    assert not server_error.ok and "503" in server_error.detail
    assert not parse_health(200, "<html>").ok


def test_unreachable_names_the_error():
    beat = unreachable(ConnectionRefusedError("connection refused"))

    assert not beat.ok
    assert beat.detail == "unreachable (ConnectionRefusedError: connection refused)"


def test_fresh_rows_and_a_live_heartbeat_are_not_stale():
    result = assess(HEALTHY, {"BTCUSDT": seconds_ago(3), "ETHUSDT": seconds_ago(100)}, NOW_NS, 120)

    assert not result.stale
    assert result.stale_symbols == []
    assert result.cause() == "fresh"
    assert result.ages() == {"BTCUSDT": 3.0, "ETHUSDT": 100.0}
    assert "BTCUSDT 3 s" in result.summary() and "max 120 s" in result.summary()


def test_old_and_missing_rows_are_stale_with_their_reason():
    result = assess(
        HEALTHY,
        {"BTCUSDT": seconds_ago(3), "ETHUSDT": seconds_ago(3_600), "SOLUSDT": None},
        NOW_NS,
        120,
    )

    assert result.stale
    assert result.stale_symbols == ["ETHUSDT", "SOLUSDT"]
    assert result.cause() == (
        "online rows stale: ETHUSDT is 3600 s old (> 120 s); SOLUSDT has no online row"
    )
    assert result.ages()["SOLUSDT"] is None


def test_the_threshold_itself_is_still_fresh():
    result = assess(HEALTHY, {"BTCUSDT": seconds_ago(120)}, NOW_NS, 120)

    assert not result.stale


def test_an_unreachable_sidecar_makes_every_symbol_stale():
    down = unreachable("ConnectError: refused")

    result = assess(down, {"BTCUSDT": seconds_ago(1), "ETHUSDT": seconds_ago(500)}, NOW_NS, 120)

    assert result.stale_symbols == ["BTCUSDT", "ETHUSDT"]
    assert result.cause() == (
        "sidecar heartbeat unreachable (ConnectError: refused); "
        "online rows stale: ETHUSDT is 500 s old (> 120 s)"
    )


def test_rows_from_the_future_count_as_fresh():
    result = assess(HEALTHY, {"BTCUSDT": NOW_NS + 5 * NS_PER_S}, NOW_NS, 120)

    assert not result.stale and result.ages() == {"BTCUSDT": 0.0}


def test_a_non_positive_threshold_is_refused():
    with pytest.raises(ValueError, match="max_age_s"):
        assess(HEALTHY, {}, NOW_NS, 0)


def test_a_symbol_repaired_within_the_cooldown_waits():
    cursor = RepairCursor({"BTCUSDT": seconds_ago(60), "ETHUSDT": seconds_ago(601)})

    plan = plan_repairs(["BTCUSDT", "ETHUSDT", "SOLUSDT"], cursor, NOW_NS, cooldown_s=600)

    assert plan.due == ["ETHUSDT", "SOLUSDT"]
    assert plan.cooling == {"BTCUSDT": seconds_ago(60) + 600 * NS_PER_S}


def test_a_repair_needs_silver_newer_than_the_online_row():
    no_silver = silver_blocker(seconds_ago(3_600), None)
    not_newer = silver_blocker(seconds_ago(3_600), seconds_ago(3_600))

    assert silver_blocker(seconds_ago(3_600), seconds_ago(30)) is None
    assert silver_blocker(None, seconds_ago(30)) is None  # no online row: anything helps
    assert no_silver is not None and "no silver rows today" in no_silver
    assert not_newer is not None and "2024-03-01T11:00:00Z" in not_newer


def test_symbols_silver_cannot_help_are_blocked_before_the_cooldown():
    online = {"BTCUSDT": seconds_ago(3_600), "ETHUSDT": seconds_ago(3_600), "SOLUSDT": None}
    silver = {"BTCUSDT": seconds_ago(10), "ETHUSDT": seconds_ago(4_000), "SOLUSDT": None}

    plan = plan_repairs(online, RepairCursor(), NOW_NS, 600, online, silver)

    assert plan.due == ["BTCUSDT"]
    assert set(plan.blocked) == {"ETHUSDT", "SOLUSDT"}
    assert plan.cooling == {}
    assert plan.reasons()[0].startswith("ETHUSDT has nothing in silver newer")


def test_the_cursor_round_trips_and_survives_garbage():
    cursor = RepairCursor({"BTCUSDT": 1}).with_requests(["ETHUSDT", "BTCUSDT"], 5)

    assert RepairCursor.parse(cursor.dump()) == RepairCursor({"BTCUSDT": 5, "ETHUSDT": 5})
    assert RepairCursor.parse("not json") == RepairCursor()
    assert RepairCursor.parse(None) == RepairCursor()


def test_run_keys_repeat_within_a_cooldown_period_only():
    key = "2024-03-01|BTCUSDT"
    period_start = (NOW_NS // (600 * NS_PER_S)) * 600 * NS_PER_S

    same = repair_run_key(key, period_start, 600) == repair_run_key(key, period_start + 1, 600)
    next_period = repair_run_key(key, period_start + 600 * NS_PER_S, 600)

    assert same
    assert next_period != repair_run_key(key, period_start, 600)
    assert repair_run_key(key, period_start, 600).startswith(f"repair:{key}@")


def test_the_repair_day_is_the_utc_day():
    just_before_midnight = int(dt.datetime(2024, 3, 1, 23, 59, 59, tzinfo=dt.UTC).timestamp())

    assert staleness.utc_day(just_before_midnight * NS_PER_S) == dt.date(2024, 3, 1)
    assert staleness.utc_text(NOW_NS) == "2024-03-01T12:00:00Z"


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SIDECAR_URL", "http://sidecar:9000/")
    monkeypatch.setenv("STALENESS_MAX_AGE_S", "45")

    assert staleness.configured_sidecar_url() == "http://sidecar:9000"
    assert staleness.configured_max_age_s() == 45.0
    monkeypatch.delenv("SIDECAR_URL")
    monkeypatch.delenv("STALENESS_MAX_AGE_S")
    assert staleness.configured_sidecar_url() == "http://127.0.0.1:8700"
    assert staleness.configured_max_age_s() == staleness.DEFAULT_MAX_AGE_S
