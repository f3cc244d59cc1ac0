# Annotating users' VCFs across a cluster: split into shards, score every shard with every base model,
# gather (metasplice/predict/shards.py). The gathered VCF equals a one-job run of `metasplice spliceai`
# / `metasplice pangolin` on the whole file, record for record.
#
#   results/annotate/{name}/shards/{shard}.vcf   the input's header + a run of its lines (checkpoint)
#   results/annotate/{name}/shards/shards.tsv    each shard's first/last input line, records, where cut
#   results/annotate/{name}/scored/{base}/{shard}.vcf   the shard as base model {base}'s command line writes it
#   results/annotate/{name}/predicted/{shard}.vcf  the last base model's shard with INFO/MetaSplice of
#                                                  annotate.experiment added (only when it is set)
#   results/annotate/{name}.vcf.gz (+ .tbi)      the shards gathered in input order, bgzipped, indexed
#
# CONFIG `annotate`: vcfs {name: path}, reference, annotation, base_models (keys of `base_models`,
# scored in that order: each adds its INFO field to the previous one's output), distance, mask,
# shard_records, experiment. Threads, memory and GPUs of the scoring jobs are those of
# `base_models.{base}` (of the meta-model jobs, those of `predict`); a profile's set-resources
# for annotate_score overrides them.

from metasplice.experiments.plan import predict_section, score_vcf_params
from metasplice.predict.shards import (
    annotate_annotation,
    annotate_annotation_inputs,
    annotate_outputs,
    annotate_predict_inputs,
    annotate_reference,
    annotate_reference_inputs,
    annotate_section,
    annotate_step,
    annotate_targets,
    annotate_vcf,
)


checkpoint annotate_split:
    input:
        vcf=lambda wc: annotate_vcf(CONFIG, wc.name),
        reference=lambda wc: annotate_reference_inputs(CONFIG, GENOME),
        annotation=lambda wc: annotate_annotation_inputs(CONFIG, ANNOTATION),
    output:
        shards=directory("results/annotate/{name}/shards"),
    log:
        "logs/annotate/{name}/split.log",
    wildcard_constraints:
        name=r"[A-Za-z0-9_-]+",
    conda:
        "../envs/metasplice.yaml"
    params:
        annotation=lambda wc: annotate_annotation(CONFIG, ANNOTATION),
        shard_records=lambda wc: int(annotate_section(CONFIG)["shard_records"]),
    script:
        "../workflow_scripts/annotate_split.py"


rule annotate_score:
    input:
        vcf=lambda wc: annotate_step(CONFIG, wc.name, wc.base, wc.shard),
        reference=lambda wc: annotate_reference_inputs(CONFIG, GENOME),
        weights=lambda wc: msplan.base_model_weights(CONFIG, wc.base),
    output:
        vcf="results/annotate/{name}/scored/{base}/{shard}.vcf",
    log:
        "logs/annotate/{name}/{base}/{shard}.log",
    benchmark:
        "results/benchmarks/annotate/{name}/{base}/{shard}.tsv"
    wildcard_constraints:
        name=r"[A-Za-z0-9_-]+",
        shard=r"\d+",
    conda:
        "../envs/spliceai.yaml"
    threads: lambda wc: int(base_model_cfg(wc).get("threads", 2))
    resources:
        gpu=lambda wc: int(base_model_cfg(wc).get("gpu", 0)),
        mem_mb=lambda wc: int(base_model_cfg(wc).get("mem_mb", 8000)),
    params:
        kind=lambda wc: base_model_cfg(wc).get("kind", "spliceai"),
        reference=lambda wc: annotate_reference(CONFIG, GENOME),
        annotation=lambda wc: annotate_annotation(CONFIG, ANNOTATION),
        distance=lambda wc: int(annotate_section(CONFIG)["distance"]),
        mask=lambda wc: int(annotate_section(CONFIG)["mask"]),
        scoring=lambda wc: {
            k: v
            for k, v in base_model_scoring(wc).items()
            if k not in ("distance", "mask")
        },
    script:
        "../workflow_scripts/annotate_score.py"


rule annotate_predict:
    input:
        unpack(lambda wc: annotate_predict_inputs(CONFIG, wc.name, wc.shard)),
        reference=lambda wc: annotate_reference_inputs(CONFIG, GENOME),
        annotation=lambda wc: annotate_annotation_inputs(CONFIG, ANNOTATION),
    output:
        vcf="results/annotate/{name}/predicted/{shard}.vcf",
    log:
        "logs/annotate/{name}/predict/{shard}.log",
    benchmark:
        "results/benchmarks/annotate/{name}/predict/{shard}.tsv"
    wildcard_constraints:
        name=r"[A-Za-z0-9_-]+",
        shard=r"\d+",
    conda:
        "../envs/metasplice.yaml"
    threads: lambda wc: int(predict_section(CONFIG).get("threads", 2))
    resources:
        gpu=lambda wc: int(predict_section(CONFIG).get("gpu", 0)),
    params:
        settings=lambda wc: score_vcf_params(
            CONFIG, annotate_section(CONFIG)["experiment"]
        ),
        reference=lambda wc: annotate_reference(CONFIG, GENOME),
        annotation=lambda wc: annotate_annotation(CONFIG, ANNOTATION),
    script:
        "../workflow_scripts/annotate_predict.py"


rule annotate_gather:
    input:
        lambda wc: annotate_outputs(
            CONFIG, wc.name, checkpoints.annotate_split.get(name=wc.name).output.shards
        ),
    output:
        vcf="results/annotate/{name}.vcf.gz",
        tbi="results/annotate/{name}.vcf.gz.tbi",
    log:
        "logs/annotate/{name}/gather.log",
    wildcard_constraints:
        name=r"[A-Za-z0-9_-]+",
    conda:
        "../envs/metasplice.yaml"
    script:
        "../workflow_scripts/annotate_gather.py"


rule annotate:
    input:
        annotate_targets(CONFIG),
