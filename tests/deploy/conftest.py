"""Fixtures of the deploy/ tests: the images' environments, replayed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.images import DOCKERFILES, ImageEnv, build_image_env


@pytest.fixture(scope="session")
def image_envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ImageEnv]:
    """Each image ("dagster", "sidecar") as its Dockerfile installs it, in a clean environment."""
    root = tmp_path_factory.mktemp("images")
    return {image: build_image_env(image, root / image) for image in DOCKERFILES}


@pytest.fixture(scope="session")
def image_bins(image_envs: dict[str, ImageEnv]) -> dict[str, Path]:
    """Each image's ``bin/`` folder: the commands its containers can run."""
    return {image: env.bin for image, env in image_envs.items()}
