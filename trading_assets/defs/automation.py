"""Evaluates the assets' automation conditions (daily raw ingest, layers following upstream)."""

import dagster as dg

# Dagster's implicit automation sensor starts stopped; this one runs as soon as the daemon does,
# so a fresh `make run` ingests each new day without a click.
automation = dg.AutomationConditionSensorDefinition(
    "lakehouse_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Daily raw ingest at 03:30 UTC; bronze, silver and bars follow their upstream.",
)
