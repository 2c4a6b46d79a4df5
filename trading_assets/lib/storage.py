"""Files at a location that is a local path, a ``file://`` URI or an ``s3://`` URI: the one place
that reaches them, on ``pyarrow.fs``.

Whatever passes between assets goes through here, so it works the same whether the run workers
share a disk (locally) or not (production, where a location is an ``s3://bucket/prefix``).

A replacement is atomic for readers on both: locally a staged hidden file next to the target is
written, synced and renamed over it; on S3 the object is written in one upload (a single PUT),
which readers see whole or not at all. Names starting with ``.`` or ``_`` are hidden (staged or
bookkeeping files) and never listed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow.fs as pafs

from trading_assets.lib.settings import ObjectStore, load_settings

HIDDEN_PREFIXES = (".", "_")
S3_SCHEME = "s3"
FILE_SCHEME = "file"


def scheme_of(location: str) -> str:
    """``s3``, ``file`` or another URI scheme; ``""`` for a plain local path."""
    return urlsplit(location).scheme if "://" in location else ""


def is_local(location: str) -> bool:
    """Whether ``location`` is on this machine's disk (a path or a ``file://`` URI)."""
    return scheme_of(location) in ("", FILE_SCHEME)


def local_path(location: str) -> Path:
    """The absolute path of a local location (a path or a ``file://`` URI)."""
    scheme = scheme_of(location)
    if scheme == FILE_SCHEME:
        return Path(unquote(urlsplit(location).path))
    if scheme:
        raise ValueError(f"{location} is not a local location")
    return Path(os.path.abspath(location))


def as_uri(location: str) -> str:
    """``location`` as a URI (a local path becomes ``file://...``), for metadata and logs."""
    return local_path(location).as_uri() if scheme_of(location) == "" else location


def join(location: str, *parts: str) -> str:
    """``location`` with ``parts`` appended, ``/``-separated, in the same form (path or URI)."""
    pieces = [location.rstrip("/"), *(part.strip("/") for part in parts if part.strip("/"))]
    return "/".join(pieces)


def filesystem_for(location: str, store: ObjectStore | None = None) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path within it. S3 is reached with ``store``'s endpoint,
    region and keys (default: the settings' ``s3``), never with ambient credentials."""
    scheme = scheme_of(location)
    if scheme in ("", FILE_SCHEME):
        return pafs.LocalFileSystem(), local_path(location).as_posix()
    if scheme == S3_SCHEME:
        options = (store or load_settings().s3).pyarrow_options()
        # Delayed open lets a small object go up as one PutObject instead of a multipart upload
        # (three requests); errors then surface when the stream is closed, which every writer
        # here does before returning.
        fs = pafs.S3FileSystem(**options, allow_delayed_open=True)
        return fs, location.split("://", 1)[1].rstrip("/")
    return pafs.FileSystem.from_uri(location)


def read_bytes(location: str, store: ObjectStore | None = None) -> bytes:
    """The whole file; :class:`FileNotFoundError` when there is none."""
    if is_local(location):
        return local_path(location).read_bytes()
    fs, path = filesystem_for(location, store)
    if fs.get_file_info(path).type != pafs.FileType.File:
        raise FileNotFoundError(location)
    with fs.open_input_stream(path) as source:
        return source.read()


def write_bytes_atomic(
    location: str, data: bytes | bytearray | memoryview, store: ObjectStore | None = None
) -> str:
    """Replace the file at ``location`` with ``data`` so that a reader sees the old or the new
    contents, never part of them; returns ``location``. Parent folders are created."""
    if is_local(location):
        _write_local_atomic(local_path(location), data)
        return location
    fs, path = filesystem_for(location, store)
    # An object store shows an object only once its upload completes (one PUT; a multipart
    # upload for large data, completed at once), so writing the target directly is atomic for
    # readers, and a staged copy would only add requests.
    with fs.open_output_stream(path) as sink:
        sink.write(data)
    return location


def _write_local_atomic(path: Path, data: bytes | bytearray | memoryview) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            # Synced before the rename: after a crash the name points at whole contents.
            os.fsync(handle.fileno())
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows syncing a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def exists(location: str, store: ObjectStore | None = None) -> bool:
    """Whether a file is at ``location``."""
    if is_local(location):
        return local_path(location).is_file()
    fs, path = filesystem_for(location, store)
    return fs.get_file_info(path).type == pafs.FileType.File


def delete(location: str, store: ObjectStore | None = None) -> bool:
    """Remove the file at ``location``; whether there was one."""
    if is_local(location):
        try:
            local_path(location).unlink()
        except FileNotFoundError:
            return False
        return True
    fs, path = filesystem_for(location, store)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return False
    fs.delete_file(path)
    return True


def list_files(prefix: str, suffix: str = "", store: ObjectStore | None = None) -> list[str]:
    """Files directly under the folder ``prefix`` whose names end with ``suffix``, hidden names
    left out, sorted; each in ``prefix``'s form (path or URI). A missing folder has none."""
    fs, path = filesystem_for(prefix, store)
    selector = pafs.FileSelector(path, recursive=False, allow_not_found=True)
    names = sorted(
        info.base_name
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File
        and info.base_name.endswith(suffix)
        and not info.base_name.startswith(HIDDEN_PREFIXES)
    )
    return [join(prefix, name) for name in names]
