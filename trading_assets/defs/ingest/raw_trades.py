"""raw_trades: Binance's daily trade zip for one day × symbol, verified and kept as published."""

import datetime as dt
import time

import dagster as dg

from trading_assets.defs.ingest.partitions import day_and_instrument, trade_partitions
from trading_assets.defs.store_retries import retry_on_store_outage
from trading_assets.defs.watermark import watermark_metadata
from trading_assets.lib.lakehouse.bulk import ProgressCallback, RawFile, bulk_symbol
from trading_assets.lib.lakehouse.bulk_checks import BadBulkFileError
from trading_assets.lib.lakehouse.pipeline import Lakehouse, raw_event_range
from trading_assets.resources.binance_bulk import BinanceBulkResource
from trading_assets.resources.iceberg import IcebergCatalogResource

PROGRESS_STEP = 0.1  # log every 10 %


@dg.asset(
    partitions_def=trade_partitions,
    group_name="lakehouse",
    kinds={"binance", "zip"},
    # Binance publishes a day's file the next morning (UTC): the daily_bulk_ingest schedule
    # requests yesterday's partitions; older days are backfills.
    retry_policy=dg.RetryPolicy(max_retries=2, delay=60),
)
@retry_on_store_outage
def raw_trades(
    context: dg.AssetExecutionContext,
    iceberg: IcebergCatalogResource,
    binance_bulk: BinanceBulkResource,
) -> dg.MaterializeResult:
    """Daily trades zip from data.binance.vision, verified (sha256, zip, rows), kept in raw.

    Other venues publish no daily files: their days are built from the trades the sidecar
    landed, and this step says so."""
    day, symbol = day_and_instrument(context.partition_key)
    if bulk_symbol(symbol) is None:
        return dg.MaterializeResult(
            metadata={"bulk_file": f"none: {symbol}'s venue publishes no daily trade files"},
            data_version=dg.DataVersion("no-bulk-file"),
        )
    next_report = [PROGRESS_STEP]
    started = time.monotonic()

    def report(done: int, total: int | None) -> None:
        if total and done / total >= next_report[0]:
            context.log.info(f"{symbol} {day}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
            next_report[0] += PROGRESS_STEP

    lake = iceberg.lakehouse()
    raw = _fetch(binance_bulk, lake, symbol, day, report)
    # The same (unvalidated) range bronze reports; silver's is the validated one.
    _, last_event = raw_event_range(lake, raw.raw_uri)
    return dg.MaterializeResult(
        metadata={
            "source_url": dg.MetadataValue.url(raw.source_url),
            "raw_uri": dg.MetadataValue.path(raw.raw_uri),
            "sha256": raw.sha256,
            "size_bytes": dg.MetadataValue.int(raw.size_bytes),
            "downloaded": raw.downloaded,
            "rows": dg.MetadataValue.int(raw.rows),
            "seconds": round(time.monotonic() - started, 3),
            **watermark_metadata(last_event, f"{raw.file_name} holds no trade time"),
        },
        data_version=dg.DataVersion(raw.sha256),
    )


def _fetch(
    binance_bulk: BinanceBulkResource,
    lake: Lakehouse,
    symbol: str,
    day: dt.date,
    report: ProgressCallback,
) -> RawFile:
    """The day's file, or a run failure that names the bad file and why, without retries: its
    sha256 matches what the venue published, so a retry would fetch the same bytes."""
    try:
        return binance_bulk.fetch_daily_trades(lake, symbol, day, report)
    except BadBulkFileError as error:
        metadata: dict[str, str | int] = {"file": error.file, "problem": str(error.problem)}
        if error.line is not None:
            metadata["line"] = error.line
        raise dg.Failure(str(error), metadata=metadata, allow_retries=False) from error
