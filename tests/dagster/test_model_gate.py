"""The evaluation gate holds on every path into @challenger: real Dagster automation, the
bootstrap's in-process run, and a run started by hand, over models trained on frames whose label
is pure noise (the gate fails them) or depends on two features (the gate passes them), with a
real sqlite MLflow."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import dagster as dg
from mlflow import MlflowClient

from trading_assets.bootstrap import MODEL_CHAIN, chain_outcome
from trading_assets.definitions import defs as lazy_defs
from trading_assets.defs.models.registry import (
    MODEL_SHA256,
    EvaluationGateConfig,
    beats_baselines,
    challenger_model,
    onnx_model,
    onnx_parity,
    registered_model,
)
from trading_assets.defs.models.training import (
    full_model,
    incremental_model,
    recent_training_rows,
)
from trading_assets.lib import storage
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.training import write_training_frame
from trading_assets.lib.models import artifacts as files
from trading_assets.lib.models import metrics
from trading_assets.lib.models.registry import (
    FAILED,
    GATE_REASON_TAG,
    GATE_RUN_TAG,
    GATE_TAG,
    PASSED,
)
from trading_assets.resources import FeastResource, MlflowResource

from .test_models_assets import RECENT_ROWS, synthetic_frame

# The bootstrap's own model chain from the full model on, but for the steps that read a
# lakehouse (the newest rows are written as recent_training_rows leaves them).
CHAIN = [a for a in MODEL_CHAIN[MODEL_CHAIN.index(full_model) :] if a is not recent_training_rows]
UP_TO_THE_GATE = [asset for asset in CHAIN if asset is not challenger_model]
REGISTRATION = [onnx_model, onnx_parity, registered_model, beats_baselines]
CHAIN_ASSETS = (full_model, incremental_model, onnx_model, registered_model, challenger_model)
CHECKS_OF = {onnx_model: onnx_parity, registered_model: beats_baselines}
# Minutes before a cadence tick (06:00) of the models, so only eager conditions can fire.
CLOCK_START = dt.datetime(2026, 3, 2, 5, 50, tzinfo=dt.UTC)


class GateWorld:
    """Training frames, a real MLflow store and a Dagster instance whose automation is
    evaluated like the daemon's; what a tick requests among the model assets is run at once."""

    def __init__(self, tmp_path: Path, informative: bool) -> None:
        self.feast = FeastResource.local(tmp_path / "feast")
        frame = synthetic_frame(seed=3, informative=informative)
        write_training_frame(frame, self.feast.training_dir(), spec.TRAINING_SERVICE)
        recent = frame.sort(spec.TIMESTAMP_FIELD).tail(RECENT_ROWS)
        write_training_frame(recent, self.feast.training_dir(), "recent_" + spec.TRAINING_SERVICE)
        self.mlflow = MlflowResource.local(tmp_path / "mlflow", tmp_path / "models")
        self.instance = dg.DagsterInstance.ephemeral()
        self.definitions = lazy_defs()
        self.cursor = None
        self.minutes = 0
        self.alias_history: list[dict[str, str]] = []

    def materialize(self, assets: list) -> dg.ExecuteInProcessResult:
        config = {"ops": {"full_model": {"config": {"n_trees": 60}}}}
        return dg.materialize(
            assets,
            instance=self.instance,
            resources={"feast": self.feast, "mlflow": self.mlflow},
            run_config=config if full_model in assets else {},
            raise_on_error=False,
        )

    def tick(self) -> set[str]:
        """One automation evaluation; the model assets it requests run with their checks."""
        result = dg.evaluate_automation_conditions(
            defs=self.definitions,
            instance=self.instance,
            cursor=self.cursor,
            evaluation_time=CLOCK_START + dt.timedelta(minutes=self.minutes),
        )
        self.cursor, self.minutes = result.cursor, self.minutes + 1
        requested = [asset for asset in CHAIN_ASSETS if result.get_num_requested(asset.key)]
        if requested:
            checks = [CHECKS_OF[asset] for asset in requested if asset in CHECKS_OF]
            self.materialize([*requested, *checks])
        self.alias_history.append(self.aliases())
        return {asset.key.to_user_string() for asset in requested}

    def client(self) -> MlflowClient:
        uri = self.mlflow.tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def aliases(self) -> dict[str, str]:
        try:
            model = self.client().get_registered_model(self.mlflow.model_name)
        except Exception:  # nothing registered yet
            return {}
        return {alias: str(version) for alias, version in model.aliases.items()}

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client().get_model_version(self.mlflow.model_name, version).tags)


def gate_of(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "beats_baselines"
    ]
    return evaluation


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The run's one step failure, with the errors that caused it."""
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    error = failure.step_failure_data.error
    return "" if error is None else error.to_string()


