"""Benchmark: metasplice's SpliceAI engine against the official ``spliceai`` 1.3.1 CLI.

Two inputs, both real GRCh38 sequence (../shared/realdata, see its README):

* dense  - the BRCA1 ClinVar VCF (about 1,000 records in one gene);
* sparse - one SNV per gene for every gene of SpliceAI's grch38 table that lies inside the
  region FASTA (chr17:42.43-43.60 Mb), next to an exon boundary; built by this script.

For each input: our throughput (scored alleles per second, median of --repeats runs after the
model is loaded; the one-off start-up is reported apart), the multiply-accumulates per allele
actually done, and - with --official-python, a Python that has ``tensorflow`` and ``spliceai`` -
the official CLI's throughput on the first --official-n records of the same input (the median
time of that run minus the median time of a one-record run, each repeated and interleaved with
ours), the ratio, and every INFO/SpliceAI entry that differs between the two outputs.

A third input, ``mixed`` (--inputs mixed), puts up to --per-gene SNVs next to random exon
boundaries of every gene in the region: the density of SpliceVarDB's ~50,000 variants over
~8,000 genes if they were spread evenly.

    python benchmarks/bench_spliceai.py --official-python /path/to/tfvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "realdata"


def vcf_header(contig: str, length: int) -> str:
    return (
        f"##fileformat=VCFv4.2\n##contig=<ID={contig},length={length}>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    )


def head_vcf(src: Path, dst: Path, n: int) -> int:
    """Copy the header and the first ``n`` records; returns the number of records written."""
    kept = 0
    with open(src) as fin, open(dst, "w") as fout:
        for line in fin:
            if line.startswith("#"):
                fout.write(line)
            elif kept < n:
                fout.write(line)
                kept += 1
    return kept


def sparse_vcf(fasta: Path, annotation: str, dst: Path, margin: int = 5100) -> int:
    """One SNV per gene inside the FASTA's real sequence, 2 nt into the intron after an exon."""
    from metasplice.data.annotation import load_annotation
    from metasplice.data.genome import Genome

    genes = load_annotation(annotation).genes
    lines = []
    with Genome(fasta) as genome:
        name = genome.names[0]
        seq_len = genome.lengths[name]
        first_real = genome.fetch(name, 0, seq_len).find("A")  # the region file is N up to the real part
        for g in genes.itertuples():
            if genome.resolve(g.chrom) != name or g.tx_start - margin < first_real or g.tx_end + margin > seq_len:
                continue
            ends = [e for e in g.exon_ends if e < g.tx_end]
            pos = (ends[len(ends) // 2] + 2) if ends else (g.tx_start + g.tx_end) // 2
            ref = genome.fetch(name, pos - 1, pos)
            alt = {"A": "G", "C": "T", "G": "A", "T": "C"}.get(ref)
            if alt:
                lines.append((pos, f"{name}\t{pos}\t{g.name}\t{ref}\t{alt}\t.\t.\t.\n"))
    with open(dst, "w") as fh:
        fh.write(vcf_header(name, seq_len))
        fh.writelines(line for _, line in sorted(set(lines)))
    return len(set(lines))


def mixed_vcf(fasta: Path, annotation: str, dst: Path, per_gene: int = 6, seed: int = 0, margin: int = 5100) -> int:
    """SpliceVarDB-like density: up to ``per_gene`` SNVs per gene within 20 nt of exon boundaries."""
    import numpy as np

    from metasplice.data.annotation import load_annotation
    from metasplice.data.genome import Genome

    rng = np.random.default_rng(seed)
    genes = load_annotation(annotation).genes
    lines = set()
    with Genome(fasta) as genome:
        name = genome.names[0]
        seq_len = genome.lengths[name]
        first_real = genome.fetch(name, 0, seq_len).find("A")
        for g in genes.itertuples():
            if genome.resolve(g.chrom) != name or g.tx_start - margin < first_real or g.tx_end + margin > seq_len:
                continue
            bounds = np.array(sorted(set(g.exon_starts) | set(g.exon_ends)))
            for b in rng.choice(bounds, size=min(per_gene, len(bounds)), replace=False):
                pos = int(np.clip(b + rng.integers(-20, 21), g.tx_start, g.tx_end))
                ref = genome.fetch(name, pos - 1, pos)
                alt = {"A": "G", "C": "T", "G": "A", "T": "C"}.get(ref)
                if alt:
                    lines.add((pos, f"{name}\t{pos}\t{g.name}\t{ref}\t{alt}\t.\t.\t.\n"))
    with open(dst, "w") as fh:
        fh.write(vcf_header(name, seq_len))
        fh.writelines(line for _, line in sorted(lines))
    return len(lines)


def spliceai_entries(path: Path) -> dict[tuple[str, str, str, str, str], str]:
    """(chrom, pos, ref, alt, gene) -> entry string, from INFO/SpliceAI."""
    out = {}
    with open(path) as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            for item in f[7].split(";"):
                if item.startswith("SpliceAI="):
                    for entry in item[9:].split(","):
                        parts = entry.split("|")
                        out[(f[0], f[1], f[3], parts[0], parts[1])] = entry
    return out


def compare(ours: Path, official: Path) -> dict:
    a, b = spliceai_entries(ours), spliceai_entries(official)
    common = sorted(set(a) & set(b))
    differ = [(k, a[k], b[k]) for k in common if a[k] != b[k]]

    def max_ds_diff(x: str, y: str) -> float:
        fx, fy = x.split("|")[2:6], y.split("|")[2:6]
        if "." in fx or "." in fy:
            return float("nan")
        return max(abs(float(p) - float(q)) for p, q in zip(fx, fy))

    return {
        "entries_ours": len(a),
        "entries_official": len(b),
        "common": len(common),
        "identical": len(common) - len(differ),
        "only_ours": len(set(a) - set(b)),
        "only_official": len(set(b) - set(a)),
        "differing": [{"ours": x, "official": y, "max_ds_diff": max_ds_diff(x, y)} for _, x, y in differ],
    }


def run_ours(vcf: Path, fasta: Path, annotation, backend, repeats: int, out: Path, distance: int) -> dict:
    from metasplice.base_models.spliceai.scoring import ScoreConfig
    from metasplice.base_models.spliceai.vcf import annotate_vcf
    from metasplice.data.genome import Genome

    times, cpu, macs, entries = [], [], 0, 0
    for _ in range(repeats):
        backend.macs = 0
        with Genome(fasta) as genome:
            t0, c0 = time.perf_counter(), time.process_time()
            summary = annotate_vcf(
                str(vcf), str(out), genome, annotation, backend, ScoreConfig(distance=distance), progress=False
            )
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        macs, entries = backend.macs, summary.entries
    med = statistics.median(times)
    return {
        "entries": entries,
        "records": summary.records,
        "seconds": times,
        "median_s": med,
        "alleles_per_s": entries / med,
        "gmac_per_allele": macs / max(entries, 1) / 1e9,
        "cpu_s": cpu,
        "cpu_s_per_allele": statistics.median(cpu) / max(entries, 1),
    }


def run_official(python: str, vcf: Path, fasta: Path, annotation: str, out: Path, distance: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one official CLI run."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [
            python,
            "-m",
            "spliceai",
            "-I",
            str(vcf),
            "-O",
            str(out),
            "-R",
            str(fasta),
            "-A",
            annotation,
            "-D",
            str(distance),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the realdata folder")
    p.add_argument("--annotation", default="grch38")
    p.add_argument("--official-python", default=None, help="Python with tensorflow + spliceai (optional)")
    p.add_argument("--official-n", type=int, default=60, help="records the official CLI is timed on")
    p.add_argument(
        "--official-full",
        action="store_true",
        help="also run the official CLI on the whole inputs (for the agreement counts; slow: about 1-3 s per allele)",
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--full-repeats", type=int, default=None, help="repeats of ours on the whole inputs (default --repeats)"
    )
    p.add_argument("--distance", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=None, help="default: 32 on CPU, 256 on CUDA")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--reference",
        choices=["pyramid", "segment"],
        default=None,
        help="reference pass of the incremental engine (default: pyramid on CPU, segment on CUDA)",
    )
    p.add_argument("--inputs", nargs="+", default=["dense", "sparse"], choices=["dense", "sparse", "mixed"])
    p.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN pick algorithms by timing")
    p.add_argument("--per-gene", type=int, default=6, help="mixed input: SNVs per gene (SpliceVarDB: about 6)")
    p.add_argument("--weights", nargs="+", default=None, help="spliceai1..5.h5 (default: the spliceai package's)")
    p.add_argument("--fasta", type=Path, default=None, help="default: DATA/grch38_chr17_brca1_region.fa")
    p.add_argument("--dense-vcf", type=Path, default=None, help="default: DATA/clinvar_brca1_grch38.vcf")
    p.add_argument(
        "--parity",
        type=Path,
        default=None,
        help="folder with {input}_ours.vcf of a reference run (e.g. CPU fp32) to compare entries with",
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    import torch

    from metasplice.base_models.backends import EngineSpec, make_backend
    from metasplice.base_models.spliceai.model import load_spliceai_ensemble
    from metasplice.data.annotation import load_annotation

    t_import = time.perf_counter() - t0
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    model = load_spliceai_ensemble(args.weights)
    backend = make_backend(
        model,
        EngineSpec("incremental", args.device, args.batch_size, args.precision, args.threads, args.reference),
    )
    t_load = time.perf_counter() - t0 - t_import
    annotation = load_annotation(args.annotation)
    print(
        f"start-up: imports {t_import:.2f} s, model load {t_load:.2f} s; torch threads {torch.get_num_threads()}, "
        f"device {backend.device}, precision {args.precision}, reference pass {backend.reference}",
        flush=True,
    )

    fasta = args.fasta or args.data / "grch38_chr17_brca1_region.fa"
    inputs = {}
    if "dense" in args.inputs:
        inputs["dense"] = args.dense_vcf or args.data / "clinvar_brca1_grch38.vcf"
    if "mixed" in args.inputs:
        inputs["mixed"] = args.out / "mixed_splicevardb_like.vcf"
        n = mixed_vcf(fasta, args.annotation, inputs["mixed"], per_gene=args.per_gene)
        print(f"mixed input: {n} SNVs near exon boundaries, up to {args.per_gene} per gene", flush=True)
    if "sparse" in args.inputs:
        inputs["sparse"] = args.out / "sparse_one_per_gene.vcf"
        n = sparse_vcf(fasta, args.annotation, inputs["sparse"])
        print(f"sparse input: {n} SNVs, one per gene", flush=True)

    report = {"startup": {"imports_s": t_import, "load_s": t_load}, "inputs": {}}
    for name, vcf in inputs.items():
        res = {
            "ours": run_ours(
                vcf,
                fasta,
                annotation,
                backend,
                args.full_repeats or args.repeats,
                args.out / f"{name}_ours.vcf",
                args.distance,
            )
        }
        o = res["ours"]
        print(
            f"[{name}] ours: {o['entries']} alleles ({o['records']} records), median {o['median_s']:.1f} s of "
            f"{len(o['seconds'])} -> {o['alleles_per_s']:.2f} alleles/s, {o['cpu_s_per_allele']:.3f} CPU-s/allele, "
            f"{o['gmac_per_allele']:.2f} GMAC/allele",
            flush=True,
        )
        if args.parity is not None and (args.parity / f"{name}_ours.vcf").exists():
            agree = compare(args.out / f"{name}_ours.vcf", args.parity / f"{name}_ours.vcf")
            res["parity"] = agree
            print(
                f"[{name}] parity with {args.parity}: {agree['identical']}/{agree['common']} entries identical; "
                f"max DS difference {max([d['max_ds_diff'] for d in agree['differing']] or [0]):.2f}",
                flush=True,
            )
        if args.device.startswith("cuda"):
            print(
                f"[{name}] projection for 50,000 alleles at this density: {50000 / o['alleles_per_s'] / 60:.1f} min",
                flush=True,
            )
        if args.official_python:
            sub = args.out / f"{name}_head.vcf"
            head_vcf(vcf, sub, args.official_n)
            one = args.out / f"{name}_one.vcf"
            head_vcf(vcf, one, 1)
            # interleaved: official one record, official subset, ours subset, ... (the machine's load
            # drifts); the official rate is (subset - one record) alleles over the median time difference
            wall, cpu, ours_sub, one_wall, one_cpu = [], [], [], [], []
            for _ in range(max(1, args.repeats - 1)):
                w, c = run_official(
                    args.official_python, one, fasta, args.annotation, args.out / "one_official.vcf", args.distance
                )
                one_wall.append(w)
                one_cpu.append(c)
                w, c = run_official(
                    args.official_python,
                    sub,
                    fasta,
                    args.annotation,
                    args.out / f"{name}_head_official.vcf",
                    args.distance,
                )
                wall.append(w)
                cpu.append(c)
                ours_sub.append(
                    run_ours(sub, fasta, annotation, backend, 1, args.out / f"{name}_head_ours.vcf", args.distance)
                )
            n_sub = ours_sub[0]["entries"]
            n_one = len(spliceai_entries(args.out / "one_official.vcf"))
            startup, startup_cpu = statistics.median(one_wall), statistics.median(one_cpu)
            off_rate = (n_sub - n_one) / max(statistics.median(wall) - startup, 1e-9)
            off_cpu = max(statistics.median(cpu) - startup_cpu, 1e-9) / (n_sub - n_one)
            sub_rate = statistics.median(r["alleles_per_s"] for r in ours_sub)
            sub_cpu = statistics.median(r["cpu_s_per_allele"] for r in ours_sub)
            res["official"] = {
                "startup_s": startup,
                "startup_cpu_s": startup_cpu,
                "wall_s": wall,
                "cpu_s": cpu,
                "alleles": n_sub,
                "alleles_per_s": off_rate,
                "cpu_s_per_allele": off_cpu,
            }
            res["ours_subset"] = ours_sub
            res["ratio_steady"] = o["alleles_per_s"] / off_rate
            res["ratio_same_subset"] = sub_rate / off_rate
            res["ratio_cpu_time_subset"] = off_cpu / sub_cpu
            res["agreement_subset"] = compare(
                args.out / f"{name}_head_ours.vcf", args.out / f"{name}_head_official.vcf"
            )
            print(
                f"[{name}] official: start-up {startup:.1f} s, {n_sub} alleles in median "
                f"{statistics.median(wall):.1f} s -> {off_rate:.3f} alleles/s, {off_cpu:.2f} CPU-s/allele; "
                f"ratio {res['ratio_steady']:.1f}x (same {n_sub} alleles, interleaved: wall "
                f"{res['ratio_same_subset']:.1f}x, CPU time {res['ratio_cpu_time_subset']:.1f}x)",
                flush=True,
            )
            if args.official_full:
                full = args.out / f"{name}_official.vcf"
                res["official_full_s"] = run_official(
                    args.official_python, vcf, fasta, args.annotation, full, args.distance
                )
                res["agreement"] = compare(args.out / f"{name}_ours.vcf", full)
            agree = res.get("agreement", res["agreement_subset"])
            print(
                f"[{name}] agreement: {agree['identical']}/{agree['common']} entries identical, "
                f"{len(agree['differing'])} differ",
                flush=True,
            )
            for d in agree["differing"]:
                print(f"    ours {d['ours']}\n    off. {d['official']}", flush=True)
        report["inputs"][name] = res
    (args.out / "bench_spliceai.json").write_text(json.dumps(report, indent=1))
    print(f"written {args.out / 'bench_spliceai.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
