"""The scoring command lines never lose a good record: damaged input lines, files and signals.

`metasplice spliceai` on real GRCh38 BRCA1 ClinVar records (tests/data/realdata): a damaged line
(non-numeric POS, too few columns, binary data, a truncated last line, an empty line, a `<DEL>`
without END) is named as ``[Line n]`` on stderr and dropped (not a VCF record) or written as read
(a `<DEL>` the official CLI cannot write); every other record gets exactly the line of the clean
file's run, which equals the official CLI's (test_spliceai_fixtures). Files are checked before
the models load, a plain-gzip VCF is read, output appears only when complete, SIGINT / SIGTERM
stop with one line, no temporary file and exit 130 / 143. The same for `metasplice pangolin` and
`metasplice predict` (damaged model files named).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pysam
import pytest
from test_pangolin import _records as pangolin_records
from test_predict import FASTA as PREDICT_FASTA
from test_predict import GENES as PREDICT_GENES
from test_predict import intergenic_vcf, stub_predictor, tiny_member

import metasplice.predict.predictor as PR
from metasplice.cli import main as cli_main
from metasplice.data.annotation import bundled_annotation_path, load_annotation
from metasplice.data.genome import Genome
from metasplice.predict import annotate as P

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(__file__).resolve().parent / "data" / "realdata"
VCF = REAL / "clinvar_brca1_grch38.vcf"
FASTA = REAL / "grch38_chr17_brca1_region.fa.gz"
PANGOLIN = Path(__file__).resolve().parent / "data" / "pangolin"
STEP = 100  # every 100th ClinVar record: 11 records, SNVs and indels along BRCA1

HEADER = [line for line in VCF.read_text().splitlines() if line.startswith("#")]
RECORDS = [line for line in VCF.read_text().splitlines() if not line.startswith("#")][::STEP]
LINE = re.compile(r"^\[Line (\d+)\] ", re.MULTILINE)


@pytest.fixture(scope="module")
def genes(tmp_path_factory) -> Path:
    """The rows of the spliceai package's grch38 table around BRCA1 (the same output as -A grch38, faster)."""
    path = tmp_path_factory.mktemp("genes") / "brca1_region.txt"
    rows = bundled_annotation_path("grch38").read_text().splitlines()
    fields = [r.split("\t") for r in rows[1:]]
    keep = [r for r, f in zip(rows[1:], fields) if f[1] == "17" and int(f[3]) < 43_600_000 and int(f[4]) > 42_425_000]
    path.write_text("\n".join([rows[0], *keep]) + "\n")
    return path


def spliceai(tmp: Path, vcf: Path, genes: Path, *extra: str, out: str = "out.vcf", fasta: Path = FASTA):
    """``metasplice spliceai`` in-process: (exit code, stderr, the output's data lines or None)."""
    output = tmp / out
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli_main(
            [
                *("spliceai", "-I", str(vcf), "-O", str(output), "-R", str(fasta), "-A", str(genes)),
                *("--no-progress", "--device", "cpu", "--threads", "2", *extra),
            ]
        )
    body = None
    if output.exists():
        opener = gzip.open if output.suffix == ".gz" else open
        with opener(output, "rt", encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
            body = [line.rstrip("\n") for line in fh if not line.startswith("#")]
    return code, err.getvalue(), body


def write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_bytes(("\n".join(lines) + end).encode("utf-8", errors="surrogateescape"))
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory, genes) -> dict[str, str]:
    """The clean file's output: each record's output line, by its input text."""
    tmp = tmp_path_factory.mktemp("clean")
    code, _, body = spliceai(tmp, write(tmp / "clean.vcf", HEADER + RECORDS), genes)
    assert code == 0 and len(body) == len(RECORDS)
    return dict(zip(RECORDS, body, strict=True))


