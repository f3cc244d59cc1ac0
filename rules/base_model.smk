# Base-model scores per variant: results/targets/{base}/scores.parquet (DS/DP per variant, skip
# reasons, validated targets), deltas.npy (float32 [N, 2D+1, 3] alt - ref, genome orientation) and
# targets.npy (label 1 -> deltas, label 0 -> zeros, other -> NaN); rows in variants.parquet order.
# {base} is a key of CONFIG `base_models` (kind spliceai, openspliceai or pangolin, weights, distance, mask,
# engine, batch_size, precision, device, gpu, threads). Computation: metasplice.base_models.table.
# Cached between workflows (`--cache`), so it has no benchmark: directive (Snakemake forbids both);
# the log records the time taken. The cache key covers params, not the package: `code` (a digest of the
# package code the script runs) makes a change of the scoring code a new result, not a cache hit.


rule base_model_scores:
    input:
        variants=VARIANTS,
        genome=GENOME,
        fai=f"{GENOME}.fai",
        annotation=ANNOTATION,
        weights=lambda wc: msplan.base_model_weights(CONFIG, wc.base),
    output:
        scores="results/targets/{base}/scores.parquet",
        deltas="results/targets/{base}/deltas.npy",
        targets="results/targets/{base}/targets.npy",
    log:
        "logs/base_model_scores/{base}.log",
    cache: "omit-software"
    conda:
        "../envs/spliceai.yaml"
    threads: lambda wildcards: int(base_model_cfg(wildcards).get("threads", 2))
    resources:
        gpu=lambda wildcards: int(base_model_cfg(wildcards).get("gpu", 0)),
        mem_mb=lambda wildcards: int(base_model_cfg(wildcards).get("mem_mb", 8000)),
    params:
        scoring=base_model_scoring,
        code=script_code("base_model_scores"),
    script:
        "../workflow_scripts/base_model_scores.py"
