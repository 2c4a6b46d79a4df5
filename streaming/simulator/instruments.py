"""``python -m streaming.simulator.instruments binance,coinbase BTCUSDT,ETHUSDT``: the instrument
ids the simulator trades for those venues and synthetic symbols, comma separated
(``BINANCE:BTCUSDT,...,COINBASE:BTC-USD,...``), to configure a sidecar with
(``make sidecar SIM_INSTRUMENTS=...``). With ``--pairs`` first: the cross-venue pairs
(``TRADING_CROSS_PAIRS``) of those instruments, each other venue's instrument against Binance
spot's of the same tape, the venue that leads in the simulator (empty without Binance spot).

Every venue's protocol in the simulator trades the same synthetic tapes, named by Binance-style
symbols; this spells each tape as the venue spells its instruments.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from streaming.simulator.coinbase.market import symbol_of as coinbase_symbol_of
from streaming.simulator.kraken.frames import pair_of_symbol
from streaming.venues import venue
from trading_assets.lib.instruments import instrument_id


def _coinbase(symbol: str) -> str | None:
    """The product id whose tape is ``symbol``'s (checked against the protocol's own mapping)."""
    for quote, alias in (("USDT", "USD"), ("USDC", "USDC"), ("EUR", "EUR"), ("BTC", "BTC")):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            product = f"{symbol[: -len(quote)]}-{alias}"
            return product if coinbase_symbol_of(product) == symbol else None
    return None


SPELLINGS: dict[str, Callable[[str], str | None]] = {
    "BINANCE": lambda symbol: symbol,
    "BINANCE_FUTURES": lambda symbol: symbol,
    "COINBASE": _coinbase,
    "KRAKEN": pair_of_symbol,
}
"""How each venue the simulator speaks spells a synthetic symbol (None: it has no such market)."""


def simulated_instruments(venues: Sequence[str], symbols: Sequence[str]) -> list[str]:
    """The instrument ids of ``symbols`` at each of ``venues`` (venue names as listed in
    :mod:`streaming.venues`); a symbol a venue cannot spell raises ValueError naming both."""
    found: list[str] = []
    for name in venues:
        spelled_by = venue(name).name
        for symbol in symbols:
            spelled = SPELLINGS[spelled_by](symbol.strip().upper())
            if spelled is None:
                raise ValueError(f"the simulator's {spelled_by} has no market for {symbol}")
            found.append(instrument_id(spelled_by, spelled))
    return found


LEADER = "BINANCE"
"""The venue every other venue's tape follows in the simulator (see its lead-lag)."""


def simulated_pairs(venues: Sequence[str], symbols: Sequence[str]) -> list[str]:
    """``OWN=REFERENCE`` for each instrument of ``venues`` other than Binance spot, against
    Binance spot's instrument of the same symbol; none when Binance spot is not among them."""
    names = [venue(name).name for name in venues]
    if LEADER not in names:
        return []
    pairs: list[str] = []
    for name in names:
        if name == LEADER:
            continue
        for symbol in symbols:
            own, reference = simulated_instruments([name, LEADER], [symbol])
            pairs.append(f"{own}={reference}")
    return pairs


def main(argv: Sequence[str]) -> int:
    pairs = argv[:1] == ["--pairs"]
    argv = argv[1:] if pairs else argv
    if len(argv) != 2:
        print((__doc__ or "").split("\n\n")[0], file=sys.stderr)
        return 2
    venues, symbols = (part.split(",") for part in argv)
    try:
        listed = simulated_pairs if pairs else simulated_instruments
        print(",".join(listed(venues, symbols)))
    except ValueError as error:
        print(f"streaming.simulator.instruments: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
