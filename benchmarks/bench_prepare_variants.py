"""Time prepare_variants (read the export, check REF, normalise, merge, annotate, split, write) on the
50,000-variant demo set. Prints each repeat and the median.

    python benchmarks/bench_prepare_variants.py [--repeats 3] [--n-variants 50000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from metasplice.data.demo import DemoConfig, make_demo
from metasplice.data.variants import prepare_from_files

SPLIT = {"test_chroms": ["chr21", "chr22"], "val_fraction": 0.1, "val_group_by": "gene", "group_gap": 10000, "seed": 13}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-variants", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = make_demo(tmp / "demo", DemoConfig.benchmark(n_variants=args.n_variants))
        print(f"demo generation: {time.perf_counter() - t0:.1f} s ({args.n_variants} variants)")
        times = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            variants = prepare_from_files(
                splicevardb=paths["splicevardb"],
                genome=paths["genome"],
                annotation=paths["annotation"],
                variants_out=tmp / "variants.parquet",
                summary_out=tmp / "summary.tsv",
                rejected_out=tmp / "rejected.tsv",
                build="demo",
                coordinate_column="hg38",
                split=SPLIT,
                regions={},
            )
            times.append(time.perf_counter() - t0)
            print(f"repeat {i + 1}: prepare_variants {times[-1]:.2f} s -> {len(variants)} unique variants")
    median = statistics.median(times)
    print(
        f"median prepare_variants time: {median:.2f} s for {args.n_variants} rows "
        f"({args.n_variants / median:,.0f} rows/s; target < 30 s, ratio {30 / median:.1f}x under)"
    )


if __name__ == "__main__":
    main()
