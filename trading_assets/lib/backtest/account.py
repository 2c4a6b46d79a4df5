"""A paper trading account: cash and positions changed only by fills.

The one ledger of the backtest and of the sidecar's paper account. Cash is in quote currency;
a fill of signed ``notional`` moves ``−notional − fee`` of cash and ``quantity`` of base. Equity is
cash plus every position marked at a price the caller gives (a mid).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from trading_assets.lib.backtest.fills import Fill


@dataclass
class Account:
    """Cash, base quantities per symbol, and what the fills cost so far."""

    cash: float
    quantities: dict[str, float] = field(default_factory=dict)
    fees: float = 0.0
    traded_notional: float = 0.0
    fills: int = 0

    def apply(self, symbol: str, fill: Fill) -> None:
        """Book one fill of ``symbol``."""
        self.cash -= fill.notional + fill.fee
        quantity = self.quantities.get(symbol, 0.0) + fill.quantity
        if abs(quantity) < 1e-12:
            self.quantities.pop(symbol, None)
        else:
            self.quantities[symbol] = quantity
        self.fees += fill.fee
        self.traded_notional += abs(fill.notional)
        self.fills += 1

    def position_value(self, symbol: str, mark: float) -> float:
        """The symbol's position marked at ``mark`` (signed quote)."""
        return self.quantities.get(symbol, 0.0) * mark

    def equity(self, marks: Mapping[str, float]) -> float:
        """Cash plus every position at its mark; a position without a mark counts as cash
        spent (0), so pass a mark for every symbol held."""
        return self.cash + sum(q * marks.get(s, 0.0) for s, q in self.quantities.items())
