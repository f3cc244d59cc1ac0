"""fetch_genome: reference FASTA from a local path or URL -> indexed plain FASTA (+ .fai)."""

from metasplice.data.fetch import genome_source, prepare_fasta, timeout_from_config
from metasplice.workflow import run_logged


def main(sm) -> None:
    p = sm.params.fetch
    source = genome_source(p["spec"], p["config_key"])
    prepare_fasta(
        source.location,
        sm.output.fasta,
        link=bool(p["spec"].get("link", True)),
        token_env=source.token_env,
        expected_sha256=source.sha256,
        timeout=timeout_from_config(sm.config),
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
