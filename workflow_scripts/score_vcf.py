"""score_vcf: a VCF + reference + annotation + model directory -> annotated VCF, per-allele TSV, skipped TSV."""

from metasplice.experiments.plan import score_vcf_runtime
from metasplice.predict.annotate import predict_with_settings
from metasplice.workflow import run_logged


def main(sm) -> None:
    predict_with_settings(
        {**sm.params.settings, **score_vcf_runtime(sm.config)},
        vcf=sm.input.vcf,
        output=sm.output.vcf,
        tsv=sm.output.tsv,
        skipped=sm.output.skipped,
        genome=sm.input.genome,
        annotation=sm.input.annotation,
        threads=sm.threads,
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
