"""The sidecar's settings, from the command line and the environment (never from code)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streaming.fallback import FallbackBudgets
from trading_assets.lib.feature_store.spec import TRAINING_SERVICE
from trading_assets.lib.models.policy import ASSUMED_SPREAD_BPS, FEE_BP
from trading_assets.lib.settings import data_dir, trading_symbols

BINANCE_WS = "wss://stream.binance.com:9443"
BINANCE_REST = "https://api.binance.com"


@dataclass(frozen=True)
class SidecarConfig:
    """Everything the sidecar connects to and how often it acts."""

    symbols: tuple[str, ...]
    ws_base_url: str
    rest_base_url: str
    data_root: Path  # landing/, dead_letters.jsonl, models/ (the model mirror); feast/, iceberg/
    # and mlflow/ when local
    tracking_uri: str | None  # MLflow; None: no models, every prediction is a safe no-trade
    model_name: str = "signal"
    feature_service: str = TRAINING_SERVICE
    redis_connection_string: str | None = None  # None: Feast's embedded sqlite online store
    iceberg_catalog_uri: str | None = None  # None: the local sqlite catalog, when it exists
    api_host: str = "127.0.0.1"
    api_port: int = 8700
    predict_every_s: float = 1.0
    model_poll_s: float = 10.0
    canary_share: float = 0.1  # share of decisions the @canary drives
    canary_size: float = 0.5  # the @canary's stakes, as a fraction of what the champion's would be
    watchdog_s: float = 30.0
    fallback_budgets: FallbackBudgets = field(default_factory=FallbackBudgets)
    # Costs the trading rule must clear (see trading_assets.lib.models.policy), the evaluation's.
    fee_bp: float = FEE_BP  # exchange fee per side, paid by the paper P&L too
    assumed_spread_bps: float = ASSUMED_SPREAD_BPS  # when the features carry no usable spread

    @property
    def landing_root(self) -> Path:
        return self.data_root / "landing"

    @property
    def dead_letter_path(self) -> Path:
        return self.data_root / "dead_letters.jsonl"

    @property
    def feast_root(self) -> Path:
        return self.data_root / "feast"


def parse_args(argv: Sequence[str] | None = None) -> SidecarConfig:
    """``python -m streaming --help`` lists every option and the variable it defaults from."""
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m streaming",
        description="Streaming sidecar: live ticks → landing + features → online store → "
        "ONNX predictions with fallback and risk.",
    )
    parser.add_argument("--symbols", default=",".join(trading_symbols()), help="TRADING_SYMBOLS")
    parser.add_argument(
        "--ws-url", default=env.get("BINANCE_WS_BASE_URL", BINANCE_WS), help="BINANCE_WS_BASE_URL"
    )
    parser.add_argument(
        "--rest-url",
        default=env.get("BINANCE_REST_BASE_URL", BINANCE_REST),
        help="BINANCE_REST_BASE_URL",
    )
    parser.add_argument("--data-dir", default=str(data_dir()), help="TRADING_DATA_DIR")
    parser.add_argument(
        "--mlflow-uri",
        default=env.get("MLFLOW_TRACKING_URI"),
        help="MLFLOW_TRACKING_URI (default: the local sqlite store under the data dir)",
    )
    parser.add_argument("--model-name", default=env.get("MLFLOW_MODEL_NAME", "signal"))
    parser.add_argument("--feature-service", default=TRAINING_SERVICE)
    parser.add_argument(
        "--redis", default=env.get("REDIS_CONNECTION_STRING"), help="REDIS_CONNECTION_STRING"
    )
    parser.add_argument("--host", default=env.get("SIDECAR_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("SIDECAR_PORT", "8700")))
    parser.add_argument("--predict-every", type=float, default=1.0, help="seconds")
    parser.add_argument("--canary-share", type=float, default=0.1)
    parser.add_argument("--canary-size", type=float, default=0.5, help="fraction of full size")
    parser.add_argument(
        "--fee-bp", type=float, default=FEE_BP, help="exchange fee per side, basis points"
    )
    parser.add_argument(
        "--assumed-spread-bps",
        type=float,
        default=ASSUMED_SPREAD_BPS,
        help="spread assumed when the feature service carries no book (spread_bps)",
    )
    args = parser.parse_args(argv)
    root = Path(args.data_dir).resolve()
    tracking = args.mlflow_uri or f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    return SidecarConfig(
        symbols=tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip()),
        ws_base_url=args.ws_url,
        rest_base_url=args.rest_url,
        data_root=root,
        tracking_uri=tracking,
        model_name=args.model_name,
        feature_service=args.feature_service,
        redis_connection_string=args.redis,
        api_host=args.host,
        api_port=args.port,
        predict_every_s=args.predict_every,
        canary_share=args.canary_share,
        canary_size=args.canary_size,
        fee_bp=args.fee_bp,
        assumed_spread_bps=args.assumed_spread_bps,
    )
