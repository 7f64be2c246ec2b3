"""House rules of the code that a reviewer would otherwise check by hand (docs/development.md)."""

from __future__ import annotations

import ast

from conftest import REPO

CODE = ("ercsynth", "workflow_scripts")
NO_SHARED = ("Snakefile", "rules", "ercsynth", "workflow_scripts", "scripts")
MAX_LINES = 80


def _files(folders, pattern="*") -> list:
    found = []
    for name in folders:
        path = REPO / name
        found += [path] if path.is_file() else [p for p in path.rglob(pattern) if p.is_file()]
    return [p for p in found if "__pycache__" not in p.parts]


def test_no_function_is_over_80_lines():
    long = []
    for path in _files(CODE, "*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_code_names_the_development_machines_shared_folder():
    """`../shared` exists on our machines only; code and usage lines take ERCSYNTH_BENCHMARKS or a flag."""
    named = [str(p.relative_to(REPO)) for p in _files(NO_SHARED) if "../shared" in p.read_text(errors="replace")]
    named += [
        str(p.relative_to(REPO))
        for p in _files(NO_SHARED, "*.py")
        if '"shared" / "benchmarks"' in p.read_text(errors="replace")
    ]
    assert not named, named
