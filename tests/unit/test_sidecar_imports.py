"""What the sidecar process loads: no Dagster (design rule), and no training or export stack."""

from __future__ import annotations

import json
import subprocess
import sys

NEVER_IN_THE_SIDECAR = ("dagster", "xgboost", "onnxmltools", "sklearn")


def test_the_sidecar_loads_neither_dagster_nor_the_training_and_export_libraries():
    # Arrange: a fresh interpreter, so modules other tests loaded do not count
    probe = (
        "import json, sys; import streaming.app, streaming.__main__; "
        f"print(json.dumps([m for m in {NEVER_IN_THE_SIDECAR!r} if m in sys.modules]))"
    )

    # Act
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )

    # Assert
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
