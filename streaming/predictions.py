"""The sidecar's prediction record, its JSON encoding, and the model-output → signal mapping.

A model predicts the forward log return over its label horizon (60 s by default). Consumers want
a bounded, comparable number instead, so the raw output becomes a signal and a confidence:

- ``signal = tanh(predicted_return / scale)``, in [-1, 1]. ``scale`` is the typical size of the
  label the model was trained on (its standard deviation): a prediction one label-sigma away
  from zero gives |signal| ≈ 0.76, three sigmas ≈ 0.995. Models registered with a
  ``label_std`` in their metadata use it; otherwise the sidecar's configured scale applies.
- ``confidence = |signal| · multiplier``, in [0, 1]. The sidecar takes the multiplier from its
  fallback decision (``FallbackDecision.confidence_multiplier``, see :mod:`streaming.fallback`):
  the fraction of the vector's features that are known, times a factor of the level (1 online,
  ``repaired_confidence`` for level 2, halving every ``impute_half_life_s`` of the imputed
  vector's age at level 3, ``silver_confidence`` for level 4), and 0 in safe mode (level 5), so
  downstream sizing shrinks as inputs degrade. :func:`confidence_from_signal` is a simpler
  stand-in for callers without a fallback decision (offline scoring, tests): a fixed discount
  per step away from fresh data.

The same JSON is used on the HTTP API, the WebSocket stream and the predictions log.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from trading_assets.lib.models.policy import signal_from_return

Role = Literal["champion", "canary", "shadow"]
ROLES: tuple[Role, ...] = ("champion", "canary", "shadow")
DEFAULT_FALLBACK_DISCOUNT = 0.5


class Prediction(msgspec.Struct, frozen=True, kw_only=True):
    """One served prediction for one symbol at one instant.

    ``timestamp`` is the event time (integer ns) of the newest data the prediction used;
    ``latency_ms``: the time to read the features plus this model's own scoring and risk check
    (other models scored for the same tick are not counted).
    ``predicted_return`` is the model's raw output, kept so the log can be scored later.
    ``role`` is the alias slot of the model that made it; ``None`` (JSON ``null``, with an empty
    ``model_version``) when no model did: no driving model is loaded, and the record stands in
    for the driving prediction (no signal, no trade) without claiming a model that is not there.
    """

    symbol: str
    timestamp: int
    signal: float
    confidence: float
    risk_score: float
    should_trade: bool
    model_version: str
    fallback_level: int
    latency_ms: float
    role: Role | None = "champion"
    size_fraction: float = 0.0
    reason: str = ""
    predicted_return: float = 0.0

    def __post_init__(self) -> None:
        # A record outside these bounds would be misread by every consumer; refuse it at source.
        if not -1.0 <= self.signal <= 1.0:
            raise ValueError(f"signal must be in [-1, 1], got {self.signal}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")
        if self.fallback_level < 0:
            raise ValueError(f"fallback_level must be >= 0, got {self.fallback_level}")


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Prediction)


def encode_prediction(prediction: Prediction) -> bytes:
    """The prediction as one compact JSON object (UTF-8), as served and logged."""
    return _encoder.encode(prediction)


def decode_prediction(data: bytes | str) -> Prediction:
    """Parse and validate a JSON prediction (the inverse of :func:`encode_prediction`)."""
    return _decoder.decode(data)


def confidence_from_signal(
    signal: float, fallback_level: int = 0, discount: float = DEFAULT_FALLBACK_DISCOUNT
) -> float:
    """Confidence in [0, 1]: ``|signal| · discount ** fallback_level``.

    Here ``fallback_level`` counts the steps away from fresh data (0: none, full confidence), not
    the sidecar's levels 1–5, and every step costs the same ``discount`` (halving by default).
    The sidecar does not call this: it scales ``|signal|`` by its fallback decision's
    ``confidence_multiplier``, which depends on the level and on how much of the vector is known.
    """
    if fallback_level < 0:
        raise ValueError(f"fallback_level must be >= 0, got {fallback_level}")
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")
    return min(1.0, abs(signal)) * discount**fallback_level


def unscored_prediction(
    symbol: str,
    timestamp: int,
    fallback_level: int,
    reason: str,
    latency_ms: float,
    role: Role | None = None,
    model_version: str = "",
) -> Prediction:
    """The record of a tick without a model's view: no driving model is loaded (``role`` None:
    no model is named), or ``role``'s model raised while scoring (the reason then says so, which
    is how the rollout counts its error rate). No signal, no confidence, no trade."""
    return Prediction(
        symbol=symbol,
        timestamp=timestamp,
        signal=0.0,
        confidence=0.0,
        risk_score=1.0,
        should_trade=False,
        model_version=model_version,
        fallback_level=fallback_level,
        latency_ms=latency_ms,
        role=role,
        reason=reason,
    )


def build_prediction(
    *,
    symbol: str,
    timestamp: int,
    predicted_return: float,
    scale: float,
    model_version: str,
    latency_ms: float,
    role: Role = "champion",
    fallback_level: int = 0,
    risk_score: float = 0.0,
    should_trade: bool = False,
    size_fraction: float = 0.0,
    reason: str = "",
    discount: float = DEFAULT_FALLBACK_DISCOUNT,
) -> Prediction:
    """A :class:`Prediction` from a raw model output, applying the module's documented mapping.

    Risk fields (``risk_score``, ``should_trade``, ``size_fraction``) come from the caller's risk
    check; they default to "do not trade" so a forgotten check never opens a position.
    """
    signal = signal_from_return(predicted_return, scale)
    return Prediction(
        symbol=symbol,
        timestamp=timestamp,
        signal=signal,
        confidence=confidence_from_signal(signal, fallback_level, discount),
        risk_score=risk_score,
        should_trade=should_trade,
        model_version=model_version,
        fallback_level=fallback_level,
        latency_ms=latency_ms,
        role=role,
        size_fraction=size_fraction,
        reason=reason,
        predicted_return=predicted_return,
    )
