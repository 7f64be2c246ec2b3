# Helpers shared by every rule file, the config validation that runs before any job, and the
# settings each rule passes to its job through params (so a changed setting reruns exactly the
# jobs it affects, and a changed package module reruns the rules that use it).
import functools
import re
import sys
from dataclasses import replace
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("8.7")  # workflow.register_resource

# The package lives beside the Snakefile; make it importable even without `pip install -e .`.
sys.path.insert(0, workflow.basedir)

from ercsynth.benchmarks import (  # noqa: E402
    SPLITS,
    BenchmarkFormatError,
    DefinitionError,
    all_definitions,
    load_file,
)
from ercsynth.config import ConfigError, check_config, load_schema, schema_enum  # noqa: E402
from ercsynth.design import (  # noqa: E402
    DesignError,
    Run,
    dataset_pattern,
    generator_blocks,
    pretrained_pattern,
    reference_baseline,
    run_pattern,
    runs,
    setting_key,
)
from ercsynth.backends.embedded import embedded_model_names  # noqa: E402
from ercsynth.recipe import resolve as resolve_recipe  # noqa: E402
from ercsynth.hub import MARKER, MODELS_DIR, hub_model, hub_models, local_path  # noqa: E402
from ercsynth.runtime import code_fingerprint, count_gpus, export_local_gpus  # noqa: E402

SCHEMA = Path(workflow.basedir) / "rules" / "schemas" / "config.schema.yaml"
try:
    # `--config seeds=[1,2,3]` arrives as strings: coerce to the schema's types, then validate.
    _checked = check_config(config, SCHEMA)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
config.update(_checked)
try:
    # Each generator's whole generation block (generation + its generators entry), validated as one.
    GENERATORS = generator_blocks(config, load_schema(SCHEMA))
except DesignError as exc:
    raise WorkflowError(str(exc)) from None

LOGS = "results/logs"
TIMING = "results/timing"
DOWNLOAD_DIR = "resources/benchmarks"
BENCH_DIR = config["benchmarks_dir"]
DOWNLOADING = Path(BENCH_DIR) == Path(DOWNLOAD_DIR)


# --------------------------------------------------------------------------- GPUs on this machine
# Rules ask for a GPU only where this machine has one; the SLURM profile asks for them on the
# cluster. Snakemake treats an undeclared resource as unlimited, so the machine's count becomes the
# local limit: one GPU job per card, CPU jobs beside them. `--resources gpu=N` overrides it.
LOCAL_GPUS = count_gpus(config["local_gpus"])
if workflow.is_main_process and LOCAL_GPUS > 0 and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", LOCAL_GPUS)
export_local_gpus(LOCAL_GPUS)  # local jobs pick their card from it
GPU = min(1, LOCAL_GPUS)


def _definitions():
    """Built-in benchmarks plus the config's benchmark_definitions, checked before any job runs."""
    try:
        defs = all_definitions(config["benchmark_definitions"])
    except DefinitionError as exc:
        raise WorkflowError(str(exc)) from None
    per_benchmark = [(setting_key(g, "per_benchmark"), block["per_benchmark"]) for g, block in GENERATORS.items()]
    for key, names in [("benchmarks", config["benchmarks"]), *per_benchmark]:
        unknown = [name for name in names if name not in defs]
        if unknown:
            raise WorkflowError(
                f"config key '{key}': unknown benchmark(s) {', '.join(unknown)}; defined: {', '.join(defs)} "
                "(add your own under benchmark_definitions)"
            )
    return defs


def downloading(bench):
    """The download rule fetches a benchmark's files when they go to resources/benchmarks and it has URLs."""
    return DOWNLOADING and DEFINITIONS[bench].download_form is not None


def format_preference(bench):
    return config["emorynlp_format"] if bench == "EmoryNLP" else "auto"


