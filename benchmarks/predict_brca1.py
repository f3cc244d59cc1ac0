"""Benchmark: ``metasplice predict`` end to end on the BRCA1 ClinVar VCF (real GRCh38 data).

Input (../shared/realdata, see its README): ``clinvar_brca1_grch38.vcf`` (1,041 ClinVar records in
BRCA1, contig ``chr17``) with ``grch38_chr17_brca1_region.fa`` (chr17 up to 43.6 Mb, real sequence
from 42,425,000; positions are GRCh38 coordinates) and SpliceAI's bundled ``grch38`` gene table, as
benchmarks/bench_spliceai.py uses them. The model is any model directory (stacked or trained), e.g.
results/models/<experiment>.

The command runs in a subprocess, so the time includes start-up (imports, model loading); the
scoring rate alone is read from the command's own summary. Printed: records/s both ways, the counts
of the summary (records, entries, skips by reason) and a check that every input record was written.

    python benchmarks/predict_brca1.py --model results/models/stacked --limit 200
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "realdata"


def head_vcf(src: Path, dst: Path, n: int | None) -> int:
    """Copy the header and the first ``n`` records (all when None); returns the number of records written."""
    kept = 0
    with open(src) as fin, open(dst, "w") as fout:
        for line in fin:
            if line.startswith("#"):
                fout.write(line)
            elif n is None or kept < n:
                fout.write(line)
                kept += 1
    return kept


def count_output(path: Path) -> dict[str, int]:
    """Records and records carrying each INFO field of the output VCF (plain or bgzipped)."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    counts = {"records": 0, "MetaSplice": 0, "SpliceAI": 0}
    with opener(path, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            counts["records"] += 1
            info = line.rstrip("\n").split("\t")[7]
            for key in ("MetaSplice", "SpliceAI"):
                counts[key] += f"{key}=" in info
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", required=True, type=Path, help="model directory (model.json + stacker.joblib, or model.pt)"
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the realdata folder")
    p.add_argument("--vcf", type=Path, default=None, help="default: DATA/clinvar_brca1_grch38.vcf")
    p.add_argument("--fasta", type=Path, default=None, help="default: DATA/grch38_chr17_brca1_region.fa")
    p.add_argument("--annotation", default="grch38", help="grch38 (bundled with spliceai) or a gene table")
    p.add_argument("--limit", type=int, default=None, help="score only the first N records (default: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--chunk-size", type=int, default=2000)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "predict_brca1")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    vcf = args.vcf or args.data / "clinvar_brca1_grch38.vcf"
    fasta = args.fasta or args.data / "grch38_chr17_brca1_region.fa"
    for path in (vcf, fasta, args.model):
        if not path.exists():
            print(f"not found: {path}", file=sys.stderr)
            return 2
    source = args.out / "input.vcf"
    n_input = head_vcf(vcf, source, args.limit)
    out = args.out / "predicted.vcf.gz"
    command = [
        sys.executable,
        "-m",
        "metasplice.cli",
        "predict",
        "-I",
        str(source),
        "-O",
        str(out),
        "-R",
        str(fasta),
        "-A",
        args.annotation,
        "--model",
        str(args.model),
        "--tsv",
        str(args.out / "predicted.tsv"),
        "--skipped",
        str(args.out / "skipped.tsv"),
        "--device",
        args.device,
        "--chunk-size",
        str(args.chunk_size),
        "--no-progress",
    ]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    print(f"{n_input} records of {vcf.name}; model {args.model}; device {args.device}", flush=True)
    t0 = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if run.returncode != 0:
        print(run.stderr[-4000:], file=sys.stderr)
        return run.returncode
    summary = [line for line in run.stderr.splitlines() if not line.startswith("WARNING")]
    scoring = re.search(r"([0-9.]+) records/s", run.stderr)
    counts = count_output(out)
    report = {
        "input_records": n_input,
        "seconds_end_to_end": seconds,
        "records_per_s_end_to_end": n_input / seconds,
        "records_per_s_scoring": float(scoring.group(1)) if scoring else None,
        "output": counts,
        "all_records_written": counts["records"] == n_input,
    }
    print("\n".join(summary))
    print(
        f"end to end: {n_input} records in {seconds:.1f} s -> {report['records_per_s_end_to_end']:.2f} records/s "
        f"(scoring alone {report['records_per_s_scoring']} records/s)"
    )
    print(
        f"output: {counts['records']} records ({'all' if report['all_records_written'] else 'NOT all'} written), "
        f"{counts['MetaSplice']} with MetaSplice, {counts['SpliceAI']} with SpliceAI"
    )
    (args.out / "predict_brca1.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"written {args.out / 'predict_brca1.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
