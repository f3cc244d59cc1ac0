"""fetch_pangolin_weights: one official Pangolin state dict, copied or downloaded, sha256 checked."""

import logging

from metasplice.data.fetch import fetch_file, timeout_from_config
from metasplice.workflow import run_logged


def main(sm) -> None:
    p = sm.params.fetch
    digest = fetch_file(p["source"], sm.output[0], expected_sha256=p["sha256"], timeout=timeout_from_config(sm.config))
    logging.getLogger("metasplice").info("%s: sha256 %s (Pangolin weights, GPL-3.0)", sm.output[0], digest)


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
