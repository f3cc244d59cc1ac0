from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import yaml

from metasplice.data.annotation import Annotation, load_annotation
from metasplice.data.demo import DemoConfig, make_demo
from metasplice.data.genome import Genome
from metasplice.data.splits import check_group_gaps
from metasplice.data.variants import (
    PrepareConfig,
    SplitConfig,
    assign_splits,
    coordinate_column_for,
    left_align,
    normalise_classification,
    parse_coordinates,
    prepare_from_files,
    prepare_variants,
    read_splicevardb,
    variant_type,
)

ROOT = Path(__file__).resolve().parents[1]

COLUMNS = ["variant_id", "hg19", "hg38", "gene", "hgvs", "method", "classification", "location", "doi"]


def write_export(path, rows):
    table = pd.DataFrame([dict(zip(["variant_id", "hg38", "gene", "classification"], r)) for r in rows])
    for col in COLUMNS:
        if col not in table:
            table[col] = "x"
    table[COLUMNS].to_csv(path, sep="\t", index=False)
    return path


def prepare(tiny_reference, tmp_path, rows, max_ref_mismatch_fraction=0.05, **split):
    path = write_export(tmp_path / "export.tsv", rows)
    split_cfg = SplitConfig(**split) if split else SplitConfig()
    cfg = PrepareConfig(build="test", max_ref_mismatch_fraction=max_ref_mismatch_fraction, split=split_cfg)
    with Genome(tiny_reference["fasta"]) as genome:
        return prepare_variants(read_splicevardb(path), genome, load_annotation(tiny_reference["annotation"]), cfg)


def test_class_spellings_are_normalised():
    got = normalise_classification(
        pd.Series(
            ["Splice-altering", "normal", "Low-frequency splice-altering", "Low-frequency", "Conflicting", "what"]
        )
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


def test_ragged_row_names_the_file_and_line(tmp_path):
    path = tmp_path / "export.tsv"
    good = "\t".join(["1", "", "1-5-A-G", "G", "x", "x", "Normal", "x", "x"])
    path.write_text("\t".join(COLUMNS) + "\n" + good + "\n" + good + "\textra\n" + good + "\n")
    with pytest.raises(pd.errors.ParserError) as err:
        read_splicevardb(path)
    message = str(err.value)
    assert str(path) in message and "line 3 has 10 tab-separated fields" in message and "header has 9" in message
    assert "fix or remove the line" in message


def test_missing_export_says_how_to_obtain_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="splicevardb.org"):
        read_splicevardb(tmp_path / "nope.tsv")


def one_contig(tmp_path: Path, name: str, seq: str) -> Genome:
    """An indexed one-contig FASTA, opened."""
    fasta = tmp_path / f"{name}.fa"
    fasta.write_text(f">{name}\n{seq}\n")
    pysam.faidx(str(fasta))
    return Genome(fasta)


def test_left_align_moves_indels_to_the_leftmost_repeat_copy(tmp_path):
    with one_contig(tmp_path, "c", "GGCAAAATTTCACACAG") as genome:
        # deleting the last A of AAAA (pos 7 anchor A) -> anchor C at 3
        assert left_align(genome.tokens("c"), 7, "AA", "A") == (3, "CA", "C")
        # inserting an A after the run -> anchor C at 3
        assert left_align(genome.tokens("c"), 7, "A", "AA") == (3, "C", "CA")
        # CA repeat: deleting the last "CA" (anchor T at 10) -> anchor T at 10 stays (TCACACA: leftmost copy)
        assert left_align(genome.tokens("c"), 14, "ACA", "A") == (10, "TCA", "T")
        # shared prefix of an MNV-looking record is trimmed to the SNV
        assert left_align(genome.tokens("c"), 3, "CA", "CT") == (4, "A", "T")


def apply_variant(seq: str, pos: int, ref: str, alt: str) -> str:
    """The haplotype of ``seq`` carrying a VCF-style variant (1-based ``pos``)."""
    assert seq[pos - 1 : pos - 1 + len(ref)] == ref
    return seq[: pos - 1] + alt + seq[pos - 1 + len(ref) :]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ((3, "AA", "A"), (1, "AA", "A")),  # one A of the leading run deleted: anchor after it
        ((1, "AA", "A"), (1, "AA", "A")),
        ((2, "A", "AA"), (1, "A", "AA")),  # one A inserted into the leading run
        ((4, "AC", "C"), (1, "AA", "A")),  # written with the anchor after the run, shifts to the start
        ((1, "A", "GA"), (1, "A", "GA")),  # insertion before the first base: nothing before to anchor on
        ((5, "CG", "G"), (4, "AC", "A")),  # away from the start the anchor is the base before, as usual
    ],
)
def test_left_align_at_the_contig_start_anchors_on_the_next_base(tmp_path, record, expected):
    seq = "AAAACGTTGCAGGT"
    with one_contig(tmp_path, "s", seq) as genome:
        pos, ref, alt = left_align(genome.tokens("s"), *record)
    assert (pos, ref, alt) == expected
    assert ref and alt and pos >= 1
    assert apply_variant(seq, pos, ref, alt) == apply_variant(seq, *record)


