"""The import boundaries that let a Dagster image and a sidecar image each be built without the
other: the two sides share only ``trading_assets/lib`` (settings included), and the sensors refer
to assets by key instead of importing the asset modules.

Imports are read statically from every module's syntax tree, those inside functions and
``TYPE_CHECKING`` blocks included: a lazy import still needs its module in the image. Starting
the sidecar as a subprocess by module name (the launcher, ``make run``) is not an import and is
not seen here. Tests and benchmarks are outside the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streaming", "sensors", "trading_assets", "feature_repo")

DAGSTER = "dagster*"  # dagster itself and its integrations (dagster_aws, dagster_postgres, ...)
LIB = "trading_assets.lib"

# The only trading_assets.defs modules a sensor may import: Dagster helpers that define no asset
# and import no asset module. Asset and job names come from trading_assets.lib.asset_names.
SENSOR_DEFS_MODULES = {
    # Builds the ``watermark`` metadata every materialization carries, the sensor's included.
    "trading_assets.defs.watermark",
    # The day × symbol partitions a repair run targets, and the symbols they offer.
    "trading_assets.defs.ingest.partitions",
}


@dataclass(frozen=True)
class Rule:
    """Modules under any of ``scope`` never import a module under any of ``forbidden``, unless it
    is under one of ``allowed``. A name matches itself and its submodules; ``x*`` matches every
    top-level package whose name starts with ``x``."""

    why: str
    scope: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()

    def applies_to(self, module: str) -> bool:
        return any(_matches(module, pattern) for pattern in self.scope)

    def refuses(self, imported: str) -> bool:
        if any(_matches(imported, pattern) for pattern in self.allowed):
            return False
        return any(_matches(imported, pattern) for pattern in self.forbidden)


RULES = (
    Rule(
        "the sidecar imports nothing of the Dagster side; of trading_assets only lib",
        scope=("streaming",),
        forbidden=(DAGSTER, "sensors", "trading_assets"),
        allowed=(LIB,),
    ),
    Rule(
        "the Dagster side never imports the sidecar",
        scope=("sensors", "trading_assets"),
        forbidden=("streaming",),
    ),
    Rule(
        "lib is shared by both images: no Dagster, no sidecar, nothing of trading_assets but lib",
        scope=(LIB,),
        forbidden=(DAGSTER, "streaming", "sensors", "trading_assets"),
        allowed=(LIB,),
    ),
    Rule(
        "the Feast repository is applied by the sidecar too: the same as lib",
        scope=("feature_repo",),
        forbidden=(DAGSTER, "streaming", "sensors", "trading_assets"),
        allowed=(LIB,),
    ),
    Rule(
        "sensors refer to assets and jobs by name, never through the asset modules",
        scope=("sensors",),
        forbidden=("trading_assets.defs",),
        allowed=tuple(sorted(SENSOR_DEFS_MODULES)),
    ),
    Rule(
        "a defs module the sensors may import stays a leaf: it imports no other defs module",
        scope=tuple(sorted(SENSOR_DEFS_MODULES)),
        forbidden=("trading_assets.defs",),
    ),
)


def _matches(module: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return module.split(".")[0].startswith(pattern[:-1])
    return module == pattern or module.startswith(pattern + ".")


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    """``streaming/online/__init__.py`` → ``streaming.online``."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = REPO_ROOT) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth; ``from a import b`` yields
    ``a.b``, which names the submodule when ``b`` is one (``from trading_assets import defs``)."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"


def source_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO_ROOT / package).rglob("*.py"))


def violations(rules: tuple[Rule, ...] = RULES) -> list[str]:
    """One line per import a rule refuses: the file, the line, the import and the rule."""
    found = []
    for path in source_files():
        module = module_name(path)
        for rule in (r for r in rules if r.applies_to(module)):
            for line, imported in imports(path):
                if rule.refuses(imported):
                    found.append((str(path.relative_to(REPO_ROOT)), line, module, imported, rule))
    return [
        f"{where}:{line} ({module}) imports {imported}: {rule.why}"
        for where, line, module, imported, rule in sorted(found, key=lambda v: v[:2])
    ]


def test_every_module_keeps_to_the_import_boundaries():
    # Arrange
    files = source_files()

    # Act
    found = violations()

    # Assert
    assert len(files) > 100, "the scan found too few modules to mean anything"
    assert found == [], "\n".join(["imports across a boundary:", *found])


def test_the_sensors_defs_modules_exist():
    # Arrange
    modules = {module_name(path) for path in source_files()}

    # Act
    missing = SENSOR_DEFS_MODULES - modules

    # Assert: an allowance for a module that is gone would hide nothing, but mislead
    assert missing == set()


def test_the_scan_sees_lazy_relative_and_submodule_imports(tmp_path):
    # Arrange: a sidecar-like package whose imports hide in a function, a relative import and a
    # submodule named in ``from ... import``
    package = tmp_path / "streaming" / "inner"
    package.mkdir(parents=True)
    (tmp_path / "streaming" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from ..other import thing\n")
    (package / "mod.py").write_text(
        "import json\n"
        "from trading_assets.lib.features import compute_features\n"
        "def later():\n"
        "    from trading_assets import defs\n"
        "    import dagster_aws.s3\n"
    )

    # Act
    seen = {
        module_name(path, tmp_path): [name for _, name in imports(path, tmp_path)]
        for path in sorted((tmp_path / "streaming").rglob("*.py"))
    }
    refused = [name for name in seen["streaming.inner.mod"] if RULES[0].refuses(name)]

    # Assert
    assert seen["streaming.inner"] == ["streaming.other.thing"]
    assert seen["streaming.inner.mod"] == [
        "json",
        "trading_assets.lib.features.compute_features",
        "trading_assets.defs",
        "dagster_aws.s3",
    ]
    assert refused == ["trading_assets.defs", "dagster_aws.s3"]
