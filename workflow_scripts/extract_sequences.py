"""extract_sequences: variants.parquet + reference -> ref/alt token windows of one length (ctx{L}.npz)."""

import logging

import pandas as pd

from metasplice.data.genome import Genome
from metasplice.sequences import extract_windows, save_windows
from metasplice.workflow import run_logged


def main(sm) -> None:
    context = sm.params.windows["context"]
    strand_oriented = sm.params.windows["strand_oriented"]
    columns = ["variant_id", "chrom", "pos", "ref", "alt", "strand"]
    variants = pd.read_parquet(sm.input.variants, columns=columns)
    with Genome(sm.input.genome) as genome:
        ref, alt = extract_windows(variants, genome, context, strand_oriented=strand_oriented)
    save_windows(
        sm.output[0],
        ref,
        alt,
        context=context,
        strand_oriented=strand_oriented,
        variant_ids=variants["variant_id"].to_numpy(),
    )
    logging.getLogger("metasplice").info(
        "%d variants -> %s: windows of %d nt, strand-oriented %s, %.0f MB",
        len(variants),
        sm.output[0],
        context,
        strand_oriented,
        2 * ref.nbytes / 1e6,
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
