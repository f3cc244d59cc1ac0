import numpy as np
import pandas as pd
import pysam
import pytest

from metasplice.annotation import Annotation, load_annotation
from metasplice.genome import Genome
from metasplice.variants import (
    PrepareConfig,
    SplitConfig,
    assign_splits,
    left_align,
    normalise_classification,
    parse_coordinates,
    prepare_variants,
    read_splicevardb,
)

COLUMNS = ["variant_id", "hg19", "hg38", "gene", "hgvs", "method", "classification", "location", "doi"]


def write_export(path, rows):
    table = pd.DataFrame([dict(zip(["variant_id", "hg38", "gene", "classification"], r)) for r in rows])
    for col in COLUMNS:
        if col not in table:
            table[col] = "x"
    table[COLUMNS].to_csv(path, sep="\t", index=False)
    return path


def prepare(tiny_reference, tmp_path, rows, **split):
    path = write_export(tmp_path / "export.tsv", rows)
    cfg = PrepareConfig(build="test", split=SplitConfig(**split) if split else SplitConfig())
    with Genome(tiny_reference["fasta"]) as genome:
        return prepare_variants(read_splicevardb(path), genome, load_annotation(tiny_reference["annotation"]), cfg)


def test_class_spellings_are_normalised():
    got = normalise_classification(
        pd.Series(["Splice-altering", "normal", "Low-frequency splice-altering", "Low-frequency", "Conflicting", "what"])
    )
    assert got.tolist()[:5] == ["Splice-altering", "Normal", "Low-frequency", "Low-frequency", "Conflicting"]
    assert pd.isna(got.iloc[5])


def test_coordinates_parse_with_or_without_chr_prefix():
    got = parse_coordinates(pd.Series(["21-100-a-G", "chrX-5-AT-A", "1-x-A-G", "1-5-A"]))
    assert got.iloc[0].tolist() == ["21", "100", "A", "G"]
    assert got.iloc[1].tolist() == ["X", "5", "AT", "A"]
    assert got.iloc[2:].isna().all(axis=None)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "export.tsv"
    pd.DataFrame({"variant_id": [1], "hg38": ["1-1-A-G"], "gene": ["G"]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError) as err:
        read_splicevardb(path)
    for col in ("hg19", "hgvs", "method", "classification", "location", "doi"):
        assert col in str(err.value)


def test_missing_export_says_how_to_obtain_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="splicevardb.org"):
        read_splicevardb(tmp_path / "nope.tsv")


def test_left_align_moves_indels_to_the_leftmost_repeat_copy(tmp_path):
    fasta = tmp_path / "r.fa"
    fasta.write_text(">c\nGGCAAAATTTCACACAG\n")
    pysam.faidx(str(fasta))
    with Genome(fasta) as genome:
        # deleting the last A of AAAA (pos 7 anchor A) -> anchor C at 3
        assert left_align(genome.tokens("c"), 7, "AA", "A") == (3, "CA", "C")
        # inserting an A after the run -> anchor C at 3
        assert left_align(genome.tokens("c"), 7, "A", "AA") == (3, "C", "CA")
        # CA repeat: deleting the last "CA" (anchor T at 10) -> anchor T at 10 stays (TCACACA: leftmost copy)
        assert left_align(genome.tokens("c"), 14, "ACA", "A") == (10, "TCA", "T")
        # shared prefix of an MNV-looking record is trimmed to the SNV
        assert left_align(genome.tokens("c"), 3, "CA", "CT") == (4, "A", "T")


def test_good_rows_are_kept_with_gene_strand_region_and_label(tiny_reference, tmp_path):
    s1, s21 = tiny_reference["seqs"]["chr1"], tiny_reference["seqs"]["chr21"]
    alt = lambda b: "A" if b != "A" else "C"  # noqa: E731
    rows = [
        ("a", f"1-3000-{s1[2999]}-{alt(s1[2999])}", "G1", "Splice-altering"),
        ("b", f"chr1-5000-{s1[4999]}-{alt(s1[4999])}", "G1", "Normal"),
        ("c", f"21-2302-{s21[2301:2304]}-{s21[2301]}", "G2", "Low-frequency splice-altering"),
    ]
    variants, summary, rejected = prepare(tiny_reference, tmp_path, rows)
    assert rejected.empty
    assert variants["chrom"].tolist() == ["chr1", "chr1", "chr21"]
    assert variants["gene"].tolist() == ["G1", "G1", "G2"] and variants["strand"].tolist() == ["+", "+", "-"]
    assert variants["label"].tolist() == [1, 0, -1]
    assert variants["classification"].tolist() == ["Splice-altering", "Normal", "Low-frequency"]
    assert variants["region"].tolist() == ["canonical", "deep_intronic", "splice_region"]  # deletes intron bases 3-4
    assert variants["variant_type"].tolist() == ["snv", "snv", "deletion"]
    assert variants.loc[2, "split"] == "test" and set(variants.loc[:1, "split"]) <= {"train", "val"}
    assert variants.loc[0, "variant_id"] == f"chr1:3000:{s1[2999]}:{alt(s1[2999])}"
    assert variants.loc[0, "tx_start"] == 1001 and variants.loc[0, "tx_end"] == 9000
    assert summary.set_index("classification").loc["all", "total"] == 3


