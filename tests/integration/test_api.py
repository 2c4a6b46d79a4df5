"""The sidecar API on a real aiohttp server (free loopback port) with real HTTP/WS clients."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streaming.api import PredictionApi, PredictionHub, Readiness
from streaming.metrics import SidecarMetrics
from streaming.predictions import Prediction, Role, decode_prediction
from trading_assets.lib.risk import RiskEngine, RiskLimits

QUEUE = 64
T0 = 1_709_251_200_000_000_000


def prediction(
    symbol: str = "BINANCE:BTCUSDT", seq: int = 0, role: Role = "champion", signal: float = 0.25
) -> Prediction:
    return Prediction(
        symbol=symbol,
        timestamp=T0 + seq * 1_000_000_000,
        signal=signal,
        confidence=abs(signal),
        risk_score=0.2,
        should_trade=signal != 0.0,
        model_version="3" if role == "champion" else "4",
        fallback_level=1,
        latency_ms=0.8,
        role=role,
    )


class ReadinessSwitch:
    """The app's readiness check, flipped by the test."""

    def __init__(self) -> None:
        self.state = Readiness(False, ("no champion model loaded",))
        self.error: Exception | None = None

    def __call__(self) -> Readiness:
        if self.error is not None:
            raise self.error
        return self.state


@pytest.fixture
def readiness() -> ReadinessSwitch:
    return ReadinessSwitch()


@pytest.fixture
async def api(readiness: ReadinessSwitch) -> AsyncIterator[PredictionApi]:
    metrics = SidecarMetrics()
    hub = PredictionHub(metrics, client_queue=QUEUE)
    async with PredictionApi(hub, metrics, readiness, close_timeout_s=0.2) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def until(condition, attempts: int = 500) -> None:
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