def test_left_align_deletion_of_the_first_base(tmp_path):
    with one_contig(tmp_path, "s", "CGTTGCA") as genome:
        assert left_align(genome.tokens("s"), 1, "CG", "G") == (1, "CG", "G")


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
    variants, summary, rejected = prepare(tiny_reference, tmp_path, rows, max_ref_mismatch_fraction=0.5)
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
    del_right = f"1-{run + 1}-{s1[run : run + 2]}-{s1[run]}"  # anchor = first base of the run, deletes the second
    del_left = f"1-{run}-{s1[run - 1 : run + 1]}-{s1[run - 1]}"  # anchor before the run, deletes the first
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
    table = pd.DataFrame(
        {"chrom": ["chr1"] * 50 + ["chr21"] * 10, "gene_row": np.r_[np.repeat(np.arange(5), 10), np.full(10, 5)]}
    )
    for seed in range(5):
        split = assign_splits(table, ann, SplitConfig(val_fraction=0.3, seed=seed))
        assert (split[50:] == "test").all() and not (split[:50] == "test").any()
        # G0 and G1 are 1 kb apart: one group, always on the same side
        assert len(set(split[:20])) == 1
        assert 10 <= (split == "val").sum() <= 30
    by_chrom = assign_splits(table, ann, SplitConfig(val_group_by="chromosome", val_chroms=("1",)))
    assert (by_chrom[:50] == "val").all()


def test_empty_validation_split_is_an_error_naming_the_setting():
    genes = pd.DataFrame(
        {
            "name": ["G0", "G1", "G2"],
            "chrom": ["chr1", "chr2", "chr21"],
            "strand": ["+"] * 3,
            "tx_start": [1, 1, 1],
            "tx_end": [1_000] * 3,
            "exon_starts": [(1,)] * 3,
            "exon_ends": [(1_000,)] * 3,
        }
    )
    ann = Annotation(genes)
    table = pd.DataFrame({"chrom": ["chr1"] * 5 + ["chr2"] * 5 + ["chr21"] * 5, "gene_row": np.repeat(np.arange(3), 5)})
    with pytest.raises(ValueError, match="split.val_chroms is empty"):
        assign_splits(table, ann, SplitConfig(val_group_by="chromosome"))
    with pytest.raises(ValueError, match=r"split.val_chroms \['chr21'\] are all test chromosomes"):
        assign_splits(table, ann, SplitConfig(val_group_by="chromosome", val_chroms=("chr21",)))
    with pytest.raises(ValueError, match=r"no variant lies on split.val_chroms \['chr7'\].*chr1, chr2"):
        assign_splits(table, ann, SplitConfig(val_group_by="chromosome", val_chroms=("chr7",)))
    with pytest.raises(ValueError, match="split.val_fraction is 0.0"):
        assign_splits(table, ann, SplitConfig(val_fraction=0.0))
    split = assign_splits(table, ann, SplitConfig(val_group_by="chromosome", val_chroms=("2", "chr21")))
    assert split.tolist() == ["train"] * 5 + ["val"] * 5 + ["test"] * 5
    # only test chromosomes: nothing to validate on, and nothing to train on either
    assert (assign_splits(table.iloc[10:], ann, SplitConfig(val_group_by="chromosome")) == "test").all()


def mismatch_rows(seq: str, good: int, bad: int) -> list[tuple]:
    """``good`` in-gene SNVs with the right REF, then ``bad`` with a wrong one (chr1 of tiny_reference)."""
    other = lambda b: "A" if b != "A" else "C"  # noqa: E731
    rows = [(f"g{p}", f"1-{p}-{seq[p - 1]}-{other(seq[p - 1])}", "G1", "Normal") for p in range(2000, 2000 + good)]
    rows += [(f"b{p}", f"1-{p}-{other(seq[p - 1])}-G", "G1", "Normal") for p in range(4000, 4000 + bad)]
    return rows


