# Labelled variants: a SpliceVarDB export (rule fetch_splicevardb) or the labelled VCF/TSV that
# datasets.<name>.labels names, checked against the reference and annotated
# (metasplice.data.variants; labelled sets read by metasplice.data.labelled). With split.cv set,
# variants.parquet also holds each variant's fold group (cv_group) and test fold (cv_fold).


rule prepare_variants:
    input:
        unpack(
            lambda wc: msplan.prepare_variants_inputs(
                CONFIG, SPLICEVARDB, GENOME, ANNOTATION
            )
        ),
    output:
        variants=VARIANTS,
        summary="results/variants/summary.tsv",
        rejected="results/variants/rejected.tsv",
    log:
        "logs/prepare_variants.log",
    benchmark:
        "results/benchmarks/prepare_variants.tsv"
    conda:
        "../envs/metasplice.yaml"
    params:
        build=BUILD,
        coordinate_column=dataset_cfg()["coordinate_column"],
        labels=lambda wc: msplan.prepare_variants_labels(CONFIG),
        split=CONFIG["split"],
        regions=CONFIG["regions"],
        max_ref_mismatch_fraction=CONFIG["variants"]["max_ref_mismatch_fraction"],
    script:
        "../workflow_scripts/prepare_variants.py"
