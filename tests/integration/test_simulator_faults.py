"""Injected faults observably happen, and the REST client's retries ride out 429s and 5xx."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets

from streaming.recordings import read_recording
from streaming.simulator.server import SimulatorServer, run_simulator_in_thread
from streaming.venues.binance.client import (
    AsyncBinanceRestClient,
    BinanceRestClient,
    BinanceStreamClient,
    BinanceUnavailableError,
    RetryPolicy,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def session(shared_data: Path) -> list[Path]:
    return [shared_data / "binance" / "ws" / "cryptofeed_binance_20210404.txt.gz"]


def recorded(paths: list[Path]) -> list[bytes]:
    return [f.payload for p in paths for f in read_recording(p) if not f.is_rest]


def streams_of(frames: list[bytes]) -> list[str]:
    return sorted({json.loads(f)["stream"] for f in frames})


async def replay_with_faults(paths: list[Path], **faults: float) -> list[bytes]:
    frames = recorded(paths)
    async with SimulatorServer(replay=paths, speed=0, close_when_replay_done=True) as sim:
        sim.set_faults(**faults)
        async with BinanceStreamClient(sim.ws_url, streams_of(frames)) as client:

            async def read_all() -> list[bytes]:
                return [payload async for _, payload in client]

            return await asyncio.wait_for(read_all(), 30)


def every_kth(k: int, change: Callable[[bytes], list[bytes]]) -> Callable[[list[bytes]], list]:
    def apply(frames: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for ordinal, frame in enumerate(frames, start=1):
            out += change(frame) if ordinal % k == 0 else [frame]
        return out

    return apply


def swap_every_kth_with_next(k: int) -> Callable[[list[bytes]], list[bytes]]:
    def apply(frames: list[bytes]) -> list[bytes]:
        out = list(frames)
        for index in range(k - 1, len(out) - 1, k):
            out[index], out[index + 1] = out[index + 1], out[index]
        return out

    return apply


@pytest.mark.parametrize(
    ("faults", "transform"),
    [
        ({"duplicate_every": 3}, every_kth(3, lambda f: [f, f])),
        ({"truncated_every": 5}, every_kth(5, lambda f: [f[: len(f) // 2]])),
        ({"malformed_every": 4}, every_kth(4, lambda f: [b"<<malformed>> " + f])),
        ({"reorder_every": 4}, swap_every_kth_with_next(4)),
    ],
    ids=["duplicate", "truncated", "malformed", "reorder"],
)
async def test_message_faults_alter_the_stream_exactly_as_planned(
    session: list[Path], faults: dict, transform: Callable[[list[bytes]], list[bytes]]
) -> None:
    expected = transform(recorded(session))

    received = await replay_with_faults(session, **faults)

    assert received == expected
    assert received != recorded(session)


async def test_malformed_and_truncated_frames_are_not_valid_json(session: list[Path]) -> None:
    received = await replay_with_faults(session, malformed_every=7, truncated_every=5)

    broken = []
    for frame in received:
        try:
            json.loads(frame)
        except ValueError:
            broken.append(frame)

    assert len(broken) == len(received) // 7 + len(received) // 5 - len(received) // 35


async def test_drop_closes_the_connection_abruptly_after_n_messages(session: list[Path]) -> None:
    frames = recorded(session)
    received: list[bytes] = []

    async with SimulatorServer(replay=session, speed=0) as sim:
        sim.set_faults(drop_after_messages=25)
        async with BinanceStreamClient(sim.ws_url, streams_of(frames)) as client:
            with pytest.raises(websockets.ConnectionClosedError):
                async with asyncio.timeout(30):
                    async for _, payload in client:
                        received.append(payload)
        applied = sim.faults.applied["dropped"]

    assert received == frames[:25]
    assert applied == 1


async def test_stall_pauses_sending_without_closing(session: list[Path]) -> None:
    frames = recorded(session)
    simulator = SimulatorServer(replay=session, speed=0, close_when_replay_done=True)

    async with simulator as sim:
        sim.set_faults(stall_after_messages=3, stall_seconds=3.0)
        async with BinanceStreamClient(sim.ws_url, streams_of(frames)) as client:
            stream = aiter(client)
            first = [(await anext(stream))[1] for _ in range(3)]
            fourth = asyncio.ensure_future(anext(stream))
            done_during_stall, _ = await asyncio.wait({fourth}, timeout=0.5)
            _, after_stall = await asyncio.wait_for(fourth, 10)
            rest = await asyncio.wait_for(_drain(stream), 30)
        applied = sim.faults.applied["stalled"]

    assert first == frames[:3]
    assert not done_during_stall
    assert [after_stall, *rest] == frames[3:]
    assert applied == 1


async def _drain(stream) -> list[bytes]:
    return [payload async for _, payload in stream]


async def test_rest_client_retries_through_429_and_5xx() -> None:
    async with SimulatorServer(symbols=["BTCUSDT"], live=False, trades_per_day=20_000) as sim:
        sim.set_faults(http_429_next=2, retry_after_seconds=0, http_5xx_next=1)
        async with AsyncBinanceRestClient(sim.http_url, retry=FAST_RETRY) as client:
            body = await client.server_time()
        applied = dict(sim.faults.applied)

    assert "serverTime" in json.loads(body)
    assert applied == {"http_429": 2, "http_5xx": 1}


async def test_rest_client_gives_up_after_bounded_attempts() -> None:
    async with SimulatorServer(symbols=["BTCUSDT"], live=False, trades_per_day=20_000) as sim:
        sim.set_faults(http_5xx_next=10, http_5xx_status=502)
        async with AsyncBinanceRestClient(sim.http_url, retry=FAST_RETRY) as client:
            with pytest.raises(BinanceUnavailableError):
                await client.ping()
        remaining = sim.faults.plan.http_5xx_next

    assert remaining == 10 - FAST_RETRY.max_attempts


async def test_rest_client_gives_up_rather_than_retry_before_a_long_retry_after() -> None:
    async with SimulatorServer(symbols=["BTCUSDT"], live=False) as sim:
        sim.set_faults(http_429_next=3, retry_after_seconds=120)
        async with AsyncBinanceRestClient(sim.http_url, retry=FAST_RETRY) as client:
            with pytest.raises(BinanceUnavailableError, match="Retry-After"):
                await asyncio.wait_for(client.ping(), 5)
        applied = dict(sim.faults.applied)

    assert applied == {"http_429": 1}


def test_sync_rest_client_retries_like_the_async_one() -> None:
    with run_simulator_in_thread(symbols=["BTCUSDT"], live=False) as sim:
        sim.set_faults(http_429_next=1, retry_after_seconds=0, http_5xx_next=2)
        with BinanceRestClient(sim.http_url, retry=FAST_RETRY) as client:
            pong = client.ping()
            sim.set_faults(http_5xx_next=FAST_RETRY.max_attempts)
            with pytest.raises(BinanceUnavailableError, match="gave up"):
                client.ping()

    assert pong == b"{}"


def test_retry_policy_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


async def test_429_carries_retry_after_and_a_binance_error_body() -> None:
    async with SimulatorServer(symbols=["BTCUSDT"], live=False) as sim:
        sim.set_faults(http_429_next=1, retry_after_seconds=7)
        async with httpx.AsyncClient(base_url=sim.http_url) as http:
            limited = await http.get("/api/v3/ping")
            after = await http.get("/api/v3/ping")

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert limited.json()["code"] == -1003
    assert after.status_code == 200


def test_faults_are_controlled_over_http_from_a_synchronous_caller() -> None:
    with run_simulator_in_thread(symbols=["BTCUSDT"], live=False) as sim:
        with httpx.Client(base_url=sim.http_url) as http:
            posted = http.post("/_sim/faults", json={"http_5xx_next": 1, "drop_after_messages": 9})
            current = http.get("/_sim/faults").json()
            failed = http.get("/api/v3/ping")
            rejected = http.post("/_sim/faults", json={"explode": True})
            cleared = http.delete("/_sim/faults").json()
        with BinanceRestClient(sim.http_url, retry=FAST_RETRY) as client:
            pong = client.ping()

    assert posted.status_code == 200
    assert current["plan"]["drop_after_messages"] == 9
    assert failed.status_code == 503
    assert rejected.status_code == 400
    assert cleared["plan"]["drop_after_messages"] is None
    assert pong == b"{}"


async def test_live_subscription_requests_are_answered_and_bad_ones_rejected() -> None:
    requests = [
        {"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 1},
        {"method": "SUBSCRIBE", "params": "btcusdt@aggTrade", "id": 2},
        {"method": "SUBSCRIBE", "params": [["nested"]], "id": 3},
        {"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 4},
        {"method": "LIST_SUBSCRIPTIONS", "id": 5},
    ]
    answers = []
    async with (
        SimulatorServer(symbols=["BTCUSDT"], live=False) as sim,
        BinanceStreamClient(sim.ws_url, ["btcusdt@trade"]) as client,
    ):
        stream = aiter(client)
        for request in requests:
            await client.send_json(request)
            answers.append(json.loads((await asyncio.wait_for(anext(stream), 5))[1]))

    invalid = {"error": {"code": 2, "msg": "Invalid request"}}
    assert answers == [
        {"result": None, "id": 1},
        invalid,
        invalid,
        {"result": None, "id": 4},
        {"result": ["ethusdt@trade"], "id": 5},
    ]


async def test_server_that_cannot_bind_releases_what_it_set_up() -> None:
    async with SimulatorServer(symbols=["BTCUSDT"], live=False) as first:
        taken = SimulatorServer(symbols=["BTCUSDT"], live=False, port=first.port)
        with pytest.raises(OSError):
            async with taken:
                pass
        pong = await asyncio.to_thread(httpx.get, first.http_url + "/api/v3/ping")

    assert taken._runner is None
    assert pong.status_code == 200


def test_thread_runner_reports_a_failed_start_and_ends_its_thread() -> None:
    with run_simulator_in_thread(symbols=["BTCUSDT"], live=False) as first:
        port = int(first.http_url.rsplit(":", 1)[1])
        with (
            pytest.raises(RuntimeError, match="failed to start") as failed,
            run_simulator_in_thread(symbols=["BTCUSDT"], live=False, port=port),
        ):
            pass

    assert isinstance(failed.value.__cause__, OSError)
    assert not any(t.name == "exchange-simulator" and t.is_alive() for t in threading.enumerate())
