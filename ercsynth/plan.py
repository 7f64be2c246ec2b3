"""The experiment plan: the config checked once, and everything the rules need from it.

`Plan.from_config` runs every start-up check (schema, benchmarks and their files, generators and
their prompt templates and model files, hub models, label verification) and raises `PlanError`,
whose message names the config key. The plan then holds the experiment's structure (benchmarks,
datasets per benchmark, runs, hub models, the verified and reference sets) and gives each rule's
settings and paths, so `rules/common.smk` only wires them to wildcards.

    python -m ercsynth.plan --configfile FILE [--config KEY=VALUE ...]

prints one JSON line per job of the workflow's DAG: its rule, wildcards and the params it gets
(read from Snakemake's own DAG, so the overlay semantics are Snakemake's).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ercsynth.backends.embedded import embedded_model_names
from ercsynth.benchmarks import (
    SPLITS,
    BenchmarkDefinition,
    BenchmarkFormatError,
    DefinitionError,
    Source,
    all_definitions,
    load_file,
)
from ercsynth.config import ConfigError, check_config, load_schema
from ercsynth.design import (
    CONTROLS,
    REAL_PRETRAINED,
    DesignError,
    Run,
    generator_blocks,
    reference_baseline,
    runs,
    setting_key,
)
from ercsynth.generation import GenerationSettings
from ercsynth.hub import HubModel, hub_model, hub_models, local_path
from ercsynth.prompts import TemplateError, Templates
from ercsynth.recipe import resolve as resolve_recipe

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "rules" / "schemas" / "config.schema.yaml"
DOWNLOAD_DIR = "resources/benchmarks"
# The generation keys that parsing reads (and generation does not): generation.<key> and per benchmark.
PARSE_KEYS = ("min_utterances", "max_output_chars", "max_repeated_share")


class PlanError(ValueError):
    """A config the workflow cannot run; the message names the config key."""


@dataclass
class Plan:
    config: dict  # validated, with the schema's types
    basedir: Path  # the workflow folder: relative prompt paths fall back to it
    generators: dict[str, dict]  # name ('' = the generation block itself) -> its whole generation block
    definitions: dict[str, BenchmarkDefinition]
    benchmarks: list[str]  # this run's, IEMOCAP added where its files are present and the config says so
    distributions_of: dict[str, list[str]]
    hub: dict[str, HubModel]
    notes: list[str] = field(default_factory=list)  # what the start-up found, for the log
    prompts: dict[str, list[str]] = field(default_factory=dict)  # generator -> its checked template files

    # ------------------------------------------------------------------ building and checking
    @classmethod
    def from_config(cls, config: dict, basedir: str | Path = ROOT, read_user_files: bool = True) -> Plan:
        """Check `config` (as Snakemake merged it) and build the plan. `read_user_files`: also read
        every split of a user-defined benchmark, so a bad label stops the run before any job."""
        schema = load_schema(SCHEMA)
        try:
            checked = check_config(config, schema)
            generators = generator_blocks(checked, schema)
            definitions = all_definitions(checked["benchmark_definitions"])
        except (ConfigError, DesignError, DefinitionError) as exc:
            raise PlanError(str(exc)) from None
        plan = cls(checked, Path(basedir), generators, definitions, [], {}, {})
        plan._check_benchmark_names()
        plan.benchmarks = plan._select_benchmarks(read_user_files)
        plan.distributions_of = plan._distributions()
        try:
            plan.hub = hub_models(checked, set(embedded_model_names()), generators)
        except ValueError as exc:
            raise PlanError(str(exc)) from None
        for gen in generators:  # a missing or broken prompt or GGUF file stops the run at start-up
            plan.prompts[gen] = plan._checked_prompts(gen)
            plan.gguf(gen)
        plan._check_verification()
        plan._check_controls()
        return plan

    def _check_benchmark_names(self) -> None:
        named = [("benchmarks", self.config["benchmarks"])]
        named += [(setting_key(g, "per_benchmark"), b["per_benchmark"]) for g, b in self.generators.items()]
        named += [("distributions_by_benchmark", self.config["distributions_by_benchmark"])]
        for key, names in named:
            unknown = [name for name in names if name not in self.definitions]
            if unknown:
                raise PlanError(
                    f"config key '{key}': unknown benchmark(s) {', '.join(unknown)}; defined: "
                    f"{', '.join(self.definitions)} (add your own under benchmark_definitions)"
                )

    def _select_benchmarks(self, read_user_files: bool) -> list[str]:
        chosen, where = list(self.config["benchmarks"]), self.benchmarks_dir
        if "IEMOCAP" not in chosen:
            present = not self.definitions["IEMOCAP"].missing_files(where)
            if present and self.config["add_iemocap_if_present"]:
                chosen.append("IEMOCAP")
                self.notes.append(f"IEMOCAP files found in {where}: adding IEMOCAP to the run")
            elif present:
                self.notes.append(f"IEMOCAP files found in {where}, not added (add_iemocap_if_present is false)")
            else:
                self.notes.append(f"IEMOCAP files not in {where}")
        self.notes.append(f"benchmarks for this run: {', '.join(chosen)}")
        for bench in chosen:
            self._check_files(bench, read_user_files)
        return chosen

    def _check_files(self, bench: str, read_user_files: bool) -> None:
        """A selected benchmark's files exist (or will be downloaded); a user benchmark's labels are all defined."""
        defn = self.definitions[bench]
        if self.downloading(bench):
            return
        missing = defn.missing_files(self.benchmarks_dir, self.format_preference(bench))
        if missing:
            raise PlanError(
                f"config key 'benchmarks' selects {bench}, but these files are missing: "
                f"{', '.join(map(str, missing))}. {defn.missing_help(self.benchmarks_dir)}"
            )
        if defn.builtin or not read_user_files:
            return
        for split in SPLITS:
            src = defn.source(self.benchmarks_dir, split, "auto")
            try:
                load_file(src.path, defn.vocab, src.fmt, src.columns)
            except BenchmarkFormatError as exc:
                raise PlanError(f"benchmark_definitions.{bench}: {exc}") from None

    def _distributions(self) -> dict[str, list[str]]:
        """Each benchmark's synthetic datasets: `distributions`, less those its distributions_by_benchmark
        entry leaves out (null or no entry: none; an overlay cannot delete a key, so null is the way back)."""
        keep = {b: self.config["distributions_by_benchmark"].get(b) for b in self.benchmarks}
        return {
            b: [d for d in self.config["distributions"] if keep[b] is None or d in keep[b]] for b in self.benchmarks
        }

    def _check_verification(self) -> None:
        for gen in self.verified:
            block = self.generators[gen]
            if block["backend"] == "openai" or (block["backend"] == "llamacpp" and not self.checkpoint(gen, True)):
                raise PlanError(
                    f"config key '{setting_key(gen, 'verify.enabled')}': label verification scores symbols with "
                    "a local transformers model; it needs generation.backend: transformers, or llamacpp with an "
                    "embedded model"
                )

    def _check_controls(self) -> None:
        if REAL_PRETRAINED in self.config["controls"] and [float(f) for f in self.config["real_fractions"]] != [1.0]:
            raise PlanError(
                "config key 'controls': real_pretrained pre-trains on the whole real train split, so it needs "
                "real_fractions: [1.0] (with a smaller fraction it would see more real data than its baseline)"
            )
        source = self.config["control_source"]
        if not self.config["controls"] or source is None:
            return
        lacking = [b for b in self.benchmarks if self.distributions_of[b] and source not in self.distributions_of[b]]
        if lacking:
            raise PlanError(
                f"config key 'control_source': {source!r} is not a distribution of {', '.join(lacking)} "
                "(distributions, distributions_by_benchmark); null takes each benchmark's first"
            )

    # ------------------------------------------------------------------ the experiment's structure
    @property
    def benchmarks_dir(self) -> str:
        return self.config["benchmarks_dir"]

    @property
    def classifiers(self) -> list[str]:
        return list(self.config["classifiers"])

    @property
    def seeds(self) -> list[int]:
        return list(self.config["seeds"])

    @property
    def training(self) -> dict:
        return self.config["training"]

    @property
    def comet(self) -> bool:
        return self.training["todkat"]["knowledge"] == "comet"

    @property
    def datasets(self) -> list[tuple[str, str]]:
        """The synthetic datasets (benchmark, [generator/]distribution), in run order."""
        return [
            (b, Run(d, g).dataset) for b in self.benchmarks for g in self.generators for d in self.distributions_of[b]
        ]

    @property
    def control_datasets(self) -> list[tuple[str, str]]:
        """The controls' datasets (benchmark, [generator/]control), made from a generated one
        (real_pretrained has none: it reads the real train split)."""
        return [
            (b, Run(c, g).dataset)
            for b in self.benchmarks
            for g in self.generators
            for c in self.config["controls"]
            if self.distributions_of[b] and c != REAL_PRETRAINED
        ]

    def control_source(self, bench: str, dataset: str) -> str:
        """The dialogues a control is made from: its generator's `control_source` distribution (by
        default the benchmark's first), as pre-training would read them."""
        run = Run.parse(dataset)
        source = self.config["control_source"] or self.distributions_of[bench][0]
        return self.synthetic_dialogues(bench, Run(source, run.generator).dataset)

    @property
    def verified(self) -> list[str]:
        """The generators whose datasets go through label verification."""
        return [g for g, block in self.generators.items() if block["verify"]["enabled"]]

    @property
    def verified_datasets(self) -> list[tuple[str, str]]:
        return [(b, d) for b, d in self.datasets if Run.parse(d).generator in self.verified]

    @property
    def reference(self) -> str:
        """The baseline whose classifiers judge the synthetic labels: trained on the most real data."""
        return reference_baseline(self.config).token

    def downloading(self, bench: str) -> bool:
        """The download rule fetches a benchmark's files when they go to resources/benchmarks and it has URLs."""
        return Path(self.benchmarks_dir) == Path(DOWNLOAD_DIR) and self.definitions[bench].download_form is not None

    def downloadable_pattern(self) -> str:
        """The download rule's benchmark wildcard: definitions with URLs."""
        return "|".join(re.escape(b) for b, d in self.definitions.items() if d.download_form) or "(?!)"

    def download_url(self, bench: str, filename: str) -> str:
        """The definition's URL, or the same file under config key 'download_mirror'."""
        if self.config["download_mirror"]:
            return f"{self.config['download_mirror'].rstrip('/')}/{bench}/{filename}"
        return self.definitions[bench].downloads()[filename][0]

    def benchmark_source(self, bench: str, split: str) -> Source:
        """Where a split is read from: the configured folder, or the download rule's output."""
        defn = self.definitions[bench]
        return defn.source(self.benchmarks_dir, split, self.format_preference(bench), self.downloading(bench))

    def benchmark_reading(self, bench: str, split: str) -> dict:
        """How to read the split's file: format, columns, labels and raw spellings, from the definition."""
        return self.definitions[bench].reading(self.benchmark_source(bench, split))

    def format_preference(self, bench: str) -> str:
        return self.config["emorynlp_format"] if bench == "EmoryNLP" else "auto"

    def labels(self, bench: str) -> list[str]:
        return list(self.definitions[bench].labels)

    def all_runs(self) -> list[str]:
        """metrics.json of every run: benchmark x classifier x design cell (ercsynth.design.runs) x seed."""
        return [
            f"results/models/{b}/{c}/{run.token}/seed{s}/metrics.json"
            for b in self.benchmarks
            for c in self.classifiers
            for run in runs(self.config, self.distributions_of[b])
            for s in self.seeds
        ]

    def per_dataset(self, pattern: str, classifiers=(None,), datasets=None, **fields: Any) -> list[str]:
        """`pattern` for every synthetic dataset (or `datasets`), in run order, and for each of
        `classifiers` within a dataset where the pattern names one."""
        return [
            pattern.format(benchmark=b, dataset=d, classifier=c, **fields)
            for b, d in (self.datasets if datasets is None else datasets)
            for c in classifiers
        ]

    # ------------------------------------------------------------------ settings per job
    def block(self, token: str) -> dict:
        """The generation block of a dataset's or run's generator."""
        return self.generators[Run.parse(token).generator]

    def benchmark_generation(self, bench: str, token: str) -> dict:
        """The generation settings of one benchmark: the generator's, then the definition's, then its per_benchmark."""
        gen = self.block(token)
        return gen | self.definitions[bench].generation | gen["per_benchmark"].get(bench, {})

    def generation_params(self, bench: str, dataset: str) -> dict:
        """What a generate job gets: exactly the keys GenerationSettings reads."""
        gen = self.benchmark_generation(bench, dataset)
        return GenerationSettings.params_for(gen, Run.parse(dataset).distribution, self.labels(bench))

    def parse_params(self, bench: str, dataset: str) -> dict:
        gen = self.benchmark_generation(bench, dataset)
        return {k: gen[k] for k in PARSE_KEYS}

    def shards(self, dataset: str) -> list[int]:
        return list(range(self.block(dataset)["shards"]))

    def verify_params(self, bench: str, dataset: str) -> dict:
        gen = self.block(dataset)
        return {
            "keep": gen["verify"]["keep"],
            "batch_size": gen["verify"]["batch_size"],
            "min_utterances": self.parse_params(bench, dataset)["min_utterances"],
            "labels": self.labels(bench),
            "seed": gen["seed"],
        }

    def model_settings(self, bench: str, classifier: str) -> dict:
        """What fixes a classifier's architecture (its encoder and input length are in its recipe)."""
        train = self.training
        own = {k: train[k] for k in ("pad_to_multiple_of", "pooling")} | {classifier: train[classifier]}
        return own | {"labels": self.labels(bench)}  # the head's classes, in symbol order

    def recipe(self, bench: str, classifier: str, phase: str) -> dict:
        """A training job's recipe, as `python -m ercsynth.recipe` prints it, with a hub encoder read
        from its fetched folder."""
        recipe = resolve_recipe(self.training, classifier, bench, phase)
        return replace(recipe, encoder=local_path(self.training["encoder"], self.hub)).params()

    @staticmethod
    def design_cell(condition: str) -> dict:
        """The run's cell of the design: what a training job subsets its data by and writes into metrics.json."""
        run = Run.parse(condition)
        return {
            "distribution": run.distribution,
            "generator": run.generator,
            "size": run.size,
            "fraction": run.fraction,
        }

    def caps(self, *splits: str) -> dict:
        """The max_dialogues caps of these splits."""
        return {name: self.training["max_dialogues"][name] for name in splits}

    # ------------------------------------------------------------------ files
    def checkpoint(self, gen_name: str, verify: bool = False) -> list[str]:
        """Embedded GGUF models are converted once to a plain checkpoint that loads in seconds, for the
        transformers backend and for label verification (which scores with transformers under llamacpp too)."""
        gen = self.generators[gen_name]
        if gen["backend"] == "llamacpp" and not verify:
            return []  # llama.cpp reads the GGUF file itself
        model = gen["llamacpp"]["model"] if gen["backend"] == "llamacpp" else gen["transformers"]["model"]
        if gen["backend"] != "openai" and model in embedded_model_names():
            return [f"results/generator/{model}/config.json"]
        return []

    def gguf(self, gen_name: str) -> list[str]:
        """A user's own GGUF file for the llamacpp backend is an input: replacing it reruns generation."""
        gen = self.generators[gen_name]
        model = gen["llamacpp"]["model"]
        if gen["backend"] != "llamacpp" or model in embedded_model_names():
            return []
        if not Path(model).is_file():
            raise PlanError(
                f"config key '{setting_key(gen_name, 'llamacpp.model')}': {model!r} is neither an embedded model "
                f"({', '.join(embedded_model_names())}) nor a .gguf file"
            )
        return [model]

    def prompt_files(self, gen_name: str) -> list[str]:
        """A generator's prompt templates, as checked at start-up (a generate job's input)."""
        return self.prompts[gen_name]

    def _checked_prompts(self, gen_name: str) -> list[str]:
        """The prompt templates, relative to the working directory, else to the workflow folder; each
        read and its fields checked, so a broken template stops the run before its first job."""
        paths = []
        for key, value in self.generators[gen_name]["prompts"].items():
            path = Path(value)
            if not path.is_absolute() and not path.exists():
                path = self.basedir / path
            if not path.exists():
                raise PlanError(f"config key '{setting_key(gen_name, f'prompts.{key}')}': no such file {value!r}")
            paths.append(str(path))
        try:
            Templates.load(*paths)
        except TemplateError as exc:
            raise PlanError(f"config key '{setting_key(gen_name, 'prompts')}': {exc}") from None
        return paths

    def generator_path(self, dataset: str, checkpoint: list[str]) -> str:
        """The converted checkpoint's folder, the fetched folder of a hub model, or the configured folder;
        empty for llamacpp (the backend finds the embedded GGUF, or reads its gguf input)."""
        gen = self.block(dataset)
        if checkpoint:
            return str(Path(checkpoint[0]).parent)
        if gen["backend"] == "llamacpp":
            return ""
        return local_path(gen["transformers"]["model"], self.hub)

    def fetched(self, value: str | None) -> list[str]:
        """The fetch_model marker a job waits for when `value` is a hub id; nothing for a folder or an embedded model."""
        model = hub_model(value, self.hub)
        return [model.marker] if model else []

    def generator_fetched(self, dataset: str) -> list[str]:
        gen = self.block(dataset)
        return self.fetched(gen["transformers"]["model"]) if gen["backend"] == "transformers" else []

    def knowledge_files(self, bench: str, classifier: str, sources) -> list[str]:
        """TODKAT's COMET knowledge files for these sources (none for other classifiers or knowledge kinds)."""
        if classifier != "todkat" or not self.comet:
            return []
        return [f"results/knowledge/{bench}/{s}.jsonl" for s in sources]

    def accepted(self, bench: str) -> list[str]:
        """The hard-stop files of every synthetic dataset of the benchmark."""
        return [f"results/generated/{b}/{d}/accepted.json" for b, d in self.datasets if b == bench]

    def synthetic_dialogues(self, bench: str, condition: str) -> str:
        """What pre-training reads: the parsed dataset, or what label verification kept of it."""
        run = Run.parse(condition)
        if run.distribution == REAL_PRETRAINED:  # the synthetic set whose step count it matches
            return self.control_source(bench, run.dataset)
        folder = f"results/generated/{bench}/{run.dataset}"
        verified = run.generator in self.verified and run.distribution not in CONTROLS  # a control is made from it
        return f"{folder}/verified/dialogues.jsonl" if verified else f"{folder}/dialogues.jsonl"

    @staticmethod
    def _real_pretrained(condition: str) -> bool:
        return Run.parse(condition).distribution == REAL_PRETRAINED

    def pretrain_real(self, bench: str, condition: str) -> list[str]:
        """The real train split, for the real_pretrained control's pre-training (nothing for the others)."""
        return [f"results/benchmarks/{bench}/train.jsonl"] if self._real_pretrained(condition) else []

    def pretrain_caps(self, condition: str) -> dict:
        """A pre-training job's caps: the synthetic cap, and the train cap where it reads the real split."""
        return self.caps("synthetic", "train") if self._real_pretrained(condition) else self.caps("synthetic")

    def pretrain_knowledge_source(self, condition: str) -> str:
        """The source whose TODKAT knowledge a pre-training job reads: its dataset, or the real train split."""
        return "train" if self._real_pretrained(condition) else Run.parse(condition).dataset

    def finetune_inputs(self, bench: str, classifier: str, condition: str, seed: str) -> dict:
        """The real splits, pretrained.pt unless baseline, TODKAT's COMET knowledge of the splits, and
        the hub encoder's marker (the hard stop is added by the rule, as ancient())."""
        run = Run.parse(condition)
        inputs: dict[str, Any] = {split: f"results/benchmarks/{bench}/{split}.jsonl" for split in SPLITS}
        pretrained = f"results/models/{bench}/{classifier}/{{}}/seed{seed}/pretrained.pt"
        inputs["init"] = [] if run.baseline else [pretrained.format(run.pretrained)]
        inputs["knowledge"] = self.knowledge_files(bench, classifier, SPLITS)
        inputs["encoder"] = self.fetched(self.training["encoder"])
        return inputs

    def final_targets(self) -> list[str]:
        stats = ["results.csv", "data_quality.csv", "summary.md", "friedman.json", "label_quality.csv"]
        stats += ["label_distributions.csv"]
        plots = ["data_quality", "f1_by_condition", "f1_by_size", "f1_by_fraction", "label_distributions"]
        plots += ["confusion_matrices", "training_curves"]
        return (
            [f"results/stats/{name}" for name in stats]
            + [f"results/stats/plots/{name}.png" for name in plots]
            + self.per_dataset("results/generated/{benchmark}/{dataset}/dialogues.jsonl")
            + (["results/stats/verification.csv"] if self.verified else [])
        )