def _check_files(bench):
    """A selected benchmark's files exist (or will be downloaded); a user benchmark's labels are all defined."""
    defn = DEFINITIONS[bench]
    if downloading(bench):
        return
    missing = defn.missing_files(BENCH_DIR, format_preference(bench))
    if missing:
        raise WorkflowError(
            f"config key 'benchmarks' selects {bench}, but these files are missing: "
            + ", ".join(map(str, missing))
            + f". {defn.missing_help(BENCH_DIR)}"
        )
    if not defn.builtin and workflow.is_main_process:
        for split in SPLITS:
            src = defn.source(BENCH_DIR, split, "auto")
            try:
                load_file(src.path, defn.vocab, src.fmt, src.columns)
            except BenchmarkFormatError as exc:
                raise WorkflowError(f"benchmark_definitions.{bench}: {exc}") from None


def _select_benchmarks():
    chosen = list(config["benchmarks"])
    if "IEMOCAP" not in chosen:
        present = not DEFINITIONS["IEMOCAP"].missing_files(BENCH_DIR)
        if present and config["add_iemocap_if_present"]:
            chosen.append("IEMOCAP")
            logger.info(f"ercsynth: IEMOCAP files found in {BENCH_DIR}: adding IEMOCAP to the run")
        elif present:
            logger.info(f"ercsynth: IEMOCAP files found in {BENCH_DIR}, not added (add_iemocap_if_present is false)")
        else:
            logger.info(f"ercsynth: IEMOCAP files not in {BENCH_DIR}")
    logger.info(f"ercsynth: benchmarks for this run: {', '.join(chosen)}")
    for bench in chosen:
        _check_files(bench)
    return chosen


DEFINITIONS = _definitions()
# Benchmarks whose definitions have URLs: the download rule's wildcard.
DOWNLOADABLE = "|".join(re.escape(b) for b, d in DEFINITIONS.items() if d.download_form) or "(?!)"
BENCHMARKS = _select_benchmarks()
DISTRIBUTIONS = list(config["distributions"])
for _bench in config["distributions_by_benchmark"]:
    if _bench not in DEFINITIONS:
        raise WorkflowError(
            f"config key distributions_by_benchmark: {_bench!r} is not a benchmark "
            f"(known: {', '.join(sorted(DEFINITIONS))})"
        )
# Each benchmark's synthetic datasets: `distributions`, less those its distributions_by_benchmark entry
# leaves out (null, or no entry: none left out; an overlay cannot delete a key, so null is the way back).
_KEEP = {b: config["distributions_by_benchmark"].get(b) for b in BENCHMARKS}
DISTRIBUTIONS_OF = {b: [d for d in DISTRIBUTIONS if _KEEP[b] is None or d in _KEEP[b]] for b in BENCHMARKS}
# The synthetic datasets: (benchmark, dataset), dataset = [generator/]distribution (ercsynth/design.py), in run order.
DATASETS = [(b, Run(d, g).dataset) for b in BENCHMARKS for g in GENERATORS for d in DISTRIBUTIONS_OF[b]]
CLASSIFIERS = list(config["classifiers"])
ALL_CLASSIFIERS = schema_enum(SCHEMA, "classifiers")  # each has its module ercsynth/models/<name>.py
SEEDS = list(config["seeds"])
TRAIN = config["training"]
COMET = TRAIN["todkat"]["knowledge"] == "comet"
try:
    # Hub models named by the config, fetched once by the fetch_model local rule (rules/models.smk).
    HUB_MODELS = hub_models(config, set(embedded_model_names()), GENERATORS)
except ValueError as exc:
    raise WorkflowError(str(exc)) from None


wildcard_constraints:
    benchmark="|".join(map(re.escape, DEFINITIONS)),
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


# --------------------------------------------------------------------------- settings per job
PARSE_ONLY = ("min_utterances", "max_output_chars", "max_repeated_share")


def run_of(w):
    """The design cell of a job: its dataset (generation rules) or condition (training rules) read back."""
    return Run.parse(w.dataset if hasattr(w, "dataset") else w.condition)


