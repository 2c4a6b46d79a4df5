"""The model rollout sensor: @challenger → @shadow → @canary → @champion, with rollback.

Every tick reads the aliases from MLflow, scores the landed predictions of the versions in play
against ``bars_1s`` (:mod:`trading_assets.lib.models.live_metrics`), asks the pure policy
(:mod:`trading_assets.lib.models.rollout`) for the next move and, when there is one, applies it
in MLflow and records it as a ``served_model`` materialization whose metadata is the evidence.
A tick with nothing to do is skipped with the reason (e.g. "shadow v7: 412/600 matured"), and so
is a move the evaluation gate's rule refuses (an alias set by hand on a version it never passed).
A breaching champion is rolled back to the previous one, or withdrawn when MLflow records none
(the sidecar then serves no model and trades nothing); either is logged as a warning and its
materialization says why and what serves now.

The policy is the ``rollout_policy`` resource; its defaults can be overridden per deployment
with ``TRADING_ROLLOUT_<FIELD>`` variables (e.g. ``TRADING_ROLLOUT_CANARY_PERIOD_S=120`` and
``TRADING_ROLLOUT_MIN_SHADOW_PREDICTIONS=60`` for a demo that rolls out in a few minutes).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable

import dagster as dg
import polars as pl
import pydantic
from pydantic import Field

from sensors.rollout_registry import apply_decision, read_state, restore_problem
from trading_assets.defs.watermark import watermark_from_ns
from trading_assets.lib.asset_names import SERVED_MODEL
from trading_assets.lib.feature_store.spec import FEATURE_CONFIG
from trading_assets.lib.models.live_metrics import NS, RoleMetrics, role_metrics, scored_window
from trading_assets.lib.models.registry import UngatedVersionError
from trading_assets.lib.models.rollout import (
    Decision,
    Evidence,
    Move,
    RegistryState,
    RolloutPolicy,
    Slot,
    decide,
)
from trading_assets.lib.settings import ROLLOUT_PREFIX, Settings, SettingsError, load_settings
from trading_assets.resources.iceberg import IcebergCatalogResource
from trading_assets.resources.landing import LandingResource
from trading_assets.resources.mlflow import MlflowResource

EVALUATE_EVERY_S = 30
# How far back to look for a slot whose alias was set by hand (no since tag).
UNTAGGED_LOOKBACK_S = 6 * 3600
# A first champion is chosen before anything served, so its move has no live evidence.
NO_LIVE_EVIDENCE = "no matured prediction in the evidence behind this move"
_DEFAULTS = RolloutPolicy()


class RolloutPolicyResource(dg.ConfigurableResource):
    """The rollout policy: evidence each step needs and the budgets a serving model must keep."""

    min_shadow_predictions: int = Field(
        default=_DEFAULTS.min_shadow_predictions,
        description="Matured shadow predictions needed before it is judged.",
    )
    shadow_timeout_s: float = Field(
        default=_DEFAULTS.shadow_timeout_s,
        description="A shadow short of evidence after this long yields to a newer challenger.",
    )
    canary_period_s: float = Field(
        default=_DEFAULTS.canary_period_s, description="Seconds a canary serves before promotion."
    )
    min_canary_predictions: int = Field(
        default=_DEFAULTS.min_canary_predictions,
        description="Matured canary predictions needed for promotion.",
    )
    max_p95_latency_ms: float = Field(
        default=_DEFAULTS.max_p95_latency_ms, description="p95 prediction latency budget (ms)."
    )
    max_error_rate: float = Field(
        default=_DEFAULTS.max_error_rate, description="Highest share of model errors allowed."
    )
    ic_floor: float = Field(
        default=_DEFAULTS.ic_floor,
        description="A champion's live IC this far below it, less the sampling margin, breaches.",
    )
    ic_floor_z: float = Field(
        default=_DEFAULTS.ic_floor_z,
        description="Standard errors of the live IC below the floor before it is a breach.",
    )
    predictions_per_horizon: float = Field(
        default=_DEFAULTS.predictions_per_horizon,
        description="Predictions per label horizon: one in this many is an independent one.",
    )
    min_breach_predictions: int = Field(
        default=_DEFAULTS.min_breach_predictions,
        description="Predictions (and matured ones, for the IC) before a breach is judged.",
    )
    breach_window_s: float = Field(
        default=_DEFAULTS.breach_window_s,
        description="Recent seconds of the champion judged for rollback.",
    )
    probation_s: float = Field(
        default=_DEFAULTS.probation_s,
        description=(
            "Seconds after promotion in which a champion's breach is its promotion's failure; "
            "a breach later is rolled back (or withdrawn) all the same, and says so."
        ),
    )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> RolloutPolicyResource:
        """Defaults overridden by the ``TRADING_ROLLOUT_<FIELD>`` variables that are set."""
        overrides = (settings or load_settings()).rollout_overrides
        unknown = sorted(set(overrides) - set(cls.model_fields))
        if unknown:
            raise SettingsError(
                f"{ROLLOUT_PREFIX}{unknown[0].upper()}: not a rollout policy field "
                f"(known: {', '.join(sorted(cls.model_fields))})"
            )
        try:
            return cls.model_validate(dict(overrides))  # converts the strings to the field types
        except pydantic.ValidationError as error:
            field = str(error.errors()[0]["loc"][0])
            raise SettingsError(
                f"{ROLLOUT_PREFIX}{field.upper()}: {error.errors()[0]['msg']}"
            ) from None

    def policy(self) -> RolloutPolicy:
        """The pure policy these settings describe."""
        return RolloutPolicy(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(RolloutPolicy)}
        )


Scorer = Callable[[int], pl.DataFrame]


def _first_served(scored: pl.DataFrame, slot: Slot, role: str) -> int | None:
    mine = scored.filter(pl.col("model_version") == slot.version, pl.col("role") == role)
    return int(mine["timestamp"].min()) if mine.height else None  # type: ignore[arg-type]


def gather_evidence(
    state: RegistryState, policy: RolloutPolicy, score: Scorer, now_ns: int
) -> tuple[RegistryState, Evidence]:
    """Live metrics of the versions in play, from one scored window that covers them all.

    ``score(start_ns)`` returns the predictions since ``start_ns`` scored against realized
    returns. A slot without a ``since`` tag (its alias set by hand) is dated by its first
    landed prediction in that role, and the returned state carries that date.
    """
    champion = state.champion
    # Without a champion, only a withdrawal's successors have a record to judge (a fresh
    # install's first challenger takes @champion on no live evidence).
    nothing_to_judge = state.shadow is None and state.canary is None
    if champion is None and (state.withdrawn is None or nothing_to_judge):
        return state, Evidence()
    recent_start = now_ns - int(policy.breach_window_s * NS)
    starts = [recent_start] if champion is not None else []
    for slot in (state.shadow, state.canary):
        if slot is not None:
            starts.append(slot.since_ns or now_ns - UNTAGGED_LOOKBACK_S * NS)
    scored = score(min(starts))
    shadow, canary = state.shadow, state.canary
    first_shadow = None if shadow is None else _first_served(scored, shadow, "shadow")
    if shadow is not None and shadow.since_ns is None:
        shadow = Slot(shadow.version, first_shadow)
    if canary is not None and canary.since_ns is None:
        canary = Slot(canary.version, _first_served(scored, canary, "canary"))
    # The champion is judged over the shadow's own ticks: from its first landed prediction, not
    # from the alias move, which comes up to a model poll before the sidecar serves it.
    compare_from = None if shadow is None else first_shadow or shadow.since_ns
    evidence = Evidence(
        shadow=None
        if shadow is None
        else role_metrics(scored, shadow.version, "shadow", shadow.since_ns),
        champion_vs_shadow=None
        if shadow is None or champion is None
        else role_metrics(scored, champion.version, "champion", compare_from),
        canary=None
        if canary is None
        else role_metrics(scored, canary.version, "canary", canary.since_ns),
        champion_recent=None
        if champion is None
        else role_metrics(
            scored, champion.version, "champion", max(recent_start, champion.since_ns or 0)
        ),
    )
    return dataclasses.replace(state, shadow=shadow, canary=canary), evidence


def newest_matured_ns(scored: list[pl.DataFrame]) -> int | None:
    """The evidence's watermark: the newest prediction whose outcome the bars already hold."""
    times = [frame.filter("matured")["timestamp"].max() for frame in scored]
    present = [int(t) for t in times if t is not None]  # type: ignore[arg-type]
    return max(present, default=None)


