"""annotate_split: a VCF -> shards of whole genes (results/annotate/{name}/shards/), the reference indexed."""

import logging

from metasplice.predict.shards import CUT_INSIDE, index_reference, split_vcf
from metasplice.workflow import run_logged


def main(sm) -> None:
    log = logging.getLogger("metasplice")
    if index_reference(sm.input.reference[0]):  # here, once, before the shard jobs read it
        log.info("indexed %s", sm.input.reference[0])
    shards = split_vcf(sm.input.vcf, sm.params.annotation, sm.params.shard_records, sm.output.shards)
    inside = sum(s.cut == CUT_INSIDE for s in shards)
    log.info(
        "%s: %d records in %d shards of at most %d records (%d cut inside a gene)",
        sm.input.vcf,
        sum(s.records for s in shards),
        len(shards),
        sm.params.shard_records,
        inside,
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
