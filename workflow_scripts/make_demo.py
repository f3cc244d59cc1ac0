"""make_demo: the synthetic demo dataset (genome, annotation, SpliceVarDB-format table, truth)."""

from pathlib import Path

from metasplice.data.demo import OUTPUT_FILES, DemoConfig, make_demo
from metasplice.workflow import run_logged


def main(sm) -> None:
    out_dir = Path(sm.output.genome).parent
    misplaced = {
        key: str(getattr(sm.output, key))
        for key, name in OUTPUT_FILES.items()
        if Path(getattr(sm.output, key)) != out_dir / name
    }
    if misplaced:
        raise ValueError(
            f"rule make_demo: outputs must be {', '.join(OUTPUT_FILES.values())} in one folder "
            f"({out_dir}); got {misplaced}"
        )
    make_demo(out_dir, DemoConfig.from_dict(sm.params.demo))


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
