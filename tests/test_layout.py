"""The product apart from the lab: ``shoeseg/`` never imports the evaluation package, the benchmarks or the
tests, and the worker's packages never import the serving helpers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB = ("evaluation", "benchmarks", "tests")
WORKER = ("model", "pipeline", "handler")  # what the .mar packs (serving.server.WORKER_PACKAGES)


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted((REPO / "shoeseg").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_the_product_imports_nothing_from_the_lab(path: Path) -> None:
    lab = {m for m in imported_modules(path) if m.split(".")[0] in LAB}
    assert not lab, f"{path.relative_to(REPO)} imports {sorted(lab)}"
    if path.relative_to(REPO / "shoeseg").parts[0] in WORKER:
        serving = {m for m in imported_modules(path) if m.startswith("shoeseg.serving")}
        assert not serving, f"{path.relative_to(REPO)} (worker code) imports {sorted(serving)}"


def test_the_import_check_sees_relative_and_absolute_imports() -> None:
    assert {"evaluation.peers", "shoeseg.training.data"} <= imported_modules(REPO / "evaluation" / "evaluate.py")
    assert "shoeseg.training.losses" in imported_modules(REPO / "shoeseg" / "training" / "trainer.py")
    assert "shoeseg.pipeline.catalogue" in imported_modules(REPO / "shoeseg" / "pipeline" / "compose.py")
