# Parsing: raw completions -> benchmark-schema dialogues, a report of rejections, two exports.


rule parse:
    input:
        shards=expand(
            "results/generated/{{benchmark}}/{{distribution}}/raw/shard{shard}.jsonl",
            shard=SHARDS,
        ),
    output:
        dialogues="results/generated/{benchmark}/{distribution}/dialogues.jsonl",
        report="results/generated/{benchmark}/{distribution}/parse_report.json",
        compm="results/generated/{benchmark}/{distribution}/compm.tsv",
        card="results/generated/{benchmark}/{distribution}/hf/README.md",
        hf_data="results/generated/{benchmark}/{distribution}/hf/data/train.jsonl",
    log:
        f"{LOGS}/parse/{{benchmark}}_{{distribution}}.log",
    conda:
        "../envs/generation.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        min_utterances=lambda w: parse_settings(w)["min_utterances"],
        max_output_chars=lambda w: parse_settings(w)["max_output_chars"],
        labels=labels_of,
        licence=lambda w: DEFINITIONS[w.benchmark].licence,
        code=CODE["parsing"],
    script:
        "../workflow_scripts/parse.py"
