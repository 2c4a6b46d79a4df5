"""The sidecar's settings, from the command line and the environment (never from code)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streaming.fallback import FallbackBudgets
from streaming.ingest.feeds import Endpoints
from streaming.landing.disk import DEFAULT_MIN_FREE, MinFree
from streaming.landing.status import MIN_FREE_VARIABLE
from trading_assets.lib.feature_store.spec import TRAINING_SERVICE
from trading_assets.lib.models.policy import ASSUMED_SPREAD_BPS, FEE_BP
from trading_assets.lib.settings import Settings, SettingsError

BOOK_SNAPSHOT_VARIABLE = "TRADING_BOOK_SNAPSHOT_S"


@dataclass(frozen=True)
class SidecarConfig:
    """Everything the sidecar connects to and how often it acts."""

    instruments: tuple[str, ...]  # VENUE:SYMBOL ids, across venues
    ws_base_url: str  # Binance spot's (the other venues' are in venue_urls)
    rest_base_url: str
    data_root: Path  # landing/, dead_letters.jsonl, models/ (the model mirror); feast/, iceberg/
    # and mlflow/ when local
    tracking_uri: str | None  # MLflow; None: no models, every prediction is a safe no-trade
    model_name: str = "signal"
    feature_service: str = TRAINING_SERVICE
    # None: Feast's embedded sqlite online store; kept out of repr (it may hold a password)
    redis_connection_string: str | None = field(default=None, repr=False)
    environment: str = "local"  # selects Feast's feature_store yaml (local or prod)
    # Feast's registry: a file (relative: under feast_root) or PostgreSQL; None: the yaml's own
    feast_registry_path: str | None = field(default=None, repr=False)
    # None: the local sqlite catalog under data_root, when it exists
    iceberg_catalog_uri: str | None = field(default=None, repr=False)
    iceberg_warehouse: str | None = None  # None: the local one under data_root
    landing_dir: Path | None = None  # None: data_root / "landing"
    # Where the Dagster side reads landed segments; elsewhere than landing_root: shipped there
    landing_uri: str | None = None
    # Free space below which market data stops landing (and is fetched again once there is room)
    landing_min_free: MinFree = field(default_factory=lambda: MinFree.parse(DEFAULT_MIN_FREE))
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
    # Per venue name, its (WebSocket, REST) base URLs; Binance spot's are the two above.
    venue_urls: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Seconds between whole-book snapshots landed beside the L2 diffs; 0: no depth, no book
    book_snapshot_every_s: float = 60.0
    # Per own instrument, its reference (TRADING_CROSS_PAIRS): the cross group computed live.
    cross_references: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for own, reference in self.cross_references.items():
            if own not in self.instruments or reference not in self.instruments:
                raise ValueError(
                    f"cross pair {own}={reference}: both instruments must be served "
                    f"(instruments: {', '.join(self.instruments)})"
                )

    def endpoints(self) -> dict[str, Endpoints]:
        """Where each venue is, Binance spot's from ``ws_base_url`` and ``rest_base_url``."""
        found = {name: Endpoints(ws, rest) for name, (ws, rest) in self.venue_urls.items()}
        return found | {"BINANCE": Endpoints(self.ws_base_url, self.rest_base_url)}

    @property
    def landing_root(self) -> Path:
        return self.landing_dir or self.data_root / "landing"

    @property
    def dead_letter_path(self) -> Path:
        return self.data_root / "dead_letters.jsonl"

    @property
    def feast_root(self) -> Path:
        return self.data_root / "feast"


OPTION_VARIABLES = {
    "instruments": "TRADING_INSTRUMENTS",
    "ws_url": "BINANCE_WS_BASE_URL",
    "rest_url": "BINANCE_REST_BASE_URL",
    "data_dir": "TRADING_DATA_DIR",
    "mlflow_uri": "MLFLOW_TRACKING_URI",
    "model_name": "MLFLOW_MODEL_NAME",
    "redis": "REDIS_CONNECTION_STRING",
    "host": "SIDECAR_HOST",
    "port": "SIDECAR_PORT",
    "landing_min_free": MIN_FREE_VARIABLE,
}
"""Options that stand in for a settings variable: given, they override it for this process."""


def parse_args(argv: Sequence[str] | None = None) -> SidecarConfig:
    """``python -m streaming --help`` lists every option; the ones named after a variable default
    to the settings (:mod:`trading_assets.lib.settings`), which check them at start."""
    parser = argparse.ArgumentParser(
        prog="python -m streaming",
        description="Streaming sidecar: live ticks → landing + features → online store → "
        "ONNX predictions with fallback and risk.",
    )
    for option, variable in OPTION_VARIABLES.items():
        parser.add_argument("--" + option.replace("_", "-"), help=f"default: {variable}")
    parser.add_argument("--feature-service", default=TRAINING_SERVICE)
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
    given = {
        variable: str(value)
        for option, variable in OPTION_VARIABLES.items()
        if (value := getattr(args, option)) is not None
    }
    try:
        settings = Settings.from_environ({**os.environ, **given})
        return config_from_settings(settings, args)
    except SettingsError as error:
        parser.exit(2, f"python -m streaming: {error}\n")


def config_from_settings(settings: Settings, args: argparse.Namespace) -> SidecarConfig:
    return SidecarConfig(
        instruments=settings.instruments,
        ws_base_url=settings.ws_base_url,
        rest_base_url=settings.rest_base_url,
        venue_urls=settings.venue_urls,
        cross_references=settings.cross_references,
        data_root=settings.data_dir,
        landing_dir=settings.landing_dir,
        landing_uri=settings.landing_uri,
        landing_min_free=_min_free(settings.tuning(MIN_FREE_VARIABLE) or DEFAULT_MIN_FREE),
        book_snapshot_every_s=_seconds(settings.tuning(BOOK_SNAPSHOT_VARIABLE) or "60"),
        tracking_uri=settings.mlflow_tracking_uri,
        model_name=settings.mlflow_model_name,
        feature_service=args.feature_service,
        redis_connection_string=settings.redis_connection_string,
        environment=settings.environment,
        feast_registry_path=settings.feast_registry_path,
        iceberg_catalog_uri=settings.iceberg_catalog_uri,
        iceberg_warehouse=settings.iceberg_warehouse,
        api_host=settings.sidecar_host,
        api_port=settings.sidecar_port,
        predict_every_s=args.predict_every,
        canary_share=args.canary_share,
        canary_size=args.canary_size,
        fee_bp=args.fee_bp,
        assumed_spread_bps=args.assumed_spread_bps,
    )


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise SettingsError(
            f"{BOOK_SNAPSHOT_VARIABLE}: expected seconds (a number ≥ 0; 0 lands no book), "
            f"got {text!r}"
        )
    return seconds


def _min_free(text: str) -> MinFree:
    try:
        return MinFree.parse(text)
    except ValueError as error:
        raise SettingsError(f"{MIN_FREE_VARIABLE}: {error}") from None