def sample_value(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (labels is None or sample.labels == labels):
                return sample.value
    return None


async def test_health_answers_while_the_process_runs(api, http):
    async with http.get(f"{api.url}/health") as response:
        body = await response.json()

    assert response.status == 200
    assert body["status"] == "ok" and body["uptime_s"] >= 0


async def test_ready_follows_the_apps_check(api, http, readiness):
    async with http.get(f"{api.url}/ready") as response:
        not_ready = (response.status, await response.json())
    readiness.state = Readiness(True)
    async with http.get(f"{api.url}/ready") as response:
        ready = (response.status, await response.json())
    readiness.error = RuntimeError("feature store unreachable")
    async with http.get(f"{api.url}/ready") as response:
        broken = (response.status, await response.json())

    assert not_ready == (503, {"ready": False, "reasons": ["no champion model loaded"]})
    assert ready == (200, {"ready": True, "reasons": []})
    assert broken[0] == 503 and broken[1]["ready"] is False
    assert "feature store unreachable" in broken[1]["reasons"][0]


async def test_metrics_expose_served_predictions_and_model_versions(api, http):
    api.metrics.set_model_version("champion", "3")
    api.metrics.set_model_version("canary", "4")
    api.metrics.set_model_version("canary", None)
    for seq in range(3):
        api.hub.publish(prediction("BINANCE:BTCUSDT", seq))
    api.hub.publish(prediction("BINANCE:ETHUSDT", 0, role="shadow"))

    async with http.get(f"{api.url}/metrics") as response:
        text = await response.text()

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    btc = {"symbol": "BINANCE:BTCUSDT", "role": "champion"}
    assert sample_value(text, "sidecar_predictions_total", btc) == 3
    assert (
        sample_value(text, "sidecar_predictions_total", btc | {"symbol": "BINANCE:ETHUSDT"}) is None
    )
    shadow = {"symbol": "BINANCE:ETHUSDT", "role": "shadow"}
    assert sample_value(text, "sidecar_predictions_total", shadow) == 1
    latency = {"role": "champion"}
    assert sample_value(text, "sidecar_prediction_latency_seconds_count", latency) == 3
    assert sample_value(text, "sidecar_model_version_info", {"role": "champion", "version": "3"})
    assert (
        sample_value(text, "sidecar_model_version_info", {"role": "canary", "version": "4"}) is None
    )
    assert sample_value(text, "sidecar_fallback_level", {"symbol": "BINANCE:BTCUSDT"}) == 1
    assert sample_value(text, "sidecar_ws_clients") == 0


async def test_only_the_driving_prediction_is_served_and_sets_the_decision_gauges(api, http):
    driving = prediction("BINANCE:BTCUSDT", 1)  # the champion, trading
    logged = msgspec.structs.replace(
        prediction("BINANCE:BTCUSDT", 1, role="canary"), should_trade=False, risk_score=1.0
    )  # the canary scored the same tick but did not drive it
    api.hub.publish(driving, serves=True)
    api.hub.publish(logged, serves=False)

    async with http.get(
        f"{api.url}/predictions/latest", params={"symbol": "BINANCE:BTCUSDT"}
    ) as response:
        served = decode_prediction(await response.read())
    async with http.get(f"{api.url}/metrics") as response:
        text = await response.text()

    assert served == driving
    btc = {"symbol": "BINANCE:BTCUSDT"}
    assert sample_value(text, "sidecar_trading_allowed", btc) == 1
    assert sample_value(text, "sidecar_risk_score", btc) == driving.risk_score
    canary = {"symbol": "BINANCE:BTCUSDT", "role": "canary"}
    assert sample_value(text, "sidecar_predictions_total", canary) == 1
    assert sample_value(text, "sidecar_prediction_latency_seconds_count", {"role": "canary"}) == 1


async def test_risk_state_and_transitions_are_served_on_risk_and_metrics(readiness, http):
    metrics = SidecarMetrics()
    limits = RiskLimits(max_drawdown=0.2, halt_recovery_s=None)
    engine = RiskEngine(limits, metrics.count_risk_transition)
    now = T0
    engine.assess(
        "BINANCE:BTCUSDT",
        now,
        signal=1.0,
        confidence=1.0,
        fallback_level=1,
        volatility=0.01,
        spread_bps=0,
    )
    # 22.5 % of equity lost, and 0.05 % in fees (10 bp on each side of a quarter): halt
    engine.record_return("BINANCE:BTCUSDT", now + 60 * 10**9, -0.9)
    async with PredictionApi(
        PredictionHub(metrics), metrics, readiness, close_timeout_s=0.2, risk=engine.snapshot
    ) as server:
        async with http.get(f"{server.url}/risk") as response:
            risk = await response.json()
        async with http.get(f"{server.url}/metrics") as response:
            text = await response.text()

    assert risk["state"] == "HALTED"
    assert risk["drawdown"] == pytest.approx(0.2255) and risk["equity"] == pytest.approx(0.7745)
    assert [(t["from_state"], t["to_state"]) for t in risk["transitions"]] == [("ACTIVE", "HALTED")]
    assert "drawdown" in risk["transitions"][0]["reason"]
    assert sample_value(text, "sidecar_risk_state", {"state": "HALTED"}) == 1
    assert sample_value(text, "sidecar_risk_state", {"state": "ACTIVE"}) == 0
    transition = {"from_state": "ACTIVE", "to_state": "HALTED"}
    assert sample_value(text, "sidecar_risk_transitions_total", transition) == 1


async def test_risk_is_not_found_without_a_risk_engine(api, http):
    async with http.get(f"{api.url}/risk") as response:
        assert response.status == 404


async def test_latest_holds_the_newest_served_prediction_per_symbol(api, http):
    async with http.get(f"{api.url}/predictions/latest") as response:
        empty = await response.json()
    newest_btc = prediction("BINANCE:BTCUSDT", 2, signal=-0.5)
    eth = prediction("BINANCE:ETHUSDT", 1, role="canary")
    for p in (
        prediction("BINANCE:BTCUSDT", 1),
        eth,
        newest_btc,
        prediction("BINANCE:BTCUSDT", 3, role="shadow"),
    ):
        api.hub.publish(p)

    async with http.get(f"{api.url}/predictions/latest") as response:
        latest = await response.json()
    async with http.get(
        f"{api.url}/predictions/latest", params={"symbol": "binance:ethusdt"}
    ) as response:
        one = decode_prediction(await response.read())
    async with http.get(
        f"{api.url}/predictions/latest", params={"symbol": "BINANCE:SOLUSDT"}
    ) as response:
        missing = response.status

    assert empty == {}
    assert sorted(latest) == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]
    # A shadow prediction never replaces the one being served.
    assert latest["BINANCE:BTCUSDT"]["timestamp"] == newest_btc.timestamp
    assert latest["BINANCE:BTCUSDT"]["signal"] == newest_btc.signal
    assert latest["BINANCE:ETHUSDT"]["role"] == "canary"
    assert one == eth
    assert missing == 404


