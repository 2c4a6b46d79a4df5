"""What the sidecar's serving process loads: no Dagster (design rule), no training or export
stack, and none of the heavy libraries it has no use for: MLflow (the model watcher child
process talks to the registry), SciPy, and the DuckDB offline store Feast would bring in."""

from __future__ import annotations

import json
import subprocess
import sys

from trading_assets.lib.settings import LOCAL_CATALOG_FILE

NEVER_IN_THE_SIDECAR = (
    "dagster", "xgboost", "onnxmltools", "sklearn", "mlflow", "scipy", "duckdb", "ibis",
)  # fmt: skip


def test_the_serving_process_loads_none_of_the_libraries_it_has_no_use_for(tmp_path):
    # Arrange: a fresh interpreter, so modules other tests loaded do not count; the sidecar is
    # built with a tracking URI (models on) on a fresh data root (Feast definitions applied)
    # that holds a local Iceberg catalog (level 4 on).
    (tmp_path / "iceberg").mkdir()
    (tmp_path / "iceberg" / LOCAL_CATALOG_FILE).touch()
    probe = f"""
import json, sys
from pathlib import Path
import streaming.__main__
from streaming.app import Sidecar
from streaming.config import SidecarConfig
config = SidecarConfig(
    instruments=("BINANCE:BTCUSDT",), ws_base_url="ws://unused", rest_base_url="http://unused",
    data_root=Path({str(tmp_path)!r}), tracking_uri="sqlite:///" + {str(tmp_path / "m.db")!r},
)
sidecar = Sidecar(config)
assert sidecar.slots is not None and sidecar.model_watcher is not None
assert sidecar.silver is not None
print(json.dumps([m for m in {NEVER_IN_THE_SIDECAR!r} if m in sys.modules]))
"""

    # Act
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=180
    )

    # Assert
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
