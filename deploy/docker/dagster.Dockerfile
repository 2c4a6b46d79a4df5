# syntax=docker/dockerfile:1.7
# The Dagster side: code server, webserver, daemon and run workers (DockerRunLauncher in compose,
# K8sRunLauncher under Helm), the metrics exporter and the MLflow server, all from one image.
# Build from the repository root: docker build -f deploy/docker/dagster.Dockerfile -t trading-assets-dagster .
# tests/deploy/test_images.py runs this file's `uv sync` and `RUN python` lines and its command in
# a clean virtual environment, so a broken install or entrypoint fails CI.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PYTHON=python3.11
WORKDIR /app
# The locked dependencies alone, in a layer of their own: it is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-install-project --no-default-groups --group orchestration
# Then the project itself (installed editable: its code reads feature_repo/ beside the packages).
COPY trading_assets ./trading_assets
COPY streaming ./streaming
COPY sensors ./sensors
COPY feature_repo ./feature_repo
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --group orchestration

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 trading \
    && useradd --uid 10001 --gid trading --home-dir /home/trading --create-home trading \
    && install -d -o trading -g trading /var/lib/trading /opt/dagster/dagster_home
COPY --from=build --chown=trading:trading /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/trading \
    TRADING_DATA_DIR=/var/lib/trading \
    DAGSTER_HOME=/opt/dagster/dagster_home
WORKDIR /app
USER 10001:10001
# The code location loads in this environment (every asset, check, sensor and schedule).
RUN python -c "import trading_assets.definitions, trading_assets.metrics_exporter, mlflow.server"
EXPOSE 3000 4000 5000 9464
CMD ["dagster", "api", "grpc", "-m", "trading_assets.definitions", "-h", "0.0.0.0", "-p", "4000"]
