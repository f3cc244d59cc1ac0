"""annotate_score: one shard -> the shard as `metasplice spliceai` / `metasplice pangolin` writes it."""

import logging
import os

from metasplice.cli import main as metasplice
from metasplice.predict.shards import score_command
from metasplice.workflow import run_logged


def main(sm) -> None:
    log = logging.getLogger("metasplice")
    runtime = {k: v for k, v in sm.config["base_models"][sm.wildcards.base].items() if k not in sm.params.scoring}
    settings = {**runtime, **sm.params.scoring}
    if sm.params.kind == "pangolin":  # the 12 state dicts fetched (and checked) by fetch_pangolin_weights
        settings["weights"] = [os.path.dirname(sm.input.weights[0])]
    args = score_command(
        sm.params.kind,
        sm.input.vcf,
        sm.output.vcf,
        sm.params.reference,
        sm.params.annotation,
        sm.params.distance,
        sm.params.mask,
        settings,
        threads=sm.threads,
    )
    log.info("metasplice %s", " ".join(args))
    code = metasplice(args)
    if code != 0:
        raise RuntimeError(f"metasplice {args[0]} failed on {sm.input.vcf} (exit status {code}); see the log above")


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
