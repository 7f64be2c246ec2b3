# Benchmarks: download the files of definitions with URLs (MELD, EmoryNLP, yours) and convert every split to JSONL.
# Definitions, URLs and checksums: ercsynth/builtin_benchmarks.yaml and the config's benchmark_definitions.


rule download_benchmark:
    output:
        f"{DOWNLOAD_DIR}/{{benchmark}}/{{filename}}",
    log:
        f"{LOGS}/download_benchmark/{{benchmark}}_{{filename}}.log",
    wildcard_constraints:
        benchmark=PLAN.downloadable_pattern(),
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=500,
        runtime=30,
    params:
        url=lambda w: PLAN.download_url(w.benchmark, w.filename),
        sha256=lambda w: PLAN.definitions[w.benchmark].downloads()[w.filename][1],
    script:
        "../workflow_scripts/download_benchmark.py"


rule prepare_benchmark:
    input:
        lambda w: str(PLAN.benchmark_source(w.benchmark, w.split).path),
    output:
        "results/benchmarks/{benchmark}/{split}.jsonl",
    log:
        f"{LOGS}/prepare_benchmark/{{benchmark}}_{{split}}.log",
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # How to read the file: format, columns, labels and raw spellings, from the definition.
        reading=lambda w: PLAN.benchmark_reading(w.benchmark, w.split),
        code=script_code("prepare_benchmark.py"),
    script:
        "../workflow_scripts/prepare_benchmark.py"
