"""The sidecar's fallback controller: fresh online features, repaired, imputed, recomputed from
silver, or safe mode — see :mod:`streaming.fallback.controller` for the levels."""

from streaming.fallback.controller import FallbackController
from streaming.fallback.decision import (
    FallbackBudgets,
    FallbackDecision,
    FallbackLevel,
    LastMessageSource,
    LiveSnapshot,
    LiveSource,
    OnlineRead,
    OnlineSource,
    SilverFeatures,
    SilverSource,
)
from streaming.fallback.imputation import FeatureImputer
from streaming.fallback.live import (
    LiveFeatureTracker,
    LiveFeatureTrackers,
    cross_trackers,
)
from streaming.fallback.silver import IcebergSilverMicrobatch, features_from_silver

__all__ = [
    "FallbackBudgets",
    "FallbackController",
    "FallbackDecision",
    "FallbackLevel",
    "FeatureImputer",
    "IcebergSilverMicrobatch",
    "LastMessageSource",
    "LiveFeatureTracker",
    "LiveFeatureTrackers",
    "LiveSnapshot",
    "LiveSource",
    "OnlineRead",
    "OnlineSource",
    "SilverFeatures",
    "SilverSource",
    "cross_trackers",
    "features_from_silver",
]
