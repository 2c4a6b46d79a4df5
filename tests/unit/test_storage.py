"""Files at a location (local path, file:// URI, s3:// URI): round trips, listings and atomic
replacement on a real local disk; S3 is exercised against a real server in
tests/integration/test_models_s3.py."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from trading_assets.lib import storage
from trading_assets.lib.settings import ObjectStore

PAYLOAD_BYTES = 4 * 1024 * 1024
REPLACEMENTS = 40


def test_written_bytes_read_back_exist_and_are_listed(tmp_path):
    # Arrange
    folder = str(tmp_path / "models")
    model = storage.join(folder, "full_model.json")
    onnx = storage.join(folder, "model.onnx")

    # Act
    storage.write_bytes_atomic(model, b'{"kind": "full"}')
    storage.write_bytes_atomic(onnx, b"\x08\x07onnx")

    # Assert
    assert storage.read_bytes(model) == b'{"kind": "full"}'
    assert storage.exists(model) and storage.exists(onnx)
    assert not storage.exists(storage.join(folder, "incremental_model.json"))
    assert storage.list_files(folder) == [model, onnx]
    assert storage.list_files(folder, ".json") == [model]


def test_listing_leaves_out_hidden_names_folders_and_missing_folders(tmp_path):
    # Arrange: a staged file, a bookkeeping file and a subfolder beside one real file
    folder = tmp_path / "offline"
    folder.mkdir()
    (folder / ".2024-03-01_BTCUSDT.parquet.abc.tmp").write_bytes(b"staged")
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / "nested.parquet").mkdir()
    (folder / "2024-03-01_BTCUSDT.parquet").write_bytes(b"data")

    # Act
    listed = storage.list_files(str(folder), ".parquet")
    missing = storage.list_files(str(tmp_path / "never_written"), ".parquet")

    # Assert
    assert listed == [str(folder / "2024-03-01_BTCUSDT.parquet")]
    assert missing == []


def test_file_uris_are_the_local_disk_and_keep_their_form(tmp_path):
    # Arrange
    folder = (tmp_path / "models").as_uri()
    location = storage.join(folder, "model.onnx")

    # Act
    storage.write_bytes_atomic(location, b"onnx bytes")

    # Assert
    assert location.startswith("file:///")
    assert (tmp_path / "models" / "model.onnx").read_bytes() == b"onnx bytes"
    assert storage.list_files(folder) == [location]
    assert storage.as_uri(str(tmp_path / "models" / "model.onnx")) == location
    assert storage.as_uri("s3://bucket/models/model.onnx") == "s3://bucket/models/model.onnx"


def test_reading_or_deleting_a_missing_file(tmp_path):
    location = str(tmp_path / "absent.json")

    with pytest.raises(FileNotFoundError):
        storage.read_bytes(location)
    assert storage.delete(location) is False


def test_delete_removes_the_file(tmp_path):
    location = storage.write_bytes_atomic(str(tmp_path / "a" / "b.parquet"), b"x")

    assert storage.delete(location) is True
    assert not storage.exists(location)


def test_a_replacement_is_never_seen_half_written(tmp_path):
    # Arrange: each version is one repeated byte, so any mix of two versions or a truncated
    # file shows up as a read that is not PAYLOAD_BYTES copies of one byte
    location = str(tmp_path / "models" / "incremental_model.json")
    storage.write_bytes_atomic(location, bytes([0]) * PAYLOAD_BYTES)
    done = threading.Event()
    torn: list[tuple[int, int]] = []
    reads = 0

    def read_while_replaced() -> None:
        nonlocal reads
        while not done.is_set():
            data = storage.read_bytes(location)
            reads += 1
            if len(data) != PAYLOAD_BYTES or data.count(data[:1]) != PAYLOAD_BYTES:
                torn.append((len(data), len(set(data))))

    reader = threading.Thread(target=read_while_replaced)

    # Act
    reader.start()
    try:
        for version in range(1, REPLACEMENTS + 1):
            storage.write_bytes_atomic(location, bytes([version]) * PAYLOAD_BYTES)
    finally:
        done.set()
        reader.join()

    # Assert
    assert reads > 0
    assert torn == []
    assert storage.read_bytes(location) == bytes([REPLACEMENTS]) * PAYLOAD_BYTES
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["incremental_model.json"]


def test_a_failed_replacement_keeps_the_old_file_and_leaves_no_staged_file(tmp_path):
    # Arrange
    location = storage.write_bytes_atomic(str(tmp_path / "model.onnx"), b"previous model")

    # Act: text is not bytes, so the write fails after the staged file was created
    with pytest.raises(TypeError):
        storage.write_bytes_atomic(location, "not bytes")  # type: ignore[arg-type]

    # Assert
    assert storage.read_bytes(location) == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_s3_locations_are_reached_with_the_given_store_not_ambient_credentials():
    # Arrange
    store = ObjectStore(
        endpoint_url="http://127.0.0.1:8333",
        region="eu-west-1",
        access_key_id="key",
        secret_access_key="secret",
    )

    # Act
    fs, path = storage.filesystem_for("s3://models-bucket/signal/full_model.json", store)

    # Assert
    assert isinstance(fs, pafs.S3FileSystem)
    assert path == "models-bucket/signal/full_model.json"
    assert fs.region == "eu-west-1"
    assert not storage.is_local("s3://models-bucket/signal")
    assert storage.join("s3://models-bucket/signal/", "model.onnx") == (
        "s3://models-bucket/signal/model.onnx"
    )


def test_local_paths_resolve_to_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    fs, path = storage.filesystem_for("models/full_model.json")

    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == (tmp_path / "models" / "full_model.json").as_posix()
    assert storage.local_path("models") == Path(tmp_path / "models")
