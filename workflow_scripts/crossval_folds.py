"""crossval_folds: variants.parquet -> one copy per fold with the fold's split column, and folds.tsv."""

from metasplice.data.splits import CrossValConfig, write_fold_variants
from metasplice.workflow import run_logged


def main(sm) -> None:
    write_fold_variants(
        variants_path=sm.input[0],
        fold_outputs=list(sm.output.folds),
        summary_out=sm.output.summary,
        cfg=CrossValConfig.from_dict(sm.params.cross_validation),
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
