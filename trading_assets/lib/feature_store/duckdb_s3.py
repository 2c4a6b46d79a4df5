"""DuckDB's way to the project's S3, for Feast's offline store reading ``s3://`` exports.

Feast's DuckDB offline store reads a file source with ``ibis.read_parquet``, on Ibis' default
DuckDB connection, which loads DuckDB's httpfs extension for an ``s3://`` path. Left alone it
would fail twice here:

- DuckDB downloads httpfs at first use, which a machine without internet access (or a locked-down
  image) cannot do. The ``duckdb-extension-httpfs`` wheel, pinned to DuckDB's own version, ships
  the extension file; it is installed from there into DuckDB's extension directory
  (``INSTALL '<file>'``), after which every connection of every process loads it locally.
- DuckDB would not know the endpoint (SeaweedFS, MinIO or AWS), the addressing style or the keys.
  They become a DuckDB secret on the default connection. Feast passes credentials only for a
  source with a ``connection_ref``, as ``storage_options`` that DuckDB's ``read_parquet`` rejects,
  and the registry (which every reader sees) is no place for keys anyway. The secret lives in
  memory only (DuckDB's default), and its values are bound parameters, never SQL text: no key
  reaches a file, a log or an error message.

:func:`configure_default_connection` does both once per process (again only if the default
connection or the object store changes); opening a store calls it when the offline root is on S3.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from trading_assets.lib.settings import ObjectStore

HTTPFS = "httpfs"
SECRET_NAME = "trading_s3"

_lock = threading.Lock()
_configured: tuple[Any, ObjectStore] | None = None
"""The connection configured last and the store it was given (the connection is held, so its
identity is never reused by another)."""


def httpfs_extension_file() -> Path:
    """The httpfs extension shipped by the ``duckdb-extension-httpfs`` wheel for this DuckDB."""
    import duckdb
    import duckdb_extension_httpfs

    version = duckdb.__version__
    package = Path(duckdb_extension_httpfs.__file__).parent
    path = package / "extensions" / f"v{version}" / f"{HTTPFS}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(
            f"duckdb-extension-httpfs ships no extension for DuckDB {version} "
            "(pin both packages to the same version)"
        )
    return path


def install_httpfs(connection: DuckDBPyConnection) -> None:
    """Install httpfs from the wheel unless DuckDB already has it, then load it."""
    row = connection.execute(
        "SELECT installed, loaded FROM duckdb_extensions() WHERE extension_name = ?", [HTTPFS]
    ).fetchone()
    installed, loaded = row if row is not None else (False, False)
    if not installed:
        connection.execute(f"INSTALL '{httpfs_extension_file()}'")
    if not loaded:
        connection.execute(f"LOAD {HTTPFS}")


def secret_statement(store: ObjectStore) -> tuple[str, list[Any]]:
    """``CREATE OR REPLACE SECRET`` for ``store`` and its parameters (values are never inlined).

    A custom endpoint (anything but AWS itself) is addressed path-style, since a bucket name cannot
    prefix an IP address or ``localhost``; TLS follows the endpoint's scheme."""
    options: list[tuple[str, Any]] = [("REGION", store.region)]
    if store.endpoint_url:
        parts = urlsplit(store.endpoint_url)
        options += [
            ("ENDPOINT", parts.netloc),
            ("URL_STYLE", "path"),
            ("USE_SSL", parts.scheme == "https"),
        ]
    if store.access_key_id and store.secret_access_key:
        options += [("KEY_ID", store.access_key_id), ("SECRET", store.secret_access_key)]
    placeholders = "".join(f", {name} ${i}" for i, (name, _) in enumerate(options, 1))
    return (
        f"CREATE OR REPLACE SECRET {SECRET_NAME} (TYPE s3{placeholders})",
        [value for _, value in options],
    )


def configure_connection(connection: DuckDBPyConnection, store: ObjectStore) -> None:
    """Give ``connection`` httpfs and ``store``'s endpoint and credentials."""
    install_httpfs(connection)
    statement, parameters = secret_statement(store)
    connection.execute(statement, parameters)


def configure_default_connection(store: ObjectStore) -> None:
    """Configure Ibis' default DuckDB connection (the one Feast's offline store reads with) for
    ``store``: once per process, unless the connection or the store changed since."""
    global _configured
    import ibis

    backend = ibis.get_backend()
    if backend.name != "duckdb":
        raise RuntimeError(
            f"Ibis' default backend is {backend.name}; Feast's offline store reads with DuckDB"
        )
    connection = backend.con  # type: ignore[attr-defined]  # DuckDB's backend holds it
    with _lock:
        if _configured is not None and _configured[0] is connection and _configured[1] == store:
            return
        configure_connection(connection, store)
        _configured = (connection, store)
