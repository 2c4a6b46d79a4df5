"""One profile's backfill and model cycle, step by step, in the process's own settings.

Run as ``python -m bench.profile_cycle <day> <instrument>`` in a process whose environment holds one
profile's variables (``TRADING_ENV`` and the stores, ``DAGSTER_HOME``); prints one JSON line:
each step's wall time in seconds and what the steps produced. Each step is one in-process
Dagster run on the profile's instance, with the resources ``build_resources()`` gives that
profile, as the daemon's runs get them. One-off costs that are not a step's (imports, creating
the Iceberg tables, the MLflow store's schema, Dagster's first run in the process) are paid
before the first clock starts.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

STEP_LABELS = {
    "raw": "raw_trades",
    "bronze": "bronze_trades",
    "silver": "silver_trades",
    "bars_1s": "bars_1s",
    "bars_1m": "bars_1m",
    "features": "features (gold + Feast export)",
    "feast_registry": "feast_registry (apply)",
    "online_features": "online_features (materialize)",
    "training_set": "training_set (point-in-time join)",
    "full_model": "full_model (walk-forward + final)",
    "recent_training_rows": "recent_training_rows",
    "incremental_model": "incremental_model",
    "onnx_model": "onnx_model + parity check",
    "registered_model": "registered_model + gate",
}
"""Each step's row label, in running order."""
WARM_IMPORTS = (
    "httpcore",
    "pyiceberg.avro.decoder_fast",
    "feast",
    "feast.repo_operations",
    "feast.infra.passthrough_provider",
    "feast.infra.registry.sql",
    "feast.infra.online_stores.redis",
    "feast.infra.online_stores.sqlite",
    "feast.infra.offline_stores.duckdb",
    "feast.table_format",
    "ibis.backends.duckdb",
    "ibis.formats.pandas",
    "ibis.formats.pyarrow",
    "onnxmltools.convert.xgboost",
    "onnxruntime",
    "mlflow",
)
"""What the steps import on first use (the code location defers them to keep loading fast)."""
LAKEHOUSE_STEPS = ("raw", "bronze", "silver", "bars_1s", "bars_1m", "features")


@dataclass
class StepRun:
    """A step's assets and checks, and whether they take the day's partition."""

    assets: Sequence[Any]
    partitioned: bool = False
    checks: Sequence[Any] = field(default_factory=tuple)


def steps() -> dict[str, StepRun]:
    """The steps in running order (the import pulls in the code location's assets)."""
    from trading_assets.defs.features.assets import (
        feast_registry,
        features,
        online_features,
        training_set,
    )
    from trading_assets.defs.ingest.raw_trades import raw_trades
    from trading_assets.defs.lakehouse.assets import bars_1m, bars_1s, bronze_trades, silver_trades
    from trading_assets.defs.models.registry import (
        beats_baselines,
        onnx_model,
        onnx_parity,
        registered_model,
    )
    from trading_assets.defs.models.training import (
        full_model,
        incremental_model,
        recent_training_rows,
    )

    partitioned = {
        "raw": raw_trades,
        "bronze": bronze_trades,
        "silver": silver_trades,
        "bars_1s": bars_1s,
        "bars_1m": bars_1m,
        "features": features,
    }
    plain = {
        "feast_registry": feast_registry,
        "online_features": online_features,
        "training_set": training_set,
        "full_model": full_model,
        "recent_training_rows": recent_training_rows,
        "incremental_model": incremental_model,
    }
    runs = {name: StepRun([asset], partitioned=True) for name, asset in partitioned.items()}
    runs |= {name: StepRun([asset]) for name, asset in plain.items()}
    runs["onnx_model"] = StepRun([onnx_model], checks=[onnx_parity])
    runs["registered_model"] = StepRun([registered_model], checks=[beats_baselines])
    assert list(runs) == list(STEP_LABELS)
    return runs


def prepare(resources: dict[str, Any]) -> None:
    """Pay the one-off costs: the steps' imports, the lakehouse's tables, the MLflow store's
    schema (a server has migrated its own at start), and a first Dagster run in this process."""
    import importlib

    import dagster as dg
    import mlflow
    from PIL import Image

    for module in WARM_IMPORTS:
        importlib.import_module(module)
    Image.init()  # the image plugins, loaded when the bars' plot is first saved

    from trading_assets.lib.feature_store.gold import gold_table
    from trading_assets.lib.lakehouse.schemas import ALL_TABLES

    lake = resources["iceberg"].process_config_and_initialize().lakehouse()
    for table in [*ALL_TABLES, gold_table()]:
        lake.table(table)
    tracking = resources["mlflow"].process_config_and_initialize()
    mlflow.MlflowClient(tracking.ready_uri()).search_experiments(max_results=1)

    @dg.asset
    def warm_up() -> None:
        """A first run, so no step pays for Dagster's first one in the process."""

    dg.materialize([warm_up], instance=dg.DagsterInstance.get())


def run_cycle(day: str, symbol: str) -> dict[str, Any]:
    """Every step once, in order; seconds per step and what the steps reported."""
    import dagster as dg

    from trading_assets.resources import build_resources

    resources = build_resources()
    instance = dg.DagsterInstance.get()
    prepare(resources)
    seconds: dict[str, float] = {}
    failed: list[str] = []
    facts: dict[str, Any] = {}
    for name, step in steps().items():
        started = time.perf_counter()
        result = dg.materialize(
            [*step.assets, *step.checks],
            resources=resources,
            instance=instance,
            partition_key=f"{day}|{symbol}" if step.partitioned else None,
            raise_on_error=False,
        )
        seconds[name] = time.perf_counter() - started
        materialized = {
            event.materialization.asset_key.path[-1]: event.materialization.metadata
            for event in result.get_asset_materialization_events()
        }
        if set(materialized) != {a.key.path[-1] for a in step.assets}:
            failed.append(name)
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        facts |= step_facts(name, materialized, checks)
    return {"seconds": seconds, "failed": failed, "facts": facts}


def step_facts(name: str, metadata: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    """The numbers a reader of the table wants next to a step's time."""

    def value(asset: str, key: str) -> Any:
        entry = metadata.get(asset, {}).get(key)
        return None if entry is None else entry.value

    if name == "silver":
        return {"silver_rows": value("silver_trades", "dagster/row_count")}
    if name == "bars_1s":
        return {"bars_1s_rows": value("bars_1s", "dagster/row_count")}
    if name == "training_set":
        return {"training_rows": value("training_set", "dagster/row_count")}
    if name == "recent_training_rows":
        return {"recent_rows": value("recent_training_rows", "dagster/row_count")}
    if name == "onnx_model":
        parity = checks.get("onnx_parity")
        return {"parity": None if parity is None else bool(parity.passed)}
    if name == "registered_model":
        gate = checks.get("beats_baselines")
        reason = None if gate is None else gate.metadata.get("reason")
        return {
            "version": value("registered_model", "version"),
            "gate": None if gate is None else bool(gate.passed),
            "gate_reason": None if reason is None else reason.value,
        }
    return {}


if __name__ == "__main__":
    print(json.dumps(run_cycle(*sys.argv[1:3])))
