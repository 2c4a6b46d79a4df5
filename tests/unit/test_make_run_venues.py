"""``make run VENUES=binance,coinbase``: the Makefile spells the simulator's symbols at each venue
and every process that talks to the market gets those instruments; an unknown venue stops make
with the reason, and targets that trade nothing never need the locked environment."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO_ROOT
from tests.unit.test_launcher import args_of_make_run, services_of_make_run
from trading_assets.launcher import banner, check_settings
from trading_assets.lib.settings import Settings

pytestmark = [pytest.mark.venues]

MARKET_SIDES = ("dagster", "sidecar", "bootstrap")
BINANCE = "BINANCE:BTCUSDT,BINANCE:ETHUSDT"
COINBASE = "COINBASE:BTC-USD,COINBASE:ETH-USD"
KRAKEN = "KRAKEN:BTC/USD,KRAKEN:ETH/USD"


def make(*words: str) -> subprocess.CompletedProcess[str]:
    """``make -o .venv/.synced WORDS`` in the repository (never remaking the environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "MAKE"))}
    return subprocess.run(
        ["make", "-o", ".venv/.synced", *words],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


COINBASE_PAIRS = "COINBASE:BTC-USD=BINANCE:BTCUSDT,COINBASE:ETH-USD=BINANCE:ETHUSDT"
KRAKEN_PAIRS = "KRAKEN:BTC/USD=BINANCE:BTCUSDT,KRAKEN:ETH/USD=BINANCE:ETHUSDT"


@pytest.mark.parametrize(
    ("venues", "expected", "pairs"),
    [
        (None, BINANCE, ""),
        ("binance,coinbase", f"{BINANCE},{COINBASE}", COINBASE_PAIRS),
        (
            "binance,coinbase,kraken",
            f"{BINANCE},{COINBASE},{KRAKEN}",
            f"{COINBASE_PAIRS},{KRAKEN_PAIRS}",
        ),
        ("coinbase,kraken", f"{COINBASE},{KRAKEN}", ""),  # no Binance spot: nothing leads
    ],
)
def test_every_process_on_the_market_trades_the_symbols_at_each_venue(
    tmp_path, venues: str | None, expected: str, pairs: str
):
    variables = {} if venues is None else {"VENUES": venues}
    args = args_of_make_run(tmp_path, **variables)
    services = services_of_make_run(tmp_path, **variables)

    for name in MARKET_SIDES:
        env = services[name].env
        assert env["TRADING_INSTRUMENTS"] == expected, name
        assert Settings.from_environ(env).instruments == tuple(expected.split(",")), name
        # Each other venue's instrument is paired with Binance spot's, the simulator's leader
        assert env["TRADING_CROSS_PAIRS"] == pairs, name
        wanted = dict(pair.split("=") for pair in pairs.split(",") if pair)
        assert Settings.from_environ(env).cross_references == wanted, name
    assert check_settings(args) is None
    assert f"instruments  {expected.replace(',', ', ')}\n" in banner(args)
    simulator = services["simulator"].argv
    assert simulator[simulator.index("--symbols") + 1] == "BTCUSDT,ETHUSDT"


def test_an_unknown_venue_stops_make_run_with_the_venues_there_are():
    dry_run = make("-n", "run", "VENUES=binance,nasdaq")

    assert dry_run.returncode != 0
    assert "trading_assets.launcher" not in dry_run.stdout
    assert "VENUES=binance,nasdaq" in dry_run.stderr
    assert "unknown venue 'nasdaq'" in dry_run.stderr
    assert "coinbase" in dry_run.stderr and "kraken" in dry_run.stderr


def test_a_symbol_a_venue_cannot_spell_stops_make_sidecar():
    dry_run = make("-n", "sidecar", "VENUES=coinbase", "SIM_SYMBOLS=BTCUSDT,BTCJPY")

    assert dry_run.returncode != 0
    assert "COINBASE has no market for BTCJPY" in dry_run.stderr


def test_make_sidecar_and_make_sim_use_the_venues_instruments():
    sidecar = make("-n", "sidecar", "VENUES=kraken")
    sim = make("-n", "sim", "VENUES=binance,kraken")

    assert sidecar.returncode == 0, sidecar.stderr
    assert f"TRADING_INSTRUMENTS={KRAKEN} " in sidecar.stdout
    assert sim.returncode == 0, sim.stderr
    assert f"{BINANCE},{KRAKEN}" in sim.stdout


def test_targets_that_trade_nothing_never_need_the_locked_environment():
    # Before `make bootstrap` there is no interpreter to spell the instruments with.
    missing = "PYTHON=.venv/bin/no-such-python"

    help_ = make("help", missing)
    lint = make("-n", "lint", missing)
    sidecar = make("-n", "sidecar", missing)

    assert help_.returncode == 0 and "run" in help_.stdout, help_.stderr
    assert lint.returncode == 0, lint.stderr
    assert sidecar.returncode != 0
    assert "no-such-python is missing: run `make bootstrap`" in sidecar.stderr