# one file with every kind of damaged line: (what it is, the line, dropped?)
BINARY = "".join(chr(c) for c in range(1, 40) if c != 10) + "\x00\x7f\ufffd\udcff"  # no line break
DEL_NO_END = "chr17\t43045800\t.\tT\t<DEL>\t.\t.\t."  # the header declares no END
DAMAGED = [
    ("non-numeric POS", "chr17\t4304x5800\t.\tT\tC\t.\t.\t.", True),
    ("too few columns", "chr17\t43045800\t.\tT\tC", True),
    ("binary line", BINARY, True),
    ("empty line", "", True),
    ("symbolic ALT without END", DEL_NO_END, False),
]
TRUNCATED_LAST = RECORDS[-1][: RECORDS[-1].index("\t.\t.\t") + 2]  # cut after ID..QUAL: 6 columns, no newline


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, genes) -> dict:
    """The records with every kind of damaged line spliced in, and a truncated last line; scored once."""
    tmp = tmp_path_factory.mktemp("damaged")
    lines = list(RECORDS[:-1])
    where = {}
    for k, (_, text, _) in enumerate(DAMAGED):
        lines.insert(2 * k + 1, text)
    for kind, text, _ in DAMAGED:
        where[kind] = len(HEADER) + 1 + lines.index(text)
    lines.append(TRUNCATED_LAST)
    where["truncated last line"] = len(HEADER) + len(lines)
    vcf = write(tmp / "damaged.vcf", HEADER + lines, end="")
    code, stderr, body = spliceai(tmp, vcf, genes, "--skipped", str(tmp / "skipped.tsv"))
    return {"code": code, "stderr": stderr, "body": body, "where": where, "vcf": vcf, "tmp": tmp}


def named(stderr: str) -> set[int]:
    return {int(n) for n in LINE.findall(stderr)}


@pytest.mark.parametrize("kind", [d[0] for d in DAMAGED if d[2]])
def test_a_line_that_is_no_record_is_named_and_dropped(damaged, clean, kind) -> None:
    assert damaged["code"] == 0
    n = damaged["where"][kind]
    assert re.search(rf"^\[Line {n}\] WARNING: line dropped \(malformed line", damaged["stderr"], re.MULTILINE)
    text = next(d[1] for d in DAMAGED if d[0] == kind)
    assert text not in damaged["body"]
    # every good record: the clean file's line
    assert [line for line in damaged["body"] if line != DEL_NO_END] == list(clean.values())[:-1]


def test_truncated_last_line_is_named_and_dropped(damaged) -> None:
    n = damaged["where"]["truncated last line"]
    assert f"[Line {n}] WARNING: line dropped (malformed line: 6 tab-separated column(s)" in damaged["stderr"]
    assert f"[Line {n}] WARNING: the file ends inside this line" in damaged["stderr"]
    assert not any(line.startswith(TRUNCATED_LAST) for line in damaged["body"])