def test_a_version_that_fails_the_gate_never_gets_an_alias_on_any_path(tmp_path):
    world = GateWorld(tmp_path, informative=False)
    world.tick()  # the daemon was evaluating before the first model landed

    # The bootstrap's in-process run of the whole chain, then automation as the daemon runs it.
    bootstrap = world.materialize(CHAIN)
    after_bootstrap = [world.tick() for _ in range(3)]
    # A run started by hand up to the gate (a second version of the same model file).
    by_hand = world.materialize(REGISTRATION)
    after_by_hand = [world.tick() for _ in range(3)]
    # challenger_model started by hand (the UI, or `dagster asset materialize`).
    forced = world.materialize([challenger_model])

    assert not gate_of(bootstrap).passed and not gate_of(by_hand).passed
    assert "failed the evaluation gate (beats_baselines)" in chain_outcome(bootstrap)
    assert "no @challenger" in chain_outcome(bootstrap)
    assert all("challenger_model" not in requested for requested in after_bootstrap)
    assert all("challenger_model" not in requested for requested in after_by_hand)
    assert not forced.success
    refusal = "signal version 2 may not hold @challenger: it failed the evaluation gate"
    assert refusal in failure_text(forced)
    # Each verdict sits on the version its own run registered, with that run's id.
    for version, run in (("1", bootstrap), ("2", by_hand)):
        assert world.tags(version)[GATE_TAG] == FAILED
        assert world.tags(version)[GATE_RUN_TAG] == run.run_id
    assert world.alias_history and all(aliases == {} for aliases in world.alias_history)
    assert world.aliases() == {}


def test_automation_takes_a_version_that_passed_the_gate_to_challenger(tmp_path):
    world = GateWorld(tmp_path, informative=True)
    world.tick()

    by_hand = world.materialize(UP_TO_THE_GATE)
    requested = [world.tick() for _ in range(3)]

    assert gate_of(by_hand).passed
    assert requested == [{"challenger_model"}, set(), set()]
    assert world.tags("1")[GATE_TAG] == PASSED
    assert world.aliases() == {"challenger": "1"}


def test_the_gate_judges_only_a_version_registered_in_its_own_run(tmp_path):
    mlflow = MlflowResource.local(tmp_path / "mlflow", tmp_path / "models")

    result = dg.materialize(
        [registered_model, beats_baselines],
        selection=dg.AssetSelection.checks(beats_baselines),
        resources={"mlflow": mlflow, "feast": FeastResource.local(tmp_path / "feast")},
        raise_on_error=False,
    )

    assert not result.success
    assert "registered no model version" in failure_text(result)


def test_the_gate_does_not_judge_a_model_file_replaced_after_its_registration(tmp_path):
    # Arrange: a model that passes the gate; then a retrain from another run lands on the model
    # file between registered_model (which read it) and the check (which reads it again)
    world = GateWorld(tmp_path, informative=True)
    world.materialize([full_model, incremental_model])
    incremental_file = world.mlflow.model_location(files.INCREMENTAL_FILE)
    registered_digest = hashlib.sha256(storage.read_bytes(incremental_file)).hexdigest()

    @dg.success_hook
    def retrain_lands(context: dg.HookContext) -> None:
        if context.op.name == registered_model.op.name:
            retrained = storage.read_bytes(world.mlflow.model_location(files.FULL_FILE))
            files.write_atomic(incremental_file, retrained)

    job = dg.define_asset_job(
        "register", dg.AssetSelection.assets(onnx_model, registered_model), hooks={retrain_lands}
    )
    definitions = dg.Definitions(
        assets=[full_model, incremental_model, onnx_model, registered_model, challenger_model],
        asset_checks=[onnx_parity, beats_baselines],
        jobs=[job],
        resources={"feast": world.feast, "mlflow": world.mlflow},
    )

    # Act
    result = definitions.resolve_job_def("register").execute_in_process(
        instance=world.instance, raise_on_error=False
    )

    # Assert: the registration recorded the digest of the file it read; the check refused to
    # judge another file, loudly, and the version's verdict says why
    (registration,) = result.asset_materializations_for_node(registered_model.op.name)
    assert registration.metadata[MODEL_SHA256].value == registered_digest
    assert not result.success
    assert "not judged: the incremental model file changed" in failure_text(result)
    tags = world.tags("1")
    assert tags[GATE_TAG] == FAILED and registered_digest in tags[GATE_REASON_TAG]
    assert world.aliases() == {}


def test_the_gate_s_p_value_bound_defaults_to_the_evaluation_s_own(monkeypatch):
    monkeypatch.delenv("MODEL_GATE_MAX_IC_P_VALUE", raising=False)
    default = EvaluationGateConfig().max_ic_p_value
    monkeypatch.setattr(metrics, "MAX_IC_P_VALUE", 0.05)

    assert default == 0.01
    assert EvaluationGateConfig().max_ic_p_value == 0.05
