"""Per-symbol trade sequencing: trade ids handed on exactly once, contiguous and in order.

The stream may repeat, reorder or lose trades (a frame dead-lettered, a connection dropped);
REST fills what was lost. Both sources offer trades here; a trade is released only when every
lower id has been released, so the output is the exchange's tape without holes or repeats.
"""

from __future__ import annotations

import time

from streaming.records import Trade


class TradeSequencer:
    """Releases one symbol's trades in contiguous id order, dropping any id already seen.

    ``next_id`` is the first id not yet released; None until the first trade arrives when the
    caller has no starting point (a cold start without ``resume_from``).
    """

    def __init__(self, symbol: str, next_id: int | None = None) -> None:
        self.symbol = symbol
        self.next_id = next_id
        self._pending: dict[int, Trade] = {}
        self._gap_opened_s: float | None = None

    @property
    def last_id(self) -> int | None:
        """The last id released (or the caller's starting point), None when unknown."""
        return None if self.next_id is None else self.next_id - 1

    @property
    def pending_count(self) -> int:
        """Trades held back because a lower id is still missing."""
        return len(self._pending)

    def offer(self, trade: Trade) -> bool:
        """Take a trade from the stream or REST; False when its id was already seen (dropped)."""
        trade_id = trade.trade_id
        if self.next_id is None:
            self.next_id = trade_id
        if trade_id < self.next_id or trade_id in self._pending:
            return False
        self._pending[trade_id] = trade
        return True

    def take_next(self, trade: Trade) -> bool:
        """Release ``trade`` at once when it is the very next id and nothing is held back (what
        ``offer`` then ``release`` would do, without the bookkeeping); False leaves it untaken."""
        if trade.trade_id != self.next_id or self._pending:
            return False
        self.next_id = trade.trade_id + 1
        return True

    def release(self) -> list[Trade]:
        """The trades that are now contiguous with what was released before, in id order."""
        ready: list[Trade] = []
        pending, next_id = self._pending, self.next_id
        while next_id is not None and next_id in pending:
            ready.append(pending.pop(next_id))
            next_id += 1
        self.next_id = next_id
        if not pending:
            self._gap_opened_s = None
        elif ready or self._gap_opened_s is None:
            self._gap_opened_s = time.monotonic()
        return ready

    def missing(self) -> tuple[int, int] | None:
        """The first run of missing ids ``(first, last)`` below a held trade, if any."""
        if not self._pending or self.next_id is None:
            return None
        return self.next_id, min(self._pending) - 1

    @property
    def gap_opened_s(self) -> float | None:
        """``time.monotonic()`` when the current gap opened or last shrank, None without one."""
        return self._gap_opened_s

    def skip_to(self, trade_id: int) -> list[Trade]:
        """Give up on the ids below ``trade_id`` (they could not be fetched) and release on."""
        if self.next_id is None or trade_id > self.next_id:
            self.next_id = trade_id
        for stale in [i for i in self._pending if i < trade_id]:
            del self._pending[stale]
        return self.release()