async def test_stream_sends_each_new_prediction_through_the_clients_filters(api, http):
    url = f"{api.url}/predictions/stream"
    published = [
        prediction("BINANCE:BTCUSDT", 0),
        prediction("BINANCE:ETHUSDT", 0, role="shadow"),
        prediction("BINANCE:ETHUSDT", 1),
        prediction("BINANCE:BTCUSDT", 1, role="canary"),
    ]
    async with (
        http.ws_connect(url) as everything,
        http.ws_connect(
            url, params={"symbols": "binance:ethusdt", "roles": "champion,shadow"}
        ) as eth,
    ):
        await until(lambda: api.hub.client_count == 2)
        for p in published:
            api.hub.publish(p)
        served = [decode_prediction(await everything.receive_str(timeout=5)) for _ in range(3)]
        eth_only = [decode_prediction(await eth.receive_str(timeout=5)) for _ in range(2)]

    assert served == [p for p in published if p.role != "shadow"]
    assert eth_only == [p for p in published if p.symbol == "BINANCE:ETHUSDT"]
    await until(lambda: api.hub.client_count == 0)


async def test_unknown_role_filter_is_rejected(api, http):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{api.url}/predictions/stream", params={"roles": "production"})

    assert refused.value.status == 400


async def stalled_client(api: PredictionApi, query: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (api.host, api.port))
    request = (
        f"GET /predictions/stream?{query} HTTP/1.1\r\nHost: {api.host}:{api.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = await loop.sock_recv(sock, 1024)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


async def test_a_stalled_client_loses_its_oldest_messages_and_blocks_nobody(api, http):
    slow_socket = await stalled_client(api, "symbols=BINANCE:BTCUSDT")
    async with http.ws_connect(f"{api.url}/predictions/stream") as fast:
        await until(lambda: api.hub.client_count == 2)
        (slow,) = [c for c in api.hub.clients() if c.symbols == frozenset({"BINANCE:BTCUSDT"})]
        (fast_client,) = [c for c in api.hub.clients() if c is not slow]
        received: list[int] = []

        async def read_fast() -> None:
            async for message in fast:
                received.append(decode_prediction(message.data).timestamp)

        reader = asyncio.create_task(read_fast())
        seq = 0
        # Publish until the stalled client's socket buffers are full and its queue overflows.
        while slow.dropped == 0 and seq < 200_000:
            api.hub.publish(prediction("BINANCE:BTCUSDT", seq))
            seq += 1
            if seq % 8 == 0:
                await asyncio.sleep(0)
        final = prediction("BINANCE:BTCUSDT", seq)
        api.hub.publish(final)
        await until(lambda: bool(received) and received[-1] == final.timestamp)
        reader.cancel()
    slow_socket.close()

    assert slow.dropped > 0
    assert len(slow.queue) <= QUEUE
    # The fast client saw predictions in order, up to the very last one published.
    assert received == sorted(set(received))
    assert received[-1] == final.timestamp
    # Whatever the fast client missed, it missed only through its own counted drops.
    assert len(received) == seq + 1 - fast_client.dropped
    assert api.hub.dropped_total >= slow.dropped
    dropped = api.metrics.registry.get_sample_value("sidecar_ws_dropped_messages_total")
    assert dropped == api.hub.dropped_total


async def test_stopping_the_server_closes_stream_clients_with_going_away(readiness, http):
    metrics = SidecarMetrics()
    server = PredictionApi(PredictionHub(metrics), metrics, readiness, close_timeout_s=0.2)
    await server.start()
    stalled = await stalled_client(server, "")
    client = await http.ws_connect(f"{server.url}/predictions/stream")
    await until(lambda: server.hub.client_count == 2)

    await server.stop()
    message = await client.receive(timeout=5)
    stalled.close()

    assert message.type is aiohttp.WSMsgType.CLOSE
    assert message.data == aiohttp.WSCloseCode.GOING_AWAY
    assert server.hub.client_count == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        await http.get(f"{server.url}/health")


SERVED = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@pytest.fixture
async def served_api(readiness: ReadinessSwitch) -> AsyncIterator[PredictionApi]:
    """An API that knows which symbols the sidecar serves."""
    metrics = SidecarMetrics()
    hub = PredictionHub(metrics, client_queue=QUEUE)
    async with PredictionApi(
        hub, metrics, readiness, close_timeout_s=0.2, symbols=SERVED
    ) as server:
        yield server


async def error_of(response: aiohttp.ClientResponse) -> dict:
    """The error object of a JSON error answer, checked against the one documented shape."""
    assert response.content_type == "application/json"
    body = await response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"status", "code", "message"}
    assert error["status"] == response.status
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/predictions", 404, "not_found"),
        ("POST", "/health", 405, "method_not_allowed"),
        ("DELETE", "/predictions/latest", 405, "method_not_allowed"),
        ("PUT", "/nowhere", 404, "not_found"),
        ("GET", "/risk", 404, "no_risk_engine"),
        ("GET", "/predictions/stream", 400, "bad_request"),  # no WebSocket upgrade asked for
    ],
)
async def test_every_error_is_json_of_one_shape(api, http, method, path, status, code):
    async with http.request(method, f"{api.url}{path}") as response:
        error = await error_of(response)

    assert (response.status, error["code"]) == (status, code)
    if status == 405:
        assert response.headers["Allow"] == "GET,HEAD"


