"""Labelled VCF/TSV sets as datasets (metasplice.data.labelled) and split.cv folds (metasplice.data.splits)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from metasplice.data.annotation import load_annotation
from metasplice.data.labelled import LabelsConfig, classify, read_labels
from metasplice.data.splits import CrossValConfig, locus_groups, write_fold_variants
from metasplice.data.variants import prepare_from_files
from metasplice.experiments import plan as PLAN

CLINVAR = {"positive": ["Pathogenic", "Likely_pathogenic"], "negative": ["Benign", "Likely_benign"]}


def test_values_map_to_classes_by_default_and_by_lists():
    got = classify(["1", "0", "TRUE", "false", "2", None, ""], ("1", "true"), ("0", "false"))
    assert got.tolist() == ["Splice-altering", "Normal", "Splice-altering", "Normal"] + ["Unlabelled"] * 3
    got = classify(
        ["Pathogenic/Likely_pathogenic", "Benign/Likely_benign", "Pathogenic/Benign", "Uncertain_significance"],
        CLINVAR["positive"],
        CLINVAR["negative"],
    )
    assert got.tolist() == ["Splice-altering", "Normal", "Unlabelled", "Unlabelled"]
    with pytest.raises(ValueError, match=r"in both `positive` and `negative`"):
        LabelsConfig.from_dict({"tsv": "x.tsv", "positive": ["a"], "negative": ["A"]})
    # the lists add to 1/true and 0/false: a CLNSIG config reads a 1/0 set unchanged
    cfg = LabelsConfig.from_dict({"tsv": "x.tsv", **CLINVAR})
    got = classify(["1", "0", "Pathogenic", "benign", "2"], cfg.positive, cfg.negative)
    assert got.tolist() == ["Splice-altering", "Normal", "Splice-altering", "Normal", "Unlabelled"]
    flipped = LabelsConfig.from_dict({"tsv": "x.tsv", "negative": ["1"]})  # a default listed on the other side
    assert classify(["1", "true", "0"], flipped.positive, flipped.negative).tolist() == [
        "Normal",
        "Splice-altering",
        "Normal",
    ]
    with pytest.raises(ValueError, match="info_key"):
        LabelsConfig.from_dict({"vcf": "x.vcf"})


def _vcf(path, records, compress=False):
    text = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "".join(
        "\t".join(r) + "\n" for r in records
    )
    if compress:
        with gzip.open(path, "wt") as out:
            out.write(text)
    else:
        path.write_text(text)
    return path


def test_vcf_keeps_line_numbers_and_splits_alts(tmp_path):
    path = _vcf(
        tmp_path / "l.vcf.gz",
        [
            ["chr1", "1100", "a", "A", "G", ".", ".", "SA=1"],
            ["chr1", "1101", ".", "C", "T,G", ".", ".", "SA=1,0"],
            ["chr1", "1102", "c", "C", "T", ".", ".", "OTHER=3"],
        ],
        compress=True,
    )
    table = read_labels(LabelsConfig.from_dict({"vcf": str(path), "info_key": "SA"}))
    assert table["source_line"].tolist() == [3, 4, 4, 5]
    assert table["variant_id"].tolist() == ["a", "line4", "line4", "c"]
    assert table["coordinate"].tolist() == ["chr1-1100-A-G", "chr1-1101-C-T", "chr1-1101-C-G", "chr1-1102-C-T"]
    assert table["classification"].tolist() == ["Splice-altering", "Splice-altering", "Normal", "Unlabelled"]
    bad = _vcf(tmp_path / "bad.vcf", [["chr1", "5", ".", "A"]])
    with pytest.raises(ValueError, match=r"bad.vcf: line 3 has 4 tab-separated fields"):
        read_labels(LabelsConfig.from_dict({"vcf": str(bad), "info_key": "SA"}))
    with pytest.raises(ValueError, match="no record has INFO key 'NOPE'"):
        read_labels(LabelsConfig.from_dict({"vcf": str(path), "info_key": "NOPE"}))
    # unlabelled: drop leaves the Unlabelled rows out, every labelled one kept with its line
    dropped = read_labels(LabelsConfig.from_dict({"vcf": str(path), "info_key": "SA", "unlabelled": "drop"}))
    assert dropped["source_line"].tolist() == [3, 4, 4]
    assert set(dropped["classification"]) == {"Splice-altering", "Normal"}
    with pytest.raises(ValueError, match="`unlabelled` is keep or drop"):
        LabelsConfig.from_dict({"vcf": str(path), "info_key": "SA", "unlabelled": "score"})


def _prepare(tiny_reference, tmp_path, labels, split=None):
    out = {name: tmp_path / name for name in ("variants.parquet", "summary.tsv", "rejected.tsv")}
    variants = prepare_from_files(
        labels=labels,
        genome=tiny_reference["fasta"],
        annotation=tiny_reference["annotation"],
        variants_out=out["variants.parquet"],
        summary_out=out["summary.tsv"],
        rejected_out=out["rejected.tsv"],
        build="test",
        coordinate_column="hg38",
        split=split or {"test_chroms": ["chr21"], "val_fraction": 0.3},
        regions={},
        max_ref_mismatch_fraction=0.5,
    )
    return variants, pd.read_csv(out["rejected.tsv"], sep="\t"), out


def test_tsv_goes_through_the_same_checks_and_conflict_rules(tiny_reference, tmp_path):
    seq = tiny_reference["seqs"]["chr1"]
    ref = seq[1099]
    wrong = "A" if seq[1109] != "A" else "C"
    alt = "A" if ref != "A" else "C"
    rows = [
        ("chr1", 1100, ref, alt, "1"),  # line 2
        ("chr1", 1100, ref, alt, "0"),  # line 3: same variant, other label -> Conflicting
        ("chr1", 1110, wrong, "G" if wrong != "G" else "T", "1"),  # line 4: REF mismatch -> rejected
        ("chr1", 3100, seq[3099], alt if seq[3099] != alt else "G", "maybe"),  # line 5: unlabelled
        ("chr1", 3100, seq[3099], alt if seq[3099] != alt else "G", "1"),  # line 6: unlabelled + SA -> SA
        ("chr1", 15000, seq[14999], "N", "1"),  # line 7: N is no base -> rejected
    ]
    path = tmp_path / "labels.tsv"
    pd.DataFrame(rows, columns=["c", "p", "r", "a", "y"]).to_csv(path, sep="\t", index=False)
    labels = {"tsv": str(path), "chrom": "c", "pos": "p", "ref": "r", "alt": "a", "label": "y"}
    variants, rejected, _ = _prepare(tiny_reference, tmp_path, labels, split={"test_chroms": ["chr21"]})
    assert variants["classification"].tolist() == ["Conflicting", "Splice-altering"]
    assert variants["label"].tolist() == [-1, 1]
    assert rejected["source_line"].tolist() == [4, 7]
    assert "does not match the reference" in rejected["reason"].iloc[0]
    with pytest.raises(ValueError, match=r"missing column\(s\) chrom: 'chrom', pos: 'pos'"):
        read_labels(LabelsConfig(tsv=str(path), label="y"))


def _locus_table(tiny_reference, rng):
    seq = tiny_reference["seqs"]["chr1"]
    pos = np.sort(rng.choice(np.arange(1001, 9000), 120, replace=False))
    records = []
    for i, p in enumerate(pos):
        ref = seq[p - 1]
        alt = "ACGT"[("ACGT".index(ref) + 1) % 4]
        records.append(["chr1", str(p), f"v{i}", ref, alt, ".", ".", f"SA={i % 3 if i % 3 < 2 else 'x'}"])
    return records


def test_exon_folds_test_every_variant_once_and_validate_inside_the_training_folds(tiny_reference, tmp_path):
    path = _vcf(tmp_path / "locus.vcf", _locus_table(tiny_reference, np.random.default_rng(4)))
    cv = {"folds": 3, "group_by": "exon", "seed": 2}
    variants, _, out = _prepare(
        tiny_reference, tmp_path, {"vcf": str(path), "info_key": "SA"}, split={"cv": cv, "val_fraction": 0.1}
    )
    # G1 (+ strand) has exons 1001-1200, 3001-3200, 6001-9000: intronic variants go to the nearest exon
    near = variants.set_index("pos")["cv_group"]
    assert all(near[p] == "G1:exon1" for p in near.index if p <= 2100)
    assert all(near[p] == "G1:exon2" for p in near.index if 2101 <= p <= 4600)
    assert all(near[p] == "G1:exon3" for p in near.index if p >= 4601)
    assert variants.groupby("cv_group")["cv_fold"].nunique().eq(1).all()
    cfg = PLAN.crossval_settings({"split": {"cv": cv}})
    assert cfg.locus and cfg.k == 3 and cfg.group_by == "exon"
    folds = [tmp_path / f"fold{k}.parquet" for k in range(3)]
    summary = write_fold_variants(out["variants.parquet"], folds, tmp_path / "folds.tsv", cfg)
    tests = [pd.read_parquet(f) for f in folds]
    labelled = variants["label"].isin((0, 1)).to_numpy()
    tested = np.sum([(t["split"] == "test").to_numpy() for t in tests], axis=0)
    assert (tested[labelled] == 1).all()  # every labelled variant is predicted out-of-fold exactly once
    for k, t in enumerate(tests):
        test_groups = set(t.loc[t["split"] == "test", "cv_group"])
        assert test_groups.isdisjoint(t.loc[t["split"] != "test", "cv_group"])  # whole exons on one side
        assert (t.loc[t["split"] == "val", "cv_fold"] != k).all()
    assert (pd.read_parquet(out["variants.parquet"])["split"] == tests[0]["split"]).all()  # main split = fold 0
    assert summary["test_groups"].str.len().gt(0).all()
    with pytest.raises(ValueError, match="at least 4 groups holding labelled variants; found 3"):
        _prepare(tiny_reference, tmp_path, {"vcf": str(path), "info_key": "SA"}, split={"cv": {"folds": 4}})


def test_block_and_gene_groups(tiny_reference):
    ann = load_annotation(tiny_reference["annotation"])
    table = pd.DataFrame({"chrom": ["chr1", "chr1", "chr21"], "pos": [1, 10_001, 11_999], "gene_row": [0, 0, 1]})
    assert locus_groups(table, ann, "block", 10_000).tolist() == [
        "chr1:1-10000",
        "chr1:10001-20000",
        "chr21:10001-20000",
    ]
    assert locus_groups(table, ann, "gene").tolist() == ["G1:1001", "G1:1001", "G2:2001"]
    # G2 is on the minus strand: its last exon in genome order is exon 1
    assert locus_groups(table.iloc[[2]], ann, "exon").tolist() == ["G2:exon1"]
    with pytest.raises(ValueError, match="group_by must be one of exon, gene, block"):
        CrossValConfig.from_split({"group_by": "chromosome2"})


def test_locus_cv_makes_every_report_row_out_of_fold():
    config = {
        "dataset": "x",
        "datasets": {"x": {"build": "b", "labels": {"vcf": "v.vcf", "info_key": "K"}}},
        "split": {"cv": {"folds": 5}},
        "experiments": {"s": {"model": "stacked", "bases": ["spliceai"], "members": []}},
        "base_models": {"spliceai": {"kind": "spliceai"}},
        "evaluation": {"baselines": ["spliceai"]},
    }
    inputs = PLAN.report_inputs(config)
    assert inputs["baseline_metrics"] == ["results/eval_cv/baseline/spliceai/metrics.json"]
    assert inputs["metrics"] == ["results/eval_cv/s/metrics.json"]
    assert inputs["importance"] == ["results/models/s__fold0/importance.tsv"]
    assert "out-of-fold predictions of 5 folds of whole exons" in PLAN.report_params(config)["test_description"]
    assert PLAN.prepare_variants_inputs(config, "svdb.tsv", "g.fa", "a.tsv")["labels"] == "v.vcf"
    both = {**config["datasets"]["x"], "splicevardb": {"path": "e.tsv"}}
    with pytest.raises(ValueError, match="exactly one source of labels"):
        PLAN.dataset_settings({**config, "datasets": {"x": both}})
