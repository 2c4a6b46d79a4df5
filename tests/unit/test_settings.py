"""The settings object: defaults per environment, and one-line errors that name the variable."""

from __future__ import annotations

import re

import pytest

from trading_assets.lib.settings import (
    PROJECT_ROOT,
    VARIABLES,
    Settings,
    SettingsError,
    load_settings,
    markdown_table,
)

PROD = {
    "TRADING_ENV": "prod",
    "TRADING_LANDING_URI": "s3://trading/landing",
    "ICEBERG_CATALOG_URI": "postgresql+psycopg2://trading:pg-secret@db:5432/iceberg",
    "ICEBERG_WAREHOUSE": "s3://trading/warehouse",
    "TRADING_MODELS_URI": "s3://trading/models",
    "FEAST_REGISTRY_PATH": "postgresql+psycopg://trading:pg-secret@db:5432/feast",
    "FEAST_OFFLINE_ROOT": "s3://trading/feast",
    "REDIS_CONNECTION_STRING": "redis:6379,password=redis-secret",
    "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    "AWS_ENDPOINT_URL": "http://s3:8333",
    "AWS_ACCESS_KEY_ID": "trading",
    "AWS_SECRET_ACCESS_KEY": "s3-secret",
}


def test_local_defaults_put_every_store_under_the_data_folder(tmp_path):
    settings = Settings.from_environ({"TRADING_DATA_DIR": str(tmp_path)})

    assert settings.environment == "local"
    assert settings.data_dir == tmp_path.resolve()
    assert settings.landing_dir == tmp_path.resolve() / "landing"
    assert settings.landing_uri == str(settings.landing_dir)
    assert settings.iceberg_catalog_uri.startswith(f"sqlite:///{tmp_path.resolve()}/iceberg/")
    assert settings.iceberg_warehouse == f"file://{tmp_path.resolve()}/iceberg/warehouse"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    assert settings.redis_connection_string is None
    assert settings.instruments == ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")


def test_the_default_data_folder_is_under_the_project():
    assert Settings.from_environ({}).data_dir == PROJECT_ROOT / "dagster_home" / "data"


def test_a_moved_landing_folder_moves_where_local_dagster_ingests_from(tmp_path):
    settings = Settings.from_environ({"TRADING_LANDING_DIR": str(tmp_path / "elsewhere")})

    assert settings.landing_uri == str(tmp_path / "elsewhere")


def test_prod_reads_every_store_from_the_environment():
    settings = Settings.from_environ(PROD)

    assert settings.environment == "prod"
    assert settings.landing_uri == "s3://trading/landing"
    assert settings.models_uri == "s3://trading/models"
    assert settings.s3.pyarrow_options() == {
        "region": "us-east-1",
        "endpoint_override": "s3:8333",
        "scheme": "http",
        "access_key": "trading",
        "secret_key": "s3-secret",
    }


def test_secrets_stay_out_of_the_settings_repr():
    text = repr(Settings.from_environ(PROD))

    for secret in ("pg-secret", "redis-secret", "s3-secret"):
        assert secret not in text
    assert set(Settings.from_environ(PROD).secrets()) >= {
        PROD["ICEBERG_CATALOG_URI"],
        PROD["REDIS_CONNECTION_STRING"],
        PROD["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"TRADING_ENV": "staging"}, "TRADING_ENV"),
        ({"ICEBERG_CATALOG_URI": "mysql://db/iceberg"}, "ICEBERG_CATALOG_URI"),
        ({"AWS_ENDPOINT_URL": "http://s3:83x3"}, "AWS_ENDPOINT_URL"),
        ({"MLFLOW_TRACKING_URI": "mlflow:5000"}, "MLFLOW_TRACKING_URI"),
        ({"AWS_SECRET_ACCESS_KEY": ""}, "AWS_SECRET_ACCESS_KEY"),
        ({"REDIS_CONNECTION_STRING": ""}, "REDIS_CONNECTION_STRING"),
        ({"TRADING_MODELS_URI": "/var/models"}, "TRADING_MODELS_URI"),
        ({"ICEBERG_WAREHOUSE": "file:///srv/warehouse"}, "ICEBERG_WAREHOUSE"),
        ({"TRADING_INSTRUMENTS": "BTCUSDT"}, "TRADING_INSTRUMENTS"),
        ({"TRADING_HISTORY_START": "2024-13-01"}, "TRADING_HISTORY_START"),
    ],
)
def test_a_bad_prod_value_fails_in_one_line_naming_the_variable(change, variable):
    with pytest.raises(SettingsError) as raised:
        Settings.from_environ(PROD | change)

    message = str(raised.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message
    assert "pg-secret" not in message and "s3-secret" not in message


def test_a_malformed_uri_error_hides_its_password():
    with pytest.raises(SettingsError, match=r"ICEBERG_CATALOG_URI") as raised:
        Settings.from_environ(PROD | {"ICEBERG_CATALOG_URI": "mysql://u:pg-secret@db/x"})

    assert "pg-secret" not in str(raised.value) and ":***@" in str(raised.value)


def test_tuning_variables_are_unset_unless_given_and_rollout_overrides_are_collected():
    settings = Settings.from_environ(
        {"MODEL_GATE_PNL_MARGIN": "none", "TRADING_ROLLOUT_CANARY_PERIOD_S": "120"}
    )

    assert settings.tuning("MODEL_GATE_PNL_MARGIN") == "none"
    assert settings.tuning("MODEL_GATE_IC_MARGIN") is None
    assert settings.rollout_overrides == {"canary_period_s": "120"}
    with pytest.raises(KeyError):
        settings.tuning("NOT_A_VARIABLE")


def test_the_readme_holds_the_table_of_every_variable():
    readme = (PROJECT_ROOT / "README.md").read_text()

    assert markdown_table() in readme, "regenerate: python -m trading_assets.lib.settings"


def test_the_example_env_file_names_every_variable_and_builds_valid_prod_settings():
    text = (PROJECT_ROOT / ".env.example").read_text()
    assigned = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE))
    mentioned = set(re.findall(r"^#? ?([A-Z0-9_]+)=", text, flags=re.MULTILINE))

    names = {variable.name for variable in VARIABLES}
    assert names <= mentioned, f"missing from .env.example: {sorted(names - mentioned)}"
    assert Settings.from_environ(assigned).environment == "prod"
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()


def test_the_process_settings_are_built_once_and_follow_a_changed_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path))
    first = load_settings()

    assert load_settings() is first
    monkeypatch.setenv("TRADING_INSTRUMENTS", "binance:solusdt")
    assert load_settings().instruments == ("BINANCE:SOLUSDT",)
    assert load_settings().data_dir == tmp_path.resolve()


ENVIRONMENT_READ = re.compile(r"os\.environ\.get\(|os\.environ\[|os\.getenv\(|environ\.get\(")
INTERNAL_HANDOFFS = {
    # The sidecar hands its silver-pull worker the catalog URI through the worker's environment
    # (not its command line, where a password would show in `ps`); the worker reads it back.
    "streaming/silver_pull.py",
}


def test_no_module_but_the_settings_reads_the_environment():
    readers = sorted(
        str(path.relative_to(PROJECT_ROOT))
        for package in ("trading_assets", "streaming", "sensors", "feature_repo")
        for path in (PROJECT_ROOT / package).rglob("*.py")
        if ENVIRONMENT_READ.search(path.read_text())
    )

    assert readers == sorted({"trading_assets/lib/settings.py", *INTERNAL_HANDOFFS})
