# Helpers shared by every rule file, and the config validation that runs before any job.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("8.0")

# The package lives beside the Snakefile; make it importable even without `pip install -e .`.
sys.path.insert(0, workflow.basedir)

from ercsynth.benchmarks import IEMOCAP_HELP, SPLITS, missing_files, source  # noqa: E402
from ercsynth.config import ConfigError, check_config  # noqa: E402
from ercsynth.backends import embedded_model_names  # noqa: E402

SCHEMA = Path(workflow.basedir) / "rules" / "schemas" / "config.schema.yaml"
try:
    check_config(config, SCHEMA)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, SCHEMA)  # fills schema defaults into config

DOWNLOAD_DIR = "resources/benchmarks"
BENCH_DIR = config["benchmarks_dir"]
DOWNLOADING = Path(BENCH_DIR) == Path(DOWNLOAD_DIR)
# The public release of EmoryNLP is the official JSON; local copies may hold the TSV form.
EMORY_FORMAT = "json" if DOWNLOADING else config["emorynlp_format"]


def _select_benchmarks():
    chosen = list(config["benchmarks"])
    if "IEMOCAP" not in chosen:
        present = not missing_files(BENCH_DIR, "IEMOCAP")
        if present and config.get("add_iemocap_if_present"):
            chosen.append("IEMOCAP")
            logger.info(f"ercsynth: IEMOCAP files found in {BENCH_DIR}: adding IEMOCAP to the run")
        elif present:
            logger.info(f"ercsynth: IEMOCAP files found in {BENCH_DIR}, not added (add_iemocap_if_present is false)")
        else:
            logger.info(f"ercsynth: IEMOCAP files not in {BENCH_DIR}")
    logger.info(f"ercsynth: benchmarks for this run: {', '.join(chosen)}")
    for bench in chosen:
        if bench == "IEMOCAP" or not DOWNLOADING:
            missing = missing_files(BENCH_DIR, bench, EMORY_FORMAT)
            if missing:
                hint = IEMOCAP_HELP.format(dir=BENCH_DIR) if bench == "IEMOCAP" else (
                    "point 'benchmarks_dir' at the files, or set it to resources/benchmarks to download them"
                )
                raise WorkflowError(
                    f"config key 'benchmarks' selects {bench}, but these files are missing: "
                    + ", ".join(map(str, missing)) + f". {hint}"
                )
    return chosen


BENCHMARKS = _select_benchmarks()
DISTRIBUTIONS = list(config["distributions"])
CLASSIFIERS = list(config["classifiers"])
SEEDS = list(config["seeds"])
CONDITIONS = ["baseline"] + DISTRIBUTIONS
GEN = config["generation"]
TRAIN = config["training"]
SHARDS = list(range(GEN["shards"]))
LOGS = "results/logs"

wildcard_constraints:
    benchmark="|".join(["MELD", "EmoryNLP", "IEMOCAP"]),
    distribution="natural|balanced",
    split="train|dev|test",
    classifier="compm|emoberta|todkat",
    seed=r"\d+",
    shard=r"\d+",


def benchmark_file(wildcards):
    return str(source(BENCH_DIR, wildcards.benchmark, wildcards.split, EMORY_FORMAT).path)


def generator_checkpoint():
    """Embedded GGUF models are converted once to a plain checkpoint that loads in seconds."""
    model = GEN.get("transformers", {}).get("model", "")
    if GEN["backend"] == "transformers" and model in embedded_model_names():
        return [f"results/generator/{model}/config.json"]
    return []


def generator_path():
    ckpt = generator_checkpoint()
    return str(Path(ckpt[0]).parent) if ckpt else GEN.get("transformers", {}).get("model", "")


def prompt_files():
    """Prompt paths are relative to the working directory, else to the workflow folder."""
    paths = []
    for key in ("completion", "chat", "balanced_constraint"):
        path = Path(GEN["prompts"][key])
        if not path.is_absolute() and not path.exists():
            path = Path(workflow.basedir) / path
        if not path.exists():
            raise WorkflowError(f"config key 'generation.prompts.{key}': no such file {GEN['prompts'][key]!r}")
        paths.append(str(path))
    return paths


def model_dir(w, condition=None):
    cond = condition or w.condition
    return f"results/models/{w.benchmark}/{w.classifier}/{cond}/seed{w.seed}"


def final_targets():
    return [
        "results/stats/results.csv",
        "results/stats/summary.md",
        "results/stats/friedman.json",
        "results/stats/label_quality.csv",
        "results/stats/plots/f1_by_condition.png",
        "results/stats/plots/label_distributions.png",
        "results/stats/plots/confusion_matrices.png",
    ] + expand("results/generated/{benchmark}/{distribution}/dialogues.jsonl", benchmark=BENCHMARKS, distribution=DISTRIBUTIONS)