def _metrics_json(metrics: RoleMetrics | None) -> dict | None:
    return None if metrics is None else dataclasses.asdict(metrics)


def checks_markdown(decision: Decision) -> str:
    """The decision's criteria as a Markdown table."""
    if not decision.checks:
        return "_no criteria (nothing to compare)_"
    lines = ["| check | value | limit | passed |", "|---|---|---|---|"]
    for c in decision.checks:
        value = "–" if c.value is None else f"{c.value:.4g}"
        limit = "–" if c.limit is None else f"{c.limit:.4g}"
        lines.append(f"| {c.name} | {value} | {limit} | {'yes' if c.passed else 'no'} |")
    return "\n".join(lines)


def move_event(
    decision: Decision,
    evidence: Evidence,
    after: RegistryState,
    policy: RolloutPolicy,
    model_name: str,
    watermark_ns: int | None = None,
) -> dg.AssetMaterialization:
    """The ``served_model`` materialization recording one move, its evidence and the evidence's
    event-time watermark."""

    def version(slot: Slot | None) -> str:
        return "" if slot is None else slot.version

    return dg.AssetMaterialization(
        asset_key=dg.AssetKey(SERVED_MODEL),
        description=decision.reason,
        metadata={
            "move": dg.MetadataValue.text(str(decision.move)),
            "version": dg.MetadataValue.text(decision.version or ""),
            "reason": dg.MetadataValue.text(decision.reason),
            "model_name": dg.MetadataValue.text(model_name),
            "champion": dg.MetadataValue.text(version(after.champion)),
            "canary": dg.MetadataValue.text(version(after.canary)),
            "shadow": dg.MetadataValue.text(version(after.shadow)),
            "challenger": dg.MetadataValue.text(after.challenger or ""),
            "previous_champion": dg.MetadataValue.text(after.previous_champion or ""),
            "withdrawn": dg.MetadataValue.text(after.withdrawn or ""),
            "serving": dg.MetadataValue.text(serving_summary(after)),
            "checks": dg.MetadataValue.md(checks_markdown(decision)),
            "evidence": dg.MetadataValue.json(
                {
                    field.name: _metrics_json(getattr(evidence, field.name))
                    for field in dataclasses.fields(Evidence)
                }
            ),
            "policy": dg.MetadataValue.json(dataclasses.asdict(policy)),
            **watermark_from_ns(watermark_ns, NO_LIVE_EVIDENCE),
        },
    )


