-- The databases of the production profile (trading_assets/servers/services.py DATABASES):
-- the Dagster instance, the Iceberg catalog, Feast's registry and MLflow's store. The postgres
-- image runs this once, when it initialises an empty data volume, as POSTGRES_USER.
CREATE DATABASE dagster;
CREATE DATABASE iceberg;
CREATE DATABASE feast;
CREATE DATABASE mlflow;
