"""Tests for metasplice.sequences: exact windows on a hand-made FASTA, strands, contig edges,
row alignment, errors, and a randomised comparison with a plain string implementation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from metasplice.data.genome import Genome, decode, encode
from metasplice.sequences import extract_windows, load_windows, save_windows

#          position: 1234567890123456
CHR1 = "ACGTACGGTCAATGCC"
CHR2 = "TTTTTGGGGG"


@pytest.fixture()
def genome(tmp_path: Path) -> Genome:
    fa = tmp_path / "tiny.fa"
    fa.write_text(f">chr1\n{CHR1[:10]}\n{CHR1[10:]}\n>chr2\n{CHR2}\n")
    pysam.faidx(str(fa))
    with Genome(fa) as g:
        yield g


def _table(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt", "strand"])


def _windows(genome: Genome, rows: list[tuple], context: int = 7, **kw) -> tuple[list[str], list[str]]:
    ref, alt = extract_windows(_table(rows), genome, context, **kw)
    assert ref.dtype == np.uint8 and alt.dtype == np.uint8
    assert ref.shape == alt.shape == (len(rows), context)
    return [decode(r) for r in ref], [decode(a) for a in alt]


# (chrom, pos, ref, alt, strand) -> expected ref window, alt window (L = 7, centre index 3)
CASES = {
    "snv": (("chr1", 8, "G", "A", "+"), "ACGGTCA", "ACGATCA"),
    "insertion": (("chr1", 8, "G", "GTT", "+"), "ACGGTCA", "ACGGTTT"),
    "deletion": (("chr1", 8, "GTC", "G", "+"), "ACGGTCA", "ACGGAAT"),
    "mnv": (("chr1", 8, "GT", "CA", "+"), "ACGGTCA", "ACGCACA"),
    "long_insertion_cut_at_window_end": (("chr1", 8, "G", "GTTTTTT", "+"), "ACGGTCA", "ACGGTTT"),
    "left_edge_snv": (("chr1", 2, "C", "T", "+"), "NNACGTA", "NNATGTA"),
    "left_edge_insertion": (("chr1", 1, "A", "AG", "+"), "NNNACGT", "NNNAGCG"),
    "right_edge_snv": (("chr1", 15, "C", "G", "+"), "ATGCCNN", "ATGGCNN"),
    "right_edge_deletion": (("chr1", 14, "GC", "G", "+"), "AATGCCN", "AATGCNN"),
    "other_contig_no_prefix": (("2", 6, "G", "C", "+"), "TTTGGGG", "TTTCGGG"),
    # minus strand: the whole window reverse-complemented, centre stays at index 3
    "minus_snv": (("chr1", 8, "G", "A", "-"), "TGACCGT", "TGATCGT"),
    "minus_deletion": (("chr1", 8, "GTC", "G", "-"), "TGACCGT", "ATTCCGT"),
    "minus_insertion": (("chr1", 8, "G", "GTT", "-"), "TGACCGT", "AAACCGT"),
    "minus_left_edge": (("chr1", 2, "C", "T", "-"), "TACGTNN", "TACATNN"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exact_windows(genome: Genome, case: str) -> None:
    row, want_ref, want_alt = CASES[case]
    refs, alts = _windows(genome, [row])
    assert (refs[0], alts[0]) == (want_ref, want_alt)


def test_not_strand_oriented_keeps_genome_orientation(genome: Genome) -> None:
    refs, alts = _windows(genome, [("chr1", 8, "GTC", "G", "-")], strand_oriented=False)
    assert (refs[0], alts[0]) == ("ACGGTCA", "ACGGAAT")
    # the strand column is not needed then
    ref, _ = extract_windows(
        _table([("chr1", 8, "G", "A", "-")]).drop(columns="strand"), genome, 7, strand_oriented=False
    )
    assert decode(ref[0]) == "ACGGTCA"


def test_row_alignment_across_contigs(genome: Genome) -> None:
    names = sorted(CASES)
    rows = [CASES[name][0] for name in names]
    order = np.random.default_rng(3).permutation(len(rows))  # contigs interleaved
    refs, alts = _windows(genome, [rows[i] for i in order])
    for k, i in enumerate(order):
        assert (refs[k], alts[k]) == CASES[names[i]][1:], names[i]


def test_wide_window_is_all_n_padding_beyond_contig(genome: Genome) -> None:
    refs, alts = _windows(genome, [("chr2", 1, "T", "G", "+")], context=31)
    assert refs[0] == "N" * 15 + CHR2 + "N" * 6
    assert alts[0] == "N" * 15 + "G" + CHR2[1:] + "N" * 6


def test_lowercase_alleles_and_empty_table(genome: Genome) -> None:
    refs, alts = _windows(genome, [("chr1", 8, "g", "a", "+")])
    assert (refs[0], alts[0]) == CASES["snv"][1:]
    ref, alt = extract_windows(_table([]), genome, 401)
    assert ref.shape == alt.shape == (0, 401) and ref.dtype == np.uint8


@pytest.mark.parametrize(
    "row, context, message",
    [
        (("chr1", 8, "G", "A", "+"), 400, "must be odd .*use 401"),
        (("chr1", 8, "A", "C", "+"), 7, r"REF does not match .* row 0 \(chr1:8:A:C\)"),
        (("chr9", 8, "G", "A", "+"), 7, "contig 'chr9' is not in the reference"),
        (("chr1", 8, "G", "A", "."), 7, "strand must be '\\+' or '-'"),
        (("chr1", 16, "CA", "C", "+"), 7, "beyond the end of contig chr1"),
        (("chr1", 0, "A", "C", "+"), 7, "1-based integer position"),
        (("chr1", 8, "G", "R", "+"), 7, "alt must be a non-empty string of A, C, G, T, N"),
    ],
)
def test_errors(genome: Genome, row: tuple, context: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        extract_windows(_table([row]), genome, context)


def test_missing_columns(genome: Genome) -> None:
    with pytest.raises(ValueError, match="lacks column.*strand"):
        extract_windows(_table([("chr1", 8, "G", "A", "+")]).drop(columns="strand"), genome, 7)


def test_save_and_load(tmp_path: Path, genome: Genome) -> None:
    table = _table([CASES[c][0] for c in ("snv", "deletion")])
    ref, alt = extract_windows(table, genome, 7)
    path = save_windows(tmp_path / "ctx7.npz", ref, alt, context=7, strand_oriented=True, variant_ids=["a", "b"])
    data = load_windows(path, context=7)
    assert np.array_equal(data["ref"], ref) and np.array_equal(data["alt"], alt)
    assert int(data["context"]) == 7 and bool(data["strand_oriented"]) is True
    assert data["variant_id"].tolist() == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx7.npz", "tiny.fa", "tiny.fa.fai"]
    with pytest.raises(ValueError, match="length 7, expected 401"):
        load_windows(path, context=401)


# ------------------------------------------------------------------ randomised check against strings

_COMP = str.maketrans("ACGTN", "TGCAN")


def _naive(seq: str, pos: int, ref: str, alt: str, strand: str, length: int) -> tuple[str, str]:
    """Plain string construction of the documented convention."""
    c = length // 2
    padded = "N" * length + seq + "N" * (length + len(ref) + len(alt))
    p = pos - 1 + length  # index of the first REF base in ``padded``
    ref_w = padded[p - c : p - c + length]
    alt_w = (padded[p - c : p] + alt + padded[p + len(ref) :])[:length]
    if strand == "-":
        ref_w, alt_w = ref_w[::-1].translate(_COMP), alt_w[::-1].translate(_COMP)
    return ref_w, alt_w


def test_random_variants_match_string_construction(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    contigs = {
        f"c{i}": "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=size))
        for i, size in enumerate((40, 300, 1200, 20_000))
    }
    fa = tmp_path / "rand.fa"
    fa.write_text(
        "".join(f">{k}\n" + "\n".join(v[i : i + 50] for i in range(0, len(v), 50)) + "\n" for k, v in contigs.items())
    )
    pysam.faidx(str(fa))
    rows = []
    for i in range(430):
        # c3 is sparse (30 variants on 20 kb, some at its very ends), so it is read in blocks
        chrom = str(rng.choice(["c0", "c1", "c2"])) if i < 400 else "c3"
        seq = contigs[chrom]
        kind = rng.integers(4)
        lref = 1 if kind in (0, 1) else int(rng.integers(2, 30))
        pos = int(rng.integers(1, len(seq) - lref + 2))
        if i >= 420:
            pos = [1, 2, 5, len(seq) - lref + 1, len(seq) - lref - 3][i % 5]
        ref = seq[pos - 1 : pos - 1 + lref]
        if kind == 0:
            alt = "ACGT"[(("ACGT".find(ref) + 1) % 4)]
        elif kind == 1:
            alt = ref + "".join(rng.choice(list("ACGT"), size=int(rng.integers(1, 40))))
        elif kind == 2:
            alt = ref[0]
        else:
            alt = "".join(rng.choice(list("ACGT"), size=lref))
        rows.append((chrom, pos, ref, alt, "+-"[int(rng.integers(2))]))
    table = _table(rows)
    with Genome(fa) as genome:
        for length, gap in ((1, 100_000), (21, 100_000), (101, 100_000), (21, 0), (101, 50)):
            ref, alt = extract_windows(table, genome, length, block_gap=gap)
            for i, (chrom, pos, r, a, s) in enumerate(rows):
                assert (decode(ref[i]), decode(alt[i])) == _naive(contigs[chrom], pos, r, a, s, length), (
                    i,
                    length,
                    gap,
                )
    assert encode("acgtn").tolist() == [0, 1, 2, 3, 4]


def test_sequences_config() -> None:
    from metasplice.sequences import SequencesConfig

    cfg = SequencesConfig.from_dict(None)
    assert cfg.contexts == (401, 501, 1001, 2001) and cfg.strand_oriented is True
    assert cfg.targets()[0] == "results/sequences/ctx401.npz"
    cfg = SequencesConfig.from_dict({"contexts": [11, 21], "strand_oriented": False})
    assert cfg.rule_params("21") == {"context": 21, "strand_oriented": False}
    with pytest.raises(ValueError, match="must be odd"):
        cfg.rule_params("20")
    with pytest.raises(ValueError, match="must be odd"):
        SequencesConfig.from_dict({"contexts": [400]})
    with pytest.raises(ValueError, match="unknown key"):
        SequencesConfig.from_dict({"context": [401]})
