"""The Dagster UI as a quant uses it, clicked through in Chromium against a real `dagster dev`:
lineage, one partition materialized through the partition picker, a backfill, and freshness.

The tests share one instance and run in file order (each builds on the one before): the
backfill's gold features are what `online_features` serves when the freshness test runs it.
"""

from __future__ import annotations

import re

import pytest

from streaming.simulator.synthetic import SyntheticMarket
from tests.e2e.conftest import DagsterUI, Screenshots

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

LAKEHOUSE = ("raw_trades", "bronze_trades", "silver_trades", "bars_1s", "bars_1m")
RUN_TIMEOUT_MS = 240_000  # one run waits for a process start; the 2-core machine may be busy
TERMINAL_RUN = re.compile(r"^(Success|Failure|Canceled)$")


def exactly(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def link(page, text: str):
    """A link by its visible text. Not by accessible name: Dagster's icons add theirs to it, and
    truncated names carry a hidden copy of the text (for measuring), hence the optional repeat."""
    name = re.escape(text)
    return (
        page.get_by_role("link").filter(has_text=re.compile(rf"^\s*{name}(\s*{name})?\s*$")).first
    )


def go_to(page, section: str) -> None:
    """Click a section of Dagster's left navigation (Runs, Catalog, Jobs, Lineage, ...)."""
    link(page, section).click()


def open_asset(page, name: str) -> None:
    """Open an asset's page, where the Catalog links it (``/assets/<name>``). Not by clicking
    its row: the Catalog draws only the rows in view, and the asset list outgrew the window."""
    page.goto(f"/assets/{name}")


def launched_id(page, pattern: str) -> str:
    """The id in the toast Dagster shows after a launch ("Launched run 1a2b3c4d")."""
    toast = page.get_by_text(re.compile(pattern)).first
    toast.wait_for(state="visible", timeout=60_000)
    found = re.search(pattern, toast.inner_text())
    assert found, f"no id in the launch toast: {toast.inner_text()!r}"
    return found.group(1)


def pick_partitions(page, dates: str, instrument: str):
    """Fill the launch dialog's partition picker: a date (range) and one instrument."""
    from playwright.sync_api import expect

    dialog = page.locator(".dagster-dialog").filter(has_text="Partition selection")
    expect(dialog).to_be_visible()
    date_field = dialog.get_by_placeholder(re.compile(r"^ex: "))
    date_field.fill(dates)
    date_field.press("Enter")
    dialog.get_by_text("Select a partition or create one").click()
    picker = page.locator(".dagster-popover").filter(has_text=instrument)
    picker.locator("label").filter(has_text=instrument).click()
    expect(picker.get_by_role("checkbox", name=instrument)).to_be_checked()
    page.keyboard.press("Escape")
    return dialog


def open_run(page, run_id: str) -> str:
    """Open a run from the Runs list and wait for its final status, which is returned."""
    go_to(page, "Runs")
    link(page, run_id).click()
    status = page.get_by_text(TERMINAL_RUN).filter(visible=True).first
    status.wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    return status.inner_text().strip()


def metadata_value(page, label: str) -> str:
    """A value of the metadata table shown for a materialization."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=label, exact=True))
    return row.first.inner_text().replace(label, "", 1).strip()


def open_lakehouse_lineage(page) -> None:
    """Lineage, with the lakehouse group opened in the graph."""
    from playwright.sync_api import expect

    page.goto("/")
    go_to(page, "Lineage")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in ("lakehouse", "features", "models"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    # The graph starts with groups collapsed; double-clicking a group node opens it.
    page.get_by_text("lakehouse", exact=True).filter(visible=True).last.dblclick()


def test_lineage_shows_the_lakehouse_assets(page, screenshots: Screenshots):
    from playwright.sync_api import expect

    open_lakehouse_lineage(page)
    for asset in LAKEHOUSE:
        expect(page.get_by_text(asset, exact=True).filter(visible=True).first).to_be_visible()
    assert "lakehouse" in page.url  # the expanded group is kept in the address
    screenshots.save(page, "asset-graph")


def test_materialize_one_silver_partition_with_its_upstream(
    page, dagster_ui: DagsterUI, screenshots: Screenshots
):
    from playwright.sync_api import expect

    day = dagster_ui.day(1)
    open_lakehouse_lineage(page)
    page.get_by_text("raw_trades", exact=True).filter(visible=True).first.click()
    for asset in ("bronze_trades", "silver_trades"):
        node = page.get_by_text(asset, exact=True).filter(visible=True).first
        node.click(modifiers=["Shift"])
    page.get_by_role("button", name="Materialize selected (3)").click()

    dialog = pick_partitions(page, day.isoformat(), dagster_ui.instrument)
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch 1 run").click()
    run_id = launched_id(page, r"Launched run (\w+)")

    assert open_run(page, run_id) == "Success"
    partition = f"{day.isoformat()}|{dagster_ui.instrument}"
    expect(page.get_by_text(f"partition: {partition}").first).to_be_visible()

    # The partition's page shows what silver wrote: every trade the exchange published that day.
    open_asset(page, "silver_trades")
    page.get_by_role("tab", name="Partitions").click()
    page.get_by_text(day.isoformat(), exact=True).filter(visible=True).first.click()
    page.get_by_text(dagster_ui.instrument, exact=True).filter(visible=True).first.click()
    expect(page.get_by_text(partition, exact=True).filter(visible=True).first).to_be_visible()
    expect(link(page, run_id)).to_be_visible()
    published = SyntheticMarket(
        seed=dagster_ui.seed, trades_per_day=dagster_ui.trades_per_day
    ).day_trades(dagster_ui.symbol, day)
    assert metadata_value(page, "rows") == str(published.height)
    assert metadata_value(page, "quarantine_rows") == "0"
    assert metadata_value(page, "table") == "silver.trades"
    screenshots.save(page, "silver-partition")


def test_backfill_two_days_from_the_ui(page, dagster_ui: DagsterUI, screenshots: Screenshots):
    from playwright.sync_api import expect

    first, last = dagster_ui.day(2), dagster_ui.day(3)
    page.goto("/")
    go_to(page, "Jobs")
    link(page, "lakehouse_daily").click()
    page.get_by_role("button", name="Materialize all").click()

    dialog = pick_partitions(
        page, f"[{first.isoformat()}...{last.isoformat()}]", dagster_ui.instrument
    )
    expect(dialog.get_by_text("2 partitions", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch backfill").click()
    backfill_id = launched_id(page, r"Created backfill (\w+)")

    go_to(page, "Runs")
    page.get_by_role("tab", name="Backfills").click()
    link(page, backfill_id).click()
    # The backfill page polls; its table counts runs in progress, succeeded and failed.
    expect(page.get_by_text("100% completed")).to_be_visible(timeout=RUN_TIMEOUT_MS * 2)
    row = page.get_by_role("row").filter(has_text="lakehouse_daily")
    in_progress_succeeded_failed = [c.strip() for c in row.get_by_role("cell").all_inner_texts()]
    assert in_progress_succeeded_failed[-3:] == ["0", "2", "0"]
    screenshots.save(page, "backfill")

    # Both days are materialized on silver's partition bar, next to the single day from before.
    open_asset(page, "silver_trades")
    page.get_by_role("tab", name="Partitions").click()
    expect(page.get_by_text(re.compile(r"^Materialized \(3\)$"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Failed \(0\)$"))).to_be_visible()


def test_freshness_of_the_online_store_and_models(
    page, dagster_ui: DagsterUI, screenshots: Screenshots
):
    from playwright.sync_api import expect

    page.goto("/")
    # Models never trained on this fresh instance: policies shown, nothing evaluated yet.
    for model, policy in (
        ("full_model", "Fails if more than 7 hours since last materialization"),
        ("incremental_model", "Fails if more than 15 minutes since last materialization"),
    ):
        open_asset(page, model)
        expect(page.get_by_text(policy)).to_be_visible()
        expect(page.get_by_text("Not evaluated").first).to_be_visible()
        # (the automation tries the model chain every 5 minutes; without training data it fails)
        expect(page.get_by_text("No materializations").first).to_be_visible()

    # The online store, materialized from the backfilled gold features, turns fresh.
    open_asset(page, "online_features")
    expect(page.get_by_text("Fails if more than 2 days since last materialization")).to_be_visible()
    expect(
        page.get_by_text("Warns if more than 26 hours since last materialization")
    ).to_be_visible()
    page.get_by_role("button").filter(has_text=exactly("Materialize")).click()
    run_id = launched_id(page, r"Launched run (\w+)")
    assert open_run(page, run_id) == "Success"

    open_asset(page, "online_features")
    passing = page.get_by_text("Passing", exact=True).first
    for _ in range(12):  # the freshness daemon evaluates every few seconds; the page is static
        if passing.is_visible():
            break
        page.wait_for_timeout(5_000)
        page.reload()
        page.get_by_text("Freshness policy").first.wait_for()
    expect(passing).to_be_visible()
    expect(page.get_by_text("Not evaluated")).to_have_count(0)
    # Served from the backfill's newest day: its last bar is the online store's watermark.
    assert f'"{dagster_ui.instrument}"' in metadata_value(page, "symbols_served")
    # The automation may have materialized the store too, from fewer days, moments earlier: the
    # page shows the newest materialization once the UI has it.
    newest_day = dagster_ui.day(3).strftime("%b %-d,")
    for _ in range(6):
        if newest_day in metadata_value(page, "watermark"):
            break
        page.wait_for_timeout(5_000)
        page.reload()
        page.get_by_text("Freshness policy").first.wait_for()
    assert newest_day in metadata_value(page, "watermark")
    screenshots.save(page, "freshness")
