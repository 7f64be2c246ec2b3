# Generation: one job per shard of each synthetic dataset (benchmark x generator x distribution),
# resumable when killed. Synthetic sizes are subsets of it: more sizes never mean more generation.


rule prepare_generator:
    output:
        "results/generator/{model}/config.json",
    log:
        f"{LOGS}/prepare_generator/{{model}}.log",
    conda:
        "../envs/generation.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        code=script_code("prepare_generator.py"),
    script:
        "../workflow_scripts/prepare_generator.py"


rule generate:
    input:
        checkpoint=generator_checkpoint(),
        fetched=lambda w: PLAN.generator_fetched(w.dataset),
        gguf=lambda w: PLAN.gguf(run_of(w).generator),
        prompts=lambda w: PLAN.prompt_files(run_of(w).generator),
        # Few-shot examples for the completion style come from the real training split.
        examples="results/benchmarks/{benchmark}/train.jsonl",
    output:
        "results/generated/{benchmark}/{dataset}/raw/shard{shard}.jsonl",
    log:
        f"{LOGS}/generate/{{benchmark}}_{{dataset}}_shard{{shard}}.log",
    benchmark:
        f"{TIMING}/generate/{{benchmark}}_{{dataset}}_shard{{shard}}.tsv"
    conda:
        "../envs/generation.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPU,
    params:
        settings=lambda w: PLAN.generation_params(w.benchmark, w.dataset),
        distribution=distribution_of,
        model=lambda w, input: PLAN.generator_path(w.dataset, input.checkpoint),
        code=script_code("generate.py"),
    script:
        "../workflow_scripts/generate.py"
