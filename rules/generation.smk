# Generation: one job per shard of each benchmark x distribution, resumable when killed.


rule prepare_generator:
    output:
        "results/generator/{model}/config.json",
    log:
        f"{LOGS}/prepare_generator/{{model}}.log",
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    conda:
        "../envs/generation.yaml"
    script:
        "../workflow_scripts/prepare_generator.py"


rule generate:
    input:
        checkpoint=generator_checkpoint(),
        prompts=prompt_files(),
        # Few-shot examples for the completion style come from the real training split.
        examples="results/benchmarks/{benchmark}/train.jsonl",
    output:
        "results/generated/{benchmark}/{distribution}/raw/shard{shard}.jsonl",
    params:
        model=generator_path(),
    log:
        f"{LOGS}/generate/{{benchmark}}_{{distribution}}_shard{{shard}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/generation.yaml"
    script:
        "../workflow_scripts/generate.py"