def test_ref_mismatches_above_the_limit_fail_naming_genome_build_and_column(tiny_reference, tmp_path):
    s1 = tiny_reference["seqs"]["chr1"]
    with pytest.raises(ValueError) as err:
        prepare(tiny_reference, tmp_path, mismatch_rows(s1, good=16, bad=4))
    message = str(err.value)
    assert str(tiny_reference["fasta"]) in message and "build test" in message and "'hg38'" in message
    assert "4 of 20 SpliceVarDB rows (20.0%)" in message and "4 have a REF allele" in message
    assert "0 lie outside" in message and "at most 5.0%" in message
    assert "max_ref_mismatch_fraction" in message and "hg19 = GRCh37, hg38 = GRCh38" in message
    assert "coordinate_column" in message and "line 18: 1-4000-" in message
    # at or below the limit: the mismatches are only rejected
    variants, _, rejected = prepare(tiny_reference, tmp_path, mismatch_rows(s1, good=19, bad=1))
    assert len(variants) == 19 and rejected["reason"].str.contains("does not match").all() and len(rejected) == 1
    rows = mismatch_rows(s1, good=16, bad=4)
    variants, _, rejected = prepare(tiny_reference, tmp_path, rows, max_ref_mismatch_fraction=0.2)
    assert len(variants) == 16 and len(rejected) == 4


def test_wrong_coordinate_column_fails_before_writing_anything(tmp_path):
    demo = make_demo(
        tmp_path / "demo",
        DemoConfig(
            seed=3, n_variants=400, contigs=("chr1", "chr21", "chr22"), genes_per_contig=1, gene_length=(8000, 12000)
        ),
    )
    settings = yaml.safe_load((ROOT / "config.yaml").read_text())
    outputs = {name: tmp_path / "out" / name for name in ("variants_out", "summary_out", "rejected_out")}
    kwargs = dict(
        splicevardb=demo["splicevardb"],
        genome=demo["genome"],
        annotation=demo["annotation"],
        build="demo",
        split=settings["split"],
        regions=settings["regions"],
        **outputs,
    )
    # the demo's rows (with its planted REF mismatch) pass the default limit
    variants = prepare_from_files(coordinate_column="hg38", **kwargs)
    assert len(variants) > 350 and all(path.exists() for path in outputs.values())
    for path in outputs.values():
        path.unlink()
    # the demo's hg19 column is shifted: its positions lie outside the small demo contigs
    with pytest.raises(ValueError, match=r"lie outside their contig.*coordinate column 'hg19'.*the FASTA is demo"):
        prepare_from_files(coordinate_column="hg19", **kwargs)
    assert not any(path.exists() for path in outputs.values())
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("build", "column"),
    [
        ("GRCh37", "hg19"),
        ("grch37.p13", "hg19"),
        ("hg19", "hg19"),
        ("GRCh38", "hg38"),
        ("hg38", "hg38"),
        ("demo", "hg38"),
    ],
)
def test_coordinate_column_follows_the_build(build, column):
    assert coordinate_column_for(build) == column


def test_group_gaps_must_cover_the_longest_window():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    check_group_gaps(config)  # the shipped settings are consistent
    small = {**config, "split": {**config["split"], "group_gap": 1000}}
    with pytest.raises(ValueError, match=r"split.group_gap = 1000 .*max of sequences.contexts = 2001"):
        check_group_gaps(small)
    check_group_gaps({**small, "sequences": {"contexts": [401, 1001]}, "split": {"group_gap": 1001}})
    stacking = {**config, "stacking": {**config["stacking"], "demo": {"group_gap": 500}}}
    with pytest.raises(ValueError, match=r"stacking.group_gap = 500"):
        check_group_gaps({**stacking, "dataset": "demo"})
    check_group_gaps({**stacking, "dataset": "splicevardb_grch38"})  # the demo override applies to the demo only
    evaluation = {**config["evaluation"], "cross_validation": {"group_gap": 0}}
    with pytest.raises(ValueError, match=r"evaluation.cross_validation.group_gap = 0 .*Raise evaluation"):
        check_group_gaps({**config, "evaluation": evaluation})


def test_variant_types_need_a_shared_anchor_base():
    """A deletion-insertion that changes its first base is not an insertion or a deletion."""
    ref = pd.Series(["A", "A", "AG", "AA", "A", "AC"])
    alt = pd.Series(["G", "AT", "A", "C", "GT", "GT"])
    assert variant_type(ref, alt).tolist() == ["snv", "insertion", "deletion", "mnv", "mnv", "mnv"]
