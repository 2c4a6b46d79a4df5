"""Evaluates the assets' automation conditions (layers following upstream, model cadences)."""

import dagster as dg

# Every upstream holds something to read: a materialization (for a partitioned one, any
# partition) or a request on this same tick. An asset that reads its upstream's files fails
# without them, as training_set did when a cadence tick came before the bootstrap's history
# backfill had exported any gold.
UPSTREAM_MATERIALIZED = dg.AutomationCondition.all_deps_match(
    ~dg.AutomationCondition.missing() | dg.AutomationCondition.will_be_requested()
).with_label("every upstream materialized")


def cron_tick_with_upstream(cron: str) -> dg.AutomationCondition:
    """A tick of ``cron`` that passed while every upstream was materialized, not yet requested.

    A tick that passes before then is dropped rather than kept for later: on a fresh install
    the bootstrap trains the first model itself, and a kept tick would fire on the first
    exported partition and train a second one beside it on a fraction of the history.

    Only a request uses a tick up, not the asset's update (as in since_last_handled()): the run
    of the previous tick, still going when this one passed or ending just before the first
    evaluation to see it, would take this tick's place and the cadence would skip a period.
    The tick and the request are each their own side of a since(), so that the request of the
    previous tick, seen by the same evaluation as this tick, counts as the earlier of the two
    (since() compares their times only when neither side is an AND or an OR).
    """
    tick = dg.AutomationCondition.cron_tick_passed(cron)
    not_requested = tick.since(dg.AutomationCondition.newly_requested())
    passed_with_upstream = (tick & UPSTREAM_MATERIALIZED).since(tick & ~UPSTREAM_MATERIALIZED)
    return (not_requested & passed_with_upstream).with_label(f"cron_tick_with_upstream({cron})")


def once_per_tick(cron: str) -> dg.AutomationCondition:
    """Once per cron tick whatever the upstream did (once it has materialized at all): for
    frames rebuilt from what is there."""
    return cron_tick_with_upstream(cron) & ~dg.AutomationCondition.in_progress()


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
