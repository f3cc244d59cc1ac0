rule prepare_variants:
    input:
        splicevardb=SPLICEVARDB,
        genome=GENOME,
        fai=GENOME + ".fai",
        annotation=ANNOTATION,
    output:
        variants=VARIANTS,
        summary="results/variants/summary.tsv",
        rejected="results/variants/rejected.tsv",
    params:
        build=BUILD,
        coordinate_column=dataset_cfg()["coordinate_column"],
        split=config["split"],
        regions=config["regions"],
    log:
        "logs/prepare_variants.log",
    benchmark:
        "results/benchmarks/prepare_variants.tsv"
    conda:
        "../envs/metasplice.yaml"
    script:
        "../workflow_scripts/prepare_variants.py"
