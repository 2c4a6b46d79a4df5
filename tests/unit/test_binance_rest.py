"""Binance REST response parsing against the samples in Binance's spot market-data docs."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.venues.binance.errors import BinanceParseError
from streaming.venues.binance.parse import (
    parse_exchange_info,
    parse_rest_agg_trades,
    parse_rest_depth,
    parse_rest_klines,
    parse_rest_trades,
)
from streaming.venues.binance.records import AggTrade, DepthSnapshot, Kline, Trade

RECEIVE_NS = 1_672_515_782_200_000_001

# REST responses as in Binance's "Market Data endpoints" documentation for spot.
REST_AGG_TRADES = b"""[{"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781,
  "T": 1498793709153, "m": true, "M": true}]"""
REST_TRADES = b"""[{"id": 28457, "price": "4.00000100", "qty": "12.00000000",
  "quoteQty": "48.000012", "time": 1499865549590, "isBuyerMaker": true, "isBestMatch": true}]"""
REST_KLINES = b"""[[1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
  "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397", "28.46694368", "0"]]"""
REST_DEPTH = b"""{"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]],
  "asks": [["4.00000200", "12.00000000"], ["4.00000300", "1.50000000"]]}"""
EXCHANGE_INFO = b"""{"timezone": "UTC", "serverTime": 1565246363776, "rateLimits": [],
  "exchangeFilters": [], "symbols": [{"symbol": "ETHBTC", "status": "TRADING",
  "baseAsset": "ETH", "baseAssetPrecision": 8, "quoteAsset": "BTC", "quotePrecision": 8,
  "orderTypes": ["LIMIT", "MARKET"], "filters": [
    {"filterType": "PRICE_FILTER", "minPrice": "0.00000100", "maxPrice": "100000.00000000",
     "tickSize": "0.00000100"},
    {"filterType": "LOT_SIZE", "minQty": "0.00100000", "maxQty": "100000.00000000",
     "stepSize": "0.00100000"},
    {"filterType": "ICEBERG_PARTS", "limit": 10}]},
  {"symbol": "OLDBTC", "status": "BREAK", "baseAsset": "OLD", "quoteAsset": "BTC",
   "filters": []}]}"""


def test_rest_agg_trades() -> None:
    # Act
    records = parse_rest_agg_trades(REST_AGG_TRADES, "BNBBTC", RECEIVE_NS)

    # Assert
    assert records == [
        AggTrade("BNBBTC", 26129, "0.01633102", "4.70443515", 27781, 27781, True,
                 1498793709153_000_000, None, RECEIVE_NS)
    ]  # fmt: skip


def test_rest_trades() -> None:
    # Act
    records = parse_rest_trades(REST_TRADES, "BNBBTC", RECEIVE_NS)

    # Assert
    assert records == [
        Trade("BNBBTC", 28457, "4.00000100", "12.00000000", True, 1499865549590_000_000, None,
              RECEIVE_NS)
    ]  # fmt: skip


def test_rest_klines_tolerate_extra_columns_and_derive_closed_from_receive_time() -> None:
    # Arrange: one extra trailing column, received before the kline's close time.
    with_extra_column = REST_KLINES.replace(b'"0"]]', b'"0", "future"]]')
    before_close_ns = 1499644799999_000_000 - 1

    # Act
    closed = parse_rest_klines(REST_KLINES, "BNBBTC", "1w", RECEIVE_NS)
    still_open = parse_rest_klines(with_extra_column, "BNBBTC", "1w", before_close_ns)

    # Assert
    assert closed == [
        Kline("BNBBTC", "1w", 1499040000000_000_000, 1499644799999_000_000, "0.01634790",
              "0.80000000", "0.01575800", "0.01577100", "148976.11427815", "2434.19055334",
              308, "1756.87402397", "28.46694368", True, None, RECEIVE_NS)
    ]  # fmt: skip
    assert [k.is_closed for k in still_open] == [False]


def test_rest_depth() -> None:
    # Act
    snapshot = parse_rest_depth(REST_DEPTH, "BNBBTC", RECEIVE_NS)

    # Assert
    assert snapshot == DepthSnapshot(
        "BNBBTC", 1027024, (("4.00000000", "431.00000000"),),
        (("4.00000200", "12.00000000"), ("4.00000300", "1.50000000")), RECEIVE_NS,
    )  # fmt: skip


def test_exchange_info_keeps_tick_and_step_sizes() -> None:
    # Act
    info = parse_exchange_info(EXCHANGE_INFO, RECEIVE_NS)

    # Assert
    assert info.server_ns == 1565246363776_000_000
    assert [(s.symbol, s.status, s.base_asset, s.quote_asset) for s in info.symbols] == [
        ("ETHBTC", "TRADING", "ETH", "BTC"),
        ("OLDBTC", "BREAK", "OLD", "BTC"),
    ]
    assert (info.symbols[0].tick_size, info.symbols[0].step_size) == ("0.00000100", "0.00100000")
    assert (info.symbols[1].tick_size, info.symbols[1].step_size) == (None, None)


@pytest.mark.parametrize(
    ("call", "raw", "field", "kind"),
    [(lambda raw: parse_rest_trades(raw, "X", 0), REST_TRADES.replace(b'"price"', b'"px"'),
      "[0].price", "missing field"),
     (lambda raw: parse_rest_agg_trades(raw, "X", 0), REST_AGG_TRADES.replace(b"26129", b'"a"'),
      "[0].a", "invalid field"),
     (lambda raw: parse_rest_klines(raw, "X", "1m", 0), b'[[1499040000000, "1", "2"]]',
      "[0]", "invalid field"),
     (lambda raw: parse_rest_klines(raw, "X", "1m", 0), REST_KLINES.replace(b"308", b'"308"'),
      "[0][8]", "invalid field"),
     (lambda raw: parse_rest_depth(raw, "X", 0), REST_DEPTH.replace(b'"431.00000000"', b"431"),
      "bids[0][1]", "invalid field"),
     (lambda raw: parse_rest_depth(raw, "X", 0), REST_DEPTH.replace(b'"12.00000000"', b'"-1"'),
      "asks[0][1]", "invalid field"),
     (lambda raw: parse_exchange_info(raw, 0), EXCHANGE_INFO.replace(b'"baseAsset"', b'"b"', 1),
      "symbols[0].baseAsset", "missing field"),
     (lambda raw: parse_rest_depth(raw, "X", 0), REST_DEPTH[:40], None, "malformed json"),
     (lambda raw: parse_rest_trades(raw, "X", 0), b'{"code": -1121, "msg": "Invalid symbol."}',
      None, "invalid field")],
)  # fmt: skip
def test_rest_errors_name_the_field(call: Any, raw: bytes, field: str | None, kind: str) -> None:
    # Act
    with pytest.raises(BinanceParseError) as caught:
        call(raw)

    # Assert
    assert caught.value.field == field
    assert caught.value.kind == kind
    assert caught.value.raw == raw
