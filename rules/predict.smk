# Scoring users' VCFs with a trained meta-model (metasplice/predict.py, also `metasplice predict`):
# every record x ALT x overlapping gene gets INFO/MetaSplice (the model's P(Splice-altering)) and
# INFO/SpliceAI (the official format); bad records are reported with their line and reason.
#
#   results/predict/{experiment}/{name}.vcf.gz       the annotated VCF (bgzipped, records in input order)
#   results/predict/{experiment}/{name}.tsv          one row per scored record x allele x gene
#   results/predict/{experiment}/{name}.skipped.tsv  every dropped line / unannotated record or allele
#
# CONFIG `predict`: vcfs {name: path} (empty: nothing is built), experiment (a stacked or trained
# experiment of `experiments`), device, batch_size, chunk_size, threads, gpu. predict_targets(CONFIG)
# lists the outputs.

from metasplice.experiments.plan import (
    predict_section,
    predict_targets,
    score_vcf_inputs,
    score_vcf_params,
)


rule score_vcf:
    input:
        unpack(
            lambda wc: score_vcf_inputs(
                CONFIG, wc.experiment, wc.name, GENOME, ANNOTATION
            )
        ),
    output:
        vcf="results/predict/{experiment}/{name}.vcf.gz",
        tsv="results/predict/{experiment}/{name}.tsv",
        skipped="results/predict/{experiment}/{name}.skipped.tsv",
    log:
        "logs/score_vcf/{experiment}/{name}.log",
    benchmark:
        "results/benchmarks/score_vcf/{experiment}/{name}.tsv"
    wildcard_constraints:
        name=r"[A-Za-z0-9_-]+",
    conda:
        "../envs/metasplice.yaml"
    threads: lambda wc: int(predict_section(CONFIG).get("threads", 2))
    resources:
        gpu=lambda wc: int(predict_section(CONFIG).get("gpu", 0)),
    params:
        settings=lambda wc: score_vcf_params(CONFIG, wc.experiment),
    script:
        "../workflow_scripts/score_vcf.py"
