"""The code location loads, validates, and keeps the layering the design asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from trading_assets.definitions import defs as lazy_defs
from trading_assets.lib.asset_names import ASSET_NAMES, JOB_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_defs() -> dg.Definitions:
    return lazy_defs()


def test_definitions_load_and_validate():
    definitions = load_defs()

    dg.Definitions.validate_loadable(definitions)
    repository = definitions.get_repository_def()
    assert repository.get_all_jobs(), "an implicit asset job should exist"


def test_every_asset_has_a_description():
    specs = load_defs().resolve_all_asset_specs()

    missing = [spec.key.to_user_string() for spec in specs if not (spec.description or "").strip()]

    assert specs, "the code location defines no assets"
    assert missing == []


def test_the_names_sensors_refer_to_are_assets_and_jobs_of_the_code_location():
    # Arrange
    definitions = load_defs()

    # Act
    keys = {spec.key for spec in definitions.resolve_all_asset_specs()}
    jobs = {job.name for job in definitions.get_repository_def().get_all_jobs()}

    # Assert: a renamed asset or job fails here, not silently in a sensor's tick
    assert [name for name in ASSET_NAMES if dg.AssetKey(name) not in keys] == []
    assert [name for name in JOB_NAMES if name not in jobs] == []


def test_lib_and_streaming_never_import_dagster():
    modules = sorted(
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in ("trading_assets/lib", "streaming")
        for path in (REPO_ROOT / package).rglob("*.py")
        if "__main__" not in path.name
    )
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster')))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    assert len(modules) > 2
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
