"""Evaluates the assets' automation conditions (layers following upstream, model cadences)."""

import dagster as dg


def once_per_tick(cron: str) -> dg.AutomationCondition:
    """Once per cron tick whatever the upstream did: for frames rebuilt from what is there."""
    return dg.AutomationCondition.cron_tick_passed(cron).since_last_handled() & ~(
        dg.AutomationCondition.in_progress()
    )


# Dagster's implicit automation sensor starts stopped; this one runs as soon as the daemon does,
# so a fresh `make run` ingests each new day without a click.
automation = dg.AutomationConditionSensorDefinition(
    "lakehouse_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description=(
        "Layers following their upstream, training frames and models on their 6-hour and "
        "5-minute cadences (the bulk files come by the daily_bulk_ingest schedule)."
    ),
)
