"""Deterministic synthetic demo dataset: genome, gene annotation and a SpliceVarDB-format table.

Everything is drawn from one ``numpy`` generator seeded by :attr:`DemoConfig.seed`, so the same
configuration always writes byte-identical files. Nothing here needs torch or the network; the
optional check :func:`planted_site_probabilities` imports torch only when called.

Genome
    Contigs (default ``chr1 chr2 chr3 chr21 chr22``) of intergenic background (human-like base
    composition with CpG depletion) carrying ``genes_per_contig`` genes each, on both strands.
    A gene has a CpG-island promoter and GC-rich first exon, internal exons of 80-250 nt (GC-richer,
    with exonic splicing enhancer hexamers), AT/T-rich introns of 300-3000 nt and a long last exon.
    Every internal boundary carries a splice signal sampled from position weight matrices sharpened
    by ``site_sharpness`` (so each site differs): donors ``MAG|GURAGU`` and acceptors
    ``branch point (yUnAy) + AG-free spacer + polypyrimidine tract + YAG|G``. The real SpliceAI
    models recognise most of them (see :func:`planted_site_probabilities` and tests/test_demo.py).

Variants and labels
    Variants are drawn by *mechanism* (see :data:`MECHANISMS`): canonical GT/AG changes, other
    donor/acceptor consensus positions, branch points, exonic splicing enhancers, exonic, intronic
    and deep-intronic background, SNVs that create a cryptic GT or AG (sampled towards strong new
    sites) and small indels (1-10 nt). Each variant is then scored from sequence alone, in
    transcript orientation, with human splice-site PWMs (log-odds bits): what is left of the planted
    site it touches, the strength and place of any new site it creates, a destroyed branch-point
    adenine or ESE hexamer. These give an effect in [0, 1] (rules and constants below, calibrated
    against SpliceAI delta scores of demo SNVs): >= 0.5 Splice-altering, >= 0.18 Low-frequency,
    else Normal. ``conflicting_fraction`` of the rows (mostly mid-effect ones) become Conflicting
    and ``label_noise`` of the rest get a wrong class. Low-frequency rows are written as
    ``Low-frequency`` or, for ``lf_long_name`` of them, ``Low-frequency splice-altering``.
    ``truth.tsv`` keeps the mechanism, scores, rule class and noise flag of every row.

Coordinates
    ``CHROM-POS-REF-ALT``, 1-based, contig without ``chr``, indels VCF-style with the anchor base.
    The demo build's coordinates are in the ``hg38`` column; ``hg19`` holds the same variant with
    POS shifted by :data:`HG19_SHIFT` (deliberately wrong for the demo FASTA, so a run that reads
    the wrong column fails its REF checks loudly). Indels are not necessarily left-aligned.

Planted bad rows (``bad_rows=True``; their ``truth.tsv`` ``bad`` column names the kind)
    - ``ref_mismatch``: a valid in-gene SNV whose REF differs from the FASTA -> rejected.
    - ``unknown_contig``: contig ``99`` -> rejected.
    - ``malformed_position``: ``21-abc-A-G`` (non-integer POS) -> rejected.
    - ``malformed_fields``: ``21-<pos>-A`` (three fields) -> rejected.
    - ``iupac_allele``: a correct REF with ALT ``R`` -> rejected (IUPAC, never guessed).
    - ``intergenic``: a correct SNV outside every gene -> rejected (no gene).
    - ``duplicate_conflict``: a second row for a Splice-altering variant labelled Normal -> merged,
      the variant becomes Conflicting.
    - ``duplicate_exact``: a second row identical in coordinates and class to another -> merged.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metasplice.data.genome import decode, encode, reverse_complement

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

A, C, G, T, N = 0, 1, 2, 3, 4
BASES = "ACGT"
SPLICEVARDB_COLUMNS = ("variant_id", "hg19", "hg38", "gene", "hgvs", "method", "classification", "location", "doi")
CLASSES = ("Splice-altering", "Normal", "Low-frequency", "Conflicting")
LF_LONG = "Low-frequency splice-altering"
HG19_SHIFT = 100_000
BAD_ROW_KINDS = (
    "ref_mismatch",
    "unknown_contig",
    "malformed_position",
    "malformed_fields",
    "iupac_allele",
    "intergenic",
    "duplicate_conflict",
    "duplicate_exact",
)
REJECTED_BAD_ROWS = BAD_ROW_KINDS[:6]  # the pipeline must reject these; the two duplicates are merged
OUTPUT_FILES = {
    "genome": "genome.fa",
    "fai": "genome.fa.fai",
    "annotation": "annotation.tsv",
    "splicevardb": "splicevardb.tsv",
    "truth": "truth.tsv",
}

# Mechanisms and their default share of the good rows.
MECHANISMS: dict[str, float] = {
    "donor_canonical": 0.14,  # SNV at intron +1/+2 of a planted donor
    "acceptor_canonical": 0.12,  # SNV at intron -1/-2 of a planted acceptor
    "donor_consensus": 0.12,  # SNV at exon -3..-1 or intron +3..+6 of a donor
    "acceptor_region": 0.09,  # SNV in the polypyrimidine tract, -3, or exon +1..+3
    "branch_point": 0.04,  # SNV at or next to the branch-point adenine
    "exonic_enhancer": 0.10,  # SNV inside a planted exonic splicing enhancer hexamer
    "exonic": 0.03,  # SNV inside an exon, >= 4 nt from internal boundaries
    "intronic": 0.02,  # SNV 7..100 nt into an intron (outside the acceptor region)
    "deep_intronic": 0.05,  # SNV > 100 nt from every boundary
    "cryptic_donor": 0.09,  # SNV creating a GT, sampled towards strong donor context
    "cryptic_acceptor": 0.05,  # SNV creating an AG, sampled towards a pyrimidine-rich context
    "deletion_canonical": 0.06,  # 1-10 nt deletion removing a canonical GT/AG base
    "indel_ppt": 0.04,  # 1-10 nt indel in the polypyrimidine tract
    "indel_exonic": 0.03,  # 1-10 nt indel inside an exon
    "indel_intronic": 0.02,  # 1-10 nt indel in an intron, >= 30 nt from boundaries
}

# ---------------------------------------------------------------------------------------------
# Sequence models (rows = positions, columns = A C G T probabilities)

# intron / exon / intergenic / CpG island base composition (transcript orientation)
BG_INTRON = np.array([0.26, 0.20, 0.21, 0.33])
BG_EXON = np.array([0.25, 0.26, 0.27, 0.22])
BG_INTERGENIC = np.array([0.29, 0.21, 0.21, 0.29])
BG_CPG_ISLAND = np.array([0.18, 0.32, 0.32, 0.18])
CPG_KEEP = {"intron": 0.25, "exon": 0.4, "intergenic": 0.25}  # fraction of CpGs surviving
# human donor, positions exon -3 -2 -1 | intron +1 .. +6
DONOR_PWM = np.array(
    [
        [0.35, 0.35, 0.19, 0.11],
        [0.60, 0.13, 0.13, 0.14],
        [0.10, 0.03, 0.80, 0.07],
        [0.00, 0.00, 1.00, 0.00],
        [0.00, 0.00, 0.00, 1.00],
        [0.59, 0.03, 0.35, 0.03],
        [0.71, 0.08, 0.12, 0.09],
        [0.06, 0.05, 0.83, 0.06],
        [0.16, 0.15, 0.19, 0.50],
    ]
)
DONOR_EXON = 3  # motif bases before the boundary
# human acceptor, positions intron -20 .. -1 | exon +1 +2 +3
ACCEPTOR_PWM = np.array(
    [[0.15, 0.30, 0.12, 0.43]] * 6
    + [[0.10, 0.34, 0.07, 0.49]] * 10
    + [
        [0.23, 0.31, 0.21, 0.25],
        [0.06, 0.66, 0.01, 0.27],
        [1.00, 0.00, 0.00, 0.00],
        [0.00, 0.00, 1.00, 0.00],
        [0.25, 0.12, 0.50, 0.13],
        [0.24, 0.20, 0.20, 0.36],
        [0.25, 0.22, 0.30, 0.23],
    ]
)
ACCEPTOR_INTRON = 20  # motif bases before the boundary
# branch point yUnAy; the adenine is position 3
BRANCH_PWM = np.array(
    [[0.0, 0.6, 0.0, 0.4], [0.0, 0.0, 0.0, 1.0], [0.3, 0.2, 0.3, 0.2], [1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.5]]
)
BRANCH_A = 3
# SR-protein binding exonic splicing enhancers (GAAGAA, AAGAAG, GAGGAA, CGAAGA, GACGAA, ACGAAG)
ESE_HEXAMERS = np.array(
    [
        [2, 0, 0, 2, 0, 0],
        [0, 0, 2, 0, 0, 2],
        [2, 0, 2, 2, 0, 0],
        [1, 2, 0, 0, 2, 0],
        [2, 0, 1, 2, 0, 0],
        [0, 1, 2, 0, 0, 2],
    ],
    dtype=np.uint8,
)
FIRST_EXON = (150, 350)
LAST_EXON = (300, 1200)
PROMOTER = 800  # CpG island upstream of the first exon
DOWNSTREAM = 300  # intergenic tail kept with the gene block
FLOOR_BITS = -20.0  # score of a motif without its GT / AG


def _log_odds(pwm: np.ndarray) -> np.ndarray:
    lo = np.log2(np.maximum(pwm, 1e-3) / 0.25)
    lo[pwm == 0] = FLOOR_BITS  # a missing canonical base sinks the whole site
    return lo


DONOR_LO = _log_odds(DONOR_PWM)
ACCEPTOR_LO = _log_odds(ACCEPTOR_PWM)

# Effect rules on PWM log-odds bits, calibrated against SpliceAI delta scores of demo SNVs.
# Loss at a planted site (when it loses >= MIN_LOSS bits): the larger of
# (bits at which the weakened site starts to fail - bits left) / width and (loss - offset) / width.
MIN_LOSS = 1.0
LOSS_RULES = {"donor": (10.5, 6.0, 2.5, 3.5), "acceptor": (11.5, 5.0, 3.0, 3.0)}
# Gain: a new site beating the best old one overlapping the variant by GAIN_MIN_DELTA bits counts
# (bits - GAIN_OFFSET) / GAIN_SCALE, times a factor for where it lies.
GAIN_MIN_DELTA = 3.0
GAIN_OFFSET, GAIN_SCALE = 8.0, 4.0
GAIN_NEAR = 100  # nt from a planted boundary
DONOR_GAIN_FACTOR = {"exonic": 1.0, "near_intronic": 0.5, "intronic": 0.8}  # the planted donor wins nearby
ACCEPTOR_GAIN_FACTOR = {"exonic_or_ag_exclusion": 0.55, "elsewhere": 0.45}  # ag_exclusion: <= 60 nt before an acceptor
BRANCH_EFFECT = 0.45
ENHANCER_EFFECT = 0.3  # an exonic variant that destroys an ESE hexamer
SA_EFFECT, LF_EFFECT = 0.5, 0.18
WINDOW_FLANK = 40  # scoring window: 40 nt each side of the variant
MAX_ALLELE = 11  # 1-10 nt indels plus the anchor base

METHODS = {
    "Splice-altering": (("RNA-Seq", "Minigene", "RT-PCR"), (0.45, 0.35, 0.20)),
    "Normal": (("RNA-Seq", "Minigene", "RT-PCR", "MaPSy"), (0.35, 0.35, 0.15, 0.15)),
    "Low-frequency": (("MaPSy", "Minigene", "RNA-Seq"), (0.60, 0.25, 0.15)),
    "Conflicting": (("Minigene;RNA-Seq", "RNA-Seq;MaPSy"), (0.5, 0.5)),
}
DOIS = tuple(f"10.{1000 + 37 * k}/demo.{2015 + k % 9}.{k:04d}" for k in range(40))


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the synthetic demo dataset (the ``demo:`` config section)."""

    seed: int = 7  # same seed -> byte-identical files
    n_variants: int = 1500  # good SpliceVarDB rows (the bad rows come on top)
    contigs: tuple[str, ...] = ("chr1", "chr2", "chr3", "chr21", "chr22")
    genes_per_contig: int = 8
    exons_per_gene: tuple[int, int] = (4, 10)  # inclusive range
    exon_length: tuple[int, int] = (80, 250)  # internal exons, inclusive range
    intron_length: tuple[int, int] = (300, 3000)
    gene_length: tuple[int, int] = (8000, 20000)  # transcript length aimed at (rejection sampling)
    intergenic_length: tuple[int, int] = (6000, 15000)  # gaps between genes and at contig ends
    site_sharpness: float = 2.0  # exponent on the splice-site PWMs when planting (1 = human-like)
    label_noise: float = 0.03  # fraction of rows given a wrong class
    conflicting_fraction: float = 0.015  # fraction of rows labelled Conflicting
    lf_long_name: float = 0.25  # fraction of Low-frequency rows spelled "Low-frequency splice-altering"
    bad_rows: bool = True  # append the planted bad rows (module docstring)

    def __post_init__(self) -> None:
        for name in ("contigs", "exons_per_gene", "exon_length", "intron_length", "gene_length", "intergenic_length"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = []
        if self.n_variants < 1:
            problems.append("n_variants must be >= 1")
        if not self.contigs or len(set(self.contigs)) != len(self.contigs):
            problems.append("contigs must be a non-empty list of distinct names")
        if self.genes_per_contig < 1:
            problems.append("genes_per_contig must be >= 1")
        for name, low in (
            ("exons_per_gene", 3),
            ("exon_length", 40),
            ("intron_length", 150),
            ("intergenic_length", 5500),
        ):
            lo, hi = getattr(self, name)
            if not low <= lo <= hi:
                problems.append(f"{name} must be an increasing pair with minimum >= {low}, got {(lo, hi)}")
        if not 0 <= self.label_noise < 0.5 or not 0 <= self.conflicting_fraction < 0.5:
            problems.append("label_noise and conflicting_fraction must be in [0, 0.5)")
        if not 0 <= self.lf_long_name <= 1:
            problems.append("lf_long_name must be in [0, 1]")
        if self.site_sharpness <= 0:
            problems.append("site_sharpness must be > 0")
        if problems:
            raise ValueError("demo config: " + "; ".join(problems))

    @classmethod
    def benchmark(cls, **overrides: Any) -> DemoConfig:
        """The 50,000-variant benchmark set: 200 genes so that canonical sites stay distinct."""
        return cls(**{"n_variants": 50_000, "genes_per_contig": 40, **overrides})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DemoConfig:
        """Build from the ``demo:`` config section; unknown keys are an error naming them."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"demo config: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**values)


@dataclass(frozen=True)
class DemoGene:
    """One planted gene. ``exons`` are 0-based half-open genome intervals in ascending order;
    ``tx_exons`` the same exons in transcript coordinates (0 = first transcribed base) and order."""

    name: str
    chrom: str
    strand: str
    tx_start: int  # 0-based first base
    tx_end: int  # exclusive end (= 1-based last base)
    exons: np.ndarray  # (n, 2) int64
    tx_exons: np.ndarray  # (n, 2) int64
    branch_points: np.ndarray  # (n - 1,) transcript index of each intron's branch-point adenine
    enhancers: np.ndarray  # transcript index of the first base of each planted ESE hexamer

    def to_genome(self, tx_index: np.ndarray) -> np.ndarray:
        """0-based genome positions of transcript indices."""
        tx_index = np.asarray(tx_index, dtype=np.int64)
        return self.tx_start + tx_index if self.strand == "+" else self.tx_end - 1 - tx_index

    @property
    def donors(self) -> np.ndarray:
        """Transcript index of the first intron base of every donor."""
        return self.tx_exons[:-1, 1]

    @property
    def acceptors(self) -> np.ndarray:
        """Transcript index of the first exon base of every acceptor."""
        return self.tx_exons[1:, 0]


@dataclass
class DemoData:
    """The generated dataset in memory."""

    config: DemoConfig
    contigs: dict[str, np.ndarray]  # name -> uint8 tokens
    genes: list[DemoGene]
    splicevardb: pd.DataFrame
    truth: pd.DataFrame

    def annotation_frame(self) -> pd.DataFrame:
        """Genes as metasplice.data.annotation's in-memory frame (1-based inclusive coordinates)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "name": [g.name for g in self.genes],
                "chrom": [g.chrom for g in self.genes],
                "strand": [g.strand for g in self.genes],
                "tx_start": np.array([g.tx_start + 1 for g in self.genes], dtype=np.int64),
                "tx_end": np.array([g.tx_end for g in self.genes], dtype=np.int64),
                "exon_starts": [tuple(int(s) + 1 for s in g.exons[:, 0]) for g in self.genes],
                "exon_ends": [tuple(int(e) for e in g.exons[:, 1]) for g in self.genes],
            }
        )


