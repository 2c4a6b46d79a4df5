"""Where each market message of an instrument goes in the sidecar: its message counts, and the
live feature trackers its book tickers and trades feed (its own, then every cross group it is the
own or the reference instrument of). Built once per instrument, on its first message."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streaming.fallback import LiveFeatureTracker
from streaming.metrics import MessageCounts, SymbolMessages
from trading_assets.lib.features.cross_venue_live import LiveCrossFeatures
from trading_assets.lib.features.incremental import FeatureRow

RowsOf = Callable[[Any], list[FeatureRow]]
"""A market message in, the feature rows it completed out."""
Route = tuple[SymbolMessages, RowsOf, RowsOf]
"""An instrument's message counts, and where its book tickers and its trades go."""


def no_rows(record: object) -> list[FeatureRow]:
    """Where the records of an instrument without live features go."""
    return []


def each(handlers: Sequence[RowsOf]) -> RowsOf:
    """One handler feeding a record to each of ``handlers``: the rows they complete, in order."""
    if not handlers:
        return no_rows
    if len(handlers) == 1:
        return handlers[0]

    def handle(record: Any) -> list[FeatureRow]:
        rows: list[FeatureRow] = []
        for handler in handlers:
            rows += handler(record)
        return rows

    return handle


def route(
    instrument: str,
    messages: MessageCounts,
    trackers: Mapping[str, LiveFeatureTracker],
    cross: Mapping[str, LiveCrossFeatures],
) -> Route:
    """The route of ``instrument``'s messages (see the module)."""
    tracker = trackers.get(instrument)
    fed: list[LiveFeatureTracker | LiveCrossFeatures] = [tracker] if tracker else []
    fed += [c for c in cross.values() if instrument in (c.pair.own, c.pair.reference)]
    return (
        messages.of(instrument),
        each([f.on_book_ticker for f in fed]),
        each([f.on_trade for f in fed]),
    )
