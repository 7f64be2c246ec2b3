# Statistics: the results table, summary, Friedman tests, label quality, plots, report entries.


rule aggregate:
    input:
        metrics=PLAN.all_runs(),
        # The per-cell bootstrap resamples each run's test predictions (ercsynth.effects).
        predictions=[m.replace("metrics.json", "test_predictions.jsonl") for m in PLAN.all_runs()],
        # summary.md warns about synthetic sets that copy the real test lines (test_overlap_*).
        quality="results/stats/data_quality.csv",
    output:
        csv=report("results/stats/results.csv", caption="report/results.rst", category="Results"),
        effects=report("results/stats/effects.csv", caption="report/effects.rst", category="Results"),
        summary=report("results/stats/summary.md", caption="report/summary.rst", category="Results"),
        # Not "Statistics": the report has a section of that name (Snakemake's run statistics).
        friedman=report("results/stats/friedman.json", caption="report/friedman.rst", category="Statistical tests"),
        f1_plot=report("results/stats/plots/f1_by_condition.png", caption="report/f1.rst", category="Results"),
        confusion_plot=report(
            "results/stats/plots/confusion_matrices.png",
            caption="report/confusion.rst",
            category="Results",
        ),
        curves_plot=report(
            "results/stats/plots/training_curves.png",
            caption="report/training_curves.rst",
            category="Results",
        ),
        # The design's axes (ercsynth/design.py), each plotted against weighted F1.
        size_plot=report(
            "results/stats/plots/f1_by_size.png",
            caption="report/f1_by_size.rst",
            category="Results by axis",
            subcategory="Synthetic size",
        ),
        fraction_plot=report(
            "results/stats/plots/f1_by_fraction.png",
            caption="report/f1_by_fraction.rst",
            category="Results by axis",
            subcategory="Real-data fraction",
        ),
    log:
        f"{LOGS}/aggregate.log",
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        statistics=config["statistics"],
        code=script_code("aggregate.py"),
    script:
        "../workflow_scripts/aggregate.py"


rule label_quality:
    input:
        real=expand("results/benchmarks/{benchmark}/train.jsonl", benchmark=BENCHMARKS),
        synthetic=PLAN.per_dataset("results/generated/{benchmark}/{dataset}/dialogues.jsonl"),
        # Ordered dataset x classifier, as the script reads them.
        predictions=PLAN.per_dataset(
            "results/stats/synthetic_predictions/{benchmark}/{dataset}/{classifier}_seed{seed}.jsonl",
            classifiers=CLASSIFIERS,
            seed=SEEDS[0],
        ),
        # The reference classifiers' own test predictions: a degenerate reference is flagged.
        reference=expand(
            "results/models/{benchmark}/{classifier}/{reference}/seed{seed}/test_predictions.jsonl",
            reference=REFERENCE,
            benchmark=BENCHMARKS,
            classifier=CLASSIFIERS,
            seed=SEEDS[0],
        ),
    output:
        csv=report(
            "results/stats/label_quality.csv",
            caption="report/label_quality.rst",
            category="Synthetic data",
        ),
        distributions=report(
            "results/stats/label_distributions.csv",
            caption="report/label_distributions.rst",
            category="Synthetic data",
        ),
        plot=report(
            "results/stats/plots/label_distributions.png",
            caption="report/label_distributions.rst",
            category="Synthetic data",
        ),
    log:
        f"{LOGS}/label_quality.log",
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        benchmarks=BENCHMARKS,
        datasets=DATASETS,
        classifiers=CLASSIFIERS,
        seed=SEEDS[0],
        labels={b: PLAN.labels(b) for b in BENCHMARKS},
        code=script_code("label_quality.py"),
    script:
        "../workflow_scripts/label_quality.py"


# Text and label figures per dataset (synthetic, and the real train split beside them), then one table.
rule data_quality:
    input:
        dialogues=dialogues_of,
        real="results/benchmarks/{benchmark}/train.jsonl",
        # The lines a generator must not have copied into pre-training (test_overlap_*).
        held_out=expand("results/benchmarks/{{benchmark}}/{split}.jsonl", split=["dev", "test"]),
    output:
        "results/stats/data_quality/{benchmark}/{source}.json",
    log:
        f"{LOGS}/data_quality/{{benchmark}}_{{source}}.log",
    wildcard_constraints:
        source=f"train|{dataset_pattern(GENERATORS)}",
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        settings=config["data_quality"],
        labels=labels_of,
        code=script_code("data_quality.py"),
    script:
        "../workflow_scripts/data_quality.py"


rule data_quality_table:
    input:
        [f"results/stats/data_quality/{b}/train.json" for b in BENCHMARKS]
        + PLAN.per_dataset("results/stats/data_quality/{benchmark}/{dataset}.json"),
    output:
        csv=report(
            "results/stats/data_quality.csv",
            caption="report/data_quality.rst",
            category="Synthetic data",
        ),
        plot=report(
            "results/stats/plots/data_quality.png",
            caption="report/data_quality.rst",
            category="Synthetic data",
        ),
    log:
        f"{LOGS}/data_quality_table.log",
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=script_code("data_quality_table.py"),
    script:
        "../workflow_scripts/data_quality_table.py"