# ---------------------------------------------------------------------------------------------
# Genome


def _sample_iid(rng: np.random.Generator, probs: np.ndarray, n: int) -> np.ndarray:
    cum = np.cumsum(probs / probs.sum())
    return np.searchsorted(cum, rng.random(n), side="right").clip(0, 3).astype(np.uint8)


def _sample_pwm(rng: np.random.Generator, pwm: np.ndarray, sharpness: float = 1.0) -> np.ndarray:
    p = pwm**sharpness
    cum = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    return (rng.random(len(pwm))[:, None] > cum).sum(axis=1).clip(0, 3).astype(np.uint8)


def _deplete_cpg(rng: np.random.Generator, seq: np.ndarray, keep: float) -> np.ndarray:
    """Mutate all but ``keep`` of the CpGs (C->T or G->A, as deamination does)."""
    hits = np.flatnonzero((seq[:-1] == C) & (seq[1:] == G))
    hits = hits[rng.random(len(hits)) >= keep]
    to_t = rng.random(len(hits)) < 0.5
    seq[hits[to_t]] = T
    seq[hits[~to_t] + 1] = A
    return seq


def _background(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    probs = {"intron": BG_INTRON, "exon": BG_EXON, "intergenic": BG_INTERGENIC}[kind]
    return _deplete_cpg(rng, _sample_iid(rng, probs, n), CPG_KEEP[kind])


def _remove_ag(rng: np.random.Generator, seq: np.ndarray, lo: int, hi: int) -> None:
    """Replace the G of every AG within [lo, hi) by C or T (the AG-exclusion zone of acceptors)."""
    hits = np.flatnonzero((seq[lo : hi - 1] == A) & (seq[lo + 1 : hi] == G)) + lo + 1
    seq[hits] = np.where(rng.random(len(hits)) < 0.5, C, T).astype(np.uint8)


def _gene_layout(rng: np.random.Generator, cfg: DemoConfig) -> tuple[np.ndarray, np.ndarray]:
    """Exon and intron lengths (transcript order), aiming at cfg.gene_length."""
    best: tuple[np.ndarray, np.ndarray] | None = None
    best_miss = None
    lo_len, hi_len = cfg.gene_length
    for _ in range(200):
        n_exons = int(rng.integers(cfg.exons_per_gene[0], cfg.exons_per_gene[1] + 1))
        internal = rng.integers(cfg.exon_length[0], cfg.exon_length[1] + 1, n_exons - 2)
        exons = np.concatenate([[rng.integers(*FIRST_EXON)], internal, [rng.integers(*LAST_EXON)]])
        introns = rng.integers(cfg.intron_length[0], cfg.intron_length[1] + 1, n_exons - 1)
        total = int(exons.sum() + introns.sum())
        miss = max(lo_len - total, total - hi_len, 0)
        if best_miss is None or miss < best_miss:
            best, best_miss = (exons.astype(np.int64), introns.astype(np.int64)), miss
        if miss == 0:
            break
    assert best is not None
    return best


def _make_gene(rng: np.random.Generator, cfg: DemoConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A gene in transcript orientation: (tokens, exons [n, 2] half-open, branch-point adenines,
    ESE hexamer starts)."""
    exon_len, intron_len = _gene_layout(rng, cfg)
    parts, exons, enhancers, pos = [], [], [], 0
    for k, length in enumerate(exon_len):
        if k == 0:
            seg = _sample_iid(rng, BG_CPG_ISLAND, int(length))
        else:
            seg = _background(rng, "exon", int(length))
            n_ese = int(length) // 40
            at = rng.integers(0, int(length) - 6, n_ese)
            seg[at[:, None] + np.arange(6)] = ESE_HEXAMERS[rng.integers(0, len(ESE_HEXAMERS), n_ese)]
            enhancers.append(np.unique(at) + pos)
        exons.append((pos, pos + int(length)))
        parts.append(seg)
        pos += int(length)
        if k < len(intron_len):
            parts.append(_background(rng, "intron", int(intron_len[k])))
            pos += int(intron_len[k])
    seq = np.concatenate(parts)
    tx_exons = np.array(exons, dtype=np.int64)
    branch_points = []
    for k in range(len(tx_exons)):
        start, end = tx_exons[k]
        if k < len(tx_exons) - 1:  # donor at the exon's end
            seq[end - DONOR_EXON : end - DONOR_EXON + len(DONOR_PWM)] = _sample_pwm(rng, DONOR_PWM, cfg.site_sharpness)
        if k > 0:  # acceptor at the exon's start: branch point, AG-free spacer, PPT, YAG|G
            seq[start - ACCEPTOR_INTRON : start - ACCEPTOR_INTRON + len(ACCEPTOR_PWM)] = _sample_pwm(
                rng, ACCEPTOR_PWM, cfg.site_sharpness
            )
            bp = start - int(rng.integers(21, 35))  # branch-point adenine
            seq[bp - BRANCH_A : bp - BRANCH_A + len(BRANCH_PWM)] = _sample_pwm(rng, BRANCH_PWM)
            _remove_ag(rng, seq, bp + 1, start - 2)
            branch_points.append(bp)
    return seq, tx_exons, np.array(branch_points, dtype=np.int64), np.concatenate(enhancers).astype(np.int64)


def build_genome(cfg: DemoConfig, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], list[DemoGene]]:
    """Contigs (uint8 tokens) and their planted genes, both strands on every contig."""
    contigs: dict[str, np.ndarray] = {}
    genes: list[DemoGene] = []
    gap_lo, gap_hi = cfg.intergenic_length
    for c, chrom in enumerate(cfg.contigs):
        # alternate strands, starting with "-" on every other contig, so both are always present
        pattern = ["+", "-"] if c % 2 == 0 else ["-", "+"]
        strands = np.array(pattern * ((cfg.genes_per_contig + 1) // 2))[: cfg.genes_per_contig]
        strands = strands[rng.permutation(cfg.genes_per_contig)]
        parts = [_background(rng, "intergenic", int(rng.integers(gap_lo, gap_hi + 1)))]
        offset = len(parts[0])
        for strand in strands:
            seq, tx_exons, bps, enhancers = _make_gene(rng, cfg)
            block = np.concatenate(
                [_sample_iid(rng, BG_CPG_ISLAND, PROMOTER), seq, _background(rng, "intergenic", DOWNSTREAM)]
            )
            length = len(seq)
            if strand == "+":
                tx_start = offset + PROMOTER
                exons = tx_exons + tx_start
            else:
                block = reverse_complement(block)
                tx_start = offset + DOWNSTREAM
                exons = (tx_start + length - tx_exons[:, ::-1])[::-1]
            genes.append(
                DemoGene(
                    name=f"DEMO{len(genes) + 1:03d}",
                    chrom=chrom,
                    strand=str(strand),
                    tx_start=tx_start,
                    tx_end=tx_start + length,
                    exons=exons.astype(np.int64),
                    tx_exons=tx_exons,
                    branch_points=bps,
                    enhancers=enhancers,
                )
            )
            gap = _background(rng, "intergenic", int(rng.integers(gap_lo, gap_hi + 1)))
            parts += [block, gap]
            offset += len(block) + len(gap)
        contigs[chrom] = np.concatenate(parts)
    return contigs, genes


def transcript_sequence(contigs: Mapping[str, np.ndarray], gene: DemoGene, pad: int = 0) -> np.ndarray:
    """Tokens of a gene in transcript orientation with ``pad`` bases (N beyond the contig) each side."""
    contig = contigs[gene.chrom]
    idx = np.arange(gene.tx_start - pad, gene.tx_end + pad)
    inside = (idx >= 0) & (idx < len(contig))
    seq = np.full(len(idx), N, dtype=np.uint8)
    seq[inside] = contig[idx[inside]]
    return seq if gene.strand == "+" else reverse_complement(seq)


# ---------------------------------------------------------------------------------------------
# Site scoring


def motif_scores(windows: np.ndarray, log_odds: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """PWM log-odds (bits) of motifs starting at ``starts`` [n, k] in ``windows`` [n, L]; N or
    out-of-window bases score the floor."""
    n, length = windows.shape
    starts = np.asarray(starts, dtype=np.int64)
    total = np.zeros(starts.shape, dtype=np.float64)
    table = np.vstack([log_odds.T, np.full((1, len(log_odds)), FLOOR_BITS)])  # rows A C G T N
    rows = np.arange(n)[:, None] if starts.ndim == 2 else np.arange(n)
    for k in range(len(log_odds)):
        pos = starts + k
        ok = (pos >= 0) & (pos < length)
        base = np.where(ok, windows[rows, np.clip(pos, 0, length - 1)], N)
        total += table[base, k]
    return np.maximum(total, FLOOR_BITS)


# ---------------------------------------------------------------------------------------------
# Variants


@dataclass
class _Pools:
    """Candidate positions per mechanism: (gene index, transcript index) arrays."""

    gene: dict[str, np.ndarray]
    tx: dict[str, np.ndarray]
    extra: dict[str, np.ndarray]  # cryptic SNVs: the new base (transcript orientation)
    weight: dict[str, np.ndarray]


def _ranges(starts: Iterable[int], ends: Iterable[int]) -> np.ndarray:
    chunks = [np.arange(s, e) for s, e in zip(starts, ends) if e > s]
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)


def _candidate_pools(genes: list[DemoGene], tx_seqs: list[np.ndarray], pad: int) -> _Pools:
    gene_ix: dict[str, list[np.ndarray]] = {m: [] for m in MECHANISMS}
    tx_ix: dict[str, list[np.ndarray]] = {m: [] for m in MECHANISMS}
    extra: dict[str, list[np.ndarray]] = {m: [] for m in ("cryptic_donor", "cryptic_acceptor")}
    weight: dict[str, list[np.ndarray]] = {m: [] for m in ("cryptic_donor", "cryptic_acceptor")}

    def add(mech: str, g: int, idx: np.ndarray) -> None:
        idx = np.unique(np.asarray(idx, dtype=np.int64))
        gene_ix[mech].append(np.full(len(idx), g, dtype=np.int64))
        tx_ix[mech].append(idx)

    for g, gene in enumerate(genes):
        don, acc, bps = gene.donors, gene.acceptors, gene.branch_points
        ex = gene.tx_exons
        introns = np.stack([ex[:-1, 1], ex[1:, 0]], axis=1)
        add("donor_canonical", g, np.concatenate([don, don + 1]))
        add("acceptor_canonical", g, np.concatenate([acc - 2, acc - 1]))
        add("donor_consensus", g, (don[:, None] + np.array([-3, -2, -1, 2, 3, 4, 5])).ravel())
        add("acceptor_region", g, (acc[:, None] + np.r_[np.arange(-20, -2), 0, 1, 2]).ravel())
        add("branch_point", g, (bps[:, None] + np.array([-1, 0, 1])).ravel())
        add("exonic_enhancer", g, (gene.enhancers[:, None] + np.arange(6)).ravel())
        inner_lo = np.where(np.arange(len(ex)) == 0, ex[:, 0], ex[:, 0] + 4)
        inner_hi = np.where(np.arange(len(ex)) == len(ex) - 1, ex[:, 1], ex[:, 1] - 4)
        add("exonic", g, _ranges(inner_lo, inner_hi))
        add(
            "intronic",
            g,
            np.concatenate(
                [_ranges(introns[:, 0] + 6, introns[:, 0] + 101), _ranges(introns[:, 1] - 100, introns[:, 1] - 20)]
            ),
        )
        add("deep_intronic", g, _ranges(introns[:, 0] + 101, introns[:, 1] - 100))
        add("deletion_canonical", g, np.concatenate([don, don + 1, acc - 2, acc - 1]))
        add("indel_ppt", g, (acc[:, None] + np.arange(-20, -4)).ravel())
        add("indel_exonic", g, _ranges(ex[:, 0] + 12, ex[:, 1] - 12))
        add("indel_intronic", g, _ranges(introns[:, 0] + 30, introns[:, 1] - 40))

        # cryptic sites: SNVs completing a GT / AG in exons or introns within 300 nt of a boundary,
        # away from the planted sites
        seq = tx_seqs[g]  # padded by ``pad``
        near = np.zeros(gene.tx_end - gene.tx_start, dtype=bool)
        near[_ranges(ex[:, 0], ex[:, 1])] = True
        near[_ranges(np.maximum(introns[:, 0], ex[:-1, 1]), introns[:, 0] + 300)] = True
        near[_ranges(introns[:, 1] - 300, introns[:, 1])] = True
        near[0:5] = near[-5:] = False
        keepout = np.concatenate(
            [(don[:, None] + np.arange(-4, 8)).ravel(), (acc[:, None] + np.arange(-22, 5)).ravel()]
        )
        near[keepout[(keepout >= 0) & (keepout < len(near))]] = False
        for mech, first, second, lo, motif_off in (
            ("cryptic_donor", G, T, DONOR_LO, DONOR_EXON),
            ("cryptic_acceptor", A, G, ACCEPTOR_LO, ACCEPTOR_INTRON - 2),
        ):
            j = np.flatnonzero(near[:-1])  # dinucleotide at j, j + 1 (transcript index)
            b0, b1 = seq[pad + j], seq[pad + j + 1]
            make_first = (b0 != first) & (b1 == second)
            make_second = (b0 == first) & (b1 != second)
            snv_at = np.concatenate([j[make_first], j[make_second] + 1])
            dinuc = np.concatenate([j[make_first], j[make_second]])
            new_base = np.concatenate([np.full(make_first.sum(), first), np.full(make_second.sum(), second)])
            order = np.argsort(snv_at, kind="stable")
            snv_at, dinuc, new_base = snv_at[order], dinuc[order], new_base[order]
            # score the new motif in the mutated sequence
            width = len(lo)
            win = seq[pad + dinuc[:, None] - motif_off + np.arange(width)]
            win[np.arange(len(win)), snv_at - dinuc + motif_off] = new_base
            score = motif_scores(win, lo, np.zeros(len(win), dtype=np.int64))
            gene_ix[mech].append(np.full(len(snv_at), g, dtype=np.int64))
            tx_ix[mech].append(snv_at)
            extra[mech].append(new_base.astype(np.uint8))
            weight[mech].append(np.exp(0.8 * np.clip(score, -5.0, 13.0)))  # towards strong new sites
    cat = lambda d: {k: np.concatenate(v) if v else np.empty(0, dtype=np.int64) for k, v in d.items()}  # noqa: E731
    return _Pools(cat(gene_ix), cat(tx_ix), cat(extra), cat(weight))


def _apportion(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Integer counts per key summing to ``total`` (largest remainders)."""
    keys = list(shares)
    w = np.array([shares[k] for k in keys], dtype=np.float64)
    raw = total * w / w.sum()
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]] += 1
    return dict(zip(keys, counts.tolist()))


