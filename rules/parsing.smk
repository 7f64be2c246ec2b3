# Parsing: raw completions -> benchmark-schema dialogues, a report of rejections, two exports.


rule parse:
    input:
        shards=lambda w: expand(
            "results/generated/{benchmark}/{dataset}/raw/shard{shard}.jsonl",
            benchmark=w.benchmark,
            dataset=w.dataset,
            shard=PLAN.shards(w.dataset),
        ),
    output:
        dialogues="results/generated/{benchmark}/{dataset}/dialogues.jsonl",
        report=report(
            "results/generated/{benchmark}/{dataset}/parse_report.json",
            caption="report/parse_report.rst",
            category="Synthetic data",
            subcategory="Parse reports",
            labels={"benchmark": "{benchmark}", "dataset": "{dataset}"},
        ),
        compm="results/generated/{benchmark}/{dataset}/compm.tsv",
        card="results/generated/{benchmark}/{dataset}/hf/README.md",
        hf_data="results/generated/{benchmark}/{dataset}/hf/data/train.jsonl",
    log:
        f"{LOGS}/parse/{{benchmark}}_{{dataset}}.log",
    wildcard_constraints:
        dataset=dataset_pattern(GENERATORS, DISTRIBUTIONS),
    conda:
        "../envs/generation.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        distribution=distribution_of,
        min_utterances=parse_setting("min_utterances"),
        max_output_chars=parse_setting("max_output_chars"),
        max_repeated_share=parse_setting("max_repeated_share"),
        labels=labels_of,
        licence=lambda w: PLAN.definitions[w.benchmark].licence,
        licence_id=lambda w: PLAN.definitions[w.benchmark].licence_id,
        code=script_code("parse.py"),
    script:
        "../workflow_scripts/parse.py"


# The `shuffled` control (config key controls): a generated dataset's texts, its labels permuted
# across the dataset; pre-trained and fine-tuned like the others.
rule shuffle_labels:
    input:
        dialogues=lambda w: PLAN.control_source(w.benchmark, w.dataset),
    output:
        dialogues="results/generated/{benchmark}/{dataset}/dialogues.jsonl",
        report="results/generated/{benchmark}/{dataset}/shuffle_report.json",
    log:
        f"{LOGS}/shuffle_labels/{{benchmark}}_{{dataset}}.log",
    wildcard_constraints:
        dataset=dataset_pattern(GENERATORS, ["shuffled"]),
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        seed=lambda w: PLAN.block(w.dataset)["seed"],
        code=script_code("shuffle_labels.py"),
    script:
        "../workflow_scripts/shuffle_labels.py"


# The hard stop: a dataset with too few valid dialogues fails here, before any model is trained
# (every training job of its benchmark waits for this file); parse_report.json is kept to read.
rule accept_synthetic:
    input:
        report="results/generated/{benchmark}/{dataset}/parse_report.json",
    output:
        "results/generated/{benchmark}/{dataset}/accepted.json",
    log:
        f"{LOGS}/accept_synthetic/{{benchmark}}_{{dataset}}.log",
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        min_valid=lambda w: PLAN.block(w.dataset)["min_valid"],
        code=script_code("accept_synthetic.py"),
    script:
        "../workflow_scripts/accept_synthetic.py"


# Label verification (optional, generation.verify): the generator re-labels every synthetic
# utterance; agreement table per dataset, and the dialogues that pre-training reads (keep: all|agree).
rule verify:
    input:
        dialogues="results/generated/{benchmark}/{dataset}/dialogues.jsonl",
        checkpoint=generator_checkpoint(verify=True),
        fetched=lambda w: PLAN.generator_fetched(w.dataset),
        examples="results/benchmarks/{benchmark}/train.jsonl",
    output:
        dialogues="results/generated/{benchmark}/{dataset}/verified/dialogues.jsonl",
        labels="results/generated/{benchmark}/{dataset}/verified/labels.jsonl",
        agreement="results/generated/{benchmark}/{dataset}/verified/agreement.json",
    log:
        f"{LOGS}/verify/{{benchmark}}_{{dataset}}.log",
    benchmark:
        f"{TIMING}/verify/{{benchmark}}_{{dataset}}.tsv"
    conda:
        "../envs/generation.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU,
    params:
        settings=lambda w: PLAN.verify_params(w.benchmark, w.dataset),
        model=lambda w, input: PLAN.generator_path(w.dataset, input.checkpoint),
        code=script_code("verify.py"),
    script:
        "../workflow_scripts/verify.py"


rule verification_table:
    input:
        PLAN.per_dataset(
            "results/generated/{benchmark}/{dataset}/verified/agreement.json", datasets=PLAN.verified_datasets
        ),
    output:
        report("results/stats/verification.csv", caption="report/verification.rst", category="Synthetic data"),
    log:
        f"{LOGS}/verification_table.log",
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        datasets=PLAN.verified_datasets,
        code=script_code("verification_table.py"),
    script:
        "../workflow_scripts/verification_table.py"
