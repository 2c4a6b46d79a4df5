# syntax=docker/dockerfile:1.7
# The streaming sidecar (and the exchange simulator): the project's own dependencies only, with
# no Dagster, no full MLflow (mlflow-skinny's registry client) and no Feast offline extras.
# Build from the repository root: docker build -f deploy/docker/sidecar.Dockerfile -t trading-assets-sidecar .
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
    uv sync --frozen --no-install-project --no-default-groups
# Then the project itself (installed editable: its code reads feature_repo/ beside the packages).
COPY trading_assets ./trading_assets
COPY streaming ./streaming
COPY sensors ./sensors
COPY feature_repo ./feature_repo
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 trading \
    && useradd --uid 10001 --gid trading --home-dir /home/trading --create-home trading \
    && install -d -o trading -g trading /var/lib/trading
COPY --from=build --chown=trading:trading /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/trading \
    TRADING_DATA_DIR=/var/lib/trading
WORKDIR /app
USER 10001:10001
# Every module the sidecar imports lazily (the model watcher, the silver pull, the online writer,
# the simulator) resolves in this environment.
RUN python -c "import streaming.app, streaming.model_watcher, streaming.watcher_process, streaming.silver_pull, streaming.online.writer, streaming.landing.process, streaming.simulator.server"
VOLUME /var/lib/trading
EXPOSE 8700
CMD ["python", "-m", "streaming"]