def gen_block(w):
    """The generation settings of the job's generator (generators.<name> over generation)."""
    return GENERATORS[run_of(w).generator]


def benchmark_generation(bench, gen):
    """The generation settings of one benchmark: the generator's, then the definition's, then its per_benchmark."""
    return gen | DEFINITIONS[bench].generation | gen["per_benchmark"].get(bench, {})


def generation_settings(w):
    """What a generation job uses: its benchmark's settings and labels, natural topics for natural, no
    parsing thresholds, and only the chosen backend's section."""
    block, distribution = gen_block(w), run_of(w).distribution
    gen = benchmark_generation(w.benchmark, block)
    unused = {"llamacpp", "transformers", "openai"} - {block["backend"]}
    # Passed below for this distribution only, or not a generation job's business (verify has its own rule).
    own = ("per_benchmark", "natural_topics", "constrained", "planned", "verify", "min_valid")
    settings = {k: v for k, v in gen.items() if k not in (*PARSE_ONLY, *own, *unused)}
    if distribution == "natural":
        settings["topics"] = gen["natural_topics"]  # neutral topics: the labels are the model's own
    if distribution == "planned":
        settings["planned"] = gen["planned"]
    settings["constrained"] = [distribution] if distribution in gen["constrained"] else []
    return settings | {"labels": list(DEFINITIONS[w.benchmark].labels)}


def distribution_of(w):
    return run_of(w).distribution


def parse_settings(w):
    gen = benchmark_generation(w.benchmark, gen_block(w))
    return {k: gen[k] for k in PARSE_ONLY}


def shards_of(w):
    return list(range(gen_block(w)["shards"]))


def labels_of(w):
    return list(DEFINITIONS[w.benchmark].labels)


def model_settings(w):
    """What fixes a classifier's architecture (its encoder and input length are in its recipe)."""
    keys = ("pad_to_multiple_of", "pooling")
    labels = {"labels": labels_of(w)}  # the head's classes, in symbol order
    return {k: TRAIN[k] for k in keys} | {w.classifier: TRAIN[w.classifier]} | labels


def recipe_of(phase):
    """params: the job's recipe, as `python -m ercsynth.recipe` prints it, with a hub encoder read
    from its fetched folder. Per classifier and benchmark, so a changed recipe reruns only its jobs."""

    def params(w):
        recipe = resolve_recipe(TRAIN, w.classifier, w.benchmark, phase)
        return replace(recipe, encoder=local_path(TRAIN["encoder"], HUB_MODELS)).params()

    return params


def design_cell(w):
    """params: the run's cell of the design (distribution, generator, size, fraction): what a
    training job subsets its data by and writes into metrics.json."""
    run = run_of(w)
    return {"distribution": run.distribution, "generator": run.generator, "size": run.size, "fraction": run.fraction}


def dialogue_caps(*splits):
    """params: the max_dialogues caps of these splits (none named: the knowledge job's source, a real
    split's cap or, for a synthetic set, none: label quality reads all of it)."""

    def caps(w):
        names = splits or ((w.source,) if w.source in SPLITS else ())
        return {name: TRAIN["max_dialogues"][name] for name in names}

    return caps


# --------------------------------------------------------------------------- paths
def download_url(w):
    """The definition's URL, or the same file under config key 'download_mirror'."""
    if config["download_mirror"]:
        return f"{config['download_mirror'].rstrip('/')}/{w.benchmark}/{w.filename}"
    return DEFINITIONS[w.benchmark].downloads()[w.filename][0]


def download_sha256(w):
    return DEFINITIONS[w.benchmark].downloads()[w.filename][1]


def benchmark_source(w):
    return DEFINITIONS[w.benchmark].source(BENCH_DIR, w.split, format_preference(w.benchmark), downloading(w.benchmark))


def benchmark_file(w):
    return str(benchmark_source(w).path)


def benchmark_reading(w):
    """How to read the file: format, columns, labels and raw spellings, from the definition."""
    return DEFINITIONS[w.benchmark].reading(benchmark_source(w))


