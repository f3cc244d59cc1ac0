"""annotate_gather: the scored shards in input order -> results/annotate/{name}.vcf.gz + .tbi."""

import logging

from metasplice.predict.shards import gather_vcf
from metasplice.workflow import run_logged


def main(sm) -> None:
    n = gather_vcf(list(sm.input), sm.output.vcf)
    logging.getLogger("metasplice").info("%d records from %d shards -> %s", n, len(sm.input), sm.output.vcf)


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
