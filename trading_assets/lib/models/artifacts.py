"""Trained models between pipeline steps: one JSON file per model, replaced atomically.

Models live at a location (a folder locally, an ``s3://`` prefix in production; see
:mod:`trading_assets.lib.storage`), never on a disk the next step is assumed to share. A file
holds the booster (XGBoost's own JSON), its feature order, label, parameters, training span and
sizes, gain importance and, for full models, the walk-forward report, so the next step can
continue boosting, export or register the model without retraining it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from typing import Any

import xgboost as xgb

from trading_assets.lib import storage
from trading_assets.lib.models.evaluation import FoldResult, WalkForwardReport
from trading_assets.lib.models.metrics import BASELINES, FEE_BP, Comparison, Metrics
from trading_assets.lib.models.training import HoldoutReport, TrainedModel
from trading_assets.lib.settings import ObjectStore

FULL_FILE = "full_model.json"
INCREMENTAL_FILE = "incremental_model.json"
ONNX_FILE = "model.onnx"


def write_atomic(location: str, data: bytes, store: ObjectStore | None = None) -> str:
    """Replace the file at ``location`` with ``data``; a reader sees the old or the new bytes."""
    return storage.write_bytes_atomic(location, data, store)


def _comparison_to_dict(value: Comparison) -> dict[str, Any]:
    return {
        "rows": value.rows,
        "pnl_rows": value.pnl_rows,
        "fee_bp": value.fee_bp,
        "spread_bps": value.spread_bps,
        **{name: getattr(value, name).as_dict() for name in ("model", *BASELINES)},
    }


def _comparison_from_dict(value: dict[str, Any]) -> Comparison:
    # Files written before the cost-aware evaluation lack its fields: they read as unknown
    # (NaN), which no gate passes, until the next full training rewrites them.
    def metrics(raw: dict[str, float] | None) -> Metrics:
        raw = raw or {}
        return Metrics(
            ic=float(raw.get("ic", math.nan)),
            ic_p_value=float(raw.get("ic_p_value", math.nan)),
            hit_rate=float(raw.get("hit_rate", math.nan)),
            rmse=float(raw.get("rmse", math.nan)),
            pnl=float(raw.get("pnl", math.nan)),
            trades=int(raw.get("trades", 0)),
            turnover=float(raw.get("turnover", math.nan)),
        )

    return Comparison(
        rows=int(value["rows"]),
        pnl_rows=int(value["pnl_rows"]),
        model=metrics(value["model"]),
        zero=metrics(value["zero"]),
        last=metrics(value["last"]),
        buy_hold=metrics(value.get("buy_hold")),
        fee_bp=float(value.get("fee_bp", FEE_BP)),
        spread_bps=float(value.get("spread_bps", math.nan)),
    )


def report_to_dict(report: WalkForwardReport) -> dict[str, Any]:
    """A walk-forward report as plain JSON values."""
    return {
        "fee_bp": report.fee_bp,
        "embargo_s": report.embargo_s,
        "pooled": _comparison_to_dict(report.pooled),
        "folds": [
            {
                "number": f.number,
                "train_rows": f.train_rows,
                "test_rows": f.test_rows,
                "test_start": f.test_start.isoformat(),
                "test_end": f.test_end.isoformat(),
                "comparison": _comparison_to_dict(f.comparison),
            }
            for f in report.folds
        ],
        "sample_predicted": list(report.sample_predicted),
        "sample_realized": list(report.sample_realized),
    }


def report_from_dict(value: dict[str, Any]) -> WalkForwardReport:
    """The inverse of :func:`report_to_dict`."""
    folds = tuple(
        FoldResult(
            number=int(f["number"]),
            train_rows=int(f["train_rows"]),
            test_rows=int(f["test_rows"]),
            test_start=dt.datetime.fromisoformat(f["test_start"]),
            test_end=dt.datetime.fromisoformat(f["test_end"]),
            comparison=_comparison_from_dict(f["comparison"]),
        )
        for f in value["folds"]
    )
    return WalkForwardReport(
        folds=folds,
        pooled=_comparison_from_dict(value["pooled"]),
        fee_bp=float(value["fee_bp"]),
        embargo_s=float(value.get("embargo_s", 0.0)),
        sample_predicted=tuple(value.get("sample_predicted", ())),
        sample_realized=tuple(value.get("sample_realized", ())),
    )


def _holdout_to_dict(holdout: HoldoutReport) -> dict[str, Any]:
    return {
        "start": holdout.start.isoformat(),
        "full": _comparison_to_dict(holdout.full),
        "incremental": _comparison_to_dict(holdout.incremental),
        "ic_difference_se": holdout.ic_difference_se,
    }


def _holdout_from_dict(value: dict[str, Any]) -> HoldoutReport:
    return HoldoutReport(
        start=dt.datetime.fromisoformat(value["start"]),
        full=_comparison_from_dict(value["full"]),
        incremental=_comparison_from_dict(value["incremental"]),
        # Unknown in files written before it was recorded: the incremental gate fails them.
        ic_difference_se=float(value.get("ic_difference_se", math.nan)),
    )


def save_model(model: TrainedModel, location: str, store: ObjectStore | None = None) -> str:
    """Write ``model`` (booster and everything needed to use and audit it) to ``location``."""
    document = {
        "booster": bytes(model.booster.save_raw(raw_format="json")).decode(),
        "feature_names": list(model.feature_names),
        "label": model.label,
        "params": model.params,
        "kind": model.kind,
        "full_trees": model.full_trees,
        "training_rows": model.training_rows,
        "time_start": model.time_start.isoformat(),
        "time_end": model.time_end.isoformat(),
        "seconds": model.seconds,
        "report": None if model.report is None else report_to_dict(model.report),
        "importance_gain": model.importance_gain,
        "holdout": None if model.holdout is None else _holdout_to_dict(model.holdout),
        "full_time_start": None
        if model.full_time_start is None
        else model.full_time_start.isoformat(),
    }
    return write_atomic(location, json.dumps(document).encode(), store)


def load_model(location: str, store: ObjectStore | None = None) -> TrainedModel:
    """Read a model written by :func:`save_model`."""
    return load_model_and_digest(location, store)[0]


def load_model_and_digest(
    location: str, store: ObjectStore | None = None
) -> tuple[TrainedModel, str]:
    """:func:`load_model`, with the SHA-256 of the very bytes it read: the file may be replaced
    (atomically) at any moment, so a digest of a second read could describe another model."""
    data = storage.read_bytes(location, store)
    return _parse_model(data, location), hashlib.sha256(data).hexdigest()


def _parse_model(data: bytes, location: str) -> TrainedModel:
    document = json.loads(data)
    booster = xgb.Booster()
    booster.load_model(bytearray(document["booster"].encode()))
    names = tuple(document["feature_names"])
    booster.feature_names = list(names)
    kind = document["kind"]
    if kind not in ("full", "incremental"):
        raise ValueError(f"{location}: unknown model kind {kind!r}")
    report, holdout = document["report"], document.get("holdout")
    full_start = document.get("full_time_start")
    return TrainedModel(
        booster=booster,
        feature_names=names,
        label=document["label"],
        params=dict(document["params"]),
        kind=kind,
        full_trees=int(document["full_trees"]),
        training_rows=int(document["training_rows"]),
        time_start=dt.datetime.fromisoformat(document["time_start"]),
        time_end=dt.datetime.fromisoformat(document["time_end"]),
        seconds=float(document["seconds"]),
        report=None if report is None else report_from_dict(report),
        importance_gain={k: float(v) for k, v in document["importance_gain"].items()},
        holdout=None if holdout is None else _holdout_from_dict(holdout),
        full_time_start=None if full_start is None else dt.datetime.fromisoformat(full_start),
    )
