"""fetch_annotation: SpliceAI-format gene table (bundled grch37/grch38, a path or a URL) -> resources."""

from metasplice.fetch import prepare_annotation
from metasplice.workflow import run_logged


def main(sm) -> None:
    prepare_annotation(sm.params.source, sm.output[0], timeout=sm.params.timeout_s)


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
