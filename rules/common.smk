# The experiment plan (ercsynth/plan.py: the config checked once, the experiment's structure, each
# job's settings), wired to wildcards. Settings reach jobs through params, so a changed setting
# reruns exactly the jobs it affects; a changed package module reruns the rules that use it.
import functools
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("8.7")  # workflow.register_resource

# The package lives beside the Snakefile; make it importable even without `pip install -e .`.
sys.path.insert(0, workflow.basedir)

from ercsynth.benchmarks import SPLITS  # noqa: E402
from ercsynth.design import (
    CLASSIFIERS as ALL_CLASSIFIERS,
    DISTRIBUTIONS,
    Run,
    dataset_pattern,
    pretrained_pattern,
    run_pattern,
)  # noqa: E402
from ercsynth.hub import MARKER, MODELS_DIR, local_path  # noqa: E402
from ercsynth.plan import DOWNLOAD_DIR, Plan, PlanError  # noqa: E402
from ercsynth.runtime import code_fingerprint, count_gpus, export_local_gpus  # noqa: E402

try:
    # Only the main process reads a user benchmark's every split; the jobs trust its check.
    PLAN = Plan.from_config(config, workflow.basedir, read_user_files=workflow.is_main_process)
except PlanError as exc:
    raise WorkflowError(str(exc)) from None
config.update(PLAN.config)  # `--config seeds=[1,2,3]` arrives as strings: the schema's types
for _note in PLAN.notes:
    logger.info(f"ercsynth: {_note}")

LOGS = "results/logs"
TIMING = "results/timing"
GENERATORS = PLAN.generators
BENCHMARKS = PLAN.benchmarks
DATASETS = PLAN.datasets
CLASSIFIERS = PLAN.classifiers
SEEDS = PLAN.seeds
TRAIN = PLAN.training
HUB_MODELS = PLAN.hub
REFERENCE = PLAN.reference


# --------------------------------------------------------------------------- GPUs on this machine
# Rules ask for a GPU only where this machine has one; the SLURM profile asks for them on the
# cluster. Snakemake treats an undeclared resource as unlimited, so the machine's count becomes the
# local limit: one GPU job per card, CPU jobs beside them. `--resources gpu=N` overrides it.
LOCAL_GPUS = count_gpus(config["local_gpus"])
if workflow.is_main_process and LOCAL_GPUS > 0 and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", LOCAL_GPUS)
export_local_gpus(LOCAL_GPUS)  # local jobs pick their card from it
GPU = min(1, LOCAL_GPUS)


wildcard_constraints:
    benchmark="|".join(map(re.escape, PLAN.definitions)),
    # Run paths carry the design's axes (ercsynth/design.py): dataset = [generator/]distribution,
    # condition = baseline or dataset[/n<size>], then [/real<fraction>].
    dataset=dataset_pattern(GENERATORS),
    condition=run_pattern(GENERATORS),
    split="train|dev|test",
    source=f"train|dev|test|{dataset_pattern(GENERATORS)}",
    classifier="|".join(ALL_CLASSIFIERS),
    seed=r"\d+",
    shard=r"\d+",


# --------------------------------------------------------------------------- code each job runs
# A rule's `code` param hashes every file its script runs, found by following the script's imports
# (ercsynth.runtime.code_closure): editing a module reruns exactly the jobs that import it. The
# download rules have none on purpose: a code edit never re-downloads (checksums guard the files).
SCRIPTS = Path(workflow.basedir) / "workflow_scripts"


@functools.cache
def script_code(script, classifier=None):
    """The code fingerprint of a workflow script; a classifier's jobs skip the other classifiers'
    modules, so editing CoMPM reruns CoMPM's jobs, not EmoBERTa's."""
    others = [f"ercsynth.models.{name}" for name in ALL_CLASSIFIERS if name != classifier] if classifier else []
    return code_fingerprint(SCRIPTS / script, others)


def classifier_code(script):
    return lambda w: script_code(script, w.classifier)


# --------------------------------------------------------------------------- input functions
def run_of(w):
    """The design cell of a job: its dataset (generation rules) or condition (training rules) read back."""
    return Run.parse(w.dataset if hasattr(w, "dataset") else w.condition)


def token_of(w):
    return w.dataset if hasattr(w, "dataset") else w.condition


def labels_of(w):
    return PLAN.labels(w.benchmark)


def distribution_of(w):
    return run_of(w).distribution


def parse_setting(key):
    return lambda w: PLAN.parse_params(w.benchmark, w.dataset)[key]


def recipe_of(phase):
    """params: the job's recipe, per classifier and benchmark, so a changed recipe reruns only its jobs."""
    return lambda w: PLAN.recipe(w.benchmark, w.classifier, phase)


def generator_checkpoint(verify=False):
    return lambda w: PLAN.checkpoint(run_of(w).generator, verify)


def knowledge_of(sources):
    """TODKAT's knowledge inputs: of these sources, or (a callable) of the job's own."""
    return lambda w: PLAN.knowledge_files(w.benchmark, w.classifier, sources(w) if callable(sources) else sources)


def accepted(w):
    """Every synthetic dataset of the benchmark passed the hard stop. ancient(): a rerun of parsing
    does not rerun the baseline, which only waits for the check."""
    return [ancient(path) for path in PLAN.accepted(w.benchmark)]


def dialogues_of(w):
    """A real split, or a synthetic dataset (what a knowledge or data_quality job reads)."""
    if w.source in SPLITS:
        return f"results/benchmarks/{w.benchmark}/{w.source}.jsonl"
    return f"results/generated/{w.benchmark}/{w.source}/dialogues.jsonl"
