# Benchmarks: download the files of definitions with URLs (MELD, EmoryNLP, yours) and convert every split to JSONL.
# Definitions, URLs and checksums: ercsynth/builtin_benchmarks.yaml and the config's benchmark_definitions.


rule download_benchmark:
    output:
        f"{DOWNLOAD_DIR}/{{benchmark}}/{{filename}}",
    log:
        f"{LOGS}/download_benchmark/{{benchmark}}_{{filename}}.log",
    wildcard_constraints:
        benchmark=DOWNLOADABLE,
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=500,
        runtime=30,
    params:
        url=download_url,
        sha256=download_sha256,
    script:
        "../workflow_scripts/download_benchmark.py"


rule prepare_benchmark:
    input:
        benchmark_file,
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
        reading=benchmark_reading,
        code=script_code("prepare_benchmark.py"),
    script:
        "../workflow_scripts/prepare_benchmark.py"
