"""The Dagster code location: everything under defs/ plus the sensors package."""

from pathlib import Path

import dagster as dg

from sensors import sensor_definitions
from trading_assets.resources import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        sensor_definitions(),
        dg.Definitions(
            resources=build_resources(),
            # A lakehouse step takes about a second; a fresh process per step would cost several
            # times the work. Runs still go in parallel through the run queue (dagster.yaml).
            executor=dg.in_process_executor,
        ),
    )
