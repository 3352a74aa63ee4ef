"""The package's layers: imports point down only (DESIGN section 2).

cli -> downstream / science -> video -> supply -> nets -> _util / _json / errors. A
type-only import (under ``if TYPE_CHECKING:``) is not a dependency at run time
and is not counted.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import vmafx_saliency

PACKAGE = Path(vmafx_saliency.__file__).parent
RANK = {
    "errors": 0,
    "_util": 0,
    "_json": 0,
    "schemas": 0,
    "nets": 1,
    "supply": 2,
    "video": 3,
    "science": 4,
    "downstream": 4,
    "cli": 5,
    "api": 5,
    "__main__": 6,
    "__init__": 6,
}


def _runtime_imports(tree: ast.Module) -> Iterator[ast.ImportFrom | ast.Import]:
    """Every import statement, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom | ast.Import):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _layers_imported(node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.module == "vmafx_saliency":
        names = [f"vmafx_saliency.{alias.name}" for alias in node.names]
    else:
        names = [node.module or ""]
    return [n.split(".")[1] for n in names if n.startswith("vmafx_saliency.")]


def _upward(path: Path) -> list[str]:
    layer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    found: list[tuple[int, str]] = []
    for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        for target in _layers_imported(node):
            sideways = {layer, target} == {"science", "downstream"}
            if RANK.get(target, -1) > RANK[layer] or sideways:
                where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
                found.append((node.lineno, f"{where} imports {target}"))
    return [text for _, text in sorted(found)]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_imports_point_down_only(path: Path) -> None:
    assert _upward(path) == []


def test_the_check_sees_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A supply module that imports the CLI at run time is caught; one under TYPE_CHECKING is not.
    fake = tmp_path / "vmafx_saliency"
    (fake / "supply").mkdir(parents=True)
    module = fake / "supply" / "x.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from vmafx_saliency.video.job import VideoInput\n"
        "def f():\n"
        "    from vmafx_saliency.cli import main\n"
        "    import vmafx_saliency.science.views\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _upward(module) == ["supply/x.py:5 imports cli", "supply/x.py:6 imports science"]