@pytest.mark.parametrize(
    "symbol",
    [
        "",
        " BTCUSDT",
        "BTC USDT",
        "BTCUSDT\n",
        "BTCUSDÉ",
        "₿TC",
        "straße",  # uppercases to ASCII (STRASSE), still not an ASCII symbol
        "A" * 33,
        "-BTC",
        "BTC;USDT",
        "BTC.USDT",
    ],
)
async def test_a_malformed_symbol_is_a_400(served_api, http, symbol):
    url = f"{served_api.url}/predictions/latest"
    async with http.get(url, params={"symbol": symbol}) as response:
        error = await error_of(response)

    assert (response.status, error["code"]) == (400, "bad_symbol")


async def test_a_well_formed_symbol_not_served_is_a_404_and_a_served_one_answers(served_api, http):
    served_api.hub.publish(prediction("BINANCE:BTCUSDT", 1))
    url = f"{served_api.url}/predictions/latest"
    answers = {}
    for symbol in (
        "binance:btcusdt",
        "BINANCE:ETHUSDT",
        "BINANCE:SOLUSDT",
        "A" * 32,
        "BINANCE:BTC/USDT_2-X",
    ):
        async with http.get(url, params={"symbol": symbol}) as response:
            answers[symbol] = (response.status, await response.json())
    async with http.get(f"{url}?symbol=BINANCE:BTCUSDT&symbol=BINANCE:ETHUSDT") as response:
        twice = (response.status, (await error_of(response))["code"])

    assert (
        answers["binance:btcusdt"][0] == 200
        and answers["binance:btcusdt"][1]["symbol"] == "BINANCE:BTCUSDT"
    )
    assert answers["BINANCE:ETHUSDT"][0] == 404
    assert answers["BINANCE:ETHUSDT"][1]["error"]["code"] == "no_prediction_yet"
    for unknown in ("BINANCE:SOLUSDT", "A" * 32, "BINANCE:BTC/USDT_2-X"):
        assert answers[unknown][0] == 404
        assert answers[unknown][1]["error"]["code"] == "unknown_symbol"
    assert twice == (400, "bad_symbol")


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"symbols": "BTC USDT"}, 400, "bad_symbol"),
        ({"symbols": "BTCUSDT,"}, 400, "bad_symbol"),
        ({"symbols": ""}, 400, "bad_symbol"),
        ({"symbols": "BTCUSDT,ÉTHUSDT"}, 400, "bad_symbol"),
        ({"symbols": "A" * 33}, 400, "bad_symbol"),
        ({"symbols": "BINANCE:BTCUSDT,BINANCE:SOLUSDT"}, 404, "unknown_symbol"),
        ({"roles": "production"}, 400, "bad_role"),
        ({"roles": "champion,"}, 400, "bad_role"),
        ({"roles": ""}, 400, "bad_role"),
        ({"roles": "Champion"}, 400, "bad_role"),
    ],
)
async def test_stream_filters_are_refused_before_the_upgrade_with_the_same_json(
    served_api, http, query, status, code
):
    url = f"{served_api.url}/predictions/stream"
    async with http.get(url, params=query, headers=UPGRADE) as response:
        error = await error_of(response)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, params=query)

    assert (response.status, error["code"]) == (status, code)
    assert refused.value.status == status
    assert served_api.hub.client_count == 0


