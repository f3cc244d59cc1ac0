import numpy as np
import pytest

from metasplice.data.annotation import (
    Annotation,
    RegionConfig,
    load_annotation,
    read_annotation_table,
    write_annotation,
)


def test_round_trip_keeps_spliceai_conventions(tiny_reference, tmp_path):
    text = tiny_reference["annotation"].read_text().splitlines()
    assert text[0] == "#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END"
    assert text[1] == "G1\tchr1\t+\t1000\t9000\t1000,3000,6000,\t1200,3200,9000,"
    genes = read_annotation_table(tiny_reference["annotation"])
    assert genes.loc[0, "tx_start"] == 1001 and genes.loc[0, "exon_starts"] == (1001, 3001, 6001)
    write_annotation(genes, tmp_path / "again.tsv")
    assert (tmp_path / "again.tsv").read_text() == tiny_reference["annotation"].read_text()


def test_bundled_grch38_table_loads():
    ann = load_annotation("grch38")
    assert len(ann.genes) > 19_000
    brca1 = ann.genes.iloc[ann.overlapping("17", 43_100_000)[0]]
    assert brca1["name"] == "BRCA1" and brca1["strand"] == "-"


def test_overlap_and_assignment_prefers_named_gene(tiny_reference):
    genes = tiny_reference["genes"].copy()
    extra = genes.iloc[[0]].assign(name="G1b", tx_start=5000, tx_end=9500, exon_starts=[(5000,)], exon_ends=[(9500,)])
    ann = Annotation(__import__("pandas").concat([genes, extra], ignore_index=True))
    assert ann.overlapping("1", 6000) == [0, 2]
    assert ann.overlapping("chr1", 1000) == []  # tx_start is 1-based inclusive
    rows = ann.assign(
        np.array(["chr1", "1", "chr1", "chr21"]), np.array([6000, 6000, 500, 2001]), np.array(["G1b", "X", "G1", "G2"])
    )
    assert rows.tolist() == [2, 0, -1, 1]


def test_region_classes_around_a_plus_strand_exon(tiny_reference):
    ann = load_annotation(tiny_reference["annotation"])
    # exon 2 of G1 spans 3001..3200; neighbours end at 1200 and start at 6001
    pos = np.array([3000, 2999, 2998, 2993, 2992, 2951, 2950, 3001, 3003, 3004, 3100, 3201, 3200])
    expected = [
        "canonical",
        "canonical",
        "splice_region",
        "splice_region",
        "intronic",
        "intronic",
        "deep_intronic",
        "splice_region",
        "splice_region",
        "exonic",
        "exonic",
        "canonical",
        "splice_region",
    ]
    rows = np.zeros(len(pos), dtype=np.int64)
    assert ann.regions(rows, pos, pos, RegionConfig()).tolist() == expected
    # a deletion spanning into the exon takes the most severe class of its span
    assert ann.regions(np.array([0]), np.array([2990]), np.array([3002])).tolist() == ["canonical"]
    # the first/last transcript bases are not splice sites
    assert ann.regions(np.array([0, 0]), np.array([1001, 9000]), np.array([1001, 9000])).tolist() == [
        "exonic",
        "exonic",
    ]


def test_boundary_offsets_follow_the_cli_tie_rule(tiny_reference):
    ann = load_annotation(tiny_reference["annotation"])
    # boundaries of G1: 1001, 1200, 3001, 3200, 6001, 9000
    assert ann.boundary_offsets(np.array([0, 0, 0]), np.array([3005, 2100, 4600])).tolist() == [-4, -900, -1400]
    # a tie (boundaries 101 and 201 around 151) goes to the lower coordinate, as in the CLI
    import pandas as pd

    tie = Annotation(
        pd.DataFrame(
            {
                "name": ["T"],
                "chrom": ["chr1"],
                "strand": ["+"],
                "tx_start": [101],
                "tx_end": [300],
                "exon_starts": [(101, 201)],
                "exon_ends": [(121, 300)],
            }
        )
    )
    assert tie.boundary_offsets(np.array([0]), np.array([160])).tolist() == [-39]  # 121 (39) beats 201 (41)
    assert tie.boundary_offsets(np.array([0]), np.array([110])).tolist() == [-9]  # 101 (9) beats 121 (11)
    assert tie.boundary_offsets(np.array([0]), np.array([111])).tolist() == [-10]  # tie 101 / 121 -> 101


@pytest.mark.parametrize(
    "line, message",
    [
        ("G\tchr1\t*\t0\t10\t0,\t10,", "STRAND"),
        ("G\tchr1\t+\tx\t10\t0,\t10,", "TX_START/TX_END"),
        ("G\tchr1\t+\t0\t10\t0,5,\t10,", "exons"),
        ("G\tchr1\t+\t0\t10\t0,a,\t10,", "comma-separated"),
    ],
)
def test_bad_tables_name_the_line(tmp_path, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text("#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END\n" + line + "\n")
    with pytest.raises(ValueError, match=message) as err:
        read_annotation_table(path)
    assert "line 2" in str(err.value)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("#NAME\tCHROM\tSTRAND\n")
    with pytest.raises(ValueError, match="TX_START, TX_END, EXON_START, EXON_END"):
        read_annotation_table(path)
