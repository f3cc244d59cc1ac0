"""fetch_splicevardb: copy or download the SpliceVarDB export; its sha256 goes to the log."""

from metasplice.data.fetch import fetch_file, splicevardb_source, timeout_from_config
from metasplice.workflow import run_logged


def main(sm) -> None:
    p = sm.params.fetch
    source = splicevardb_source(p["spec"], p["config_key"])
    fetch_file(
        source.location,
        sm.output[0],
        token_env=source.token_env,
        expected_sha256=source.sha256,
        timeout=timeout_from_config(sm.config),
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
