"""The bootstrap across venues: history (the first model's day and the backfill) only for the
instruments whose venue publishes daily bulk files; the others are left to the live feed, and
the output says so."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster._cli.job import gen_partition_names_from_args

from streaming.simulator.instruments import simulated_instruments
from trading_assets.bootstrap import (
    backfill_command,
    history_days,
    history_instruments,
    split_instruments,
)
from trading_assets.defs.ingest.partitions import build_trade_partitions

pytestmark = [pytest.mark.venues]

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def test_only_binance_spot_instruments_have_history_to_fetch():
    configured = [
        "COINBASE:BTC-USD",
        "BINANCE:BTCUSDT",
        "KRAKEN:BTC/USD",
        "BINANCE_FUTURES:BTCUSDT",
        "BINANCE:ETHUSDT",
    ]

    with_files, live_only = split_instruments(configured)

    assert with_files == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]
    assert live_only == ["COINBASE:BTC-USD", "KRAKEN:BTC/USD", "BINANCE_FUTURES:BTCUSDT"]


def test_the_output_names_each_instrument_left_to_the_live_feed(capsys):
    fetched = history_instruments(["BINANCE:BTCUSDT", "COINBASE:BTC-USD", "KRAKEN:ETH/USD"])

    lines = capsys.readouterr().out.splitlines()
    assert fetched == ["BINANCE:BTCUSDT"]
    assert lines == [
        "[bootstrap] COINBASE:BTC-USD: no daily files; its days come from the trades the "
        "sidecar lands",
        "[bootstrap] KRAKEN:ETH/USD: no daily files; its days come from the trades the "
        "sidecar lands",
    ]


def test_without_any_daily_files_there_is_no_history_and_the_output_says_so(capsys):
    fetched = history_instruments(["COINBASE:BTC-USD"])

    assert fetched == []
    assert "no instrument has daily files: no history to fetch" in capsys.readouterr().out


@pytest.mark.parametrize("venues", [["binance", "coinbase"], ["coinbase", "binance", "kraken"]])
def test_the_backfill_selects_every_bulk_day_and_no_other_instrument(monkeypatch, venues):
    # Arrange: the job's partitions as `make run VENUES=...` configures them
    days = history_days(3, dt.date(2026, 3, 10))
    configured = simulated_instruments(venues, SYMBOLS)
    monkeypatch.setenv("TRADING_INSTRUMENTS", ",".join(configured))
    monkeypatch.setenv("TRADING_HISTORY_START", "2026-03-01")
    partitions = build_trade_partitions().get_partition_keys()
    with_files, _ = split_instruments(configured)

    # Act: what `dagster job backfill` selects from the command's partition arguments
    command = backfill_command(days, with_files)
    selected = gen_partition_names_from_args(
        partitions,
        all_partitions=False,
        partitions=command[command.index("--partitions") + 1],
        start_partition=None,
        end_partition=None,
    )

    # Assert
    assert sorted(selected) == sorted(
        f"{day}|BINANCE:{symbol}" for day in days for symbol in SYMBOLS
    )
