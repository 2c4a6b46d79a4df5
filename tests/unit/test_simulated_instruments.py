"""The instruments a sidecar on the simulator is configured with: each venue's spelling of the
simulator's tapes, each one a tape its protocol serves."""

from __future__ import annotations

import pytest

from streaming.simulator.coinbase.market import symbol_of
from streaming.simulator.instruments import main, simulated_instruments
from streaming.simulator.kraken.frames import symbol_of_pair
from streaming.venues import venue_of

pytestmark = pytest.mark.venues


def test_each_venue_spells_the_same_tapes_as_its_protocol_reads_them() -> None:
    # Act
    found = simulated_instruments(["binance", "coinbase", "kraken", "binance_futures"],
                                  ["BTCUSDT", "ETHUSDT"])  # fmt: skip

    # Assert
    assert found == [
        "BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "COINBASE:BTC-USD", "COINBASE:ETH-USD",
        "KRAKEN:BTC/USD", "KRAKEN:ETH/USD", "BINANCE_FUTURES:BTCUSDT", "BINANCE_FUTURES:ETHUSDT",
    ]  # fmt: skip
    tapes = {"COINBASE": symbol_of, "KRAKEN": symbol_of_pair}
    for instrument in found:
        found_venue, symbol = venue_of(instrument)
        assert found_venue.symbol(symbol) == symbol
        tape = tapes.get(found_venue.name, lambda s: s)(symbol)
        assert tape in ("BTCUSDT", "ETHUSDT")


def test_a_symbol_a_venue_has_no_market_for_is_refused_naming_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["coinbase", "BTCXYZ"]) == 2
    assert "the simulator's COINBASE has no market for BTCXYZ" in capsys.readouterr().err
    assert main(["nasdaq", "BTCUSDT"]) == 2
