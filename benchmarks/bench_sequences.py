"""Time extract_windows on 50,000 variants for each window length (default 401, 501, 1001, 2001).

The input is generated: a random genome (written as an indexed FASTA under benchmarks/out/) and
random SNVs, MNVs, insertions and deletions on both strands whose REF alleles match it. Each timing
opens the genome afresh, so reading the contigs is included, as in the extract_sequences rule.

    python benchmarks/bench_sequences.py [--variants 50000] [--contexts 401 501 1001 2001] [--repeats 3]
    python benchmarks/bench_sequences.py --contigs 4 --contig-length 50000000 --clusters 3000  # sparse, gene-like
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from metasplice.data.genome import Genome
from metasplice.sequences import extract_windows, save_windows


def make_genome(folder: Path, n_contigs: int, contig_length: int, seed: int) -> tuple[Path, dict[str, np.ndarray]]:
    """A random ACGT genome (with a few N blocks) written as an indexed FASTA."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    contigs = {}
    path = folder / "random_genome.fa"
    with open(path, "wb") as fh:
        for i in range(n_contigs):
            seq = letters[rng.integers(0, 4, size=contig_length)]
            seq[:10_000] = ord("N")  # telomere-like N block at the start
            name = f"chr{i + 1}"
            contigs[name] = seq
            raw = seq.tobytes()
            fh.write(f">{name}\n".encode())
            fh.write(b"\n".join(raw[j : j + 60] for j in range(0, len(raw), 60)) + b"\n")
    pysam.faidx(str(path))
    return path, contigs


def make_variants(contigs: dict[str, np.ndarray], n: int, seed: int, clusters: int = 0) -> pd.DataFrame:
    """Random variants (75 % SNV, 5 % MNV, 10 % insertion, 10 % deletion; half on each strand),
    uniform over the genome or, with ``clusters``, within 20 kb of that many random centres (genes)."""
    rng = np.random.default_rng(seed)
    names = list(contigs)
    centres = [(str(rng.choice(names)), 0) for _ in range(clusters)]
    centres = [(c, int(rng.integers(0, contigs[c].shape[0]))) for c, _ in centres]
    chrom = rng.choice(names, size=n)
    kind = rng.choice(4, size=n, p=[0.75, 0.05, 0.10, 0.10])
    rows = []
    for i, k in enumerate(kind):
        c = centres[i % clusters][0] if clusters else chrom[i]
        seq = contigs[c]
        ref_len = 1 if k in (0, 2) else int(rng.integers(2, 25))
        if clusters:
            pos = centres[i % clusters][1] + int(rng.integers(-20_000, 20_000))
            pos = min(max(pos, 1), seq.shape[0] - ref_len + 1)
        else:
            pos = int(rng.integers(1, seq.shape[0] - ref_len + 2))  # anywhere, contig edges included
        ref = seq[pos - 1 : pos - 1 + ref_len].tobytes().decode()
        if k == 0:
            alt = "ACGT".replace(ref, "")[int(rng.integers(3))] if ref in "ACGT" else "A"
        elif k == 1:
            alt = "".join(rng.choice(list("ACGT"), size=ref_len))
        elif k == 2:
            alt = ref + "".join(rng.choice(list("ACGT"), size=int(rng.integers(1, 30))))
        else:
            alt = ref[0]
        rows.append((c, pos, ref, alt))
    table = pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"])
    table["strand"] = rng.choice(["+", "-"], size=n)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=50_000)
    parser.add_argument("--contexts", type=int, nargs="+", default=[401, 501, 1001, 2001])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contigs", type=int, default=24)
    parser.add_argument("--contig-length", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--clusters", type=int, default=0, help="place variants around this many gene-like centres (0: uniform)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        t0 = time.perf_counter()
        fasta, contigs = make_genome(Path(tmp), args.contigs, args.contig_length, args.seed)
        variants = make_variants(contigs, args.variants, args.seed + 1, args.clusters)
        print(
            f"input: {len(variants):,} variants "
            f"({(variants.ref.str.len() != variants.alt.str.len()).sum():,} indels"
            f"{f', around {args.clusters} centres' if args.clusters else ', uniform'}) on {args.contigs} contigs "
            f"x {args.contig_length:,} nt, generated in {time.perf_counter() - t0:.1f} s"
        )
        print(f"{'context':>8} {'extract s (median)':>19} {'write npz s':>12} {'MB':>7}")
        total_extract = total_write = 0.0
        for context in args.contexts:
            times, writes = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                with Genome(fasta) as genome:
                    ref, alt = extract_windows(variants, genome, context)
                times.append(time.perf_counter() - t)
                t = time.perf_counter()
                save_windows(Path(tmp) / f"ctx{context}.npz", ref, alt, context=context, strand_oriented=True)
                writes.append(time.perf_counter() - t)
            med, wmed = statistics.median(times), statistics.median(writes)
            total_extract += med
            total_write += wmed
            print(f"{context:>8} {med:>19.2f} {wmed:>12.2f} {2 * ref.nbytes / 1e6:>7.0f}")
        print(f"{'total':>8} {total_extract:>19.2f} {total_write:>12.2f}")
        print(
            f"total extract + write for {len(args.contexts)} contexts: {total_extract + total_write:.2f} s (target < 30 s)"
        )


if __name__ == "__main__":
    main()
