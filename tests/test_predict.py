"""``metasplice predict``: stacked and trained model directories, bad records, outputs, the rule's wiring.

A real stacked model is fitted here with :mod:`metasplice.experiments.stacking` on synthetic base scores (no
SpliceAI call), with an untrained gated CNN as its member; the VCF in tests/data/predict (see its
PROVENANCE.md) is then scored with the real SpliceAI networks on CPU, once, and compared with the
pipeline's own functions (prepare_variants, score_variants, extract_windows, build_features) and
with ``metasplice spliceai``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import torch
from test_spliceai_fixtures import DATA as SPLICEAI_DATA
from test_spliceai_fixtures import GENES, spliceai_model, vcf_records  # noqa: F401

import metasplice.experiments.plan as PLAN
import metasplice.predict.predictor as PR
from metasplice.base_models.engine import IncrementalBackend
from metasplice.base_models.spliceai.scoring import ScoreConfig
from metasplice.base_models.table import score_variants
from metasplice.cli import main as cli_main
from metasplice.data.annotation import RegionConfig, load_annotation
from metasplice.data.genome import Genome
from metasplice.data.variants import PrepareConfig, SplitConfig, prepare_variants, variant_type
from metasplice.experiments.stacking import REGIONS, StackConfig, StackedModel, build_features, fit_stacker
from metasplice.models import build_model, load_model, save_model
from metasplice.models.registry import model_config
from metasplice.predict import annotate as P
from metasplice.sequences import extract_windows
from metasplice.training.train import classifier_score
from metasplice.training.train import predict as model_predict

DATA = Path(__file__).resolve().parent / "data" / "predict"
MIXED = DATA / "mixed.vcf"
FASTA = SPLICEAI_DATA / "chr19_grch37_small.fa"
CONTEXT = 101  # member window length (small: fast)

# what every record of mixed.vcf gets: (SpliceAI entries 'ALT|GENE', MetaSplice entries, skipped rows)
EXPECTED: dict[str, tuple[list[str], list[str], list[tuple[str, str]]]] = {
    "stk11_donor_snv": (["A|STK11"], ["A|STK11"], []),
    "multi_allelic": (
        ["A|STK11", "A|CBARP", "T|STK11", "T|CBARP"],
        ["A|STK11", "A|CBARP", "T|STK11", "T|CBARP"],
        [("allele", "missing ALT"), ("allele", "missing ALT")],
    ),
    "deletion": (["T|STK11", "T|CBARP"], ["T|STK11", "T|CBARP"], []),
    "insertion": (["CA|CBARP"], ["CA|CBARP"], []),
    "mnv": (["CC|CBARP"], ["CC|CBARP"], [("SpliceAI", "mnv/complex")]),
    "unnormalised_insertion": (["GAT|CBARP"], ["GAT|CBARP"], [("SpliceAI", "mnv/complex")]),
    "cbarp_donor_snv": (["T|CBARP"], ["T|CBARP"], []),
    "near_contig_end": ([], ["A|REEP6"], [("SpliceAI", "near chromosome end")]),
    "alt_equals_ref": (["T|CBARP"], [], [("MetaSplice", "ALT equals REF")]),
    "too_few_columns": ([], [], [("line", "malformed line")]),
    "bad_pos": ([], [], [("line", "malformed line")]),
    "": ([], [], [("line", "malformed line")]),  # the empty line
    "bad_ref": ([], [], [("record", "bad REF")]),
    "iupac_alt": ([], [], [("allele", "non-ACGTN ALT")]),
    "symbolic_alt": ([], [], [("allele", "symbolic ALT")]),
    "no_alt": ([], [], [("record", "bad input")]),
    "unknown_contig": ([], [], [("record", "unknown contig")]),
    "ref_mismatch": ([], [], [("record", "ref mismatch")]),
    "outside_genes": ([], [], [("record", "outside genes")]),
}
DROPPED = ("too_few_columns", "bad_pos", "")


def input_lines(path: Path = MIXED) -> dict[str, int]:
    """Line number of each record of a VCF, by ID ('' for an empty line)."""
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.startswith("#"):
            fields = line.split("\t")
            out[fields[2] if len(fields) > 2 else ""] = number
    return out


def info_field(info: str, key: str) -> list[str]:
    for item in info.split(";"):
        if item.startswith(key + "="):
            return item[len(key) + 1 :].split(",")
    return []


def tiny_member(path: Path, task: str = "binary", seed: int = 0) -> torch.nn.Module:
    """An untrained gated CNN (random weights, fixed seed) saved as a checkpoint."""
    torch.manual_seed(seed)
    values = {"task": task, "context": CONTEXT, "hidden": 8, "layers": 1, "attention_heads": 1, "dropout": 0.0}
    model = build_model("gated_cnn", model_config("gated_cnn", values))
    save_model(path, model)
    return model


def synthetic_training(n: int = 180, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """A labelled variants table with base scores, deltas (D = 50) and a member score that carry signal."""
    rng = np.random.default_rng(seed)
    label = np.tile([0, 1], n // 2)
    kinds = rng.choice(["snv", "insertion", "deletion", "mnv"], n, p=[0.7, 0.1, 0.15, 0.05])
    ref = np.where(np.isin(kinds, ["deletion", "mnv"]), "AG", "A")
    alt = np.select([kinds == "insertion", kinds == "mnv"], ["AT", "CT"], np.where(kinds == "deletion", "A", "G"))
    variants = pd.DataFrame(
        {
            "variant_id": [f"v{i}" for i in range(n)],
            "chrom": "19",
            "pos": 1_000_000 + 100 * np.arange(n),
            "ref": ref,
            "alt": alt,
            "strand": rng.choice(["+", "-"], n),
            "region": rng.choice(REGIONS, n),
            "boundary_offset": rng.integers(-400, 400, n),
            "label": label,
            "split": np.where(np.arange(n) < int(0.65 * n), "train", "val"),
        }
    )
    variants["variant_type"] = variant_type(variants["ref"], variants["alt"])
    unscored = rng.random(n) < 0.1
    ds = np.clip(rng.beta(0.5, 6, (n, 4)) + 0.4 * label[:, None] * rng.random((n, 4)), 0, 1).astype(np.float32)
    ds[unscored] = np.nan
    scores = pd.DataFrame({c: ds[:, k] for k, c in enumerate(P.DS_COLUMNS)})
    dp = rng.integers(-50, 51, (n, 4))
    for k, c in enumerate(P.DP_COLUMNS):
        scores[c] = pd.array(dp[:, k], dtype="Int64")
        scores.loc[unscored, c] = pd.NA
    deltas = rng.normal(0, 0.05, (n, 101, 3)).astype(np.float32)
    deltas[unscored] = np.nan
    member = np.clip(0.3 + 0.3 * label + rng.normal(0, 0.2, n), 0, 1)
    return variants, scores, deltas, member


@pytest.fixture(scope="module")
def stacked_dir(tmp_path_factory) -> Path:
    """A stacked model fitted with metasplice.experiments.stacking: SpliceAI (D=50) features, annotation, one member."""
    directory = tmp_path_factory.mktemp("models") / "test_stack"
    variants, scores, deltas, member = synthetic_training()
    features = build_features(variants, {"spliceai": (scores, deltas)}, {"tiny": member})
    model, importance = fit_stacker(
        features,
        variants,
        StackConfig(name="test_stack", members=("tiny",), importance_repeats=2, base_candidates=False),
    )
    tiny_member(directory / "members" / "tiny.pt")
    model.member_files = {"tiny": "members/tiny.pt"}
    # as train_stacked_files records them: the base model's config entry (its runtime keys are not used)
    model.base_models = {
        "spliceai": {
            "kind": "spliceai",
            "weights": [],
            "distance": 50,
            "mask": 0,
            "precision": "fp32",
            "device": "cuda",
            "batch_size": 512,
        }
    }
    model.sequences = {"strand_oriented": True}
    model.save(directory, importance)
    return directory


def run_predict(args: list[str]) -> tuple[int, str]:
    """``metasplice predict`` in-process: (exit code, what it printed on stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli_main(["predict", "--device", "cpu", "--no-progress", *args])
    return code, err.getvalue()


@pytest.fixture(scope="module")
def mixed_run(stacked_dir, tmp_path_factory) -> dict:
    """mixed.vcf scored once by the stacked model (chunks of 4 records)."""
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    out = tmp_path_factory.mktemp("mixed")
    paths = {"vcf": out / "mixed.out.vcf.gz", "tsv": out / "mixed.tsv", "skipped": out / "mixed.skipped.tsv"}
    code, stderr = run_predict(
        [
            "-I",
            str(MIXED),
            "-O",
            str(paths["vcf"]),
            "-R",
            str(FASTA),
            "-A",
            str(GENES),
            "--model",
            str(stacked_dir),
            "--tsv",
            str(paths["tsv"]),
            "--skipped",
            str(paths["skipped"]),
            "--chunk-size",
            "4",
        ]
    )
    return {**paths, "code": code, "stderr": stderr, "dir": out}


def test_every_record_written_good_ones_annotated_bad_ones_reported(mixed_run) -> None:
    assert mixed_run["code"] == 0
    lines = input_lines()
    records = vcf_records(mixed_run["vcf"])
    written = [i for i in EXPECTED if i not in DROPPED]
    assert [r[2] for r in records] == written  # every record, in input order; malformed lines left out
    source = {
        line.split("\t")[2]: line.split("\t")
        for line in MIXED.read_text().splitlines()
        if not line.startswith("#") and len(line.split("\t")) >= 8
    }
    skipped = pd.read_csv(mixed_run["skipped"], sep="\t", dtype=str, keep_default_na=False)
    assert list(skipped.columns) == list(P.SKIPPED_COLUMNS)
    for rec in records:
        spliceai, metasplice, skips = EXPECTED[rec[2]]
        assert rec[:7] == source[rec[2]][:7]  # only INFO changes
        got_s, got_m = info_field(rec[7], "SpliceAI"), info_field(rec[7], "MetaSplice")
        assert ["|".join(e.split("|")[:2]) for e in got_s] == spliceai, rec[2]
        assert ["|".join(e.split("|")[:2]) for e in got_m] == metasplice, rec[2]
        assert all(len(e.split("|")) == 10 for e in got_s)
        assert all(len(e.split("|")) == 3 and len(e.split("|")[2]) == 6 for e in got_m)  # 0.xxxx
        if not got_s and not got_m:
            assert rec[7] == source[rec[2]][7]  # unannotated records are unchanged
    by_id = {r[2]: r for r in records}
    assert by_id["stk11_donor_snv"][7].startswith("DP=10;SpliceAI=A|STK11|")
    assert "0.99|0.99" not in by_id["cbarp_donor_snv"][7]  # the older SpliceAI value was replaced
    assert info_field(by_id["mnv"][7], "SpliceAI") == ["CC|CBARP|.|.|.|.|.|.|.|."]
    (same,) = info_field(by_id["alt_equals_ref"][7], "SpliceAI")  # scored as the CLI does: no change
    assert same.split("|")[:6] == ["T", "CBARP", "0.00", "0.00", "0.00", "0.00"]
    # every bad record / allele reported once, with its line and reason, and warned about on stderr
    for rid, (_, _, skips) in EXPECTED.items():
        rows = skipped[skipped["line"] == str(lines[rid])]
        assert sorted(zip(rows["skipped"], rows["reason"].str.split(":").str[0])) == sorted(skips), rid
        for level, _ in skips:
            if (level, rid) not in (("SpliceAI", "mnv"), ("SpliceAI", "unnormalised_insertion")):
                assert f"[Line {lines[rid]}] WARNING" in mixed_run["stderr"], rid
    assert len(skipped) == sum(len(s) for _, _, s in EXPECTED.values())
    assert not [p.name for p in mixed_run["dir"].iterdir() if p.name.startswith(".")]  # no temporary files left


def test_output_header_and_bgzip(mixed_run, stacked_dir) -> None:
    with pysam.VariantFile(str(mixed_run["vcf"])) as vcf:  # bgzipped, readable by htslib
        header = str(vcf.header)
        n = sum(1 for _ in vcf)
    assert n == len(EXPECTED) - len(DROPPED)
    info = [
        line
        for line in header.splitlines()
        if line.startswith("##INFO=<ID=SpliceAI") or line.startswith("##INFO=<ID=MetaSplice")
    ]
    assert len(info) == 2 and "SpliceAIv1.3.1" in info[0] and "older annotation" not in header
    assert "test_stack" in info[1] and "ALLELE|SYMBOL|PROB" in info[1]
    with open(mixed_run["vcf"], "rb") as fh:
        assert fh.read(4) == b"\x1f\x8b\x08\x04"  # BGZF block (gzip with the BC extra field)


@pytest.fixture(scope="module")
def direct(stacked_dir, spliceai_model) -> pd.DataFrame:
    """The probabilities of mixed.vcf's scorable rows computed with the pipeline's own functions:
    prepare_variants (normalisation, region, offsets), score_variants, extract_windows, build_features."""
    rows = []
    for rid, (_, metasplice, _) in EXPECTED.items():
        for entry in metasplice:
            alt, gene = entry.split("|")
            f = next(line.split("\t") for line in MIXED.read_text().splitlines() if f"\t{rid}\t" in line)
            rows.append((int(f[1]), f[3], alt, gene))
    genome = Genome(FASTA)
    annotation = load_annotation(GENES)
    tables, remaining = [], rows
    while remaining:  # one pass per gene of a variant: prepare_variants keeps one row per variant
        seen, batch, rest = set(), [], []
        for r in remaining:
            (rest if r[:3] in seen else batch).append(r)
            seen.add(r[:3])
        source = pd.DataFrame(
            {
                "source_line": np.arange(2, len(batch) + 2),
                "variant_id": [f"s{i}" for i in range(len(batch))],
                "hg19": "",
                "hg38": [f"19-{p}-{r}-{a}" for p, r, a, _ in batch],
                "gene": [g for *_, g in batch],
                "hgvs": "",
                "method": "",
                "classification": "Splice-altering",
                "location": "",
                "doi": "",
            }
        )
        variants, _, rejected = prepare_variants(
            source, genome, annotation, PrepareConfig(split=SplitConfig(test_chroms=("chr19",)))
        )
        assert rejected.empty and list(variants["gene"]) == [g for *_, g in batch]
        tables.append(variants)
        remaining = rest
    variants = pd.concat(tables, ignore_index=True)
    model = StackedModel.load(stacked_dir)
    scored = score_variants(variants, genome, annotation, IncrementalBackend(spliceai_model), ScoreConfig(50, False))
    ref, alt = extract_windows(variants, genome, CONTEXT, strand_oriented=True)
    member = load_model(stacked_dir / "members" / "tiny.pt")
    member_score = classifier_score(model_predict(member, ref, alt), "binary", ("splice_altering",))
    features = build_features(variants, {"spliceai": (scored.scores, scored.deltas)}, {"tiny": member_score})
    out = variants[["pos", "ref", "alt", "gene", "region", "variant_type", "boundary_offset"]].copy()
    out["probability"] = model.predict_proba(features)
    out["member_tiny"] = member_score
    for c in P.DS_COLUMNS + P.DP_COLUMNS:
        out[c] = scored.scores[c].to_numpy()
    genome.close()
    return out


def test_probability_equals_the_stacker_on_pipeline_features(mixed_run, direct) -> None:
    tsv = pd.read_csv(mixed_run["tsv"], sep="\t", keep_default_na=False, na_values=[""])
    norm = tsv["normalised"].fillna("")
    tsv["npos"] = [int(n.split(":")[0]) if n else p for n, p in zip(norm, tsv["pos"])]
    tsv["nref"] = [n.split(":")[1].split(">")[0] if n else r for n, r in zip(norm, tsv["ref"])]
    tsv["nalt"] = [n.split(">")[1] if n else a for n, a in zip(norm, tsv["alt"])]
    merged = tsv.merge(
        direct,
        left_on=["npos", "nref", "nalt", "gene"],
        right_on=["pos", "ref", "alt", "gene"],
        suffixes=("", "_direct"),
        validate="one_to_one",
    )
    assert len(merged) == len(tsv) == len(direct) == 12
    assert (tsv["normalised"].fillna("") != "").sum() == 1  # GT>GAT is scored as the insertion G>GA
    np.testing.assert_allclose(merged["probability"], merged["probability_direct"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(merged["member_tiny"], merged["member_tiny_direct"], rtol=0, atol=1e-6)
    assert (merged["region"] == merged["region_direct"]).all()
    assert (merged["variant_type"] == merged["variant_type_direct"]).all()
    assert (merged["boundary_offset"] == merged["boundary_offset_direct"]).all()
    for c in P.DS_COLUMNS:  # the base scores are the pipeline's (NaN where it skips)
        np.testing.assert_allclose(merged[c], merged[f"{c}_direct"].astype(float), rtol=0, atol=1e-6)
    assert merged["probability"].std() > 0
    # INFO/MetaSplice holds the same probability, rounded to 4 decimals
    records = {r[2]: r for r in vcf_records(mixed_run["vcf"])}
    line_ids = {v: k for k, v in input_lines().items()}
    for row in tsv.itertuples():
        entries = info_field(records[line_ids[row.line]][7], "MetaSplice")
        assert f"{row.alt}|{row.gene}|{row.probability:.4f}" in entries


def test_spliceai_field_equals_the_spliceai_command(mixed_run, tmp_path) -> None:
    parseable = [
        line
        for line in MIXED.read_text().splitlines()
        if not line.startswith("#") and len(line.split("\t")) >= 8 and line.split("\t")[1].isdigit() and "<" not in line
    ]
    header = "".join(
        line + "\n" for line in MIXED.read_text().splitlines() if line.startswith("#") and "ID=SpliceAI" not in line
    )
    vcf = tmp_path / "in.vcf"
    vcf.write_text(header + "".join("\t".join([*line.split("\t")[:7], "."]) + "\n" for line in parseable))
    out = tmp_path / "spliceai.vcf"
    code = cli_main(
        [
            "spliceai",
            "-I",
            str(vcf),
            "-O",
            str(out),
            "-R",
            str(FASTA),
            "-A",
            str(GENES),
            "-D",
            "50",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    official = {r[2]: info_field(r[7], "SpliceAI") for r in vcf_records(out)}
    ours = {r[2]: info_field(r[7], "SpliceAI") for r in vcf_records(mixed_run["vcf"])}
    assert len(official) == len(parseable)
    for rid, entries in official.items():
        assert ours[rid] == entries, rid
    assert sum(len(e) for e in official.values()) == 12


def test_tsv_one_row_per_scored_allele_and_gene(mixed_run) -> None:
    tsv = pd.read_csv(mixed_run["tsv"], sep="\t", keep_default_na=False, na_values=[""])
    assert list(tsv.columns[:7]) == ["line", "chrom", "pos", "ref", "alt", "gene", "strand"]
    assert {"region", *P.DS_COLUMNS, *P.DP_COLUMNS, "probability", "member_tiny"} <= set(tsv.columns)
    assert len(tsv) == sum(len(m) for _, m, _ in EXPECTED.values())
    assert tsv["probability"].between(0, 1).all()
    assert set(tsv.loc[tsv["gene"] == "CBARP", "strand"]) == {"-"} and set(
        tsv.loc[tsv["gene"] == "STK11", "strand"]
    ) == {"+"}
    snv = tsv[(tsv["alt"] == "A") & (tsv["gene"] == "STK11") & (tsv["pos"] == 1220505)].iloc[0]
    assert snv["region"] == "canonical" and snv["DS_DL"] > 0.5  # the donor's GT destroyed
    near_end = tsv[tsv["gene"] == "REEP6"].iloc[0]
    assert near_end[list(P.DS_COLUMNS + P.DP_COLUMNS)].isna().all()  # not scored by SpliceAI: NaN features


def test_trained_model_directory_and_gzipped_input(tmp_path) -> None:
    """A plain model.pt (delta task: score = largest predicted delta), gzip input, SpliceAI at -D 10."""
    model_dir = tmp_path / "quick_test"
    member = tiny_member(model_dir / "model.pt", task="delta", seed=3)
    keep = ("stk11_donor_snv", "mnv", "near_contig_end")
    text = [
        line
        for line in MIXED.read_text().splitlines()
        if line.startswith("#") or (len(line.split("\t")) > 2 and line.split("\t")[2] in keep)
    ]
    vcf = tmp_path / "in.vcf.gz"
    with gzip.open(vcf, "wt") as fh:  # plain gzip, not bgzip
        fh.write("\n".join(text) + "\n")
    out = tmp_path / "out.vcf"
    code, _ = run_predict(
        [
            "-I",
            str(vcf),
            "-O",
            str(out),
            "-R",
            str(FASTA),
            "-A",
            str(GENES),
            "--model",
            str(model_dir),
            "-D",
            "10",
            "--tsv",
            str(tmp_path / "out.tsv"),
        ]
    )
    assert code == 0
    records = vcf_records(out)
    assert [r[2] for r in records] == list(keep)
    spliceai = info_field(records[0][7], "SpliceAI")
    assert len(spliceai) == 1 and all(abs(int(d)) <= 10 for d in spliceai[0].split("|")[6:])
    genome = Genome(FASTA)
    table = pd.DataFrame(
        {
            "chrom": "19",
            "pos": [1220505, 1228442, 1497000],
            "ref": ["G", "GG", "G"],
            "alt": ["A", "CC", "A"],
            "strand": ["+", "-", "+"],
        }
    )
    ref, alt = extract_windows(table, genome, CONTEXT, strand_oriented=True)
    expected = model_predict(member, ref, alt).max(axis=1)
    for rec, p in zip(records, expected):
        (entry,) = info_field(rec[7], "MetaSplice")
        assert entry.split("|")[2] == f"{p:.4f}"
    tsv = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    np.testing.assert_allclose(tsv["probability"], expected, rtol=0, atol=1e-6)
    assert "member_quick_test" not in tsv.columns
    header = "".join(line for line in open(out) if line.startswith("##INFO=<ID=MetaSplice"))
    assert "trained model quick_test (gated_cnn, task delta, context 101)" in header


def test_trained_model_uses_the_window_orientation_it_records(tmp_path) -> None:
    """model.pt records the orientation of its training windows; prediction follows it, a conflicting request fails."""
    model_dir = tmp_path / "genome_oriented"
    tiny_member(model_dir / "model.pt", task="delta", seed=3)
    checkpoint = torch.load(model_dir / "model.pt", weights_only=True)
    checkpoint["info"] = {**checkpoint["info"], "strand_oriented": False}
    torch.save(checkpoint, model_dir / "model.pt")
    assert not P.load_predictor(model_dir, device="cpu").strand_oriented
    assert not P.load_predictor(model_dir, device="cpu", strand_oriented=False).strand_oriented
    with pytest.raises(ValueError, match="genome-oriented windows; the requested orientation differs"):
        P.load_predictor(model_dir, device="cpu", strand_oriented=True)
    unrecorded = tmp_path / "unrecorded"
    tiny_member(unrecorded / "model.pt", task="delta", seed=3)  # written without the entry: strand-oriented default
    assert P.load_predictor(unrecorded, device="cpu").strand_oriented


def test_stacked_model_keeps_its_base_model_settings(stacked_dir, tmp_path, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        code, _ = run_predict(
            [
                "-I",
                str(MIXED),
                "-O",
                str(tmp_path / "o.vcf"),
                "-R",
                str(FASTA),
                "-A",
                str(GENES),
                "--model",
                str(stacked_dir),
                "-D",
                "500",
            ]
        )
    assert code == 1
    assert "distance 50" in caplog.text and "Leave --distance out" in caplog.text
    assert not (tmp_path / "o.vcf").exists()
    with pytest.raises(ValueError, match="genome-oriented|orientation"):
        P.load_predictor(stacked_dir, device="cpu", strand_oriented=False)
    recorded = tmp_path / "with_regions"
    shutil.copytree(stacked_dir, recorded)
    meta = json.loads((recorded / "model.json").read_text())
    (recorded / "model.json").write_text(json.dumps({**meta, "regions": {"deep_intronic": 100}}))
    with pytest.raises(ValueError, match="region settings"):
        P.load_predictor(recorded, device="cpu", regions={"deep_intronic": 50})


def test_missing_model_directory_names_it_and_what_to_do(tmp_path, caplog) -> None:
    missing = tmp_path / "results" / "models" / "binary_quick"
    with caplog.at_level(logging.ERROR):
        code, _ = run_predict(
            [
                "-I",
                str(MIXED),
                "-O",
                str(tmp_path / "o.vcf"),
                "-R",
                str(FASTA),
                "-A",
                str(GENES),
                "--model",
                str(missing),
            ]
        )
    assert code == 1
    assert str(missing) in caplog.text and "results/models/binary_quick/model.pt" in caplog.text
    assert "train" in caplog.text
    empty = tmp_path / "empty_model"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="neither model.json .* nor model.pt"):
        P.load_predictor(empty, device="cpu")


# --------------------------------------------------------------------------------------------
# streaming and atomic output, with a stand-in base model (no network)


class _Backend:
    """Stand-in for a SpliceAI backend: the real flank; predicting raises (or is never needed)."""

    flank = 5000

    def predict(self, segments, jobs, progress=None):
        raise RuntimeError("base model failed")


def stub_predictor(tmp_path: Path) -> P.Predictor:
    model = tiny_member(tmp_path / "stub" / "model.pt")
    member = PR.Member("stub", model, CONTEXT, "binary", ("splice_altering",), "gated_cnn")
    base = P.BaseScorer("spliceai", dict(PR.DEFAULT_SETTINGS), _Backend(), ScoreConfig(), False)
    return P.Predictor(
        directory=tmp_path / "stub",
        name="stub",
        kind="trained",
        bases={"spliceai": base},
        reference="spliceai",
        members={"stub": member},
        strand_oriented=True,
        regions=RegionConfig(),
    )


def intergenic_vcf(path: Path, n: int, then: list[str] = ()) -> None:
    """``n`` SNVs between OR4F17 and PLPP2 (inside no gene), REF from the FASTA, then ``then`` lines."""
    with Genome(FASTA) as genome:
        seq = genome.fetch("chr19", 112_000, 112_000 + 3 * n)
    alts = ["C" if seq[3 * i] != "C" else "A" for i in range(n)]
    lines = [f"19\t{112_001 + 3 * i}\tr{i}\t{seq[3 * i]}\t{alts[i]}\t.\t.\t." for i in range(n)]
    path.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + "".join(line + "\n" for line in [*lines, *then])
    )


def test_failure_leaves_no_output(tmp_path) -> None:
    good = [line for line in MIXED.read_text().splitlines() if "_donor_snv\t" in line]
    vcf = tmp_path / "in.vcf"
    intergenic_vcf(vcf, 9, good)  # the last chunk: two records, each failing (a base model's, not a record's, failure)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with Genome(FASTA) as genome, pytest.raises(RuntimeError, match="base model failed"):
        P.predict_vcf(
            str(vcf),
            str(out_dir / "o.vcf.gz"),
            genome,
            load_annotation(GENES),
            stub_predictor(tmp_path),
            tsv_path=str(out_dir / "o.tsv"),
            skipped_path=str(out_dir / "s.tsv"),
            chunk_size=3,
            progress=False,
        )
    assert list(out_dir.iterdir()) == []  # neither outputs nor temporary files
    truncated = tmp_path / "truncated.vcf.gz"
    intergenic_vcf(vcf, 2000)
    truncated.write_bytes(gzip.compress(vcf.read_bytes())[:-200])
    with Genome(FASTA) as genome, pytest.raises(ValueError, match="cannot read past line .* is the file complete"):
        P.predict_vcf(
            str(truncated),
            str(out_dir / "o.vcf.gz"),
            genome,
            load_annotation(GENES),
            stub_predictor(tmp_path),
            skipped_path=str(out_dir / "s.tsv"),
            progress=False,
        )
    assert list(out_dir.iterdir()) == []


def test_streams_50000_records_in_bounded_memory(tmp_path, capsys) -> None:
    n = 50_000
    vcf = tmp_path / "big.vcf"
    intergenic_vcf(vcf, n)
    out, skipped = tmp_path / "big.out.vcf", tmp_path / "big.skipped.tsv"
    with Genome(FASTA) as genome:
        annotation = load_annotation(GENES)
        predictor = stub_predictor(tmp_path)
        tracemalloc.start()
        summary = P.predict_vcf(
            str(vcf),
            str(out),
            genome,
            annotation,
            predictor,
            skipped_path=str(skipped),
            chunk_size=1000,
            progress=False,
            max_warnings=5,
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 10e6, f"peak {peak / 1e6:.1f} MB"  # the input is 1.6 MB of text, ~30 MB as parsed records
    assert summary.lines == summary.records == n and summary.dropped == 0
    assert summary.skips[("record", "outside genes")] == n
    with open(out) as fh:
        body = [line for line in fh if not line.startswith("#")]
    assert body == vcf.read_text().splitlines(keepends=True)[2:]  # every record unchanged, in order
    stderr = capsys.readouterr().err
    assert stderr.count("[Line ") == 5 and "further 'outside genes' (record) warnings suppressed" in stderr
    assert len(pd.read_csv(skipped, sep="\t")) == n


# --------------------------------------------------------------------------------------------
# workflow wiring


def test_rule_targets_inputs_and_params() -> None:
    config = {
        "experiments": {
            "stack": {"model": "stacked", "members": ["quick"]},
            "quick": {"model": "gated_cnn"},
            "mean": {"model": "ensemble", "members": ["quick", "stack"]},
        },
        "base_models": {"spliceai": {"kind": "spliceai", "distance": 50, "mask": 0, "device": "cuda", "gpu": 1}},
        "sequences": {"strand_oriented": False},
        "regions": {"deep_intronic": 60},
        "predict": {"vcfs": {"clinvar": "data/clinvar.vcf.gz"}, "experiment": "stack"},
    }
    assert PLAN.predict_targets({}) == [] and PLAN.predict_targets({"predict": {"vcfs": {}}}) == []
    assert PLAN.predict_targets(config) == [
        "results/predict/stack/clinvar.vcf.gz",
        "results/predict/stack/clinvar.tsv",
        "results/predict/stack/clinvar.skipped.tsv",
    ]
    stacked = PLAN.score_vcf_inputs(config, "stack", "clinvar", "g.fa", "a.tsv")
    assert stacked["vcf"] == "data/clinvar.vcf.gz" and stacked["fai"] == "g.fa.fai"
    assert stacked["model_json"] == "results/models/stack/model.json"
    assert stacked["stacker"] == "results/models/stack/stacker.joblib"
    assert (
        PLAN.score_vcf_inputs(config, "quick", "clinvar", "g.fa", "a.tsv")["model"] == "results/models/quick/model.pt"
    )
    params = PLAN.score_vcf_params(config, "quick")
    assert params["base"] == {"spliceai": {"kind": "spliceai", "distance": 50, "mask": 0}}  # no runtime keys
    assert params["strand_oriented"] is False and params["regions"] == {"deep_intronic": 60}
    assert "base" not in PLAN.score_vcf_params(config, "stack")
    assert not {"device", "batch_size", "chunk_size"} & set(params)  # how it runs reruns nothing
    assert PLAN.score_vcf_runtime({**config, "predict": {"device": "cpu", "chunk_size": 10}}) == {
        "device": "cpu",
        "batch_size": None,
        "chunk_size": 10,
    }
    with pytest.raises(ValueError, match="predict.experiment is empty"):
        PLAN.predict_targets({**config, "predict": {"vcfs": {"x": "x.vcf"}}})
    with pytest.raises(ValueError, match="not defined under `experiments`"):
        PLAN.predict_targets({**config, "predict": {"vcfs": {"x": "x.vcf"}, "experiment": "nope"}})
    with pytest.raises(ValueError, match="meta-model of kind 'ensemble'"):
        PLAN.predict_targets({**config, "predict": {"vcfs": {"x": "x.vcf"}, "experiment": "mean"}})
    with pytest.raises(ValueError, match="file names"):
        PLAN.predict_targets({**config, "predict": {"vcfs": {"my.vcf": "x.vcf"}, "experiment": "stack"}})
    with pytest.raises(ValueError, match="no VCF named"):
        PLAN.score_vcf_inputs(config, "stack", "other", "g.fa", "a.tsv")


def test_a_stacked_model_over_pangolin_records_the_fetched_weights() -> None:
    """The stacked model records the folder rule fetch_pangolin_weights fills (whatever source
    `weights` names, e.g. a path relative to the repository)."""
    config = {
        "experiments": {"stack": {"model": "stacked", "bases": ["spliceai", "pangolin"], "members": []}},
        "base_models": {
            "spliceai": {"kind": "spliceai", "distance": 50, "mask": 0},
            "pangolin": {"kind": "pangolin", "weights": ["tests/data/pangolin/models"], "distance": 50, "mask": 1},
        },
        "predict": {"vcfs": {"clinvar": "data/clinvar.vcf.gz"}, "experiment": "stack"},
    }
    recorded = PLAN.stacked_params(config, "stack")["base_models"]
    assert recorded["pangolin"] == {"kind": "pangolin", "weights": [PLAN.PANGOLIN_MODELS], "distance": 50, "mask": 1}
    assert recorded["spliceai"] == {"kind": "spliceai", "distance": 50, "mask": 0}
    # scoring VCFs with Pangolin features is refused when the DAG is built, not deep inside a job
    with pytest.raises(ValueError, match="Pangolin base model.*not supported yet"):
        PLAN.score_vcf_inputs(config, "stack", "clinvar", "g.fa", "a.tsv")


def test_a_stacked_model_with_pangolin_features_is_refused_before_scoring(stacked_dir, tmp_path) -> None:
    directory = tmp_path / "pangolin_stack"
    shutil.copytree(stacked_dir, directory)
    meta = json.loads((directory / "model.json").read_text())
    meta["config"]["bases"] = ["spliceai", "pangolin"]
    meta["base_models"]["pangolin"] = {"kind": "pangolin", "weights": ["resources/pangolin/models"], "distance": 50}
    (directory / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="Pangolin base model 'pangolin'.*not supported yet"):
        PR.load_predictor(directory, device="cpu")


def test_annotate_shards_get_metasplice_and_keep_the_base_models_fields(stacked_dir, mixed_run, tmp_path) -> None:
    """annotate.experiment: each shard as `metasplice spliceai` wrote it gets INFO/MetaSplice (fields
    ("MetaSplice",)); the SpliceAI field and header stay as the base model wrote them, the probabilities
    equal a whole-file `metasplice predict`, and the gathered shards equal one job on the whole file."""
    from metasplice.predict import shards as S

    CPU = ("--device", "cpu", "--no-progress")
    base = tmp_path / "base.vcf"
    code = cli_main(
        ["spliceai", "-I", str(MIXED), "-O", str(base), "-R", str(FASTA), "-A", str(GENES), "-D", "50", *CPU]
    )
    assert code == 0

    def predict(source: Path, output: Path) -> None:
        P.predict_with_settings(  # as rule annotate_predict calls it
            {"model_dir": str(stacked_dir), "device": "cpu", "chunk_size": 5},
            vcf=str(source),
            output=str(output),
            genome=FASTA,
            annotation=GENES,
            threads=2,
            fields=("MetaSplice",),
        )

    predict(base, tmp_path / "one.vcf")
    one = (tmp_path / "one.vcf").read_text().splitlines()
    base_lines = base.read_text().splitlines()
    header = [line for line in one if line.startswith("##INFO=<ID=")]
    assert [line for line in base_lines if line.startswith("##INFO=<ID=SpliceAI,")] == [
        line for line in header if line.startswith("##INFO=<ID=SpliceAI,")
    ]
    assert sum(line.startswith("##INFO=<ID=MetaSplice,") for line in header) == 1
    body = [line.split("\t") for line in one if not line.startswith("#")]
    base_body = [line.split("\t") for line in base_lines if not line.startswith("#")]
    assert [r[:7] for r in body] == [r[:7] for r in base_body]
    with gzip.open(mixed_run["vcf"], "rt") as fh:
        default = {r[2]: r for r in (line.rstrip("\n").split("\t") for line in fh if not line.startswith("#"))}
    for rec, before in zip(body, base_body, strict=True):
        assert info_field(rec[7], "SpliceAI") == info_field(before[7], "SpliceAI"), rec[2]
        assert info_field(rec[7], "MetaSplice") == info_field(default[rec[2]][7], "MetaSplice"), rec[2]
    assert sum(bool(info_field(r[7], "MetaSplice")) for r in body) >= 8

    # scattered (annotate sorts by position: the sorted chr19 records): split, MetaSplice per shard, gathered
    # = the one job's records
    def chr19_sorted(records: list[list[str]]) -> list[list[str]]:
        return sorted((r for r in records if r[0] == "19" and r[1].isdigit()), key=lambda r: int(r[1]))

    sorted_base = tmp_path / "sorted.vcf"
    base_header = [line for line in base_lines if line.startswith("#")]
    sorted_base.write_text("\n".join(base_header + ["\t".join(r) for r in chr19_sorted(base_body)]) + "\n")
    S.split_vcf(str(sorted_base), str(GENES), 3, str(tmp_path / "shards"))
    ids = S.shard_ids(tmp_path / "shards")
    assert len(ids) >= 3
    for i in ids:
        predict(tmp_path / "shards" / f"{i}.vcf", tmp_path / f"{i}.out.vcf")
    S.gather_vcf([str(tmp_path / f"{i}.out.vcf") for i in ids], str(tmp_path / "gathered.vcf.gz"))
    with gzip.open(tmp_path / "gathered.vcf.gz", "rt") as fh:
        gathered = [line.rstrip("\n") for line in fh if not line.startswith("#")]
    assert gathered == ["\t".join(r) for r in chr19_sorted(body)] and len(gathered) >= 10
