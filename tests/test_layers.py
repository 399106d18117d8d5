"""The package's shape: everything installs under `streamrec.`, and no import runs up the layers of
docs/architecture.md ("Layers").

The import graph is read from the source with `ast` (imports inside functions count too), so a lazy import
cannot hide an upward edge. The wheel test builds the package from a copy of the working tree and looks at
what a user would get from `pip install`.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "streamrec"
LINKED = ("stream", "features", "search", "serving", "protos", "training", "loadtest", "bench", "observe")

# Bottom to top, as drawn in docs/architecture.md. A module may import anything in a lower layer and its own
# unit; in a layer of independent units (the engines, the tools) one unit never imports another.
LAYERS: list[tuple[str, tuple[str, ...], bool]] = [
    (
        "core",
        (
            "streamrec.config",
            "streamrec.errors",
            "streamrec.events",
            "streamrec.protos",
            "streamrec.channels",
            "streamrec.security",
            "streamrec.privacy",
            "streamrec.logs",
            "streamrec.metrics_endpoint",
            "streamrec.signals",
            "streamrec.redis",
            "streamrec.artifact",
            "streamrec.registry_sync",
            "streamrec.commands",
        ),
        False,
    ),
    ("features and search", ("streamrec.features", "streamrec.search"), True),
    ("engines", ("streamrec.stream", "streamrec.serving", "streamrec.training"), True),
    ("dev stack", ("streamrec.devstack",), True),
    ("tools", ("streamrec.loadtest", "streamrec.observe"), True),
    ("benchmarks", ("streamrec.bench",), True),
    ("cli", ("streamrec.cli", "streamrec.demo", "streamrec.up", "streamrec.model_cli"), False),
]
RANK = {unit: rank for rank, (_, units, _) in enumerate(LAYERS) for unit in units}


def _allowed(here: str, there: str) -> bool:
    if here == there or RANK[there] < RANK[here]:
        return True
    return RANK[there] == RANK[here] and not LAYERS[RANK[here]][2]


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name, walking through the linked folders."""
    found: dict[str, Path] = {}
    for folder, _, files in os.walk(PACKAGE, followlinks=True):
        rel = Path(folder).relative_to(ROOT)
        if "__pycache__" in rel.parts or not (Path(folder) / "__init__.py").exists():
            continue
        for name in files:
            if name.endswith(".py") and not name.endswith(("_pb2.py", "_pb2_grpc.py")):
                parts = [*rel.parts, name[:-3]]
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = Path(folder) / name
    return found


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names a module imports (relative imports resolved against `module`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one more level up per extra dot
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _unit(name: str) -> str | None:
    """The layer unit a dotted name belongs to (the longest matching prefix), or None outside streamrec."""
    matches = [unit for unit in RANK if name == unit or name.startswith(unit + ".")]
    return max(matches, key=len) if matches else None


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in _modules() if m != "streamrec" and _unit(m) is None)
    assert not unplaced, f"modules outside every layer of docs/architecture.md: {unplaced}"


def test_no_import_runs_up_the_layers() -> None:
    upward = []
    for module, path in _modules().items():
        here = _unit(module)
        if here is None:
            continue
        for there in {_unit(name) for name in _imports(path, module)} - {None}:
            assert there is not None
            if not _allowed(here, there):
                upward.append(f"{module} -> {there} ({LAYERS[RANK[here]][0]} -> {LAYERS[RANK[there]][0]})")
    assert not upward, "imports up or across the layers:\n" + "\n".join(sorted(upward))


def test_nothing_imports_a_generic_top_level_name() -> None:
    """`stream.app` would work from the repository's root only: installed, just `streamrec.stream.app` exists."""
    sources = [*_modules().items()]
    sources += [(".".join(p.relative_to(ROOT).with_suffix("").parts), p) for p in (ROOT / "tests").rglob("*.py")]
    bare = sorted(
        f"{module}: import {name}"
        for module, path in sources
        for name in _imports(path, module)
        if name.split(".")[0] in LINKED
    )
    assert not bare, "imports of generic top-level names:\n" + "\n".join(bare)


def test_the_linked_folders_are_links_into_the_package() -> None:
    for name in LINKED:
        link = PACKAGE / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve(), f"streamrec/{name} -> ../{name}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the working tree (setuptools writes build/ beside the sources)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".mypy_cache")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("streamrec", *LINKED):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = tmp.glob("streamrec-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_installs_only_the_streamrec_package(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in top if not t.endswith(".dist-info")} == {"streamrec"}


def test_the_wheel_carries_code_and_data_of_every_linked_folder(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for folder in LINKED:
        assert f"streamrec/{folder}/__init__.py" in names, folder
    for data in (
        "streamrec/stream/lua/apply_events.lua",
        "streamrec/protos/recommender.proto",
        "streamrec/protos/recommender_pb2.pyi",
        "streamrec/devstack/kafka.env",
        "streamrec/serving/server.py",
    ):
        assert data in names, data
    assert any(n.startswith("streamrec/observe/static/") for n in names)
