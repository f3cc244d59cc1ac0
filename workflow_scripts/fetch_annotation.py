"""fetch_annotation: SpliceAI-format gene table (bundled grch37/grch38, a path or a URL) -> resources."""

from metasplice.data.fetch import prepare_annotation, timeout_from_config
from metasplice.workflow import run_logged


def main(sm) -> None:
    prepare_annotation(sm.params.source, sm.output[0], timeout=timeout_from_config(sm.config))


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
