"""The recording reader keeps every frame, byte for byte, with exact receive times."""

from __future__ import annotations

import gzip
import itertools
import json

import pytest

from streaming.recordings import (
    RecordingError,
    read_recording,
    recording_exchange,
    seconds_to_ns,
)
from streaming.simulator.__main__ import main as simulator_main


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1617566591.326123", 1_617_566_591_326_123_000), ("1.5", 1_500_000_000), ("7", 7 * 10**9)],
)
def test_seconds_to_ns_is_exact(text, expected):
    assert seconds_to_ns(text) == expected


def test_hftbacktest_layout_keeps_payload_bytes_and_times(shared_data):
    path = shared_data / "binance/ws/btcusdt_20240808.txt.gz"
    with gzip.open(path, "rb") as handle:
        lines = [line.rstrip(b"\n") for line in handle if line.strip()]

    frames = list(read_recording(path))

    assert len(frames) == len(lines)
    for line, frame in zip(lines, frames, strict=True):
        stamp, payload = line.split(b" ", 1)
        assert frame.receive_ns == int(stamp)
        assert frame.payload == payload
    rest = [frame for frame in frames if frame.is_rest]
    assert [frame.source for frame in rest] == ["/api/v3/depth"]


def test_cryptofeed_layout_separates_rest_from_stream_frames(shared_data):
    path = shared_data / "binance/ws/cryptofeed_binance_20210404.txt.gz"
    with gzip.open(path, "rb") as handle:
        lines = [line for line in handle if line.strip()]
    connect_markers = sum(b" <-> " in line for line in lines)

    frames = list(read_recording(path))

    assert len(frames) == len(lines) - connect_markers
    rest = [frame for frame in frames if frame.is_rest]
    assert {frame.source.split("symbol=")[1].split("&")[0] for frame in rest} == {
        "BTCUSDT",
        "ETHUSDT",
        "DOTUSDT",
    }
    assert all(frame.payload.startswith(b'{"lastUpdateId"') for frame in rest)
    assert all(frame.payload.startswith(b'{"stream"') for frame in frames if not frame.is_rest)


# -- captures in every common format, stamps in every unit ---------------------------------------

venues = pytest.mark.venues
CAPTURES = {
    "COINBASE": "coinbase/cryptofeed_coinbase_20260809.jsonl.gz",
    "KRAKEN": "kraken/cryptofeed_kraken_20210417.jsonl.gz",
}


def _write_gz(path, lines: list[bytes]):
    with gzip.open(path, "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")
    return path


def _project_lines(shared_data, count: int = 300) -> list[tuple[int, bytes]]:
    """The first lines of a real session in the project's format: (receive ns, payload)."""
    with gzip.open(shared_data / "binance/ws/btcusdt_20240808.txt.gz", "rb") as handle:
        pairs = [line.rstrip(b"\n").split(b" ", 1) for line in itertools.islice(handle, count)]
    return [(int(stamp), payload) for stamp, payload in pairs]


@venues
@pytest.mark.parametrize("exchange", sorted(CAPTURES))
def test_jsonl_captures_give_every_received_frame_and_rest_answer_byte_for_byte(
    shared_data, exchange
):
    path = shared_data / CAPTURES[exchange]
    with gzip.open(path, "rt") as handle:
        entries = [json.loads(line, parse_float=str) for line in handle if line.strip()]
    kept = [e for e in entries if e["t"] in ("recv", "http")]

    frames = list(read_recording(path))

    assert recording_exchange(path) == exchange
    assert len(frames) == len(kept) and len(frames) > 100
    for entry, frame in zip(kept, frames, strict=True):
        assert frame.payload == entry["data"].encode()
        assert frame.receive_ns == seconds_to_ns(entry["ts"])
        assert frame.is_rest == (entry["t"] == "http")


@venues
@pytest.mark.parametrize(("unit", "per_unit"), [("s", 10**9), ("ms", 10**6), ("µs", 10**3)])
def test_a_recording_in_any_unit_reads_to_the_same_nanoseconds(
    shared_data, tmp_path, unit, per_unit
):
    """Stamps in s (with a fraction), ms or µs give the ns of the same instants: a µs file was
    read as ns, and replayed 1000× too fast."""
    pairs = _project_lines(shared_data)

    def stamp(ns: int) -> bytes:
        if unit == "s":
            return f"{ns // 10**9}.{ns % 10**9 // 1000:06d}".encode()  # µs digits, as captures do
        return str(ns // per_unit).encode()

    path = _write_gz(tmp_path / f"in_{unit}.txt.gz", [stamp(ns) + b" " + p for ns, p in pairs])
    frames = list(read_recording(path))

    precision = 1000 if unit == "s" else per_unit
    assert [f.receive_ns for f in frames] == [ns // precision * precision for ns, _ in pairs]
    assert [f.payload for f in frames] == [p for _, p in pairs]


@venues
def test_a_file_whose_stamps_change_unit_is_refused_naming_the_line(shared_data, tmp_path):
    (ns0, p0), (ns1, p1) = _project_lines(shared_data, 2)
    path = _write_gz(
        tmp_path / "mixed.txt.gz", [b"%d %s" % (ns0, p0), b"%d %s" % (ns1 // 1000, p1)]
    )

    with pytest.raises(RecordingError, match=r"mixed\.txt\.gz:2: .* in µs, but the file's first"):
        list(read_recording(path))


@venues
@pytest.mark.parametrize("stamp", [b"12345", b"0.5", b"99999999999999999999"])
def test_a_stamp_no_unit_dates_is_refused_as_ambiguous(tmp_path, stamp):
    path = tmp_path / "relative.txt"  # plain text, its first line blank
    path.write_bytes(b"\n" + stamp + b' {"stream":"x","data":{}}\n')

    with pytest.raises(RecordingError, match=r"relative\.txt:2: cannot tell the unit"):
        list(read_recording(path))


@venues
def test_a_cryptofeed_capture_with_a_configuration_header_reads_as_without_it(
    shared_data, tmp_path
):
    with gzip.open(shared_data / "binance/ws/cryptofeed_binance_20210404.txt.gz", "rb") as handle:
        lines = [line.rstrip(b"\n") for line in handle]
    header = b'configuration: {"exchanges": {"BINANCE": {"l2_book": ["BTC-USDT"]}}}'
    plain = _write_gz(tmp_path / "plain.txt.gz", lines)
    headed = _write_gz(tmp_path / "headed.txt.gz", [header, *lines])

    assert list(read_recording(headed)) == list(read_recording(plain))
    assert recording_exchange(headed) is None


@venues
def test_the_simulator_refuses_another_exchanges_capture_in_one_line(shared_data, capsys):
    path = shared_data / CAPTURES["COINBASE"]

    with pytest.raises(SystemExit) as stopped:
        simulator_main(["--replay", str(path), "--port", "0", "--symbols", "BTCUSDT"])

    assert f"{path} is a capture of COINBASE" in str(stopped.value.code)
    assert str(stopped.value.code).startswith("trading-sim: ")
