"""The freshness windows the README promises are set on the assets the code location loads."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from trading_assets.definitions import defs as lazy_defs

MINUTES = dt.timedelta(minutes=1)
HOURS = dt.timedelta(hours=1)
# asset → (fail window, warn window or None)
EXPECTED_WINDOWS = {
    "silver_trades": (26 * HOURS, 10 * MINUTES),
    "features": (27 * HOURS, 15 * MINUTES),
    "online_features": (50 * HOURS, 26 * HOURS),
    "full_model": (7 * HOURS, None),
    "incremental_model": (15 * MINUTES, 7 * MINUTES),
}


def test_freshness_policies_carry_the_documented_windows():
    specs = {spec.key.to_user_string(): spec for spec in lazy_defs().resolve_all_asset_specs()}

    policies = {name: specs[name].freshness_policy for name in EXPECTED_WINDOWS}

    assert policies == {
        name: dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)
        for name, (fail, warn) in EXPECTED_WINDOWS.items()
    }
