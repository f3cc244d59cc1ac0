"""Time the bootstrap confidence intervals at a realistic test-set size (median of repeats).

python benchmarks/bench_metrics.py [--n 5000] [--resamples 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from metasplice.evaluation import metrics as M


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, args.n)
    s = rng.random(args.n) + 0.3 * y
    other = rng.random(args.n)
    cfg = M.BootstrapConfig(n=args.resamples, seed=0)
    steps = {
        "roc_auc_ci": lambda: M.roc_auc_ci(y, s, cfg),
        "pr_auc_ci": lambda: M.pr_auc_ci(y, s, cfg),
        "paired_bootstrap": lambda: M.paired_bootstrap(y, s, other, "roc_auc", cfg),
        "threshold_metrics_ci": lambda: M.threshold_metrics_ci(y, s, 0.5, cfg=cfg),
        "delong_test": lambda: M.delong_test(y, s, other),
    }
    for name, step in steps.items():
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        print(f"{name:22s} n={args.n} resamples={args.resamples}: median {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