def _indel_lengths(rng: np.random.Generator, n: int) -> np.ndarray:
    k = np.arange(1, 11)
    p = 1.0 / k
    return rng.choice(k, size=n, p=p / p.sum())


def _draw_variants(
    rng: np.random.Generator,
    cfg: DemoConfig,
    genes: list[DemoGene],
    contigs: dict[str, np.ndarray],
    pools: _Pools,
    n: int,
) -> pd.DataFrame:
    """Sample ``n`` variants by mechanism: genome-oriented VCF alleles plus gene and mechanism."""
    import pandas as pd

    counts = _apportion(n, MECHANISMS)
    strand = np.array([gg.strand == "+" for gg in genes])
    tx_start = np.array([gg.tx_start for gg in genes], dtype=np.int64)
    tx_end = np.array([gg.tx_end for gg in genes], dtype=np.int64)
    records = []
    for mech, count in counts.items():
        if count == 0:
            continue
        pool_g, pool_t = pools.gene[mech], pools.tx[mech]
        if len(pool_g) == 0:
            raise ValueError(f"demo: no candidate positions for mechanism {mech!r}; make genes larger")
        snv = not mech.startswith(("deletion", "indel"))
        alt_step = np.zeros(count, dtype=np.int64)
        if mech in pools.weight:  # each candidate is one SNV: draw distinct ones while there are enough
            w = pools.weight[mech]
            pick = rng.choice(len(pool_g), size=count, replace=count > len(pool_g), p=w / w.sum())
        elif snv:  # (position, alternative base) pairs, distinct while there are enough
            pair = rng.choice(3 * len(pool_g), size=count, replace=count > 3 * len(pool_g))
            pick, alt_step = pair // 3, pair % 3 + 1
        else:
            pick = rng.integers(0, len(pool_g), count)
        g, t = pool_g[pick], pool_t[pick]
        plus = strand[g]
        if not snv:
            length = _indel_lengths(rng, count)
            is_del = np.ones(count, dtype=bool) if mech == "deletion_canonical" else rng.random(count) < 0.55
            # deletion covering transcript indices [s, s + length) that include t
            s = t - (rng.random(count) * length).astype(np.int64)
            first_g = np.where(plus, tx_start[g] + s, tx_end[g] - s - length)  # genome first deleted base
            # insertion after genome base t (plus) / before it in transcript terms (minus): anchor t
            anchor = np.where(is_del, first_g - 1, np.where(plus, tx_start[g] + t, tx_end[g] - 1 - t))
            ref_len = np.where(is_del, length + 1, 1)
            ins_tx = [
                _sample_iid(rng, np.array([0.4, 0.1, 0.4, 0.1]) if mech == "indel_ppt" else BG_INTRON, int(k))
                for k in length
            ]
            for i in range(count):
                contig = contigs[genes[g[i]].chrom]
                ref = contig[anchor[i] : anchor[i] + ref_len[i]]
                if is_del[i]:
                    alt = ref[:1]
                else:
                    ins = ins_tx[i] if plus[i] else reverse_complement(ins_tx[i])
                    alt = np.concatenate([ref[:1], ins])
                records.append((g[i], anchor[i], decode(ref), decode(alt), mech))
        else:
            pos = np.where(plus, tx_start[g] + t, tx_end[g] - 1 - t)
            ref = np.array([contigs[genes[gi].chrom][p] for gi, p in zip(g, pos)], dtype=np.uint8)
            if mech in pools.extra:
                new = pools.extra[mech][pick]
                alt = np.where(plus, new, 3 - new).astype(np.uint8)
            else:
                alt = ((ref + alt_step) % 4).astype(np.uint8)
            letters = np.array(list(BASES))
            records.extend(zip(g, pos, letters[ref], letters[alt], [mech] * count))
    table = pd.DataFrame.from_records(records, columns=["gene_index", "pos0", "ref", "alt", "mechanism"])
    table["gene_index"] = table["gene_index"].astype(np.int64)
    table["pos0"] = table["pos0"].astype(np.int64)
    return table