# ---------------------------------------------------------------------- every job of the DAG
def dag_jobs(snakefile: Path, configfiles: list[Path], overrides: dict, workdir: Path) -> Iterator[dict]:
    """Each job of the workflow's whole DAG (as if nothing were done yet): rule, wildcards, params."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        config = ConfigSettings(configfiles=configfiles, config=overrides)
        workflow_api = api.workflow(ResourceSettings(cores=1), config, snakefile=snakefile, workdir=workdir)
        # Snakemake's API prints a DAG but does not hand it out: build it as its printdag does.
        workflow = workflow_api.dag(DAGSettings(forceall=True)).workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        jobs = [
            {"rule": job.rule.name, "wildcards": dict(job.wildcards_dict), "params": dict(job.params.items())}
            for job in workflow.dag.jobs
        ]
    yield from sorted(jobs, key=lambda j: (j["rule"], json.dumps(j["wildcards"], sort_keys=True)))


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m ercsynth.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", action="append", default=[], type=Path, help="config overlay (repeatable)")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="as snakemake --config")
    parser.add_argument("--directory", "-d", type=Path, default=Path.cwd(), help="the working directory")
    args = parser.parse_args(argv)
    from snakemake.cli import parse_config
    from snakemake.exceptions import WorkflowError

    try:
        for job in dag_jobs(ROOT / "Snakefile", args.configfile, parse_config(args.config), args.directory):
            out(json.dumps(job, default=str, sort_keys=True))
    except (WorkflowError, PlanError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
