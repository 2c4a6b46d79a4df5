"""The simulator's synthetic market over REST, bulk files and the live stream, via our clients."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import itertools
import json
import zipfile
from collections.abc import AsyncIterator

import polars as pl
import pytest
from aiohttp.test_utils import make_mocked_request

from streaming.simulator.binance.rest import RestApi
from streaming.simulator.binance.streams import StreamHub, Subscriber
from streaming.simulator.history import MarketHistory
from streaming.simulator.live import SyntheticLiveFeed
from streaming.simulator.server import SimulatorServer, run_simulator_in_thread
from streaming.simulator.synthetic import SyntheticMarket
from streaming.simulator.tape import DayTape
from streaming.venues.binance.client import (
    AsyncBinanceRestClient,
    BinanceApiError,
    BinanceRestClient,
    BinanceStreamClient,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
SEED, TRADES_PER_DAY = 5, 40_000
NOW = dt.datetime(2024, 8, 9, 12, 0, tzinfo=dt.UTC)
NOW_NS = int(NOW.timestamp()) * 1_000_000_000
LISTING = dt.date(2024, 8, 1)
BOUNDARY = dt.date(2024, 8, 9)
TRADES_COLUMNS = ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"]


@pytest.fixture
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY)


@pytest.fixture
async def rest(market: SyntheticMarket) -> AsyncIterator[AsyncBinanceRestClient]:
    simulator = SimulatorServer(
        symbols=["BTCUSDT"], listing_date=LISTING, live=False, clock_ns=lambda: NOW_NS,
        market=market,
    )  # fmt: skip
    async with simulator as sim, AsyncBinanceRestClient(sim.http_url) as client:
        yield client


async def test_agg_trades_pages_by_from_id_contiguously_across_midnight(
    rest: AsyncBinanceRestClient, market: SyntheticMarket
) -> None:
    from_id = market.first_agg_id("BTCUSDT", BOUNDARY) - 1500

    pages = []
    for _ in range(3):
        page = json.loads(await rest.agg_trades("BTCUSDT", from_id=from_id, limit=1000))
        pages += page
        from_id = page[-1]["a"] + 1

    agg_ids = [a["a"] for a in pages]
    assert agg_ids == list(range(agg_ids[0], agg_ids[0] + 3000))
    assert all(b["f"] == a["l"] + 1 for a, b in itertools.pairwise(pages))
    assert all(a["T"] <= b["T"] for a, b in itertools.pairwise(pages))


async def test_historical_trades_page_by_from_id_and_match_the_bulk_day(
    rest: AsyncBinanceRestClient, market: SyntheticMarket
) -> None:
    day_before = market.day_trades("BTCUSDT", BOUNDARY - dt.timedelta(days=1))
    from_id = int(day_before["id"][-600])

    first = json.loads(await rest.historical_trades("BTCUSDT", from_id=from_id, limit=1000))
    second = json.loads(await rest.historical_trades("BTCUSDT", from_id=first[-1]["id"] + 1))

    ids = [t["id"] for t in first + second]
    assert ids == list(range(from_id, from_id + 1500))
    tail = day_before.tail(600)
    assert [t["price"] for t in first[:600]] == tail["price"].to_list()
    assert [t["quoteQty"] for t in first[:600]] == tail["quote_qty"].to_list()
    assert [t["time"] for t in first[:600]] == tail["time"].to_list()


async def test_agg_trades_honour_start_and_end_time(
    rest: AsyncBinanceRestClient, market: SyntheticMarket
) -> None:
    start = int(dt.datetime(2024, 8, 8, 10, 0, tzinfo=dt.UTC).timestamp() * 1000)
    end = start + 120_000
    expected = market.day_agg_trades("BTCUSDT", dt.date(2024, 8, 8)).filter(
        pl.col("transact_time").is_between(start, end)
    )

    body = json.loads(await rest.agg_trades("BTCUSDT", start_time=start, end_time=end, limit=1000))

    assert expected.height > 0
    assert [a["a"] for a in body] == expected["agg_trade_id"].to_list()[:1000]
    assert all(start <= a["T"] <= end for a in body)


async def test_recent_trades_end_at_now(rest: AsyncBinanceRestClient) -> None:
    body = json.loads(await rest.recent_trades("BTCUSDT", limit=50))

    assert len(body) == 50
    assert body[-1]["time"] <= NOW_NS // 1_000_000
    assert [t["id"] for t in body] == list(range(body[0]["id"], body[0]["id"] + 50))


async def test_klines_summarise_the_trades_of_each_minute(
    rest: AsyncBinanceRestClient, market: SyntheticMarket
) -> None:
    start = int(dt.datetime(2024, 8, 9, 0, 0, tzinfo=dt.UTC).timestamp() * 1000)
    trades = market.day_trades("BTCUSDT", BOUNDARY)

    klines = json.loads(await rest.klines("BTCUSDT", "1m", start_time=start, limit=5))

    assert [k[0] for k in klines] == [start + i * 60_000 for i in range(5)]
    for kline in klines:
        minute = trades.filter(pl.col("time").is_between(kline[0], kline[6]))
        prices = [float(p) for p in minute["price"]]
        assert kline[8] == minute.height
        assert (kline[1], kline[4]) == (minute["price"][0], minute["price"][-1])
        assert (float(kline[2]), float(kline[3])) == (max(prices), min(prices))
        assert float(kline[5]) == pytest.approx(sum(float(q) for q in minute["qty"]))


async def test_depth_snapshot_has_one_tick_spread(rest: AsyncBinanceRestClient) -> None:
    body = json.loads(await rest.depth("BTCUSDT", limit=10))

    bids = [float(p) for p, _ in body["bids"]]
    asks = [float(p) for p, _ in body["asks"]]
    assert len(bids) == len(asks) == 10
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert asks[0] - bids[0] == pytest.approx(1.0)  # BTCUSDT's synthetic tick


async def test_depth_limit_above_5000_is_cut_to_5000(rest: AsyncBinanceRestClient) -> None:
    body = json.loads(await rest.depth("BTCUSDT", limit=6000))

    assert (len(body["bids"]), len(body["asks"])) == (5000, 5000)


@pytest.mark.parametrize("kind", ["trades", "aggTrades", "klines"])
async def test_bulk_file_matches_its_checksum_and_the_market(
    rest: AsyncBinanceRestClient, market: SyntheticMarket, kind: str
) -> None:
    folder, stem = {
        "trades": ("trades/BTCUSDT", "BTCUSDT-trades-2024-08-08"),
        "aggTrades": ("aggTrades/BTCUSDT", "BTCUSDT-aggTrades-2024-08-08"),
        "klines": ("klines/BTCUSDT/1m", "BTCUSDT-1m-2024-08-08"),
    }[kind]
    path = f"/data/spot/daily/{folder}/{stem}.zip"

    payload = await rest.get_bytes(path)
    checksum = (await rest.get_bytes(path + ".CHECKSUM")).decode()

    assert checksum == f"{hashlib.sha256(payload).hexdigest()}  {stem}.zip\n"
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        assert archive.namelist() == [f"{stem}.csv"]
        csv = archive.read(f"{stem}.csv")
    expected = {
        "trades": market.day_trades,
        "aggTrades": market.day_agg_trades,
        "klines": market.day_klines,
    }[kind]("BTCUSDT", dt.date(2024, 8, 8))
    parsed = pl.read_csv(
        csv, has_header=False, new_columns=expected.columns, schema=expected.schema
    )
    assert parsed.equals(expected)


async def test_bulk_files_exist_only_from_listing_until_yesterday(
    rest: AsyncBinanceRestClient,
) -> None:
    def trades_path(day: str) -> str:
        return f"/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-{day}.zip"

    for day in ("2024-07-31", "2024-08-09", "2024-08-20"):
        with pytest.raises(BinanceApiError) as missing:
            await rest.get_bytes(trades_path(day))
        assert missing.value.status == 404

    assert await rest.get_bytes(trades_path("2024-08-01"))


async def test_bulk_file_honours_byte_ranges(rest: AsyncBinanceRestClient) -> None:
    path = "/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-08-08.zip"
    whole = await rest.get_bytes(path)

    async with AsyncBinanceRestClient(str(rest._http.base_url)) as other:
        response = await other._http.get(path, headers={"Range": "bytes=100-199"})

    assert response.status_code == 206
    assert response.content == whole[100:200]
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v3/aggTrades", {"symbol": "NOPEUSDT"}, 400, -1121),
        ("/api/v3/aggTrades", {}, 400, -1102),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "limit": 1001}, 400, -1130),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "fromId": "x1"}, 400, -1100),
        (
            "/api/v3/aggTrades",
            {"symbol": "BTCUSDT", "startTime": 0, "endTime": 3_600_001},
            400,
            -1127,
        ),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "fromId": 1, "startTime": 0}, 400, -1128),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "7m"}, 400, -1120),
        ("/api/v3/klines", {"symbol": "BTCUSDT"}, 400, -1102),
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 0}, 400, -1130),
        ("/api/v3/exchangeInfo", {"symbols": "5"}, 400, -1100),
        ("/api/v3/exchangeInfo", {"symbols": '["NOPEUSDT"]'}, 400, -1121),
        ("/api/v3/historicalTrades", {"symbol": "BTCUSDT", "fromId": "-1"}, 400, -1100),
    ],
)
async def test_bad_parameters_get_binance_style_errors(
    rest: AsyncBinanceRestClient, path: str, params: dict, status: int, code: int
) -> None:
    with pytest.raises(BinanceApiError) as rejected:
        await rest.get_bytes(path, params)

    assert rejected.value.status == status
    assert rejected.value.code == code
    assert rejected.value.msg


async def test_live_trades_continue_the_rest_history() -> None:
    simulator = SimulatorServer(symbols=["BTCUSDT"], seed=SEED, trades_per_day=1_500_000)
    async with simulator as sim, AsyncBinanceRestClient(sim.http_url) as rest:
        before = json.loads(await rest.recent_trades("BTCUSDT", limit=1))[-1]
        streams = ["btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@bookTicker"]
        async with BinanceStreamClient(sim.ws_url, streams) as client:
            frames = await asyncio.wait_for(_first_frames(client, trades=5, depths=3), 30)
        live = [f["data"] for f in frames if f["stream"] == "btcusdt@trade"]
        depth = [f["data"] for f in frames if f["stream"] == "btcusdt@depth@100ms"]
        tickers = [f["data"] for f in frames if f["stream"] == "btcusdt@bookTicker"]
        gap = json.loads(await rest.historical_trades("BTCUSDT", from_id=before["id"], limit=1000))

    live_ids = [t["t"] for t in live]
    assert live_ids == list(range(live_ids[0], live_ids[0] + len(live)))
    assert live_ids[0] > before["id"]
    by_id = {t["id"]: t for t in gap}
    assert [t["id"] for t in gap[: live_ids[0] - before["id"] + 1]] == list(
        range(before["id"], live_ids[0] + 1)
    )
    first_live = by_id[live_ids[0]]
    assert (first_live["price"], first_live["qty"], first_live["time"]) == (
        live[0]["p"], live[0]["q"], live[0]["T"],
    )  # fmt: skip
    assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(depth))
    assert all(float(t["b"]) < float(t["a"]) for t in tickers)


async def test_a_depth_snapshot_asked_while_the_feed_loads_is_the_book_its_first_diff_continues(
    market: SyntheticMarket,
) -> None:
    # Arrange: a live feed whose tape load is held, on a clock the test moves; a depth listener
    clock_ns = [NOW_NS]
    load_held = asyncio.Event()

    async def load_tape(symbol: str, day: dt.date) -> DayTape:
        await load_held.wait()
        return market.tape(symbol, day)

    feed = SyntheticLiveFeed(["BTCUSDT"], load_tape, lambda: clock_ns[0])
    rest = RestApi(MarketHistory(market, LISTING), ["BTCUSDT"], lambda: clock_ns[0],
                   live_depth=feed.depth_snapshot)  # fmt: skip
    hub, listener = StreamHub(), Subscriber({"btcusdt@depth@100ms"}, combined=False)
    hub.add(listener)
    running = asyncio.create_task(feed.run(hub))
    await asyncio.sleep(0.01)  # the feed has read the clock and waits for its tape

    # Act: the snapshot is asked half a minute in; the tape arrives half a minute later
    clock_ns[0] += 30 * 1_000_000_000
    query = "/api/v3/depth?symbol=BTCUSDT&limit=1000"
    asked = asyncio.create_task(rest.depth(make_mocked_request("GET", query)))
    await asyncio.sleep(0.05)
    clock_ns[0] += 30 * 1_000_000_000
    load_held.set()
    snapshot = json.loads((await asyncio.wait_for(asked, 10)).body)  # type: ignore[arg-type]
    clock_ns[0] += 60 * 1_000_000_000  # and the next diffs come
    diffs = [json.loads(await asyncio.wait_for(listener.queue.get(), 10))]  # type: ignore[arg-type]
    while diffs[-1]["u"] <= snapshot["lastUpdateId"]:
        diffs.append(json.loads(await asyncio.wait_for(listener.queue.get(), 10)))  # type: ignore[arg-type]
    running.cancel()

    # Assert: the first diff past the snapshot starts right after it. A snapshot inside a
    # diff's range holds changes that diff does not undo, and a book kept from it crosses.
    assert diffs[-1]["U"] == snapshot["lastUpdateId"] + 1


async def _first_frames(client: BinanceStreamClient, trades: int, depths: int) -> list[dict]:
    frames: list[dict] = []
    async for _, payload in client:
        frames.append(json.loads(payload))
        kinds = [f["stream"] for f in frames]
        if kinds.count("btcusdt@trade") >= trades and kinds.count("btcusdt@depth@100ms") >= depths:
            return frames
    return frames


def test_thread_runner_serves_synchronous_clients() -> None:
    with (
        run_simulator_in_thread(symbols=["ETHUSDT"], trades_per_day=TRADES_PER_DAY) as sim,
        BinanceRestClient(sim.http_url) as client,
    ):
        info = json.loads(client.exchange_info())
        server_ms = json.loads(client.server_time())["serverTime"]
        recent = json.loads(client.recent_trades("ETHUSDT", limit=3))

    assert [s["symbol"] for s in info["symbols"]] == ["ETHUSDT"]
    assert server_ms > 1_700_000_000_000
    assert len(recent) == 3
