"""The package layout is the architecture: imports point one way, and nothing imports in a circle.

    local, surfaces  ->  terminal  ->  scan | backup | admin | restore | retention  ->  storage  ->  core

(`retention` is pure: it imports core alone, never storage.)

(`surfaces.cli` may use `local` for `serve` and `drain`; `local` never uses a
surface. `terminal`, what a person sees, serves both entry points and sits
above the operations so that none of them can draw on a screen.) Read from
the source with `ast`, so a wrong import fails here, not in a review.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "shared_code"
RANK = {"core": 0, "storage": 1, "scan": 2, "backup": 2, "admin": 2, "restore": 2, "retention": 2, "terminal": 3,
        "local": 4, "surfaces": 5}


def modules() -> dict[str, Path]:
    return {".".join(("shared_code",) + path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
            for path in ROOT.rglob("*.py")}


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """`shared_code...` modules a file imports (`from shared_code.x import y` counts y when y is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    known = modules()
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shared_code"):
            assert node.level == 0, f"{path}: relative import (the layout is read from absolute imports)"
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("shared_code"))
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else None


def test_every_module_lives_in_a_layer() -> None:
    stray = [m for m in modules() if m not in ("shared_code", "shared_code.__main__") and layer(m) not in RANK]
    assert stray == [], "modules outside the layer packages"


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_point_down_the_layers(module: str) -> None:
    own = layer(module)
    if own is None:
        return
    for target in imports(modules()[module]):
        other = layer(target)
        if other is None or other == own:
            continue
        assert RANK[other] < RANK[own], f"{module} imports {target}: {own} may not depend on {other}"


def test_core_makes_no_storage_calls() -> None:
    for module, path in modules().items():
        if layer(module) == "core":
            source = path.read_text(encoding="utf-8")
            assert "azure.storage" not in source and "azure.core.pipeline" not in source, module


DECISIONS = ("shared_code.retention.decide", "shared_code.retention.brake", "shared_code.retention.cost",
             "shared_code.restore.plan")


@pytest.mark.parametrize("module", DECISIONS)
def test_retention_and_restore_decide_without_storage(module: str) -> None:
    """The decisions are pure functions over plain data: core (and each other) only, no SDK; `run` does the I/O."""
    path = modules()[module]
    assert {layer(t) for t in imports(path)} <= {"core", layer(module)}, module
    assert not {t for t in imports(path) if t.endswith(".run")}, module
    source = path.read_text(encoding="utf-8")
    assert "import azure" not in source and "from azure" not in source, module


def test_no_module_imports_in_a_circle() -> None:
    graph = {module: {t for t in imports(path, top_level_only=True) if t in modules() and t != module}
             for module, path in modules().items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_function_entry_points_stay_thin() -> None:
    """Each function folder decodes its input and calls one surface; the logic lives in shared_code."""
    for init in ROOT.parent.glob("*/function.json"):
        source = (init.parent / "__init__.py").read_text(encoding="utf-8")
        assert len(source.splitlines()) <= 25, init.parent.name
        assert "from shared_code.surfaces." in source or "from shared_code.backup.worker" in source, init.parent.name
