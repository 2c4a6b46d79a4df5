"""The Dagster code location: everything under defs/ plus the sensors package."""

from pathlib import Path

import dagster as dg

from trading_assets.resources import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=build_resources()),
    )
