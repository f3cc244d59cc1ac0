# metasplice: meta-models on top of splice predictors, evaluated on SpliceVarDB.
# Chain: fetch -> prepare_variants -> base_model_scores -> extract_sequences -> train -> evaluate -> report


configfile: "config.yaml"


report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/fetch.smk"
include: "rules/variants.smk"
include: "rules/base_model.smk"
include: "rules/sequences.smk"
include: "rules/train.smk"
include: "rules/stacking.smk"
include: "rules/evaluate.smk"
include: "rules/predict.smk"
include: "rules/annotate.smk"


# Downloads run where Snakemake runs: cluster compute nodes often have no outbound network.
localrules:
    fetch_splicevardb,
    fetch_genome,
    fetch_annotation,
    fetch_pangolin_weights,


rule all:
    default_target: True
    input:
        final_targets(),
