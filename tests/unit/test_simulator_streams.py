"""The simulator's stream side: the hub's fan-out, back-pressure and closing never wedge the
publisher, and recorded frames are split without re-encoding."""

from __future__ import annotations

import asyncio

import pytest

from streaming.simulator.binance.replay import split_envelope
from streaming.simulator.binance.streams import StreamHub, Subscriber, envelope


async def test_publish_sends_raw_or_enveloped_data_to_subscribers_of_the_stream() -> None:
    # Arrange
    hub = StreamHub()
    raw, combined, other = (
        Subscriber({"btcusdt@trade"}, combined=False),
        Subscriber({"btcusdt@trade"}, combined=True),
        Subscriber({"ethusdt@trade"}, combined=True),
    )
    for subscriber in (raw, combined, other):
        hub.add(subscriber)

    # Act
    await hub.publish("btcusdt@trade", b'{"e":"trade"}')

    # Assert
    assert raw.queue.get_nowait() == b'{"e":"trade"}'
    assert combined.queue.get_nowait() == envelope("btcusdt@trade", b'{"e":"trade"}')
    assert combined.queue.empty()
    assert other.queue.empty()


async def test_removing_a_full_subscriber_releases_a_blocked_publisher() -> None:
    # Arrange: a reader that stopped reading, its queue full, the publisher waiting on it.
    hub = StreamHub()
    stuck = Subscriber({"s"}, combined=False, queue=asyncio.Queue(2))
    hub.add(stuck)
    await hub.publish("s", b"1")
    await hub.publish("s", b"2")
    blocked = asyncio.ensure_future(hub.publish("s", b"3"))
    await asyncio.sleep(0.01)
    assert not blocked.done()

    # Act: the connection goes away.
    hub.remove(stuck)
    await asyncio.wait_for(blocked, 1)
    await asyncio.wait_for(hub.publish("s", b"4"), 1)

    # Assert
    assert hub.subscriber_count == 0


async def test_close_reaches_a_subscriber_whose_queue_is_full() -> None:
    # Arrange
    hub = StreamHub()
    subscriber = Subscriber({"s"}, combined=False, queue=asyncio.Queue(1))
    hub.add(subscriber)
    await hub.publish("s", b"last frame")

    # Act
    closing = asyncio.ensure_future(hub.close_all())
    first = await asyncio.wait_for(subscriber.queue.get(), 1)
    await asyncio.wait_for(closing, 1)
    second = subscriber.queue.get_nowait()

    # Assert
    assert (first, second) == (b"last frame", None)


async def test_wait_for_subscribers_returns_when_enough_have_connected() -> None:
    # Arrange
    hub = StreamHub()
    waiting = asyncio.ensure_future(hub.wait_for_subscribers(2))

    # Act
    hub.add(Subscriber({"s"}, combined=False))
    await asyncio.sleep(0.01)
    after_one = waiting.done()
    hub.add(Subscriber({"s"}, combined=False))
    await asyncio.wait_for(waiting, 1)

    # Assert
    assert not after_one
    assert hub.connections_total == 2


def test_split_envelope_slices_the_recorded_bytes() -> None:
    # Arrange
    payload = b'{"stream":"btcusdt@trade","data":{"e":"trade","p":"1.0"}}'

    # Act
    frame = split_envelope(payload)

    # Assert
    assert frame is not None
    assert (frame.stream, frame.data, frame.envelope) == (
        "btcusdt@trade", b'{"e":"trade","p":"1.0"}', payload,
    )  # fmt: skip


@pytest.mark.parametrize(
    "payload",
    [b'{"stream":"btcusdt@tra', b'{"stream":"btcusdt@trade","da', b'{"e":"trade"}', b""],
)
def test_split_envelope_skips_what_is_not_a_whole_envelope(payload: bytes) -> None:
    # Act
    frame = split_envelope(payload)

    # Assert
    assert frame is None