def _withdraw_instead(
    state: RegistryState, evidence: Evidence, policy: RolloutPolicy, now_ns: int, problem: str
) -> Decision:
    """The decision when the previous champion cannot serve again: the breaching champion is
    withdrawn as if none were recorded, and the unusable one is forgotten."""
    previous = state.previous_champion
    decision = decide(dataclasses.replace(state, previous_champion=None), evidence, policy, now_ns)
    reason = f"{decision.reason}; previous champion v{previous} cannot be restored: {problem}"
    return dataclasses.replace(decision, reason=reason, forget_previous_champion=True)


def serving_summary(state: RegistryState) -> str:
    """What drives the sidecar's trades after a move, in words."""
    if state.champion is not None:
        return f"champion v{state.champion.version}" + (
            "" if state.canary is None else f", canary v{state.canary.version} on its share"
        )
    if state.canary is not None:
        return f"no champion: canary v{state.canary.version} on its share, nothing otherwise"
    return "no model: the sidecar's safe mode, no trades"


@dg.sensor(
    name="model_rollout",
    minimum_interval_seconds=EVALUATE_EVERY_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Moves model versions @challenger → @shadow → @canary → @champion on live evidence, "
        "rolls a breaching champion back or withdraws it (no model, no trades) when there is no "
        "previous one; each move is a served_model materialization with its evidence."
    ),
)
def model_rollout(
    context: dg.SensorEvaluationContext,
    mlflow: MlflowResource,
    iceberg: IcebergCatalogResource,
    landing: LandingResource,
    rollout_policy: RolloutPolicyResource,
) -> dg.SensorResult:
    """Make at most one rollout move per tick and record it with its evidence."""
    policy = rollout_policy.policy()
    uri, name = mlflow.ready_uri(), mlflow.model_name
    now_ns = time.time_ns()
    horizon = FEATURE_CONFIG.label_horizon_s

    scored: list[pl.DataFrame] = []  # kept for the move's watermark

    def score(start_ns: int) -> pl.DataFrame:
        frame = scored_window(iceberg.lakehouse(), landing.location(), start_ns, now_ns, horizon)
        scored.append(frame)
        return frame

    state, evidence = gather_evidence(read_state(uri, name), policy, score, now_ns)
    decision = decide(state, evidence, policy, now_ns)
    if decision.move is Move.ROLLBACK and decision.version is not None:
        problem = restore_problem(uri, name, decision.version)
        if problem is not None:  # rolling back to it would leave the breaching model serving
            context.log.error(f"{name} v{decision.version} cannot be restored: {problem}")
            decision = _withdraw_instead(state, evidence, policy, now_ns, problem)
    if decision.move is Move.HOLD:
        return dg.SensorResult(skip_reason=dg.SkipReason(decision.reason))
    try:
        apply_decision(uri, name, decision)
    except UngatedVersionError as refused:  # an alias set by hand on a version never gated
        context.log.error(f"{name}: {decision.move} v{decision.version} refused: {refused}")
        return dg.SensorResult(skip_reason=dg.SkipReason(f"{decision.reason}; refused: {refused}"))
    message = f"{name}: {decision.move} v{decision.version}: {decision.reason}"
    if decision.move in (Move.ROLLBACK, Move.WITHDRAW):
        context.log.warning(message)
    else:
        context.log.info(message)
    after = read_state(uri, name)
    event = move_event(decision, evidence, after, policy, name, newest_matured_ns(scored))
    return dg.SensorResult(asset_events=[event], cursor=json.dumps({"last_move_ns": now_ns}))


defs = dg.Definitions(
    sensors=[model_rollout],
    resources={"rollout_policy": RolloutPolicyResource.from_settings()},
)