def test_symbolic_allele_without_end_is_written_as_read(damaged) -> None:
    """The official CLI dies writing it (pysam: "INFO tag id too large"), losing every later record."""
    n = damaged["where"]["symbolic ALT without END"]
    assert f"[Line {n}] WARNING: chr17:43045800 T><DEL> written as read: a symbolic ALT" in damaged["stderr"]
    assert damaged["body"].count(DEL_NO_END) == 1
    skipped = (damaged["tmp"] / "skipped.tsv").read_text(errors="replace").splitlines()
    assert skipped[0] == "line\tchrom\tpos\tref\talt\tgene\treason"
    assert {int(r.split("\t")[0]) for r in skipped[1:]} >= set(damaged["where"].values())
    assert not [p.name for p in damaged["tmp"].iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_line_htslib_cannot_parse_is_named_and_dropped(genes, tmp_path) -> None:
    """Lines of 8+ columns that htslib rejects (the official CLI dies on the first): wrong FORMAT
    field count, a FORMAT column without its sample, too many ALT alleles."""
    header = [*HEADER[:-1], '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">', HEADER[-1] + "\tFORMAT\tS1"]
    good = [r + "\tGT\t0/1" for r in RECORDS[:3]]
    f = good[0].split("\t")
    bad = ["\t".join([*f[:9], "0/1:1:2"]), "\t".join(f[:9]), "\t".join([*f[:4], "T," * 70_000 + "T", *f[5:]])]
    code, _, clean_body = spliceai(tmp_path, write(tmp_path / "clean.vcf", header + good), genes, out="clean.vcf.out")
    assert code == 0
    lines = [good[0], bad[0], good[1], bad[1], bad[2], good[2]]
    code, stderr, body = spliceai(tmp_path, write(tmp_path / "bad.vcf", header + lines), genes)
    assert code == 0 and body == clean_body and len(body) == 3
    n = len(header)
    for k in (n + 2, n + 4, n + 5):
        assert f"[Line {k}] WARNING: line dropped (unreadable record: htslib cannot parse it" in stderr


def test_plain_gzip_input_is_read(damaged, genes, tmp_path) -> None:
    """Not bgzip: the official CLI (pysam) fails with 'seek not implemented'."""
    gz = tmp_path / "damaged.vcf.gz"
    gz.write_bytes(gzip.compress(damaged["vcf"].read_bytes()))
    code, stderr, body = spliceai(tmp_path, gz, genes, out="out.vcf.gz")
    assert code == 0 and body == damaged["body"]
    assert named(stderr) == named(damaged["stderr"])


def test_random_damage_costs_only_the_damaged_lines(clean, genes, tmp_path) -> None:
    """Property: damage random lines of the real VCF (replaced or inserted, every kind); each damaged
    line is named with its line number, and every intact record's output line is unchanged."""
    rng = random.Random(19)

    def cut(text: str) -> str:  # a line cut inside its first 7 columns
        return text[: rng.randint(1, len("\t".join(text.split("\t")[:7])))]

    kinds = {
        "pos": lambda f: "\t".join([f[0], rng.choice(["", "x", "-1", "1e5", "43 045 800", "43045800.0"]), *f[2:]]),
        "columns": lambda f: "\t".join(f[: rng.randint(1, 7)]),
        "binary": lambda f: (
            "\t".join(f[:4]) + "".join(chr(rng.choice([0, 1, 8, 13, 27, 127, 0xDC80])) for _ in range(4))
        ),
        "symbolic": lambda f: "\t".join([f[0], f[1], ".", f[3][0], rng.choice(["<DEL>", "<DUP>", "<INS>"]), *"..."]),
        "spaces": lambda f: " ".join(f),
        "header": lambda f: "#" + "\t".join(f),
        "empty": lambda f: rng.choice(["", " ", "\t\t"]),
        "cut": lambda f: cut("\t".join(f)),
    }
    order = sorted(kinds) * 3
    rng.shuffle(order)
    for round_ in range(4):
        lines: list[tuple[str, str | None]] = [(r, None) for r in RECORDS]  # (text, damage kind)
        for kind in order[round_ * 6 : round_ * 6 + 6]:
            k = rng.randrange(len(lines))
            damaged_text = kinds[kind](RECORDS[rng.randrange(len(RECORDS))].split("\t"))
            if rng.random() < 0.5 and lines[k][1] is None:
                lines[k] = (damaged_text, kind)  # a record damaged in place: it is lost, and named
            else:
                lines.insert(k, (damaged_text, kind))
        end = "\n"
        if round_ % 2:  # a truncated last line (no line break)
            lines[-1], end = (cut(lines[-1][0]), "truncated"), ""
        vcf = write(tmp_path / "random.vcf", HEADER + [t for t, _ in lines], end=end)
        code, stderr, body = spliceai(tmp_path, vcf, genes)
        assert code == 0
        damaged_lines = {len(HEADER) + 1 + i for i, (_, kind) in enumerate(lines) if kind}
        assert damaged_lines <= named(stderr), stderr
        intact = [clean[t] for t, kind in lines if kind is None]
        symbolic = {t for t, kind in lines if kind == "symbolic"}
        assert [line for line in body if line not in symbolic] == intact  # and no damaged line written


def test_stale_fasta_index_is_named_before_the_models_load(genes, tmp_path, caplog) -> None:
    """A FASTA truncated after indexing: the official CLI loses every record."""
    fasta = tmp_path / "genome.fa"
    with Genome(FASTA) as g:
        seq = g.fetch("chr17", 43_000_000, 43_200_000)
    fasta.write_text(">chr17\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    pysam.faidx(str(fasta))
    fasta.write_text(fasta.read_text()[: len(seq) // 2])  # truncated after indexing
    vcf = write(tmp_path / "in.vcf", HEADER + RECORDS[:2])
    with caplog.at_level(logging.INFO):
        code, _, body = spliceai(tmp_path, vcf, genes, fasta=fasta)
    assert code == 1 and body is None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert str(fasta) in errors[0] and "truncated" in errors[0] and f"samtools faidx {fasta}" in errors[0]
    assert not any("loaded spliceai" in r.getMessage() for r in caplog.records)


def test_missing_output_folder_is_named_before_the_models_load(genes, tmp_path, caplog) -> None:
    vcf = write(tmp_path / "in.vcf", HEADER + RECORDS[:2])
    with caplog.at_level(logging.INFO):
        code, _, _ = spliceai(tmp_path, vcf, genes, out="no/such/folder/out.vcf")
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "no/such/folder" in errors[0] and "does not exist; create it first" in errors[0]
    assert not any("loaded spliceai" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("flag", [["-D", "-1"], ["-D", "5000"], ["--batch-size", "0"], ["-M", "2"]])
def test_flag_out_of_range_is_one_line(tmp_path, flag) -> None:
    """The official-style choices list of -D was 29.6 KB of text."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        cli_main(["spliceai", "-I", "x.vcf", "-R", "x.fa", "-A", "grch38", *flag])
    assert exit_.value.code == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and f"argument {flag[0]}" in lines[0] and "--help" in lines[0], lines


def test_sigint_and_sigterm_stop_cleanly(genes, tmp_path) -> None:
    """One line on stderr, no temporary file (output folder and temporary folder), exit 130 / 143."""
    vcf = write(tmp_path / "many.vcf", VCF.read_text().splitlines())
    procs = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        out, tmp = tmp_path / sig.name / "out", tmp_path / sig.name / "tmp"
        out.mkdir(parents=True)
        tmp.mkdir()
        cmd = [sys.executable, "-m", "metasplice.cli", "spliceai", "-I", str(vcf), "-O", str(out / "o.vcf")]
        cmd += ["-R", str(FASTA), "-A", str(genes), "--device", "cpu", "--threads", "1", "--no-progress"]
        env = {**os.environ, "TMPDIR": str(tmp)}
        procs[sig] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True), out, tmp)
    for sig, (proc, out, _) in procs.items():
        deadline = time.monotonic() + 120
        while not list(out.iterdir()) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.5)
        proc.send_signal(sig)
    for sig, (proc, out, tmp) in procs.items():
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, stderr
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR")]
        assert errors == [f"ERROR: metasplice spliceai: interrupted by {sig.name}; stopped, temporary files removed"]
        assert "Traceback" not in stderr
        assert list(out.iterdir()) == [] and list(tmp.iterdir()) == []


# --------------------------------------------------------------------------------------------
# metasplice pangolin: the same line handling (one implementation)


def test_pangolin_names_and_drops_damaged_lines(tmp_path) -> None:
    official = {r[:4]: r[4] for r in pangolin_records(PANGOLIN / "clinvar_official_d50.vcf")}
    source = (PANGOLIN / "clinvar_subset.vcf").read_text().splitlines()
    header = [line for line in source if line.startswith("#")]
    good = [line for line in source if not line.startswith("#")][:2]
    lines = [good[0], DAMAGED[0][1], BINARY, good[1], "chr17\t43045800\t.\tT"]
    vcf = write(tmp_path / "in.vcf", header + lines, end="")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli_main(
            [
                *("pangolin", str(vcf), str(FASTA), str(PANGOLIN / "region_genes.db"), str(tmp_path / "out")),
                *("--weights", str(PANGOLIN / "models"), "--device", "cpu", "--threads", "2"),
            ]
        )
    assert code == 0
    n = len(header)
    assert named(err.getvalue()) == {n + 2, n + 3, n + 5}
    assert f"[Line {n + 5}] WARNING: the file ends inside this line" in err.getvalue()
    out = pangolin_records(tmp_path / "out.vcf")
    assert [r[4] for r in out] == [official[r[:4]] for r in out] and len(out) == 2 and all(r[4] for r in out)


# --------------------------------------------------------------------------------------------
# metasplice predict: the same line handling, damaged model files named


def test_predict_names_every_dropped_line_and_keeps_every_record(tmp_path) -> None:
    vcf = tmp_path / "in.vcf"
    damage = [DAMAGED[0][1], BINARY, "", "19\t112001\tr0\tA"]
    intergenic_vcf(vcf, 30)
    text = vcf.read_text() + "\n".join(damage)
    write(vcf, [text], end="")  # the truncated last line has no line break
    said: list[str] = []
    with Genome(PREDICT_FASTA) as genome:
        summary = P.predict_vcf(
            str(vcf),
            str(tmp_path / "out.vcf"),
            genome,
            load_annotation(PREDICT_GENES),
            stub_predictor(tmp_path),
            chunk_size=7,
            progress=False,
            max_warnings=2,  # record-level warnings are capped; a dropped line never is
            warn=said.append,
        )
    first = 3 + 30
    assert named("\n".join(said)) >= {first, first + 1, first + 2, first + 3}
    assert summary.dropped == 4 and summary.records == 30
    body = [line for line in (tmp_path / "out.vcf").read_text().splitlines() if not line.startswith("#")]
    assert body == text.splitlines()[2 : 2 + 30]


def test_predict_names_a_damaged_model_file(tmp_path, caplog) -> None:
    trained = tmp_path / "trained"
    trained.mkdir()
    tiny_member(trained / "model.pt")
    blob = (trained / "model.pt").read_bytes()
    (trained / "model.pt").write_bytes(blob[: len(blob) // 2])
    vcf = tmp_path / "in.vcf"
    intergenic_vcf(vcf, 2)
    args = ["predict", "-I", str(vcf), "-O", str(tmp_path / "o.vcf"), "-R", str(PREDICT_FASTA), "-A"]
    with caplog.at_level(logging.ERROR), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main([*args, str(PREDICT_GENES), "--model", str(trained), "--device", "cpu", "--no-progress"])
    assert code == 1 and not (tmp_path / "o.vcf").exists()
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert str(trained / "model.pt") in error and "damaged or incomplete" in error and "\n" not in error

    stacked = tmp_path / "stacked"
    stacked.mkdir()
    (stacked / "model.json").write_text('{"format": ')  # cut short
    with pytest.raises(ValueError, match=re.escape(str(stacked / "model.json")) + ".*damaged or incomplete"):
        PR.load_predictor(stacked, device="cpu")
    from metasplice.experiments.stacking import FORMAT

    (stacked / "model.json").write_text(f'{{"format": "{FORMAT}"}}')
    (stacked / "stacker.joblib").write_bytes(b"\x80\x04\x95 not a pickle")
    with pytest.raises(ValueError, match=re.escape(str(stacked / "stacker.joblib")) + ".*damaged or incomplete"):
        PR.load_predictor(stacked, device="cpu")
    shutil.rmtree(stacked)