def _checkpoint(gen, verify=False):
    """Embedded GGUF models are converted once to a plain checkpoint that loads in seconds, for the
    transformers backend and for label verification (which scores with transformers under llamacpp too)."""
    if gen["backend"] == "llamacpp" and not verify:
        return []  # llama.cpp reads the GGUF file itself
    model = gen["llamacpp"]["model"] if gen["backend"] == "llamacpp" else gen["transformers"]["model"]
    if gen["backend"] != "openai" and model in embedded_model_names():
        return [f"results/generator/{model}/config.json"]
    return []


def generator_checkpoint(verify=False):
    return lambda w: _checkpoint(gen_block(w), verify)


def _gguf(gen_name):
    """A user's own GGUF file for the llamacpp backend is an input: replacing it reruns generation."""
    gen = GENERATORS[gen_name]
    model = gen["llamacpp"]["model"]
    if gen["backend"] != "llamacpp" or model in embedded_model_names():
        return []
    if not Path(model).is_file():
        raise WorkflowError(
            f"config key '{setting_key(gen_name, 'llamacpp.model')}': {model!r} is neither an embedded model "
            f"({', '.join(embedded_model_names())}) nor a .gguf file"
        )
    return [model]


def generator_gguf(w):
    return _gguf(run_of(w).generator)


def generator_path(w, input):
    """The converted checkpoint's folder, the fetched folder of a hub model, or the configured folder;
    empty for llamacpp (the backend finds the embedded GGUF, or reads input.gguf)."""
    gen = gen_block(w)
    if input.checkpoint:
        return str(Path(input.checkpoint[0]).parent)
    if gen["backend"] == "llamacpp":
        return ""
    return local_path(gen["transformers"]["model"], HUB_MODELS)


def fetched(value):
    """The fetch_model marker a job waits for when `value` is a hub id; nothing for a folder or an embedded model."""
    model = hub_model(value, HUB_MODELS)
    return [model.marker] if model else []


def generator_fetched(w):
    gen = gen_block(w)
    return fetched(gen["transformers"]["model"]) if gen["backend"] == "transformers" else []


def _prompts(gen_name):
    """Prompt paths are relative to the working directory, else to the workflow folder."""
    paths = []
    for key, value in GENERATORS[gen_name]["prompts"].items():
        path = Path(value)
        if not path.is_absolute() and not path.exists():
            path = Path(workflow.basedir) / path
        if not path.exists():
            raise WorkflowError(f"config key '{setting_key(gen_name, f'prompts.{key}')}': no such file {value!r}")
        paths.append(str(path))
    return paths


def prompt_files(w):
    return _prompts(run_of(w).generator)


for _gen in GENERATORS:  # a missing prompt or GGUF file stops the run at start-up, not at its first job
    _prompts(_gen)
    _gguf(_gen)


def source_dialogues(w):
    """A knowledge source: a real split, or a synthetic dataset."""
    if w.source in SPLITS:
        return f"results/benchmarks/{w.benchmark}/{w.source}.jsonl"
    return f"results/generated/{w.benchmark}/{w.source}/dialogues.jsonl"


def knowledge_files(w, sources):
    """TODKAT's COMET knowledge files for these sources (none for other classifiers or knowledge kinds)."""
    if w.classifier != "todkat" or not COMET:
        return []
    return [f"results/knowledge/{w.benchmark}/{s}.jsonl" for s in sources]


def accepted(w):
    """Every synthetic dataset of the benchmark passed the hard stop. ancient(): a rerun of parsing
    does not rerun the baseline, which only waits for the check."""
    return [ancient(f"results/generated/{b}/{d}/accepted.json") for b, d in DATASETS if b == w.benchmark]


def pretrained_file(w):
    run = run_of(w)
    return (
        []
        if run.baseline
        else [f"results/models/{w.benchmark}/{w.classifier}/{run.pretrained}/seed{w.seed}/pretrained.pt"]
    )


