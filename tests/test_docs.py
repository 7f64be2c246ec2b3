"""The README and docs/ as a newcomer reads them: every Snakemake command on them dry-runs, targets
come before --config, the README stays a short front door with no path outside the repository, and
the configuration page is current and names every key of the schema."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO, snakemake

from ercsynth.config import config_reference, load_schema, schema_keys

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Commands whose dry run is not a plain local one: the SLURM profile (tests/test_slurm.py runs it on a
# real cluster), the report (it needs a finished run), and maintenance commands.
NOT_DRY_RUN = ("--profile", "--report", "--unlock", "--lint")


def commands() -> list[tuple[str, str]]:
    """(page, command) for every `snakemake ...` line in a bash block of the README and docs/."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", page.read_text(), flags=re.S):
            for line in block.splitlines():
                line = line.split("  #", 1)[0].strip()
                if line.startswith("snakemake"):
                    found.append((page.name, line))
    return found


def test_the_pages_show_commands():
    assert len(commands()) >= 12
    assert any("seeds=[1,2,3]" in c for _, c in commands())


@pytest.mark.parametrize(("page", "command"), commands(), ids=[f"{p}: {c}" for p, c in commands()])
def test_targets_come_before_config(page, command):
    """`--config` takes every following word as a setting: a target after it is read as a config entry."""
    words = shlex.split(command)
    if "--config" in words:
        after = words[words.index("--config") + 1 :]
        assert all("=" in w for w in after), f"{page}: a word after --config is not KEY=VALUE: {command}"


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("page", "command"),
    [(p, c) for p, c in commands() if not any(flag in c for flag in NOT_DRY_RUN)],
    ids=lambda x: x,
)
def test_every_command_dry_runs(tmp_path, page, command):
    words = shlex.split(command)[1:]
    entries: list[str] = []
    if "--config" in words:
        entries = words[words.index("--config") + 1 :]
        words = words[: words.index("--config")]
    # The test machine's benchmark files stand in for a downloaded or local copy.
    entries = [e for e in entries if not e.startswith("benchmarks_dir=")]
    words = [str(REPO / w) if w.startswith("configs/") else w for w in words]
    proc = snakemake(tmp_path, "-n", *words, configfile=None, extra_config=entries)
    out = proc.stdout + proc.stderr
    assert "Job stats" in out or "Nothing to be done" in out, out[-2000:]
    if "seeds=[1,2,3]" in entries:
        assert "results/models/MELD/todkat/balanced/seed3/metrics.json" in out


def test_the_readme_is_a_short_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for page in PAGES:
        assert "../shared" not in page.read_text(), f"{page.name} names a path outside the repository"
    for link in re.findall(r"\]\((docs/[\w.-]+\.(?:md|png))\)", text):
        assert (REPO / link).exists(), link
    for link in re.findall(r"\]\(([\w.-]+\.md)\)", "".join(p.read_text() for p in PAGES[1:])):
        assert (REPO / "docs" / link).exists(), link


def test_the_readmes_two_set_up_commands_are_the_ones_documented_for_ci():
    readme = (REPO / "README.md").read_text()
    setups = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(setups) == 2 and "pytest" in setups[1]
    development = (REPO / "docs" / "development.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    for line in setups:
        assert line in development or line in ci


def test_the_configuration_page_is_current_and_names_every_key():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "config_docs.py"), "--check"], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    page = (REPO / "docs" / "configuration.md").read_text()
    keys = schema_keys(load_schema(REPO / "rules" / "schemas" / "config.schema.yaml"))
    assert keys and [k for k in keys if f"| `{k}` |" not in page] == []
    assert {k for k, _, _ in config_reference(REPO / "config.yaml")} == set(keys)


def test_every_parse_rejection_reason_is_in_the_generation_docs():
    from ercsynth.parsing import REASONS

    page = (REPO / "docs" / "generation.md").read_text()
    table = page.split("<!-- parse reasons: start -->", 1)[1].split("<!-- parse reasons: end -->", 1)[0]
    listed = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert listed == list(REASONS)


def test_the_readme_layout_names_every_module_of_the_package():
    layout = (REPO / "README.md").read_text().split("## Layout", 1)[1].split("## ", 1)[0]
    words = set(re.findall(r"[a-z_]+", layout))
    modules = {p.stem for p in (REPO / "ercsynth").glob("*.py") if p.stem != "__init__"}
    packages = {p.name for p in (REPO / "ercsynth").iterdir() if (p / "__init__.py").exists()}
    assert not (modules | packages) - words, sorted((modules | packages) - words)
