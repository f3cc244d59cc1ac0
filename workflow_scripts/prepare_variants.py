"""prepare_variants: SpliceVarDB export or labelled VCF/TSV + reference + annotation -> variants.parquet,
summary, rejected."""

from metasplice.data.variants import prepare_from_files
from metasplice.workflow import run_logged


def main(sm) -> None:
    labels = dict(sm.params.labels)
    source = {"labels": labels, "labels_path": sm.input.labels} if labels else {"splicevardb": sm.input.splicevardb}
    prepare_from_files(
        **source,
        genome=sm.input.genome,
        annotation=sm.input.annotation,
        variants_out=sm.output.variants,
        summary_out=sm.output.summary,
        rejected_out=sm.output.rejected,
        build=sm.params.build,
        coordinate_column=sm.params.coordinate_column,
        split=sm.params.split,
        regions=sm.params.regions,
        max_ref_mismatch_fraction=sm.params.max_ref_mismatch_fraction,
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
