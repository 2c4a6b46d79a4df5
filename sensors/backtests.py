"""The serving versions' backtests, re-run every hour as their unseen period grows.

Each tick asks the registry which versions the serving aliases (@champion, @canary, @shadow)
point at and requests one ``backtest`` run per version per hour (run key ``version@hour``),
adding the version's partition if it is missing (a version registered before the backtest
existed). The job is targeted by name: the sensor needs no asset module.
"""

from __future__ import annotations

import time

import dagster as dg

from sensors.rollout_registry import read_state
from trading_assets.lib.asset_names import BACKTEST_JOB, MODEL_VERSIONS
from trading_assets.resources.mlflow import MlflowResource

BACKTEST_EVERY_S = 3_600
SERVING_ROLES = ("champion", "canary", "shadow")


def serving_versions(tracking_uri: str, name: str) -> list[str]:
    """The versions behind the serving aliases, each once, champion first."""
    state = read_state(tracking_uri, name)
    slots = (state.champion, state.canary, state.shadow)
    return list(dict.fromkeys(slot.version for slot in slots if slot is not None))


@dg.sensor(
    name="model_backtests",
    job_name=BACKTEST_JOB,
    minimum_interval_seconds=BACKTEST_EVERY_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every hour, the backtest of each serving version (@champion, @canary, @shadow) on the "
        "rows after its training data."
    ),
)
def model_backtests(context: dg.SensorEvaluationContext, mlflow: MlflowResource) -> dg.SensorResult:
    """One backtest run per serving version per hour."""
    versions = serving_versions(mlflow.ready_uri(), mlflow.model_name)
    known = set(context.instance.get_dynamic_partitions(MODEL_VERSIONS))
    new = [v for v in versions if v not in known]
    hour = int(time.time()) // BACKTEST_EVERY_S
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"{v}@{hour}", partition_key=v) for v in versions],
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(MODEL_VERSIONS, new)]
        if new
        else [],
    )


defs = dg.Definitions(sensors=[model_backtests])