def finetune_inputs(w):
    """The real splits, pretrained.pt unless baseline, TODKAT's COMET knowledge of the splits, and
    the hard stop on the benchmark's synthetic datasets (nothing is trained before they pass)."""
    inputs = {split: f"results/benchmarks/{w.benchmark}/{split}.jsonl" for split in SPLITS}
    inputs["accepted"] = accepted(w)
    inputs["init"] = pretrained_file(w)
    inputs["knowledge"] = knowledge_files(w, SPLITS)
    inputs["encoder"] = fetched(TRAIN["encoder"])
    return inputs


# Label verification (generation.verify, per generator): the generators that run it.
VERIFIED = [g for g, block in GENERATORS.items() if block["verify"]["enabled"]]
for _gen in VERIFIED:
    _block = GENERATORS[_gen]
    if _block["backend"] == "openai" or (_block["backend"] == "llamacpp" and not _checkpoint(_block, verify=True)):
        raise WorkflowError(
            f"config key '{setting_key(_gen, 'verify.enabled')}': label verification scores symbols with a local "
            "transformers model; it needs generation.backend: transformers, or llamacpp with an embedded model"
        )


def synthetic_dialogues(w):
    """What pre-training reads: the parsed dataset, or what label verification kept of it."""
    run = run_of(w)
    folder = f"results/generated/{w.benchmark}/{run.dataset}"
    return f"{folder}/verified/dialogues.jsonl" if run.generator in VERIFIED else f"{folder}/dialogues.jsonl"


def verify_settings(w):
    gen = gen_block(w)
    return {
        "keep": gen["verify"]["keep"],
        "batch_size": gen["verify"]["batch_size"],
        "min_utterances": parse_settings(w)["min_utterances"],
        "labels": labels_of(w),
        "seed": gen["seed"],
    }


def per_dataset(pattern, classifiers=(None,), datasets=None, **fields):
    """`pattern` for every synthetic dataset (benchmark x generator x its distributions), in DATASETS
    order, and for each of `classifiers` within a dataset where the pattern names one."""
    return [
        pattern.format(benchmark=b, dataset=d, classifier=c, **fields)
        for b, d in (DATASETS if datasets is None else datasets)
        for c in classifiers
    ]


def verified_datasets():
    return [(b, d) for b, d in DATASETS if Run.parse(d).generator in VERIFIED]


def all_runs():
    """metrics.json of every run: benchmark x classifier x design cell (ercsynth.design.runs) x seed."""
    return [
        f"results/models/{b}/{c}/{run.token}/seed{s}/metrics.json"
        for b in BENCHMARKS
        for c in CLASSIFIERS
        for run in runs(config, DISTRIBUTIONS_OF[b])
        for s in SEEDS
    ]


# The baseline whose classifiers judge the synthetic labels: trained on the most real data.
REFERENCE = reference_baseline(config).token


def quality_source(w):
    """The dialogues a data_quality job describes: a synthetic dataset, or the real train split."""
    if w.source == "train":
        return f"results/benchmarks/{w.benchmark}/train.jsonl"
    return f"results/generated/{w.benchmark}/{w.source}/dialogues.jsonl"


def final_targets():
    return (
        [
            "results/stats/results.csv",
            "results/stats/data_quality.csv",
            "results/stats/plots/data_quality.png",
            "results/stats/summary.md",
            "results/stats/friedman.json",
            "results/stats/label_quality.csv",
            "results/stats/label_distributions.csv",
            "results/stats/plots/f1_by_condition.png",
            "results/stats/plots/f1_by_size.png",
            "results/stats/plots/f1_by_fraction.png",
            "results/stats/plots/label_distributions.png",
            "results/stats/plots/confusion_matrices.png",
            "results/stats/plots/training_curves.png",
        ]
        + per_dataset("results/generated/{benchmark}/{dataset}/dialogues.jsonl")
        + (["results/stats/verification.csv"] if VERIFIED else [])
    )
