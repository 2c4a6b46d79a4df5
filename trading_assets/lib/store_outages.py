"""Telling a store that cannot be reached from a step that is wrong.

In production every store is a server: PostgreSQL (the Iceberg catalog, Feast's registry, the
Dagster instance), S3 (the warehouse, models, Feast's exports), Redis (the online store) and the
MLflow server. Any of them may go away for a while (a restart, a failover, a network blip) and
come back. A step that failed because a store was unreachable should simply run again a little
later; a step that failed for any other reason (bad data, a failed gate, a bug) must not, since
running it again changes nothing or, worse, repeats what it already did.

:func:`outage_cause` tells the two apart by the exception and everything that led to it (its
``__cause__`` and ``__context__`` chain, where the clients' own errors hide behind the wrappers
of pyiceberg, Feast and MLflow). A connection-level error of a store client counts; so do the
generic I/O errors of clients that raise nothing more specific (pyarrow's and DuckDB's S3, which
say ``curlCode: 7`` or ``Could not establish connection``), and an MLflow server's 5xx answer.
"""

from __future__ import annotations

from collections.abc import Iterator

# Connection-level errors of the store clients, by ``module.QualifiedName`` of any class in the
# error's MRO (so no client library needs importing to be recognised).
UNREACHABLE_TYPES = frozenset(
    {
        "builtins.ConnectionError",  # refused, reset, aborted, broken pipe
        "builtins.TimeoutError",
        "psycopg2.OperationalError",  # refused, server closed the connection, admin shutdown
        "psycopg2.InterfaceError",  # connection already closed
        "sqlalchemy.exc.OperationalError",
        "sqlalchemy.exc.InterfaceError",
        "botocore.exceptions.ConnectionError",  # EndpointConnectionError, ConnectTimeoutError
        "botocore.exceptions.HTTPClientError",  # ConnectionClosedError, ReadTimeoutError
        "redis.exceptions.ConnectionError",
        "redis.exceptions.TimeoutError",
        "requests.exceptions.ConnectionError",
        "requests.exceptions.Timeout",
        "requests.exceptions.RetryError",  # a server that kept answering 5xx
        "urllib3.exceptions.MaxRetryError",
        "urllib3.exceptions.NewConnectionError",
        "urllib3.exceptions.ProtocolError",
    }
)
# Generic errors (OSError from pyarrow's S3, DuckDB's IOException) name the cause in words only.
GENERIC_TYPES = frozenset({"builtins.OSError", "_duckdb.IOException"})
UNREACHABLE_WORDS = (
    "NETWORK_CONNECTION",  # pyarrow (AWS SDK): "AWS Error NETWORK_CONNECTION during ..."
    "curlCode: 7",
    "Could not connect",
    "Could not establish connection",  # DuckDB httpfs
    "Connection refused",
    "Connection reset",
    "server closed the connection",
)
# What an unreachable-looking error says when retrying cannot help: a wrong password, a missing
# database or bucket, a forbidden operation.
LASTING_WORDS = ("authentication failed", "does not exist", "permission denied")
SERVER_ERROR_TYPES = frozenset({"mlflow.exceptions.RestException"})  # a server's own answer
MAX_CHAIN = 32


def outage_cause(error: BaseException) -> BaseException | None:
    """The error in ``error``'s chain that shows a store could not be reached (None: none)."""
    for link in _chain(error):
        if _unreachable(link):
            return link
    return None


def describe(error: BaseException) -> str:
    """One line naming an error: its class and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what caused it and what it was raised while handling, each once."""
    seen: set[int] = set()
    pending = [error]
    while pending and len(seen) < MAX_CHAIN:
        link = pending.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        pending.extend(e for e in (link.__cause__, link.__context__) if e is not None)


def _unreachable(error: BaseException) -> bool:
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__}
    text = str(error)
    if any(word in text for word in LASTING_WORDS):
        return False
    if names & UNREACHABLE_TYPES:
        return True
    if names & SERVER_ERROR_TYPES:
        return _status(error) >= 500
    return bool(names & GENERIC_TYPES) and any(word in text for word in UNREACHABLE_WORDS)


def _status(error: BaseException) -> int:
    """An MLflow server answer's HTTP status (0 when it has none)."""
    status = getattr(error, "get_http_status_code", None)
    value = status() if callable(status) else None
    return value if isinstance(value, int) else 0
