"""annotate_predict: one shard as the last base model wrote it -> the same with INFO/MetaSplice added."""

from metasplice.experiments.plan import score_vcf_runtime
from metasplice.predict.annotate import predict_files
from metasplice.workflow import run_logged


def main(sm) -> None:
    settings = {**sm.params.settings, **score_vcf_runtime(sm.config)}
    predict_files(
        vcf=sm.input.vcf,
        output=sm.output.vcf,
        genome=sm.params.reference,
        annotation=sm.params.annotation,
        model_dir=settings["model_dir"],
        device=settings.get("device", "auto"),
        batch_size=settings.get("batch_size"),
        threads=sm.threads,
        chunk_size=int(settings.get("chunk_size", 2000)),
        base=settings.get("base"),
        strand_oriented=settings.get("strand_oriented"),
        regions=settings.get("regions"),
        fields=("MetaSplice",),  # the base models' own fields stay as their command lines wrote them
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
