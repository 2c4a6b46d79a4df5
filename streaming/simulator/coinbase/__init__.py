"""Coinbase Advanced Trade's market-data WebSocket protocol over the simulator's synthetic market.

Mounted on the simulator's one port at ``/coinbase`` (``SimulatorServer.coinbase_ws_url``):
``protocol.py`` is the connection handler, ``frames.py`` renders Coinbase's messages,
``market.py`` walks a product's synthetic tape (and maps product ids to synthetic symbols:
``BTC-USD`` is ``BTCUSDT``'s tape), ``faults.py`` holds the faults only this protocol has.
"""

from streaming.simulator.coinbase.faults import CoinbaseFaultPlan, CoinbaseFaults
from streaming.simulator.coinbase.market import symbol_of
from streaming.simulator.coinbase.protocol import FAULTS_PATH, PATH, CoinbaseEndpoint

__all__ = [
    "FAULTS_PATH",
    "PATH",
    "CoinbaseEndpoint",
    "CoinbaseFaultPlan",
    "CoinbaseFaults",
    "symbol_of",
]