async def test_stream_accepts_well_formed_filters_in_any_case(served_api, http):
    url = f"{served_api.url}/predictions/stream"
    async with http.ws_connect(url, params={"symbols": "binance:ethusdt", "roles": "canary"}) as ws:
        await until(lambda: served_api.hub.client_count == 1)
        (client,) = served_api.hub.clients()
        served_api.hub.publish(prediction("BINANCE:ETHUSDT", 1, role="canary"))
        received = decode_prediction(await ws.receive_str(timeout=5))

    assert client.symbols == frozenset({"BINANCE:ETHUSDT"}) and client.roles == frozenset(
        {"canary"}
    )
    assert received.symbol == "BINANCE:ETHUSDT" and received.role == "canary"


async def raw_exchange(api: PredictionApi, request: bytes) -> bytes:
    """Send ``request`` as is on a fresh connection; everything the server answers."""
    reader, writer = await asyncio.open_connection(api.host, api.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
    ],
)
async def test_a_malformed_request_is_one_warning_line(api, caplog, request_bytes):
    caplog.set_level(logging.DEBUG, logger="aiohttp")

    answer = await raw_exchange(api, request_bytes)

    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
    logged = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    (record,) = logged
    assert record.levelno == logging.WARNING
    assert record.exc_info is None and record.exc_text is None
    assert "\n" not in record.getMessage() and "bad request from 127.0.0.1" in record.getMessage()
    # The server keeps serving.
    assert (
        await raw_exchange(api, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    ).startswith(b"HTTP/1.1 200")


async def test_the_stream_does_not_negotiate_compression(api, http):
    # Every compressing connection holds ~300 KB of zlib state; see streaming.api.
    async with http.ws_connect(f"{api.url}/predictions/stream", compress=15) as ws:
        await until(lambda: api.hub.client_count == 1)
        api.hub.publish(prediction("BINANCE:BTCUSDT", 1))
        received = decode_prediction(await ws.receive_str(timeout=5))

    assert received.timestamp == prediction("BINANCE:BTCUSDT", 1).timestamp
    assert ws.compress == 0  # the permessage-deflate offer was declined


async def test_connect_close_cycles_leave_no_client_state_behind(api, http):
    url = f"{api.url}/predictions/stream"
    cycles, concurrency = 200, 10
    published = 0

    async def publish_until_done(done: asyncio.Event) -> None:
        nonlocal published
        while not done.is_set():
            api.hub.publish(prediction("BINANCE:BTCUSDT", published))
            published += 1
            await asyncio.sleep(0.002)

    async def polite_client(turns: int) -> None:
        for _ in range(turns):
            async with http.ws_connect(url, params={"roles": "champion,shadow"}) as ws:
                await ws.receive_str(timeout=5)

    async def vanishing_client(turns: int) -> None:
        """Upgrades, reads a little and drops the connection without a closing handshake."""
        for _ in range(turns):
            reader, writer = await asyncio.open_connection(api.host, api.port)
            head = "".join(f"{k}: {v}\r\n" for k, v in UPGRADE.items())
            writer.write(f"GET /predictions/stream HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            await reader.read(64)
            writer.transport.abort()

    done = asyncio.Event()
    publisher = asyncio.create_task(publish_until_done(done))
    turns = cycles // concurrency
    await asyncio.gather(
        *(polite_client(turns) if k % 2 else vanishing_client(turns) for k in range(concurrency))
    )
    await until(lambda: api.hub.client_count == 0)
    done.set()
    await publisher
    gc.collect()

    live = Counter(type(o).__name__ for o in gc.get_objects())
    assert published > 0
    assert api.hub.client_count == 0 and api.hub.clients() == []
    assert live["StreamClient"] == 0 and live["WebSocketResponse"] == 0
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current] == []
    assert api.metrics.registry.get_sample_value("sidecar_ws_clients") == 0
