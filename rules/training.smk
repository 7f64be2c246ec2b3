# Training, in three file targets per classifier: COMET knowledge (TODKAT, once per source),
# pre-training on a synthetic dataset (pretrained.pt: generator x distribution x size), and
# fine-tuning on the real train split (or its fraction) from pretrained.pt or, for the baseline,
# from the plain encoder (model.pt, metrics.json). Paths: ercsynth/design.py, docs/workflow.md.


rule knowledge:
    input:
        dialogues=dialogues_of,
        fetched=PLAN.fetched(TRAIN["todkat"]["comet_model"]),
    output:
        "results/knowledge/{benchmark}/{source}.jsonl",
    log:
        f"{LOGS}/knowledge/{{benchmark}}_{{source}}.log",
    benchmark:
        f"{TIMING}/knowledge/{{benchmark}}_{{source}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=GPU,
    params:
        model=local_path(TRAIN["todkat"]["comet_model"], HUB_MODELS),
        relations=TRAIN["todkat"]["relations"],
        batch_size=TRAIN["todkat"]["comet_batch_size"],
        # Real splits: the same subset as training reads; synthetic sets: all (label quality reads all).
        caps=lambda w: PLAN.caps(*[s for s in [w.source] if s in SPLITS]),
        code=script_code("knowledge.py"),
    script:
        "../workflow_scripts/knowledge.py"


rule pretrain:
    input:
        synthetic=lambda w: PLAN.synthetic_dialogues(w.benchmark, w.condition),
        # The real_pretrained control: the real split it pre-trains on (none for the others).
        real=lambda w: PLAN.pretrain_real(w.benchmark, w.condition),
        accepted=accepted,
        knowledge=knowledge_of(lambda w: [PLAN.pretrain_knowledge_source(w.condition)]),
        encoder=PLAN.fetched(TRAIN["encoder"]),
    output:
        "results/models/{benchmark}/{classifier}/{condition}/seed{seed}/pretrained.pt",
    log:
        f"{LOGS}/pretrain/{{benchmark}}_{{classifier}}_{{condition}}_seed{{seed}}.log",
    benchmark:
        f"{TIMING}/pretrain/{{benchmark}}_{{classifier}}_{{condition}}_seed{{seed}}.tsv"
    wildcard_constraints:
        condition=pretrained_pattern(GENERATORS),
    conda:
        "../envs/training.yaml"
    # One thread: two training jobs side by side on two cores do 1.55x the work of one job on two
    # (scripts/bench_training.py, measured); the SLURM profile sets 8 per job.
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=GPU,
    params:
        model=lambda w: PLAN.model_settings(w.benchmark, w.classifier),
        recipe=recipe_of("pretrain"),
        caps=lambda w: PLAN.pretrain_caps(w.condition),
        cell=lambda w: PLAN.design_cell(w.condition),
        code=classifier_code("pretrain.py"),
    script:
        "../workflow_scripts/pretrain.py"


rule finetune:
    input:
        unpack(lambda w: PLAN.finetune_inputs(w.benchmark, w.classifier, w.condition, w.seed)),
        accepted=accepted,
    output:
        model="results/models/{benchmark}/{classifier}/{condition}/seed{seed}/model.pt",
        metrics="results/models/{benchmark}/{classifier}/{condition}/seed{seed}/metrics.json",
        predictions="results/models/{benchmark}/{classifier}/{condition}/seed{seed}/test_predictions.jsonl",
    log:
        f"{LOGS}/finetune/{{benchmark}}_{{classifier}}_{{condition}}_seed{{seed}}.log",
    benchmark:
        f"{TIMING}/finetune/{{benchmark}}_{{classifier}}_{{condition}}_seed{{seed}}.tsv"
    conda:
        "../envs/training.yaml"
    # One thread, as pretrain.
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=GPU,
    params:
        model=lambda w: PLAN.model_settings(w.benchmark, w.classifier),
        recipe=recipe_of("finetune"),
        caps=PLAN.caps(*SPLITS),
        cell=lambda w: PLAN.design_cell(w.condition),
        code=classifier_code("finetune.py"),
    script:
        "../workflow_scripts/finetune.py"


rule predict_synthetic:
    input:
        model=f"results/models/{{benchmark}}/{{classifier}}/{REFERENCE}/seed{{seed}}/model.pt",
        dialogues="results/generated/{benchmark}/{dataset}/dialogues.jsonl",
        knowledge=knowledge_of(lambda w: [w.dataset]),
        encoder=PLAN.fetched(TRAIN["encoder"]),
    output:
        "results/stats/synthetic_predictions/{benchmark}/{dataset}/{classifier}_seed{seed}.jsonl",
    log:
        f"{LOGS}/predict_synthetic/{{benchmark}}_{{dataset}}_{{classifier}}_seed{{seed}}.log",
    benchmark:
        f"{TIMING}/predict_synthetic/{{benchmark}}_{{dataset}}_{{classifier}}_seed{{seed}}.tsv"
    conda:
        "../envs/training.yaml"
    # One thread, as pretrain.
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=GPU,
    params:
        model=lambda w: PLAN.model_settings(w.benchmark, w.classifier),
        recipe=recipe_of("finetune"),
        code=classifier_code("predict_synthetic.py"),
    script:
        "../workflow_scripts/predict_synthetic.py"
