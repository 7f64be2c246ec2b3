# Benchmarks: download the public releases (MELD, EmoryNLP) and convert every split to JSONL.

# Public releases with their SHA-256; a null checksum is logged, not checked (see README).
DOWNLOADS = {
    "MELD": {
        f"{split}_sent_emo.csv": f"https://raw.githubusercontent.com/declare-lab/MELD/master/data/MELD/{split}_sent_emo.csv"
        for split in SPLITS
    },
    "EmoryNLP": {
        f"emotion-detection-{tag}.json": f"https://raw.githubusercontent.com/emorynlp/emotion-detection/master/json/emotion-detection-{tag}.json"
        for tag in ("trn", "dev", "tst")
    },
}

CHECKSUMS = {
    "MELD/train_sent_emo.csv": "d2fa2d6529cf03cac2989efec05c9b27d8fd2f4c8fc5974c7ae88aa537fa02db",
    "MELD/dev_sent_emo.csv": "2e89c6f8aa182d6f62f8c6331aece905ac7273ca4999660bfb5213e1d0370c1c",
    "MELD/test_sent_emo.csv": "8d37103938f7067600839fe29d5a114a6cd1bcdafb75bec101e06464c5006888",
    "EmoryNLP/emotion-detection-dev.json": "177f0b8ae5442045ea60e6f7940e14b1a8c15c704201f01da1ba74943f99086e",
    "EmoryNLP/emotion-detection-tst.json": "2da84b0bffbc9da2f3b9de8016c2d3ae5478e6ccb26d473313368373b427dedc",
    # The training JSON could not be checksummed here (our copy was truncated).
}


rule download_benchmark:
    output:
        f"{DOWNLOAD_DIR}/{{benchmark}}/{{filename}}",
    log:
        f"{LOGS}/download_benchmark/{{benchmark}}_{{filename}}.log",
    wildcard_constraints:
        benchmark="MELD|EmoryNLP",
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=500,
        runtime=30,
    params:
        url=download_url,
        sha256=lambda w: CHECKSUMS.get(f"{w.benchmark}/{w.filename}"),
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
        fmt=benchmark_format,
        code=CODE["data"],
    script:
        "../workflow_scripts/prepare_benchmark.py"