def _transcript_windows(
    table: pd.DataFrame, genes: list[DemoGene], contigs: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ref and alt windows in transcript orientation with the variant's first base at WINDOW_FLANK.

    Returns (ref_windows, alt_windows, ref_len, alt_len, tx index of the first base)."""
    F, width = WINDOW_FLANK, 2 * WINDOW_FLANK + MAX_ALLELE
    n = len(table)
    g = table["gene_index"].to_numpy()
    p0 = table["pos0"].to_numpy()
    lr = table["ref"].str.len().to_numpy()
    la = table["alt"].str.len().to_numpy()
    plus = np.array([genes[i].strand == "+" for i in g])
    wide = F + MAX_ALLELE
    left = np.empty((n, wide), dtype=np.uint8)  # genome bases before the variant
    right = np.empty((n, wide), dtype=np.uint8)  # genome bases after the REF allele
    chroms = np.array([genes[i].chrom for i in g])
    for chrom in np.unique(chroms):
        sel = np.flatnonzero(chroms == chrom)
        contig = contigs[chrom]
        last = len(contig) - 1
        left[sel] = contig[np.clip(p0[sel, None] - wide + np.arange(wide), 0, last)]
        right[sel] = contig[np.clip(p0[sel, None] + lr[sel, None] + np.arange(wide), 0, last)]

    def padded(col: str) -> np.ndarray:
        raw = table[col].str.ljust(MAX_ALLELE, "N").str.slice(0, MAX_ALLELE)
        return encode("".join(raw)).reshape(n, MAX_ALLELE)

    def assemble(allele: np.ndarray, length: np.ndarray) -> np.ndarray:
        # transcript orientation: the minus strand swaps and reverse-complements flanks and allele
        al = allele.copy()
        for k in np.unique(length[~plus]):
            sel = np.flatnonzero(~plus & (length == k))
            al[sel, :k] = reverse_complement(allele[sel, :k])
        lf = np.where(plus[:, None], left[:, MAX_ALLELE:], reverse_complement(right)[:, MAX_ALLELE:])
        rt = np.where(plus[:, None], right, reverse_complement(left))
        j = np.arange(width - F)[None, :]
        from_allele = al[:, np.clip(j[0], 0, MAX_ALLELE - 1)]
        from_right = rt[np.arange(n)[:, None], np.clip(j - length[:, None], 0, wide - 1)]
        body = np.where(j < length[:, None], from_allele, from_right)
        return np.concatenate([lf, body], axis=1).astype(np.uint8)

    ref_al, alt_al = padded("ref"), padded("alt")
    ref_w = assemble(ref_al, lr)
    alt_w = assemble(alt_al, la)
    tx_first = np.where(
        plus,
        p0 - np.array([genes[i].tx_start for i in g]),
        np.array([genes[i].tx_end for i in g]) - p0 - lr,
    )
    return ref_w, alt_w, lr, la, tx_first


def score_variants(table: pd.DataFrame, genes: list[DemoGene], contigs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Sequence-rule scores per variant: planted-site loss, cryptic-site gain, branch point, effect.

    Columns added: donor_loss, acceptor_loss (bits lost at the planted site the variant touches),
    site_left (bits left at that site), gain_bits (best new site overlapping the variant), gain_kind,
    branch_point, enhancer (bools), effect (0..1) and rule_class."""
    F = WINDOW_FLANK
    ref_w, alt_w, lr, la, tx_first = _transcript_windows(table, genes, contigs)
    n = len(table)
    g = table["gene_index"].to_numpy()
    delta = la - lr
    out = table.copy()
    effect = np.zeros(n)
    left_bits = np.full(n, np.nan)
    exonic = _is_exonic(genes, g, tx_first)
    nearest_of: dict[str, np.ndarray] = {}
    gain_of: dict[str, np.ndarray] = {}
    bp_hit = np.zeros(n, dtype=bool)
    for kind, lo, before in (("donor", DONOR_LO, DONOR_EXON), ("acceptor", ACCEPTOR_LO, ACCEPTOR_INTRON)):
        width = len(lo)
        # nearest planted site of this kind (transcript index of the boundary)
        sites = [gg.donors if kind == "donor" else gg.acceptors for gg in genes]
        nearest = np.full(n, -(10**9), dtype=np.int64)
        for gi in np.unique(g):
            sel = np.flatnonzero(g == gi)
            s = np.sort(sites[gi])
            if len(s) == 0:
                continue
            k = np.clip(np.searchsorted(s, tx_first[sel]), 1, len(s)) - 1
            k2 = np.minimum(k + 1, len(s) - 1)
            nearest[sel] = np.where(np.abs(s[k2] - tx_first[sel]) < np.abs(s[k] - tx_first[sel]), s[k2], s[k])
        nearest_of[kind] = nearest
        r = nearest - tx_first + F  # boundary in window coordinates (ref)
        overlaps = (r - before < F + lr) & (r - before + width > F)
        ref_site = motif_scores(ref_w, lo, np.where(overlaps, r - before, 0))
        r_alt = np.where(r >= F + lr, r + delta, r)
        straddle = (r > F) & (r < F + lr)
        alt_site = np.maximum(
            motif_scores(alt_w, lo, np.where(overlaps, r_alt - before, 0)),
            np.where(straddle, motif_scores(alt_w, lo, np.where(overlaps, r + delta - before, 0)), FLOOR_BITS),
        )
        loss = np.where(overlaps, ref_site - alt_site, 0.0)
        fail_at, fail_width, loss_at, loss_width = LOSS_RULES[kind]
        e_loss = np.maximum(
            np.clip((fail_at - alt_site) / fail_width, 0, 1), np.clip((loss - loss_at) / loss_width, 0, 1)
        )
        e_loss = np.where(overlaps & (loss >= MIN_LOSS), e_loss, 0.0)
        e_loss = np.where(overlaps & (alt_site <= FLOOR_BITS + 1e-9), 1.0, e_loss)  # GT / AG gone
        out[f"{kind}_loss"] = np.round(loss, 3)
        left_bits = np.where(overlaps, alt_site, left_bits)
        effect = np.maximum(effect, e_loss)
        # cryptic gain: motifs overlapping the variant, except at the planted site
        offsets = np.arange(F - width + 1, F + MAX_ALLELE)[None, :].repeat(n, axis=0)
        alt_scores = motif_scores(alt_w, lo, offsets)
        ref_scores = motif_scores(ref_w, lo, offsets)
        alt_ok = (offsets < F + la[:, None]) & (offsets + width > F) & (offsets != (r_alt - before)[:, None])
        alt_ok &= ~(straddle[:, None] & (offsets == (r + delta - before)[:, None]))
        ref_ok = (offsets < F + lr[:, None]) & (offsets + width > F) & (offsets != (r - before)[:, None])
        new = np.where(alt_ok, alt_scores, FLOOR_BITS).max(axis=1)
        old = np.where(ref_ok, ref_scores, FLOOR_BITS).max(axis=1)
        gain_of[kind] = np.where(new - old >= GAIN_MIN_DELTA, new, FLOOR_BITS)
    dist = np.minimum(np.abs(nearest_of["donor"] - tx_first), np.abs(nearest_of["acceptor"] - tx_first))
    donor_factor = np.where(
        exonic,
        DONOR_GAIN_FACTOR["exonic"],
        np.where(dist <= GAIN_NEAR, DONOR_GAIN_FACTOR["near_intronic"], DONOR_GAIN_FACTOR["intronic"]),
    )
    before_acceptor = nearest_of["acceptor"] - tx_first
    acceptor_factor = np.where(
        exonic | ((before_acceptor > 0) & (before_acceptor <= 60)),
        ACCEPTOR_GAIN_FACTOR["exonic_or_ag_exclusion"],
        ACCEPTOR_GAIN_FACTOR["elsewhere"],
    )
    e_gain = {
        kind: np.clip((gain_of[kind] - GAIN_OFFSET) / GAIN_SCALE, 0, 1) * factor
        for kind, factor in (("donor", donor_factor), ("acceptor", acceptor_factor))
    }
    effect = np.maximum(effect, np.maximum(e_gain["donor"], e_gain["acceptor"]))
    best_gain = np.maximum(gain_of["donor"], gain_of["acceptor"])
    gain_kind = np.where(
        best_gain > FLOOR_BITS, np.where(gain_of["donor"] >= gain_of["acceptor"], "donor", "acceptor"), ""
    ).astype(object)
    # branch-point adenine substituted or deleted (insertions leave it in place)
    is_del = (la == 1) & (lr > 1)
    plus = np.array([genes[i].strand == "+" for i in g])
    hit_lo = np.where(is_del & plus, tx_first + 1, tx_first)  # the anchor base is kept
    hit_hi = np.where(is_del & ~plus, tx_first + lr - 1, tx_first + lr)
    hit_hi = np.where((la > 1) & (lr == 1), hit_lo, hit_hi)  # insertion: nothing removed
    for gi in np.unique(g):
        sel = np.flatnonzero(g == gi)
        bps = genes[gi].branch_points
        inside = (bps[None, :] >= hit_lo[sel, None]) & (bps[None, :] < hit_hi[sel, None])
        bp_hit[sel] = inside.any(axis=1)
    effect = np.maximum(effect, np.where(bp_hit, BRANCH_EFFECT, 0.0))
    # exonic splicing enhancer hexamers destroyed (exonic variants only)
    ese_codes = ESE_HEXAMERS.astype(np.int64) @ (4 ** np.arange(5, -1, -1))
    offsets = np.arange(F - 5, F + MAX_ALLELE)

    def ese_count(windows: np.ndarray, length: np.ndarray) -> np.ndarray:
        frames = windows[:, offsets[:, None] + np.arange(6)].astype(np.int64)  # (n, frames, 6)
        valid = (frames < 4).all(axis=2) & (offsets[None, :] < F + length[:, None])
        codes = frames @ (4 ** np.arange(5, -1, -1))
        return (np.isin(codes, ese_codes) & valid).sum(axis=1)

    ese_hit = exonic & (ese_count(alt_w, la) < ese_count(ref_w, lr))
    effect = np.maximum(effect, np.where(ese_hit, ENHANCER_EFFECT, 0.0))
    out["site_left"] = np.round(left_bits, 3)
    out["gain_bits"] = np.round(np.where(gain_kind != "", best_gain, np.nan), 3)
    out["gain_kind"] = gain_kind
    out["branch_point"] = bp_hit
    out["enhancer"] = ese_hit
    out["effect"] = np.round(effect, 4)
    out["rule_class"] = np.where(
        effect >= SA_EFFECT, "Splice-altering", np.where(effect >= LF_EFFECT, "Low-frequency", "Normal")
    )
    out["tx_first"] = tx_first
    return out


# ---------------------------------------------------------------------------------------------
# Labels and SpliceVarDB columns


def assign_classes(rng: np.random.Generator, scored: pd.DataFrame, cfg: DemoConfig) -> tuple[np.ndarray, np.ndarray]:
    """Written classification per row (Conflicting rows, label noise, LF spellings) and a noise flag."""
    n = len(scored)
    rule = scored["rule_class"].to_numpy(dtype=object)
    effect = scored["effect"].to_numpy()
    cls = rule.copy()
    n_conf = int(round(cfg.conflicting_fraction * n))
    mid = (effect >= 0.3) & (effect < 0.7)
    w = np.where(mid, 10.0, 1.0)
    conflicting = np.sort(rng.choice(n, size=n_conf, replace=False, p=w / w.sum())) if n_conf else np.empty(0, int)
    cls[conflicting] = "Conflicting"
    rest = np.setdiff1d(np.arange(n), conflicting)
    n_noise = min(int(round(cfg.label_noise * n)), len(rest))
    noisy = np.sort(rng.choice(rest, size=n_noise, replace=False)) if n_noise else np.empty(0, int)
    three = np.array(CLASSES[:3], dtype=object)
    current = np.array([CLASSES.index(c) for c in cls[noisy]], dtype=np.int64)
    cls[noisy] = three[(current + rng.integers(1, 3, len(noisy))) % 3]
    noise = np.zeros(n, dtype=bool)
    noise[noisy] = True
    lf = np.flatnonzero(cls == "Low-frequency")
    cls[lf[rng.random(len(lf)) < cfg.lf_long_name]] = LF_LONG
    return cls, noise


def _c_position(gene: DemoGene, idx: np.ndarray) -> list[str]:
    """HGVS c. positions (transcript numbered from its first base, approximately as a cDNA)."""
    ex = gene.tx_exons
    ex_len = ex[:, 1] - ex[:, 0]
    cum = np.concatenate([[0], np.cumsum(ex_len)])
    tx_len = gene.tx_end - gene.tx_start
    out = []
    for i in np.asarray(idx, dtype=np.int64).tolist():
        if i < 0:
            out.append(f"-{-i}")
            continue
        if i >= tx_len:
            out.append(f"*{i - tx_len + 1}")
            continue
        k = int(np.searchsorted(ex[:, 0], i, side="right")) - 1
        if i < ex[k, 1]:
            out.append(str(cum[k] + i - ex[k, 0] + 1))
        else:
            up, down = i - ex[k, 1] + 1, ex[k + 1, 0] - i
            out.append(f"{cum[k + 1]}+{up}" if up <= down else f"{cum[k + 1] + 1}-{down}")
    return out


def _hgvs(table: pd.DataFrame, genes: list[DemoGene]) -> list[str]:
    """Approximate HGVS c. descriptions in transcript orientation."""
    out = [""] * len(table)
    for gi, rows in table.groupby("gene_index").indices.items():
        gene = genes[int(gi)]
        sub = table.iloc[rows]
        first = sub["tx_first"].to_numpy()
        lr = sub["ref"].str.len().to_numpy()
        la = sub["alt"].str.len().to_numpy()
        plus = gene.strand == "+"
        ref_tx = sub["ref"].tolist() if plus else [decode(reverse_complement(encode(s))) for s in sub["ref"]]
        alt_tx = sub["alt"].tolist() if plus else [decode(reverse_complement(encode(s))) for s in sub["alt"]]
        is_del, is_ins = (lr > 1) & (la == 1), (la > 1) & (lr == 1)
        del_lo = np.where(plus, first + 1, first)
        del_hi = del_lo + lr - 2
        ins_lo = np.where(plus, first, first - 1)
        p1 = _c_position(gene, np.where(is_del, del_lo, np.where(is_ins, ins_lo, first)))
        p2 = _c_position(gene, np.where(is_del, del_hi, ins_lo + 1))
        name = f"NM_{gene.name}.1:c."
        for j, r in enumerate(rows):
            if is_del[j]:
                out[r] = name + (f"{p1[j]}del" if lr[j] == 2 else f"{p1[j]}_{p2[j]}del")
            elif is_ins[j]:
                inserted = alt_tx[j][1:] if plus else alt_tx[j][:-1]
                out[r] = name + f"{p1[j]}_{p2[j]}ins{inserted}"
            else:
                out[r] = name + f"{p1[j]}{ref_tx[j]}>{alt_tx[j]}"
    return out


def _is_exonic(genes: list[DemoGene], gene_index: np.ndarray, tx_index: np.ndarray) -> np.ndarray:
    out = np.zeros(len(gene_index), dtype=bool)
    for gi in np.unique(gene_index):
        sel = np.flatnonzero(gene_index == gi)
        ex = genes[gi].tx_exons
        t = tx_index[sel][:, None]
        out[sel] = ((ex[None, :, 0] <= t) & (t < ex[None, :, 1])).any(axis=1)
    return out


def _coordinate(chrom: str, pos1: int, ref: str, alt: str) -> str:
    c = chrom[3:] if chrom.startswith("chr") else chrom
    return f"{c}-{pos1}-{ref}-{alt}"


def _splicevardb_rows(
    rng: np.random.Generator, scored: pd.DataFrame, classes: np.ndarray, genes: list[DemoGene]
) -> pd.DataFrame:
    """The SpliceVarDB columns (without variant_id) for scored variants."""
    import pandas as pd

    n = len(scored)
    chroms = [genes[i].chrom for i in scored["gene_index"]]
    pos1 = scored["pos0"].to_numpy() + 1
    ref, alt = scored["ref"].tolist(), scored["alt"].tolist()
    base_class = np.array(["Low-frequency" if c == LF_LONG else c for c in classes], dtype=object)
    method = np.empty(n, dtype=object)
    for cls, (names, probs) in METHODS.items():
        sel = np.flatnonzero(base_class == cls)
        method[sel] = np.array(names, dtype=object)[rng.choice(len(names), size=len(sel), p=np.array(probs))]
    exonic = _is_exonic(genes, scored["gene_index"].to_numpy(), scored["tx_first"].to_numpy())
    return pd.DataFrame(
        {
            "hg19": [_coordinate(c, p + HG19_SHIFT, r, a) for c, p, r, a in zip(chroms, pos1, ref, alt)],
            "hg38": [_coordinate(c, p, r, a) for c, p, r, a in zip(chroms, pos1, ref, alt)],
            "gene": [genes[i].name for i in scored["gene_index"]],
            "hgvs": _hgvs(scored, genes),
            "method": method,
            "classification": classes,
            "location": np.where(exonic, "Exonic", "Intronic"),
            "doi": np.array(DOIS, dtype=object)[rng.integers(0, len(DOIS), n)],
        }
    )


def _bad_rows(
    rng: np.random.Generator,
    genes: list[DemoGene],
    contigs: dict[str, np.ndarray],
    good: pd.DataFrame,
    good_truth: pd.DataFrame,
) -> pd.DataFrame:
    """The planted bad rows (module docstring), in BAD_ROW_KINDS order."""
    import pandas as pd

    letters = np.array(list(BASES))
    names = list(contigs)
    late = next((c for c in names if c.removeprefix("chr") == "21"), names[-1]).removeprefix("chr")
    gene = genes[0]
    contig = contigs[gene.chrom]
    p_mis = int(gene.exons[len(gene.exons) // 2, 0]) + 20  # inside a middle exon
    b = int(contig[p_mis])
    gene2 = genes[-1]
    p_iupac = int(gene2.exons[len(gene2.exons) // 2, 0]) + 15
    b2 = int(contigs[gene2.chrom][p_iupac])
    inter_chrom = names[1 % len(names)]
    p_inter = 1000 + int(rng.integers(0, 1000))
    b3 = int(contigs[inter_chrom][p_inter])
    sa = np.flatnonzero((good["classification"] == "Splice-altering").to_numpy() & ~good_truth["noise"].to_numpy())
    normal = np.flatnonzero((good["classification"] == "Normal").to_numpy() & ~good_truth["noise"].to_numpy())
    dup_conflict = good.iloc[int(sa[rng.integers(0, len(sa))])].copy()
    dup_exact = good.iloc[int(normal[rng.integers(0, len(normal))])].copy()
    dup_conflict["classification"] = "Normal"
    dup_conflict["method"] = "Minigene"
    dup_exact["doi"] = DOIS[-1]
    template = {"hg19": "", "gene": gene.name, "hgvs": "", "method": "RNA-Seq", "location": "Exonic", "doi": DOIS[0]}
    rows = [
        {
            **template,
            "hg38": _coordinate(gene.chrom, p_mis + 1, letters[(b + 1) % 4], letters[(b + 2) % 4]),
            "classification": "Splice-altering",
        },
        {**template, "hg38": f"99-{p_mis + 1}-A-G", "gene": "", "classification": "Normal"},
        {**template, "hg38": f"{late}-abc-A-G", "gene": "", "classification": "Normal"},
        {**template, "hg38": f"{late}-{p_mis + 1}-A", "gene": "", "classification": "Splice-altering"},
        {
            **template,
            "hg38": _coordinate(gene2.chrom, p_iupac + 1, letters[b2], "R"),
            "gene": gene2.name,
            "classification": "Low-frequency",
        },
        {
            **template,
            "hg38": _coordinate(inter_chrom, p_inter + 1, letters[b3], letters[(b3 + 1) % 4]),
            "gene": "",
            "location": "Intronic",
            "classification": "Normal",
        },
        dup_conflict.to_dict(),
        dup_exact.to_dict(),
    ]
    return pd.DataFrame(rows, columns=list(SPLICEVARDB_COLUMNS[1:]))


# ---------------------------------------------------------------------------------------------
# Whole dataset


def generate_demo(cfg: DemoConfig = DemoConfig()) -> DemoData:
    """Generate the whole demo dataset in memory (deterministic from ``cfg``)."""
    import pandas as pd

    rng = np.random.default_rng(cfg.seed)
    contigs, genes = build_genome(cfg, rng)
    pad = 40
    tx_seqs = [transcript_sequence(contigs, gg, pad=pad) for gg in genes]
    pools = _candidate_pools(genes, tx_seqs, pad)
    drawn = _draw_variants(rng, cfg, genes, contigs, pools, int(np.ceil(cfg.n_variants * 1.1)) + 10)
    # distinct after left-alignment (indels are written as drawn, not necessarily left-aligned)
    from metasplice.data.variants import left_align

    aligned = [
        left_align(contigs[genes[g].chrom], p + 1, r, a) if len(r) != len(a) else (p + 1, r, a)
        for g, p, r, a in zip(drawn["gene_index"], drawn["pos0"], drawn["ref"], drawn["alt"])
    ]
    drawn["normalised"] = [_coordinate(genes[g].chrom, p, r, a) for g, (p, r, a) in zip(drawn["gene_index"], aligned)]
    drawn = drawn.drop_duplicates("normalised", keep="first")
    if len(drawn) < cfg.n_variants:
        raise ValueError(
            f"demo: only {len(drawn)} distinct variants could be drawn for n_variants={cfg.n_variants}; "
            "raise genes_per_contig (DemoConfig.benchmark() uses 40 for 50,000 variants)"
        )
    keep = np.sort(rng.choice(len(drawn), size=cfg.n_variants, replace=False))
    drawn = drawn.iloc[keep].reset_index(drop=True)
    scored = score_variants(drawn, genes, contigs)
    classes, noise = assign_classes(rng, scored, cfg)
    good = _splicevardb_rows(rng, scored, classes, genes)
    truth = pd.DataFrame(
        {
            "hg38": good["hg38"],
            "hg38_left_aligned": scored["normalised"],
            "chrom": [genes[i].chrom for i in scored["gene_index"]],
            "pos": scored["pos0"] + 1,
            "ref": scored["ref"],
            "alt": scored["alt"],
            "gene": good["gene"],
            "strand": [genes[i].strand for i in scored["gene_index"]],
            "mechanism": scored["mechanism"],
            "location": good["location"],
            "donor_loss": scored["donor_loss"],
            "acceptor_loss": scored["acceptor_loss"],
            "site_left": scored["site_left"],
            "gain_bits": scored["gain_bits"],
            "gain_kind": scored["gain_kind"],
            "branch_point": scored["branch_point"],
            "enhancer": scored["enhancer"],
            "effect": scored["effect"],
            "rule_class": scored["rule_class"],
            "classification": good["classification"],
            "noise": noise,
            "bad": "",
        }
    )
    if cfg.bad_rows:
        bad = _bad_rows(rng, genes, contigs, good, truth)
        bad_truth = pd.DataFrame({"hg38": bad["hg38"], "gene": bad["gene"], "classification": bad["classification"]})
        bad_truth["hg38_left_aligned"] = bad["hg38"].map(dict(zip(truth["hg38"], truth["hg38_left_aligned"])))
        bad_truth["mechanism"] = "bad_row"
        bad_truth["bad"] = list(BAD_ROW_KINDS)
        for col in ("donor_loss", "acceptor_loss", "site_left", "gain_bits", "effect"):
            bad_truth[col] = np.nan
        bad_truth["noise"] = False
        bad_truth["branch_point"] = False
        bad_truth["enhancer"] = False
        good = pd.concat([good, bad], ignore_index=True)
        truth = pd.concat([truth, bad_truth[[c for c in truth.columns if c in bad_truth.columns]]], ignore_index=True)
    order = rng.permutation(len(good))
    good = good.iloc[order].reset_index(drop=True)
    truth = truth.iloc[order].reset_index(drop=True)
    ids = np.arange(1, len(good) + 1).astype(str)
    good.insert(0, "variant_id", ids)
    truth.insert(0, "variant_id", ids)
    for col in ("hg38_left_aligned", "chrom", "ref", "alt", "strand", "gain_kind", "rule_class", "location"):
        truth[col] = truth[col].fillna("")
    truth["pos"] = truth["pos"].astype("Int64")
    return DemoData(config=cfg, contigs=contigs, genes=genes, splicevardb=good[list(SPLICEVARDB_COLUMNS)], truth=truth)


def write_fasta(contigs: Mapping[str, np.ndarray], path: str | Path, width: int = 60) -> None:
    """Write tokens as a FASTA with ``width``-column lines (atomically)."""
    from metasplice.io import atomic_output

    with atomic_output(path) as tmp, open(tmp, "wb") as out:
        for name, tokens in contigs.items():
            out.write(f">{name}\n".encode())
            raw = np.frombuffer(decode(tokens).encode(), dtype=np.uint8)
            n_full = len(raw) // width
            body = np.concatenate(
                [raw[: n_full * width].reshape(n_full, width), np.full((n_full, 1), ord("\n"), dtype=np.uint8)], axis=1
            )
            out.write(body.tobytes())
            tail = raw[n_full * width :]
            if len(tail):
                out.write(tail.tobytes() + b"\n")


def make_demo(out_dir: str | Path, cfg: DemoConfig = DemoConfig()) -> dict[str, Path]:
    """Generate the demo dataset and write it under ``out_dir``; returns the paths by key
    (genome, fai, annotation, splicevardb, truth)."""
    import pysam

    from metasplice.data.annotation import write_annotation
    from metasplice.io import atomic_output, write_tsv

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: out_dir / name for key, name in OUTPUT_FILES.items()}
    data = generate_demo(cfg)
    write_fasta(data.contigs, paths["genome"])
    with atomic_output(paths["fai"]) as tmp:
        staged = tmp.with_name(tmp.name + ".fa")
        os.link(paths["genome"], staged)
        try:
            pysam.faidx(str(staged))
            os.replace(f"{staged}.fai", tmp)
        finally:
            staged.unlink()
    write_annotation(data.annotation_frame(), paths["annotation"])
    write_tsv(data.splicevardb, paths["splicevardb"])
    write_tsv(data.truth, paths["truth"])
    counts = data.truth.loc[data.truth["bad"] == "", "classification"].value_counts()
    logger.info(
        "demo dataset (seed %d): %d contigs, %d genes, %d + %d bad rows in %.1f s; classes %s",
        cfg.seed,
        len(data.contigs),
        len(data.genes),
        cfg.n_variants,
        int((data.truth["bad"] != "").sum()),
        time.perf_counter() - started,
        {str(k): int(v) for k, v in counts.items()},
    )
    return paths
