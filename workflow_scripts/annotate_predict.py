"""annotate_predict: one shard as the last base model wrote it -> the same with INFO/MetaSplice added."""

from metasplice.experiments.plan import score_vcf_runtime
from metasplice.predict.annotate import predict_with_settings
from metasplice.workflow import run_logged


def main(sm) -> None:
    predict_with_settings(
        {**sm.params.settings, **score_vcf_runtime(sm.config)},
        vcf=sm.input.vcf,
        output=sm.output.vcf,
        genome=sm.params.reference,
        annotation=sm.params.annotation,
        threads=sm.threads,
        fields=("MetaSplice",),  # the base models' own fields stay as their command lines wrote them
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
