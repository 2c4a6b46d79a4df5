"""Typed errors of the Binance protocol layer (the kinds and helpers are every venue's)."""

from __future__ import annotations

from typing import cast

from streaming.venues.errors import (
    INVALID_FIELD,
    MALFORMED_JSON,
    MISSING_FIELD,
    UNSUPPORTED_STREAM,
    VenueParseError,
    as_bytes,
    join_path,
)
from streaming.venues.errors import from_msgspec as _from_msgspec


class BinanceParseError(VenueParseError):
    """A Binance message that cannot be turned into a record (see VenueParseError)."""


def from_msgspec(exc: Exception, raw: bytes | str, prefix: str = "") -> BinanceParseError:
    """A msgspec decode or validation error as a BinanceParseError naming the field."""
    return cast(BinanceParseError, _from_msgspec(exc, raw, prefix, BinanceParseError))


__all__ = [
    "INVALID_FIELD",
    "MALFORMED_JSON",
    "MISSING_FIELD",
    "UNSUPPORTED_STREAM",
    "BinanceParseError",
    "as_bytes",
    "from_msgspec",
    "join_path",
]
