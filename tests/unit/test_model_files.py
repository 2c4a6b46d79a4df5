"""The model mirror's files: manifests round-trip, rewrites are visible to a stat, checksums
guard the ONNX files, and pruning keeps only what a manifest still names."""

from __future__ import annotations

import os

import pytest

from streaming.model_files import (
    Manifest,
    MirrorEntry,
    manifest_signature,
    mirror_model,
    prune,
    read_manifest,
    read_model,
    write_manifest,
)


def test_a_manifest_round_trips_and_each_rewrite_changes_its_signature(tmp_path):
    entry = mirror_model(tmp_path, "3", b"onnx-3", ["a", "b"], {"label_std": 0.002})
    manifest = Manifest("signal", {"champion": entry, "canary": MirrorEntry("4", error="boom")})
    assert read_manifest(tmp_path) is None and manifest_signature(tmp_path) is None

    write_manifest(tmp_path, manifest)
    first = manifest_signature(tmp_path)
    write_manifest(tmp_path, manifest)

    assert read_manifest(tmp_path) == manifest
    assert manifest_signature(tmp_path) not in (None, first)
    loaded = read_model(tmp_path, entry)
    assert (loaded.version, loaded.onnx_bytes, loaded.feature_names) == ("3", b"onnx-3", ["a", "b"])
    assert loaded.metadata == {"label_std": 0.002}


def test_reading_a_damaged_or_unfetched_version_fails(tmp_path):
    entry = mirror_model(tmp_path, "3", b"onnx-3", ["a"], {})
    (tmp_path / "v3.onnx").write_bytes(b"onnx-X")

    with pytest.raises(ValueError, match="checksum"):
        read_model(tmp_path, entry)
    with pytest.raises(ValueError, match="boom"):
        read_model(tmp_path, MirrorEntry("4", error="boom"))


def test_prune_keeps_named_files_and_recent_temporary_ones(tmp_path):
    for version in ("1", "2", "3"):
        mirror_model(tmp_path, version, f"onnx-{version}".encode(), ["a"], {})
    stale, fresh = tmp_path / ".tmp-stale", tmp_path / ".tmp-fresh"
    stale.write_bytes(b"")
    fresh.write_bytes(b"")
    os.utime(stale, (0, 0))

    prune(tmp_path, keep={"v2.onnx", "v3.onnx"})

    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-fresh", "v2.onnx", "v3.onnx"]
