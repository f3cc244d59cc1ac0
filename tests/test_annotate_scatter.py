"""The annotate target's scatter-gather (metasplice/predict/shards.py, rules/annotate.smk).

Shards are cut between genes where possible and inside a gene only when the gene alone has more
than ``shard_records`` records; every input line lands in exactly one shard, in order, under the
full header. Scoring every shard with ``metasplice spliceai`` / ``metasplice pangolin`` and gathering
gives the one-job run's VCF record for record, damaged lines included (dropped or written as read as
the one-job run does). The workflow runs the shards as separate jobs, and a shard whose output is
lost is the only one recomputed.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pysam
import pytest

from metasplice.cli import main as cli_main
from metasplice.data.annotation import bundled_annotation_path
from metasplice.predict import shards as S

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / ".test" / "annotate" / "variants.vcf"
FASTA = ROOT / "tests" / "data" / "realdata" / "grch38_chr17_brca1_region.fa.gz"
PANGOLIN = ROOT / "tests" / "data" / "pangolin"
TEXT = SCENARIO.read_text()
HEADER = [line for line in TEXT.splitlines() if line.startswith("#")]
BODY = [line for line in TEXT.splitlines() if not line.startswith("#")]
CLUSTER = (43_179_380, 43_180_900)  # 9 scenario records in NBR1: SNVs, multi-allelic, indels, REF mismatch, ALT '.'
DEL_NO_END = "chr17\t43180005\t.\tT\t<DEL>\t.\t.\t."  # htslib cannot write it: written as read


@pytest.fixture(scope="module")
def genes(tmp_path_factory) -> Path:
    """The rows of the spliceai package's grch38 table around BRCA1 (the output of -A grch38, faster)."""
    path = tmp_path_factory.mktemp("genes") / "brca1_region.txt"
    rows = bundled_annotation_path("grch38").read_text().splitlines()
    keep = [
        r for r in rows[1:] if (f := r.split("\t"))[1] == "17" and int(f[3]) < 43_600_000 and int(f[4]) > 42_425_000
    ]
    path.write_text("\n".join([rows[0], *keep]) + "\n")
    return path


def write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_bytes(("\n".join(lines) + end).encode("utf-8", errors="surrogateescape"))
    return path


