"""Benchmark: ``metasplice pangolin`` against the official ``pangolin`` 1.0.2 command line, side by side.

Both run as whole processes (start-up, model loading and writing included) on the same records of
real GRCh38 sequence (tests/data: BRCA1 ClinVar records, the official gffutils database), on the
same cores. Each tool runs --repeats times, interleaved; the medians of the wall times, their ratio,
records per second, and every Pangolin INFO string that differs between the two outputs are
printed. On a GPU machine our --device cuda figure (records/s) is printed too.

The official tool is built with its own environment (its path as --official, e.g. the ``pangolin``
of a venv holding the official package, torch, gffutils, pyfastx and PyVCF3).

    python benchmarks/bench_pangolin.py --official /path/to/venv/bin/pangolin --records 80 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def head_vcf(src: Path, dst: Path, n: int) -> int:
    kept = 0
    with open(src) as fin, open(dst, "w") as fout:
        for line in fin:
            if line.startswith("#"):
                fout.write(line)
            elif kept < n:
                fout.write(line)
                kept += 1
    return kept


def infos(path: Path) -> list[str | None]:
    out = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            m = re.search(r"(?:^|;)Pangolin=([^;\t]*)", line.split("\t")[7])
            out.append(m.group(1) if m else None)
    return out


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", default=None, help="the official `pangolin` executable (skipped when absent)")
    ap.add_argument("--vcf", type=Path, default=DATA / "realdata" / "clinvar_brca1_grch38.vcf")
    ap.add_argument("--fasta", type=Path, default=DATA / "realdata" / "grch38_chr17_brca1_region.fa.gz")
    ap.add_argument("--db", type=Path, default=DATA / "pangolin" / "region_genes.db")
    ap.add_argument("--weights", type=Path, default=DATA / "pangolin" / "models")
    ap.add_argument("--records", type=int, default=80, help="first N records of --vcf")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-d", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of both tools")
    ap.add_argument("--gpu", action="store_true", help="also time ours with --device cuda")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_pangolin_"))
    vcf = work / "input.vcf"
    n = head_vcf(args.vcf, vcf, args.records)
    # the official tool reads the FASTA with pyfastx, which wants a plain, writable one
    fasta = work / "genome.fa"
    if args.fasta.suffix == ".gz":
        import pysam

        with pysam.FastaFile(str(args.fasta)) as fa, open(fasta, "w") as out:
            for name in fa.references:
                seq = fa.fetch(name)
                out.write(f">{name}\n")
                for i in range(0, len(seq), 60):
                    out.write(seq[i : i + 60] + "\n")
        pysam.faidx(str(fasta))
    else:
        shutil.copy(args.fasta, fasta)
        shutil.copy(f"{args.fasta}.fai", f"{fasta}.fai")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    ours_cmd = [
        sys.executable,
        "-m",
        "metasplice.cli",
        "pangolin",
        str(vcf),
        str(fasta),
        str(args.db),
        "ours",
        "-d",
        str(args.d),
        "--weights",
        str(args.weights),
        "--device",
        "cpu",
        "--threads",
        str(args.threads),
    ]
    theirs_cmd = (
        [args.official, str(vcf), str(fasta), str(args.db), "official", "-d", str(args.d)] if args.official else None
    )
    if theirs_cmd:
        env_official = {**env, "CUDA_VISIBLE_DEVICES": ""}
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(timed(ours_cmd, work, env))
        if theirs_cmd:
            theirs.append(timed(theirs_cmd, work, env_official))
    print(f"records: {n} ({args.vcf.name}, -d {args.d}), {args.threads} threads, {args.repeats} runs each")
    print(
        f"metasplice pangolin: median {statistics.median(ours):.1f} s  ({n / statistics.median(ours):.2f} records/s)"
        f"  runs {', '.join(f'{t:.1f}' for t in ours)}"
    )
    if theirs:
        print(
            f"official pangolin:   median {statistics.median(theirs):.1f} s  "
            f"({n / statistics.median(theirs):.2f} records/s)  runs {', '.join(f'{t:.1f}' for t in theirs)}"
        )
        print(
            f"speed-up (official / ours, whole processes): {statistics.median(theirs) / statistics.median(ours):.1f}x"
        )
        a, b = infos(work / "ours.vcf"), infos(work / "official.vcf")
        diff = [(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        print(f"INFO strings differing: {len(diff)} of {len(a)}")
        for i, x, y in diff[:20]:
            print(f"  record {i + 1}: ours {x} | official {y}")
    if args.gpu:
        gpu_cmd = [c if c != "cpu" else "cuda" for c in ours_cmd]
        walls = [timed(gpu_cmd, work, os.environ.copy()) for _ in range(args.repeats)]
        print(
            f"metasplice pangolin on CUDA: median {statistics.median(walls):.1f} s "
            f"({n / statistics.median(walls):.2f} records/s)"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
