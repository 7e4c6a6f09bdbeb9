"""The layering rules of ARCHITECTURE.md, checked on the source: what may import what, where method ids may
be written, and how large a file may grow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import saliency_core as sc

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 420  # "files stay under ~400 lines"


def _files(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        path = ROOT / part
        out += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return out


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant (f-string pieces included), except docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_method_id_outside_the_method_files() -> None:
    """Knowledge about a method lives in its method file: the UI, the pages and the engine name none."""
    ids = {m.id for m in sc.list_methods()}
    assert {"gradcam", "scorecam", "occlusion", "rise"} <= ids  # the check itself can fail
    offending = []
    for path in _files("ui", "pages", "app.py", "saliency_core/engine"):
        for line, text in _strings(ast.parse(path.read_text(), str(path))):
            if text in ids:
                offending.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not offending, "method ids written outside their method files:\n" + "\n".join(offending)


def test_the_library_never_imports_streamlit_and_pages_hold_no_torch() -> None:
    for path in _files("saliency_core"):
        imports = _imports(ast.parse(path.read_text()))
        assert not any(name.split(".")[0] == "streamlit" for name in imports), path
    for path in _files("pages", "app.py", "ui"):
        imports = _imports(ast.parse(path.read_text()))
        assert not any(name.split(".")[0] == "torch" for name in imports), path


PAGE_MODULES = ("ui.explore", "ui.compare", "ui.evaluate", "ui.learn", "ui.status")


@pytest.mark.parametrize("page", PAGE_MODULES)
def test_no_page_module_imports_another_page(page: str) -> None:
    base = ROOT / Path(*page.split("."))
    files = sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
    assert files and all(f.is_file() for f in files)
    others = [p for p in PAGE_MODULES if p != page]
    for path in files:
        imports = _imports(ast.parse(path.read_text()))
        bad = [name for name in imports for other in others if name == other or name.startswith(other + ".")]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_files_stay_small() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines())
        for p in _files("saliency_core", "ui", "pages", "app.py")
    }
    large = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not large, f"files over {MAX_LINES} lines: {large}"