def body_of(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
        return [line.rstrip("\n") for line in fh if not line.startswith("#")]


def run_cli(args: list[str]) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli_main(args)
    assert code == 0, err.getvalue()[-3000:]


# --------------------------------------------------------------------------------------------
# where shards are cut


def units(spec: list[tuple[str, ...] | None]) -> list[S._Unit]:
    """One unit per item: a record in the named genes, or None for a line that is no record."""
    return [S._Unit([(k + 1, f"line{k + 1}")], frozenset(g or ()), g is not None) for k, g in enumerate(spec)]


def test_shards_end_between_genes_and_keep_every_line_in_order() -> None:
    spec = [("A",)] * 3 + [()] + [("B",)] * 4 + [("B", "C")] + [("C",)] * 2 + [None] + [("D",)] * 2
    shards = list(S.plan_shards(iter(units(spec)), 5))
    assert [[n for n, _ in s.lines] for s in shards] == [[1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    assert [s.records for s in shards] == [4, 5, 4]
    # the only cut inside a gene is in the run B..C: 7 > 5 records that no free cut divides
    assert [s.cut for s in shards] == [S.CUT_FREE, S.CUT_INSIDE, S.CUT_END]
    assert [s.id for s in shards] == ["00000", "00001", "00002"]


def test_a_gene_longer_than_a_shard_is_cut_inside_and_no_shard_exceeds_the_limit() -> None:
    shards = list(S.plan_shards(iter(units([("A",)] * 7 + [()])), 3))
    assert [s.records for s in shards] == [3, 3, 2]
    assert [s.cut for s in shards] == [S.CUT_INSIDE, S.CUT_INSIDE, S.CUT_END]
    assert next(S.plan_shards(iter([]), 3)).lines == []  # no records: one empty shard (the header)
    with pytest.raises(ValueError, match="shard_records must be >= 1"):
        list(S.plan_shards(iter(units([()])), 0))


def test_split_writes_every_line_once_under_the_full_header(genes, tmp_path) -> None:
    shards = S.split_vcf(str(SCENARIO), str(genes), 12, str(tmp_path))
    ids = S.shard_ids(tmp_path)
    assert ids == [s.id for s in shards] and len(ids) >= 3
    texts = [(tmp_path / f"{i}.vcf").read_text().splitlines() for i in ids]
    assert all(t[: len(HEADER)] == HEADER for t in texts)
    assert [line for t in texts for line in t[len(HEADER) :]] == BODY
    assert all(s.records <= 12 for s in shards)
    plan = (tmp_path / S.PLAN_FILE).read_text().splitlines()
    assert plan[0].split("\t") == list(S.PLAN_COLUMNS) and len(plan) == len(shards) + 1
    # a gene's records share one shard unless the shard was cut inside it
    windows = S.GeneWindows.load(str(genes))
    home: dict = {}
    for k, t in enumerate(texts):
        for line in t[len(HEADER) :]:
            f = line.split("\t")
            if len(f) >= 8 and f[1].isdigit():
                for gene in windows.at(f[0], int(f[1])):
                    home.setdefault(gene, set()).add(k)
    split_genes = {g for g, where in home.items() if len(where) > 1}
    inside = [k for k, s in enumerate(shards) if s.cut == S.CUT_INSIDE]
    assert len(split_genes) == len(inside) == 2  # BRCA1 and NBR1, each with more records than a shard
    assert all(min(home[g]) in inside for g in split_genes)


def test_gene_windows_from_a_gffutils_database_match_the_table(genes) -> None:
    table = S.GeneWindows.load(str(genes))
    db = S.GeneWindows.load(str(PANGOLIN / "region_genes.db"))
    assert db.n_genes == 36
    for pos in (43_016_305, 43_045_800, 43_150_000, 43_180_000, 43_212_203):
        assert len(db.at("chr17", pos)) == len(table.at("17", pos)), pos


def test_an_unsorted_vcf_is_named_before_scoring(genes, tmp_path) -> None:
    records = [b for b in BODY if b.split("\t")[1].isdigit()]
    vcf = write(tmp_path / "unsorted.vcf", [*HEADER, records[1], records[0], *records[2:]])
    with pytest.raises(
        ValueError, match=rf"\[Line {len(HEADER) + 2}\] chr17:\d+ comes after chr17:\d+ .*bcftools sort"
    ):
        S.split_vcf(str(vcf), str(genes), 10, str(tmp_path / "shards"))
    other = "\t".join(["chr1", *records[0].split("\t")[1:]])
    vcf = write(tmp_path / "blocks.vcf", [*HEADER, records[0], other, records[1]])
    with pytest.raises(ValueError, match=rf"\[Line {len(HEADER) + 3}\] chr17:.*another contig"):
        S.split_vcf(str(vcf), str(genes), 10, str(tmp_path / "shards"))


def test_gather_writes_an_indexed_bgzip_and_checks_headers(tmp_path) -> None:
    parts = [
        write(tmp_path / "a.vcf", HEADER + BODY[:3]),
        write(tmp_path / "b.vcf", HEADER),
        write(tmp_path / "c.vcf", HEADER + BODY[3:6]),
    ]
    out = tmp_path / "all.vcf.gz"
    assert S.gather_vcf([str(p) for p in parts], str(out)) == 6
    assert body_of(out) == BODY[:6]
    with pysam.TabixFile(str(out)) as tbx:
        assert len(list(tbx.fetch("chr17", 43_016_000, 43_017_000))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vcf", "all.vcf.gz", "all.vcf.gz.tbi", "b.vcf", "c.vcf"]
    other = write(tmp_path / "d.vcf", [HEADER[0], "##extra", *HEADER[1:], *BODY[6:7]])
    with pytest.raises(ValueError, match="d.vcf: its header differs"):
        S.gather_vcf([str(parts[0]), str(other)], str(tmp_path / "bad.vcf.gz"))
    assert not (tmp_path / "bad.vcf.gz").exists()


def test_score_command_is_the_command_line_of_each_kind() -> None:
    cfg = {"engine": "incremental", "precision": "fp32", "device": "cpu", "batch_size": 8}
    args = S.score_command("spliceai", "in.vcf", "out.vcf", "ref.fa", "grch38", 50, 0, cfg, threads=2)
    assert args[:11] == ["spliceai", "-I", "in.vcf", "-O", "out.vcf", "-R", "ref.fa", "-A", "grch38", "-D", "50"]
    assert "--batch-size" in args and args[-2:] == ["--threads", "2"]
    args = S.score_command("pangolin", "in.vcf", "o/out.vcf", "ref.fa", "grch38", 500, 1, {"weights": ["w"]})
    assert args[:5] == ["pangolin", "in.vcf", "ref.fa", str(bundled_annotation_path("grch38")), "o/out"]
    assert args[5:11] == ["-d", "500", "-m", "True", "--weights", "w"]
    with pytest.raises(ValueError, match="must end with .vcf"):
        S.score_command("pangolin", "in.vcf", "out.vcf.gz", "ref.fa", "a", 50, 0, {})
    with pytest.raises(ValueError, match="kind 'tabular'"):
        S.score_command("tabular", "in.vcf", "out.vcf", "ref.fa", "a", 50, 0, {})


def test_annotate_config_names_base_models_and_chains_them(tmp_path) -> None:
    config = {"base_models": {"spliceai": {}, "pangolin": {"kind": "pangolin"}}, "annotate": {"vcfs": {"x": "x.vcf"}}}
    assert S.annotate_targets(config) == ["results/annotate/x.vcf.gz", "results/annotate/x.vcf.gz.tbi"]
    config["annotate"]["base_models"] = ["spliceai", "pangolin"]
    assert S.annotate_step(config, "x", "spliceai", "00002") == "results/annotate/x/shards/00002.vcf"
    assert S.annotate_step(config, "x", "pangolin", "00002") == "results/annotate/x/scored/spliceai/00002.vcf"
    config["annotate"]["base_models"] = ["spliceai", "openspliceai"]
    with pytest.raises(ValueError, match="'openspliceai', which is not defined under base_models"):
        S.annotate_bases(config)
    with pytest.raises(ValueError, match="annotate.vcfs has no VCF 'y'"):
        S.annotate_vcf(config, "y")
    # annotate.experiment: MetaSplice added to every shard after the last base model, then gathered
    config["annotate"].update(base_models=["spliceai", "pangolin"], experiment="stacked")
    with pytest.raises(ValueError, match="experiment 'stacked' is not defined under `experiments`"):
        S.annotate_experiment(config)
    config["experiments"] = {"stacked": {"model": "stacked", "bases": ["spliceai"]}}
    shards = S.split_vcf(str(SCENARIO), str(bundled_annotation_path("grch38")), 30, str(tmp_path / "shards"))
    ids = S.shard_ids(tmp_path / "shards")
    assert len(ids) == len(shards) >= 2
    assert S.annotate_outputs(config, "x", str(tmp_path / "shards")) == [
        f"results/annotate/x/predicted/{i}.vcf" for i in ids
    ]
    assert S.annotate_predict_inputs(config, "x", ids[0]) == {
        "vcf": f"results/annotate/x/scored/pangolin/{ids[0]}.vcf",
        "model_json": "results/models/stacked/model.json",
        "stacker": "results/models/stacked/stacker.joblib",
    }


# --------------------------------------------------------------------------------------------
# gathered = one job, with the real command lines


def damaged_vcf(path: Path, n: int) -> Path:
    """``n`` scenario records close together (one reference computation per shard: a fast test) with
    damaged lines spliced in: at the start, between shards, at the end (without a line break), a
    symbolic ALT htslib cannot write and an undeclared INFO key."""
    records = [b for b in BODY if b.split("\t")[1].isdigit() and CLUSTER[0] < int(b.split("\t")[1]) < CLUSTER[1]]
    lines = records[:n]
    with pysam.FastaFile(str(FASTA)) as fa:
        undeclared = f"chr17\t43180035\t.\t{fa.fetch('chr17', 43180034, 43180035)}\tG\t.\t.\tNOT_DECLARED=1"
    for extra in (DEL_NO_END, undeclared):  # at their place in the sorted order
        pos = int(extra.split("\t")[1])
        lines.insert(next((k for k, line in enumerate(lines) if int(line.split("\t")[1]) > pos), len(lines)), extra)
    lines = ["", *lines[:3], "chr17\t4304x5800\t.\tT\tC\t.\t.\t.", *lines[3:], "chr17\t43180000"]
    return write(path, HEADER + lines, end="")  # the last line has no line break


def scattered(tmp: Path, vcf: Path, annotation: str, size: int, score) -> list[str]:
    """Split, score each shard with ``score(shard, output)``, gather: the gathered data lines."""
    S.split_vcf(str(vcf), annotation, size, str(tmp / "shards"))
    ids = S.shard_ids(tmp / "shards")
    assert len(ids) >= 3
    outs = []
    for i in ids:
        outs.append(str(tmp / f"{i}.out.vcf"))
        score(str(tmp / "shards" / f"{i}.vcf"), outs[-1])
    S.gather_vcf(outs, str(tmp / "gathered.vcf.gz"))
    assert Path(f"{tmp / 'gathered.vcf.gz'}.tbi").is_file()
    header = [line for line in gzip.open(tmp / "gathered.vcf.gz", "rt") if line.startswith("#")]
    assert header == [line for line in open(outs[0]) if line.startswith("#")]
    return body_of(tmp / "gathered.vcf.gz")


def test_pangolin_shards_gathered_equal_one_job(genes, tmp_path) -> None:
    vcf = damaged_vcf(tmp_path / "in.vcf", 5)
    settings = {"device": "cpu", "weights": [str(PANGOLIN / "models")]}

    def pangolin(source: str, output: str) -> None:
        run_cli(S.score_command("pangolin", source, output, str(FASTA), str(genes), 50, 1, settings, 2))

    pangolin(str(vcf), str(tmp_path / "one.vcf"))
    one = body_of(tmp_path / "one.vcf")
    assert len(one) == 7 and sum("Pangolin=" in line for line in one) >= 4
    assert scattered(tmp_path, vcf, str(genes), 3, pangolin) == one


# --------------------------------------------------------------------------------------------
# the workflow


def snakemake(workdir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    proc = subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_workflow_scores_shards_as_jobs_equal_to_one_job_and_recomputes_only_a_lost_shard(genes, tmp_path) -> None:
    """SpliceAI through the rules: the gathered VCF equals `metasplice spliceai` on the whole file
    (damaged lines dropped or written as read alike), each shard scored by its own job."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    vcf = damaged_vcf(tmp_path / "in.vcf", 8)
    config = tmp_path / "annotate.yaml"
    config.write_text(
        f"annotate:\n  vcfs: {{small: {vcf}}}\n  reference: {FASTA}\n  annotation: {genes}\n"
        "  base_models: [spliceai]\n  shard_records: 3\n"
        "base_models:\n  spliceai:\n    device: cpu\n    threads: 1\n"
    )
    log = snakemake(tmp_path, "annotate", "--cores", "2", "--configfile", str(config))
    ids = S.shard_ids(tmp_path / "results/annotate/small/shards")
    assert len(ids) >= 3
    assert len(re.findall(r"Finished jobid: \d+ \(Rule: annotate_score\)", log)) == len(ids)  # one job per shard
    assert all((tmp_path / f"results/benchmarks/annotate/small/spliceai/{i}.tsv").is_file() for i in ids)
    assert all((tmp_path / f"logs/annotate/small/spliceai/{i}.log").is_file() for i in ids)
    gathered = tmp_path / "results/annotate/small.vcf.gz"
    with pysam.TabixFile(str(gathered)) as tbx:  # the .tbi
        assert len(list(tbx.fetch("chr17", 43_179_000, 43_181_000))) == 10
    one = tmp_path / "one.vcf"
    run_cli(S.score_command("spliceai", str(vcf), str(one), str(FASTA), str(genes), 50, 0, {"device": "cpu"}, 2))
    lines = body_of(one)
    assert len(lines) == 10 and DEL_NO_END in lines and sum("NOT_DECLARED=1;SpliceAI=" in x for x in lines) == 1
    assert gzip.open(gathered, "rt").read() == one.read_text()
    # a lost shard (its output and the gathered file gone): only that shard is scored again
    (tmp_path / f"results/annotate/small/scored/spliceai/{ids[1]}.vcf").unlink()
    gathered.unlink()
    plan = snakemake(tmp_path, "annotate", "--cores", "2", "--configfile", str(config), "--dry-run")
    outputs = sorted(re.findall(r"^\s*output: (.+)$", plan, re.MULTILINE))
    assert outputs == [
        "results/annotate/small.vcf.gz, results/annotate/small.vcf.gz.tbi",
        f"results/annotate/small/scored/spliceai/{ids[1]}.vcf",
    ], plan[-3000:]
