# Hub models: fetched once, on the machine where Snakemake runs (a local rule), into
# resources/models/{model}/; every job that needs one reads that folder offline.
import re


rule fetch_model:
    output:
        f"{MODELS_DIR}/{{model}}/{MARKER}",
    log:
        f"{LOGS}/fetch_model/{{model}}.log",
    wildcard_constraints:
        model="|".join(re.escape(name) for name in HUB_MODELS) or "(?!)",
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        repo_id=lambda w: HUB_MODELS[w.model].repo_id,
        config_keys=lambda w: list(HUB_MODELS[w.model].keys),
        cache_dir=config["models_dir"],
    script:
        "../workflow_scripts/fetch_model.py"
