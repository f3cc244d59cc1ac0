"""The drop-in CLI: skip rules with reasons, the official CLI's crash cases handled, I/O details."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pandas as pd
import pysam
import pytest
from test_spliceai_fixtures import DATA, GENES, fixture_annotation, spliceai_model, vcf_records  # noqa: F401

from metasplice.base_models.engine import IncrementalBackend
from metasplice.base_models.spliceai.scoring import ScoreConfig, SkipReason, check_record, classify_allele, delta_scores
from metasplice.base_models.spliceai.vcf import Record, score_records
from metasplice.cli import main as cli_main
from metasplice.data.annotation import write_annotation
from metasplice.data.genome import Genome

HEADER = "##fileformat=VCFv4.2\n##contig=<ID=10,length=110000>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def write_vcf(path, lines, header=HEADER) -> None:
    path.write_text(header + "".join("\t".join(map(str, l)) + "\n" for l in lines))


def run_cli(tmp_path, lines, *extra, fasta="test.fa", header=HEADER):
    vcf, out, skipped = tmp_path / "in.vcf", tmp_path / "out.vcf", tmp_path / "skipped.tsv"
    write_vcf(vcf, lines, header)
    code = cli_main(
        [
            "spliceai",
            "-I",
            str(vcf),
            "-O",
            str(out),
            "-R",
            str(DATA / fasta),
            "-A",
            str(GENES),
            "--no-progress",
            "--device",
            "cpu",
            "--skipped",
            str(skipped),
            *extra,
        ]
    )
    reasons = pd.read_csv(skipped, sep="\t", dtype=str, keep_default_na=False) if skipped.exists() else None
    return code, out, reasons


def test_unknown_contig_iupac_and_symbolic_alleles_are_reported(tmp_path) -> None:
    header = HEADER.replace("##contig=<ID=10,length=110000>\n", "##contig=<ID=10,length=110000>\n##contig=<ID=19>\n")
    lines = [
        ("19", 1228432, ".", "C", "A", ".", ".", "."),  # STK11's contig is not in this FASTA: official CLI crashes
        ("10", 94077, ".", "A", "R", ".", ".", "."),  # IUPAC ALT: official CLI maps R to C
        ("10", 94077, ".", "A", "C,<DEL>,*", ".", ".", "END=94077"),  # symbolic + missing alleles skipped
        ("10", 94077, ".", "a", "C", ".", ".", "."),  # lower-case REF never matches (as the official CLI)
        ("10", 94555, ".", "CA", "TG", ".", ".", "."),  # MNV: '.' entry
        ("10", 200, ".", "A", "C", ".", ".", "."),  # outside every gene
    ]
    header = header.replace("#CHROM", '##INFO=<ID=END,Number=1,Type=Integer,Description="End">\n#CHROM')
    fa = Genome(DATA / "test.fa")
    lines[3] = ("10", 94077, ".", fa.fetch("10", 94076, 94077).lower(), "C", ".", ".", ".")
    lines[4] = ("10", 94555, ".", fa.fetch("10", 94554, 94556), "TG", ".", ".", ".")
    code, out, reasons = run_cli(tmp_path, lines, "-D", "10", header=header)
    assert code == 0
    records = vcf_records(out)
    assert len(records) == len(lines)  # every record written, in order
    info = [r[7] for r in records]
    assert info[0] == "." and info[1] == "." and info[3] == "." and info[5] == "."
    assert info[2].startswith("END=94077;SpliceAI=C|TUBB8|") and info[2].count("|") == 9
    assert info[4] == "SpliceAI=TG|TUBB8|.|.|.|.|.|.|.|."
    by_reason = reasons["reason"].str.split(":").str[0].tolist()
    assert by_reason == [
        "unknown contig",
        "non-ACGTN ALT",
        "symbolic ALT",
        "missing ALT",
        "ref mismatch",
        "mnv/complex",
        "outside genes",
    ]


def test_iupac_base_in_the_model_window_is_skipped(tmp_path) -> None:
    """A Y inside the transcript part of a window skips that allele; outside the transcript it is masked."""
    seq = Genome(DATA / "test.fa").fetch("chr10", 0, 110000)
    edited = seq[:94000] + "Y" + seq[94001:96000] + "Y" + seq[96001:]  # Y at 94001 and 96001
    fasta = tmp_path / "iupac.fa"
    fasta.write_text(">chr10\n" + "\n".join(edited[i : i + 60] for i in range(0, len(edited), 60)) + "\n")
    pysam.faidx(str(fasta))
    genes = pd.DataFrame(
        {
            "name": ["TUBB8", "OTHER"],
            "chrom": ["10", "10"],
            "strand": ["-", "+"],
            "tx_start": [92893, 96500],
            "tx_end": [95529, 99000],
            "exon_starts": [(92893,), (96500,)],
            "exon_ends": [(95529,), (99000,)],
        }
    )
    table = tmp_path / "genes.tsv"
    write_annotation(genes, table)
    vcf, out, skipped = tmp_path / "in.vcf", tmp_path / "out.vcf", tmp_path / "s.tsv"
    write_vcf(
        vcf,
        [
            ("10", 94077, ".", seq[94076], "C", ".", ".", "."),
            ("10", 97000, ".", seq[96999], "C" if seq[96999] != "C" else "A", ".", ".", "."),
        ],
    )
    assert (
        cli_main(
            [
                "spliceai",
                "-I",
                str(vcf),
                "-O",
                str(out),
                "-R",
                str(fasta),
                "-A",
                str(table),
                "--no-progress",
                "--skipped",
                str(skipped),
            ]
        )
        == 0
    )
    reasons = pd.read_csv(skipped, sep="\t", dtype=str)
    assert len(reasons) == 1 and reasons["reason"].iat[0].startswith("non-ACGTN reference")
    assert reasons["gene"].iat[0] == "TUBB8"
    records = vcf_records(out)
    assert records[0][7] == "."
    assert records[1][7].startswith("SpliceAI=") and "|OTHER|" in records[1][7]


def test_record_checks_follow_the_official_order(fixture_annotation) -> None:
    with Genome(DATA / "test.fa") as genome:
        ref = genome.fetch("chr10", 94076, 94077)
        assert check_record(genome, "10", 94077, ref, 5000, 50) == ("chr10", "")
        assert check_record(genome, "chr10", 94077, ref, 5000, 50) == ("chr10", "")
        assert check_record(genome, "10", 5050, "N", 5000, 50)[1].startswith("near chromosome start")
        assert check_record(genome, "10", 5051, genome.fetch("chr10", 5050, 5051), 5000, 50)[1] == ""
        last = 110000 - 5050
        assert check_record(genome, "10", last, genome.fetch("chr10", last - 1, last), 5000, 50)[1] == ""
        near_end = genome.fetch("chr10", last, last + 1)
        assert check_record(genome, "10", last + 1, near_end, 5000, 50)[1].startswith("near chromosome end")
        assert check_record(genome, "10", 94077, "X", 5000, 50)[1].startswith("ref mismatch")  # before the end test
        long_ref = genome.fetch("chr10", 94076, 94077 + 100)
        assert check_record(genome, "10", 94077, long_ref, 5000, 50)[1].startswith("ref too long")
        assert check_record(genome, "10", 94077, long_ref, 5000, 51)[1] == ""
        assert check_record(genome, "22", 94077, ref, 5000, 50) == (None, SkipReason.CONTIG.format(chrom="22"))
    assert classify_allele("A", "G") == ("score", "")
    assert classify_allele("A", "AN")[0] == "score"  # N is a legal base (all-zero one-hot)
    assert classify_allele("AT", "GC")[0] == "dots"
    assert classify_allele("AT", "G*")[0] == "skip"  # the '*' test comes first, as in the official CLI


def test_delta_scores_alignment_and_mask() -> None:
    """Deleted rows are zeros, inserted rows collapse to their maximum, -M 1 masks as the CLI does."""
    d = 3
    ref = np.full((7, 3), 0.1, dtype=np.float32)
    alt = np.full((5, 3), 0.1, dtype=np.float32)  # deletion of 2 (REF 3 nt)
    alt[4, 1] = 0.9  # acceptor gain at the last position after re-alignment
    ds, dp, delta = delta_scores(ref, alt, 3, 1, d, False, 0)
    assert delta.shape == (7, 3) and np.allclose(delta[4:6], -0.1)  # deleted rows: 0 - ref
    assert dp == (3, 1, -3, 1) and f"{ds[0]:.2f}" == "0.80" and f"{ds[1]:.2f}" == "0.10"
    ins = np.full((9, 3), 0.1, dtype=np.float32)
    ins[4, 2] = 0.7  # inserted base: collapsed into the anchor row
    ds, dp, delta = delta_scores(ref, ins, 1, 3, d, False, 0)
    assert dp[2] == 0 and f"{ds[2]:.2f}" == "0.60"
    ds, dp, _ = delta_scores(ref, ins, 1, 3, d, True, 0)  # donor gain at the boundary -> masked to 0
    assert f"{ds[2]:.2f}" == "0.00" and dp[2] == 0
    neg = np.full((7, 3), 0.2, dtype=np.float32)
    ds, _, _ = delta_scores(ref, neg, 1, 1, d, False, 0)
    assert f"{ds[1]:.2f}" == "-0.10"  # never clipped at 0
    ds, _, _ = delta_scores(ref, neg, 1, 1, d, True, 2)
    assert f"{ds[1]:.2f}" == "-0.00"  # the mask multiplies by 0


def test_multiallelic_and_overlapping_genes(spliceai_model, fixture_annotation) -> None:
    """Entries allele-major then gene, as the official CLI writes them (batch test genes STK11/CBARP)."""
    backend = IncrementalBackend(spliceai_model)
    with Genome(DATA / "chr19_grch37_small.fa") as genome:
        entries, _ = score_records(
            [Record("19", 1228432, "C", ("A", "T"))], genome, fixture_annotation, backend, ScoreConfig()
        )
    assert [e.split("|")[:2] for e in entries[0]] == [["A", "STK11"], ["A", "CBARP"], ["T", "STK11"], ["T", "CBARP"]]


def test_gzip_output_stdout_and_cli_errors(tmp_path) -> None:
    ref = Genome(DATA / "test.fa").fetch("chr10", 94076, 94077)
    lines = [("10", 94077, ".", ref, "C", ".", ".", ".")]
    code, out, _ = run_cli(tmp_path, lines, "-D", "5")
    gz = tmp_path / "out.vcf.gz"
    vcf = tmp_path / "in.vcf"
    assert (
        cli_main(
            [
                "spliceai",
                "-I",
                str(vcf),
                "-O",
                str(gz),
                "-R",
                str(DATA / "test.fa"),
                "-A",
                str(GENES),
                "-D",
                "5",
                "--no-progress",
            ]
        )
        == 0
    )
    with gzip.open(gz, "rt") as fh:
        assert [l for l in fh if not l.startswith("#")] == [l + "\n" for l in ["\t".join(r) for r in vcf_records(out)]]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "metasplice.cli",
            "spliceai",
            "-I",
            str(vcf),
            "-R",
            str(DATA / "test.fa"),
            "-A",
            str(GENES),
            "-D",
            "5",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [l.split("\t") for l in proc.stdout.splitlines() if not l.startswith("#")] == vcf_records(out)
    assert (
        cli_main(
            [
                "spliceai",
                "-I",
                str(vcf),
                "-O",
                str(tmp_path / "x.vcf"),
                "-R",
                str(tmp_path / "none.fa"),
                "-A",
                str(GENES),
                "--no-progress",
            ]
        )
        == 1
    )
    assert not (tmp_path / "x.vcf").exists()
    with pytest.raises(SystemExit):
        cli_main(["spliceai", "-I", str(vcf), "-R", str(DATA / "test.fa"), "-A", str(GENES), "-D", "5000"])
