"""The prediction record's JSON round trip and bounds, and the return → signal/confidence map."""

from __future__ import annotations

import itertools
import json
import math

import msgspec
import pytest

from streaming.predictions import (
    Prediction,
    build_prediction,
    confidence_from_signal,
    decode_prediction,
    encode_prediction,
)
from trading_assets.lib.models.policy import signal_from_return


def sample(**overrides) -> Prediction:
    fields = {
        "symbol": "BTCUSDT",
        "timestamp": 1_709_251_200_123_456_789,
        "signal": -0.42,
        "confidence": 0.21,
        "risk_score": 0.3,
        "should_trade": True,
        "model_version": "7",
        "fallback_level": 1,
        "latency_ms": 1.25,
        "role": "canary",
        "size_fraction": 0.1,
        "reason": "fresh features",
        "predicted_return": -0.00045,
    }
    return Prediction(**(fields | overrides))


def test_json_round_trip_keeps_every_field_and_integer_nanoseconds():
    prediction = sample()

    data = encode_prediction(prediction)
    parsed = json.loads(data)

    assert decode_prediction(data) == prediction
    assert decode_prediction(data.decode()) == prediction
    assert parsed["timestamp"] == prediction.timestamp and isinstance(parsed["timestamp"], int)
    assert set(parsed) == set(Prediction.__struct_fields__)


def test_defaults_describe_a_plain_champion_prediction():
    prediction = Prediction(
        symbol="ETHUSDT",
        timestamp=1,
        signal=0.0,
        confidence=0.0,
        risk_score=0.0,
        should_trade=False,
        model_version="1",
        fallback_level=0,
        latency_ms=0.5,
    )

    assert prediction.role == "champion"
    assert (prediction.size_fraction, prediction.reason) == (0.0, "")


@pytest.mark.parametrize(
    "overrides", [{"signal": 1.5}, {"signal": -1.01}, {"confidence": 1.2}, {"fallback_level": -1}]
)
def test_out_of_range_records_are_refused_when_built_and_when_decoded(overrides):
    valid = json.loads(encode_prediction(sample()))

    with pytest.raises(ValueError):
        sample(**overrides)
    with pytest.raises(msgspec.ValidationError):
        decode_prediction(json.dumps(valid | overrides))


def test_unknown_role_is_refused_on_decode():
    data = json.loads(encode_prediction(sample())) | {"role": "production"}

    with pytest.raises(msgspec.ValidationError, match="role"):
        decode_prediction(json.dumps(data))


def test_signal_is_bounded_odd_and_monotone_in_the_predicted_return():
    scale = 8e-4
    returns = [-1.0, -5e-3, -8e-4, -1e-5, 0.0, 1e-5, 8e-4, 5e-3, 1.0]

    signals = [signal_from_return(r, scale) for r in returns]

    assert all(-1.0 <= s <= 1.0 for s in signals)
    assert signals == sorted(signals)
    assert signal_from_return(0.0, scale) == 0.0
    for r in returns:
        assert signal_from_return(-r, scale) == pytest.approx(-signal_from_return(r, scale))
    # One label sigma maps to tanh(1), whatever the scale.
    assert signal_from_return(scale, scale) == pytest.approx(math.tanh(1.0))
    assert signal_from_return(2e-3, 2e-3) == pytest.approx(signal_from_return(8e-4, 8e-4))


def test_non_finite_prediction_means_no_view_and_bad_scales_are_refused():
    assert signal_from_return(math.nan, 1e-3) == 0.0
    assert signal_from_return(math.inf, 1e-3) == 0.0
    for scale in (0.0, -1e-3, math.nan):
        with pytest.raises(ValueError, match="scale"):
            signal_from_return(1e-3, scale)


def test_confidence_follows_signal_strength_and_shrinks_with_each_fallback_level():
    strong, weak = signal_from_return(3e-3, 1e-3), signal_from_return(-2e-4, 1e-3)

    levels = [confidence_from_signal(strong, level) for level in range(4)]

    assert confidence_from_signal(strong) > confidence_from_signal(weak) > 0.0
    assert confidence_from_signal(weak) == pytest.approx(abs(weak))
    assert all(0.0 <= c <= 1.0 for c in levels)
    assert levels == sorted(levels, reverse=True) and levels[-1] < levels[0]
    assert [b / a for a, b in itertools.pairwise(levels)] == pytest.approx([0.5] * 3)
    assert confidence_from_signal(strong, 2, discount=1.0) == pytest.approx(abs(strong))
    with pytest.raises(ValueError):
        confidence_from_signal(strong, -1)


def test_build_prediction_applies_the_mapping_and_defaults_to_not_trading():
    built = build_prediction(
        symbol="ETHUSDT",
        timestamp=1_709_251_201_000_000_000,
        predicted_return=-6e-4,
        scale=4e-4,
        model_version="12",
        latency_ms=0.7,
        role="shadow",
        fallback_level=2,
    )

    assert built.signal == pytest.approx(signal_from_return(-6e-4, 4e-4)) and built.signal < 0
    assert built.confidence == pytest.approx(confidence_from_signal(built.signal, 2))
    assert built.predicted_return == -6e-4
    assert (built.role, built.model_version, built.fallback_level) == ("shadow", "12", 2)
    assert built.should_trade is False and built.size_fraction == 0.0
    assert decode_prediction(encode_prediction(built)) == built