def test_every_bad_input_is_rejected_with_its_reason(tiny_reference, tmp_path):
    s1 = tiny_reference["seqs"]["chr1"]
    wrong = "A" if s1[4999] != "A" else "C"
    rows = [
        ("ok", f"1-3000-{s1[2999]}-{'A' if s1[2999] != 'A' else 'C'}", "G1", "Normal"),
        ("mismatch", f"1-5000-{wrong}-G", "G1", "Normal"),
        ("contig", "99-100-A-G", "G1", "Normal"),
        ("malformed", "1-abc-A-G", "G1", "Normal"),
        ("missing", "", "G1", "Normal"),
        ("iupac", f"1-3001-{s1[3000]}-R", "G1", "Normal"),
        ("class", f"1-3002-{s1[3001]}-{'A' if s1[3001] != 'A' else 'C'}", "G1", "Maybe"),
        ("outside", f"1-500-{s1[499]}-{'A' if s1[499] != 'A' else 'C'}", "G1", "Normal"),
        ("end", f"1-19999-{s1[19998:]}A-{s1[19998]}", "G1", "Normal"),
        ("same", f"1-3003-{s1[3002]}-{s1[3002]}", "G1", "Normal"),
    ]
    variants, summary, rejected = prepare(tiny_reference, tmp_path, rows)
    assert variants["source_ids"].tolist() == ["ok"]
    reasons = dict(zip(rejected["variant_id"], rejected["reason"]))
    assert set(reasons) == {r[0] for r in rows} - {"ok"}
    assert "does not match the reference" in reasons["mismatch"]
    assert "contig 99 is not in the reference" in reasons["contig"]
    assert "malformed coordinate" in reasons["malformed"]
    assert "no hg38 coordinate" in reasons["missing"]
    assert "IUPAC" in reasons["iupac"]
    assert "unknown classification" in reasons["class"]
    assert "outside every annotated transcript" in reasons["outside"]
    assert "outside the contig" in reasons["end"]
    assert "REF equals ALT" in reasons["same"]
    lines = dict(zip(rejected["variant_id"], rejected["source_line"]))
    assert lines["mismatch"] == 3  # header is line 1


def test_duplicates_merge_and_disagreement_becomes_conflicting(tiny_reference, tmp_path):
    s1 = tiny_reference["seqs"]["chr1"]
    a = lambda p: f"1-{p}-{s1[p - 1]}-{'A' if s1[p - 1] != 'A' else 'C'}"  # noqa: E731
    # an indel written in two equivalent ways merges after normalisation
    run = next(i for i in range(3000, 8000) if s1[i] == s1[i + 1] and s1[i - 1] != s1[i])  # 0-based start of a run
    del_right = f"1-{run + 1}-{s1[run:run + 2]}-{s1[run]}"  # anchor = first base of the run, deletes the second
    del_left = f"1-{run}-{s1[run - 1:run + 1]}-{s1[run - 1]}"  # anchor before the run, deletes the first
    rows = [
        ("d1", a(3000), "G1", "Splice-altering"),
        ("d2", a(3000), "G1", "Splice-altering"),
        ("c1", a(5000), "G1", "Splice-altering"),
        ("c2", a(5000), "G1", "Normal"),
        ("s1", a(6100), "G1", "Splice-altering"),
        ("s2", a(6100), "G1", "Low-frequency"),
        ("i1", del_right, "G1", "Normal"),
        ("i2", del_left, "G1", "Normal"),
    ]
    variants, _, rejected = prepare(tiny_reference, tmp_path, rows)
    assert rejected.empty
    by_source = variants.set_index("source_ids")
    assert by_source.loc["d1;d2", "classification"] == "Splice-altering"
    assert by_source.loc["c1;c2", "classification"] == "Conflicting" and by_source.loc["c1;c2", "label"] == -1
    assert by_source.loc["s1;s2", "classification"] == "Splice-altering"
    assert by_source.loc["i1;i2", "n_sources"] == 2 and by_source.loc["i1;i2", "pos"] == run
    assert len(variants) == 4 and not variants.duplicated(["chrom", "pos", "ref", "alt"]).any()


def test_split_keeps_test_chroms_and_groups_validation(tiny_reference):
    import pandas as pd

    genes = pd.DataFrame(
        {
            "name": [f"G{i}" for i in range(6)],
            "chrom": ["chr1"] * 5 + ["chr21"],
            "strand": ["+"] * 6,
            "tx_start": [1, 2_000, 50_000, 100_000, 200_000, 1],
            "tx_end": [1_000, 3_000, 60_000, 110_000, 210_000, 1_000],
            "exon_starts": [(1,), (2_000,), (50_000,), (100_000,), (200_000,), (1,)],
            "exon_ends": [(1_000,), (3_000,), (60_000,), (110_000,), (210_000,), (1_000,)],
        }
    )
    ann = Annotation(genes)
    table = pd.DataFrame({"chrom": ["chr1"] * 50 + ["chr21"] * 10, "gene_row": np.r_[np.repeat(np.arange(5), 10), np.full(10, 5)]})
    for seed in range(5):
        split = assign_splits(table, ann, SplitConfig(val_fraction=0.3, seed=seed))
        assert (split[50:] == "test").all() and not (split[:50] == "test").any()
        # G0 and G1 are 1 kb apart: one group, always on the same side
        assert len(set(split[:20])) == 1
        assert 10 <= (split == "val").sum() <= 30
    by_chrom = assign_splits(table, ann, SplitConfig(val_group_by="chromosome", val_chroms=("1",)))
    assert (by_chrom[:50] == "val").all()
