# Training: baseline (real data only) and pre-train-on-synthetic-then-fine-tune, per classifier.


def real_splits(w):
    return {split: f"results/benchmarks/{w.benchmark}/{split}.jsonl" for split in SPLITS}


rule train_baseline:
    input:
        unpack(real_splits),
    output:
        metrics="results/models/{benchmark}/{classifier}/baseline/seed{seed}/metrics.json",
        predictions="results/models/{benchmark}/{classifier}/baseline/seed{seed}/test_predictions.jsonl",
        model="results/models/{benchmark}/{classifier}/baseline/seed{seed}/model.pt",
    wildcard_constraints:
        condition="baseline",
    params:
        condition="baseline",
    log:
        f"{LOGS}/train/{{benchmark}}_{{classifier}}_baseline_seed{{seed}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow_scripts/train.py"


rule train_pretrained:
    input:
        unpack(real_splits),
        synthetic="results/generated/{benchmark}/{condition}/dialogues.jsonl",
    output:
        metrics="results/models/{benchmark}/{classifier}/{condition}/seed{seed}/metrics.json",
        predictions="results/models/{benchmark}/{classifier}/{condition}/seed{seed}/test_predictions.jsonl",
    wildcard_constraints:
        condition="natural|balanced",
    log:
        f"{LOGS}/train/{{benchmark}}_{{classifier}}_{{condition}}_seed{{seed}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=360,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow_scripts/train.py"


rule predict_synthetic:
    input:
        model="results/models/{benchmark}/{classifier}/baseline/seed{seed}/model.pt",
        dialogues="results/generated/{benchmark}/{distribution}/dialogues.jsonl",
    output:
        "results/stats/synthetic_predictions/{benchmark}/{distribution}/{classifier}_seed{seed}.jsonl",
    log:
        f"{LOGS}/predict_synthetic/{{benchmark}}_{{distribution}}_{{classifier}}_seed{{seed}}.log",
    threads: 2
    resources:
        mem_mb=6000,
        runtime=60,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow_scripts/predict_synthetic.py"
