"""Parse errors every venue raises: a frame that cannot be turned into records, kept whole."""

from __future__ import annotations

import re

import msgspec

MALFORMED_JSON = "malformed json"
MISSING_FIELD = "missing field"
INVALID_FIELD = "invalid field"
UNSUPPORTED_STREAM = "unsupported stream"

_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"missing required field `(?P<name>[^`]+)`")


class VenueParseError(ValueError):
    """A venue's message that cannot be turned into a record.

    ``kind`` is one of ``malformed json``, ``missing field``, ``invalid field`` or
    ``unsupported stream``; ``field`` is the dotted path of the offending field (``data.p``,
    ``k.t``, ``[3].price``) or None when the message as a whole is at fault; ``raw`` holds the
    bytes exactly as received so the message can be quarantined.
    """

    def __init__(self, kind: str, reason: str, raw: bytes, field: str | None = None) -> None:
        where = f" at {field}" if field else ""
        super().__init__(f"{kind}{where}: {reason}")
        self.kind = kind
        self.reason = reason
        self.raw = raw
        self.field = field


def as_bytes(raw: bytes | bytearray | memoryview | str) -> bytes:
    """The received message as bytes (websocket libraries may hand text frames over as str)."""
    return raw.encode() if isinstance(raw, str) else bytes(raw)


def join_path(prefix: str, path: str) -> str:
    """Join a parent field path and a child path such as ``.p`` or ``[0][1]``."""
    path = path.lstrip(".")
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def from_msgspec(
    exc: Exception,
    raw: bytes | str,
    prefix: str = "",
    error: type[VenueParseError] = VenueParseError,
) -> VenueParseError:
    """Translate a msgspec decode or validation error into ``error`` (a VenueParseError).

    msgspec reports the location as ``... - at `$.k.t` `` and a missing field by name only,
    so both are folded into one field path relative to ``prefix``.
    """
    message = str(exc)
    if not isinstance(exc, msgspec.ValidationError):  # DecodeError, or nesting too deep
        return error(MALFORMED_JSON, message, as_bytes(raw), prefix or None)
    location = _AT_PATH.search(message)
    path = location.group("path") if location else ""
    reason = message[: location.start()] if location else message
    missing = _MISSING.search(reason)
    if missing:
        field = join_path(join_path(prefix, path), missing.group("name"))
        return error(MISSING_FIELD, reason, as_bytes(raw), field)
    return error(INVALID_FIELD, reason, as_bytes(raw), join_path(prefix, path) or None)
