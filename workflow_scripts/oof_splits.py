"""oof_splits: variants.parquet (or a cross-validation fold's copy) -> one copy per out-of-fold group."""

from metasplice.experiments.stacking import OOFConfig, write_oof_variants
from metasplice.workflow import run_logged


def main(sm) -> None:
    write_oof_variants(sm.input[0], list(sm.output.variants), sm.output.summary, OOFConfig(**sm.params.stacking))


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
