"""Binance spot's protocol in the simulator: WebSocket streams, REST endpoints, the bulk files of
data.binance.vision, replays of recorded Binance sessions, and the faults of each."""
