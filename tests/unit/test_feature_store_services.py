"""Feature services: v2 serves no level feature, v1 stays as it was, and models train on v2 only."""

from __future__ import annotations

import pytest

from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.repo import load_definitions
from trading_assets.lib.features import (
    ALL_GROUPS,
    TRADE_GROUPS,
    feature_names,
    is_level_feature,
    level_feature_names,
    model_feature_names,
)

CONFIG = spec.FEATURE_CONFIG


def test_v2_services_serve_the_model_inputs_and_v1_still_serves_everything():
    # Act
    served = {service: spec.service_features(service) for service in spec.SERVICES}

    # Assert
    assert served["signal_v1"] == feature_names(CONFIG, ALL_GROUPS)
    assert served["signal_trades_v1"] == feature_names(CONFIG, TRADE_GROUPS)
    assert served["signal_v2"] == model_feature_names(CONFIG, ALL_GROUPS)
    assert served["signal_trades_v2"] == model_feature_names(CONFIG, TRADE_GROUPS)
    assert spec.TRAINING_SERVICE == "signal_trades_v2"
    levels = set(level_feature_names(CONFIG))
    assert levels and all(levels & set(served[s]) for s in spec.LEVEL_SERVICES)
    # Independently of how the v2 lists are built: no level feature in either
    for service in ("signal_v2", "signal_trades_v2"):
        assert served[service] and not levels & set(served[service]), service
        assert not [name for name in served[service] if is_level_feature(name)], service


def test_training_refuses_a_service_that_serves_level_features():
    # Act / Assert
    assert spec.training_features(spec.TRAINING_SERVICE) == model_feature_names(
        CONFIG, TRADE_GROUPS
    )
    for service in sorted(spec.LEVEL_SERVICES):
        with pytest.raises(ValueError, match=r"display-only level features \['vwap_10s'") as error:
            spec.training_features(service)
        assert "signal_trades_v2" in str(error.value) and service in str(error.value)
    with pytest.raises(ValueError, match="unknown feature service"):
        spec.service_features("signal_v9")


def test_the_feast_repository_registers_each_service_with_the_features_the_spec_names():
    # Act
    services = {s.name: s for s in load_definitions().feature_services}

    # Assert: projections of the group views, in the spec's order
    assert set(services) == set(spec.SERVICES)
    for name, service in services.items():
        projected = [
            feature.name
            for projection in service.feature_view_projections
            for feature in projection.features
        ]
        views = [projection.name for projection in service.feature_view_projections]
        assert projected == spec.service_features(name), name
        assert tuple(views) == spec.SERVICES[name], name
        assert service.description == spec.SERVICE_DESCRIPTIONS[name], name
    assert set(spec.SERVICE_DESCRIPTIONS) == set(spec.SERVICES)
