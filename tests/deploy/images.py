"""The project's Dockerfiles, read as data, and their install steps replayed outside Docker.

There is no Docker on the machines that run the tests, so an image is checked by doing what its
Dockerfile does: the files its build stage copies go into a fresh folder standing for ``/app``,
its ``uv sync`` lines run there (a clean virtual environment from the lock), and its final stage's
``RUN python …`` lines and command run in that environment. The one thing left out is bytecode
compilation (``UV_COMPILE_BYTECODE``), which costs time and changes no behaviour.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {
    "dagster": ROOT / "deploy" / "docker" / "dagster.Dockerfile",
    "sidecar": ROOT / "deploy" / "docker" / "sidecar.Dockerfile",
}
_MOUNT = re.compile(r"--mount=\S+\s*")


@dataclass
class Stage:
    """One ``FROM`` of a Dockerfile and the instructions under it, continuations joined."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def read_stages(dockerfile: Path) -> list[Stage]:
    """The stages of ``dockerfile``, with ``${ARG}`` defaults of the global ARGs filled in."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "ARG" and not stages and "=" in rest:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), rest).split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return stages


def uv_syncs(stage: Stage) -> list[list[str]]:
    """The stage's ``uv sync`` commands, as argv (cache mounts dropped)."""
    commands = [shlex.split(_MOUNT.sub("", run)) for run in stage.arguments("RUN")]
    return [argv for argv in commands if argv[:2] == ["uv", "sync"]]


def python_runs(stage: Stage) -> list[list[str]]:
    """The stage's ``RUN python …`` commands, as argv."""
    commands = [shlex.split(run) for run in stage.arguments("RUN")]
    return [argv for argv in commands if argv and argv[0] == "python"]


def exec_form(arguments: str) -> list[str]:
    """A ``CMD`` / ``ENTRYPOINT`` in exec (JSON) form, as argv."""
    argv = json.loads(arguments)
    if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
        raise ValueError(f"not an exec-form command: {arguments}")
    return argv


def command(stage: Stage) -> list[str]:
    """What a container of the final stage runs: its ENTRYPOINT followed by its CMD."""
    entrypoint = stage.arguments("ENTRYPOINT")
    cmd = stage.arguments("CMD")
    return (exec_form(entrypoint[-1]) if entrypoint else []) + (exec_form(cmd[-1]) if cmd else [])


def env_of(stage: Stage) -> dict[str, str]:
    """The stage's ``ENV key=value …`` settings (``$PATH``-style references left as written)."""
    env: dict[str, str] = {}
    for arguments in stage.arguments("ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def copy_build_context(stage: Stage, app: Path) -> None:
    """Copy what the build stage's ``COPY`` lines take from the context into ``app``."""
    for arguments in stage.arguments("COPY"):
        if arguments.startswith("--from"):
            continue
        *sources, destination = shlex.split(arguments)
        target = app / destination.removeprefix("./")
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)


@dataclass(frozen=True)
class ImageEnv:
    """A Dockerfile's install replayed in ``app`` (standing for ``/app``)."""

    image: str
    app: Path
    home: Path

    @property
    def bin(self) -> Path:
        return self.app / ".venv" / "bin"

    def environ(self) -> dict[str, str]:
        """The container's environment: the image's ENV, with its paths moved under ``home``."""
        final = read_stages(DOCKERFILES[self.image])[-1]
        env = {"PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        for key, value in env_of(final).items():
            if key == "PATH":
                continue
            if value.startswith("/"):  # a container path: a folder of this replay instead
                value = str(self.home / value.strip("/").replace("/", "_"))
                Path(value).mkdir(parents=True, exist_ok=True)
            env[key] = value
        return env

    def run(self, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as the container would (in ``app``, with the image's environment)."""
        executable = shutil.which(argv[0], path=self.environ()["PATH"]) or argv[0]
        return subprocess.run(
            [executable, *argv[1:]],
            cwd=self.app,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def uv_binary() -> str:
    """The uv the Makefile bootstraps (on PATH, or in ~/.local/bin)."""
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).exists():
        raise RuntimeError("uv not found: `make bootstrap` installs it")
    return found


def build_image_env(image: str, workdir: Path) -> ImageEnv:
    """Replay ``image``'s build stage in ``workdir``: copy, then each ``uv sync`` in order."""
    stages = read_stages(DOCKERFILES[image])
    build = next(stage for stage in stages if uv_syncs(stage))
    app, home = workdir / "app", workdir / "root"
    app.mkdir(parents=True)
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))},
        **env_of(build),
        "UV_COMPILE_BYTECODE": "0",
        "UV_LINK_MODE": "copy" if os.environ.get("UV_LINK_MODE") == "copy" else "hardlink",
    }
    for keyword, arguments in build.instructions:  # in the Dockerfile's order, layer by layer
        step = Stage(build.base, build.name, [(keyword, arguments)])
        if keyword == "COPY" and not arguments.startswith("--from"):
            copy_build_context(step, app)
        for argv in uv_syncs(step):
            _sync(argv, app, env)
    return ImageEnv(image, app, home)


def _sync(argv: list[str], app: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [uv_binary(), *argv[1:]], cwd=app, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"`{shlex.join(argv)}` failed in {app}:\n{done.stderr[-3000:]}")


def installed_distributions(env: ImageEnv) -> dict[str, int]:
    """Each distribution installed in the environment and the bytes of its files on disk."""
    site = next((env.app / ".venv" / "lib").glob("python*/site-packages"))
    sizes: dict[str, int] = {}
    for dist_info in site.glob("*.dist-info"):
        name = dist_info.name.split("-")[0].lower().replace("_", "-")
        total = 0
        record = dist_info / "RECORD"
        for line in record.read_text().splitlines() if record.exists() else []:
            path = site / line.split(",")[0]
            if path.is_file():
                total += path.stat().st_size
        sizes[name] = total
    return sizes
