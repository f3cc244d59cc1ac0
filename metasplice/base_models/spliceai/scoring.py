"""SpliceAI delta scores exactly as the official ``spliceai`` 1.3.1 CLI computes them.

For one allele of a variant at POS inside one annotated transcript (gene), the CLI takes the window
POS - (F + D) .. POS + (F + D) (F = 5000 for SpliceAI-10k, i.e. half the model's context; D the
``-D`` distance), sets every base outside the transcript to N, builds the alt window by replacing
REF with ALT, reverse-complements both for a minus-strand gene, averages the five networks'
softmax outputs, aligns indels (deleted positions become rows of zeros; an insertion's anchor and
inserted rows collapse to their channel-wise maximum) and takes, over the 2D + 1 positions,
DS_AG = max(alt - ref) and DS_AL = max(ref - alt) on the acceptor channel, DS_DG / DS_DL on the donor
channel, each with the offset of its first maximum (DP, genome orientation). ``-M 1`` zeroes a gain
at, and a loss away from, the single nearest annotated exon boundary. Scores are never clipped at 0.
The full description is in the project's notes on the CLI; this module reproduces it and its
checks in the same order.

Deliberate differences from the official CLI (the scores of every scored allele are identical):

* Every skipped record or allele gets a reason (:data:`SkipReason` texts) instead of a silent skip.
* A contig missing from the FASTA is reported and skipped; the official CLI crashes (KeyError).
* Letters other than A, C, G, T, N in an ALT allele, or inside the transcript part of the model's
  input window, skip that allele with a reason; the official CLI maps them to arbitrary bases.
* A record within F + D of a contig start is reported as "near chromosome start"; the official
  CLI skips it too but calls it a REF mismatch (its FASTA reader returns an empty window).
* Chromosome names are matched to the FASTA and the annotation by their ``chr``-less form; the
  official CLI converts by the first FASTA contig / first annotation row and strips the characters
  c, h, r from both ends (``str.strip``), which only differs on unusual names.
* The official CLI drops the last field of every exon list (the trailing-comma rule); the
  annotation reader used here keeps every listed exon (identical on well-formed tables).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from metasplice.base_models.jobs import AltJob, Segment
from metasplice.data.genome import Genome, encode, reverse_complement

ACGTN = frozenset("ACGTN")
DEFAULT_DISTANCE = 50  # -D of the official CLI: positions scored on each side of POS
DS_COLUMNS: tuple[str, ...] = ("DS_AG", "DS_AL", "DS_DG", "DS_DL")  # acceptor gain/loss, donor gain/loss
DP_COLUMNS: tuple[str, ...] = ("DP_AG", "DP_AL", "DP_DG", "DP_DL")  # their offsets from POS


class SkipReason:
    """Texts of the reasons a record or allele is not scored (first words are stable keys)."""

    BAD_INPUT = "bad input: the record has no ALT allele"
    NO_GENE = "outside genes: POS is inside no annotated transcript"
    CONTIG = "unknown contig: {chrom} is not in the reference FASTA"
    NEAR_START = "near chromosome start: fewer than {half} nt before POS (SpliceAI: ref issue)"
    REF_MISMATCH = "ref mismatch: REF {ref} but the FASTA has {fasta}"
    NEAR_END = "near chromosome end: fewer than {half} nt after POS"
    REF_TOO_LONG = "ref too long: REF is {n} nt, longer than 2 x D = {limit}"
    ALT_MISSING = "missing ALT: allele {alt} contains '.', '-' or '*'"
    ALT_SYMBOLIC = "symbolic ALT: allele {alt} is not a sequence"
    MNV = "mnv/complex: REF and ALT both longer than 1 nt; SpliceAI reports '.' scores"
    ALT_IUPAC = "non-ACGTN ALT: allele {alt} has letters other than A, C, G, T, N"
    WINDOW_IUPAC = "non-ACGTN reference: the model window has {n} base(s) other than A, C, G, T, N"
    NO_ANNOTATION = "gene not in annotation: {gene} on {chrom} (tx {start}-{end}) is not in the table"


@dataclass(frozen=True)
class ScoreConfig:
    """Scoring settings: the CLI's ``-D`` and ``-M``, and how variants share reference segments."""

    distance: int = DEFAULT_DISTANCE  # -D: positions scored on each side of POS (0..4999)
    mask: bool = False  # -M 1: mask annotated gains and unannotated losses
    merge_gap: int = 6000  # variants of one gene whose windows are closer than this share a segment
    max_segment: int = 100_000  # longest reference segment (bounds memory)

    def __post_init__(self) -> None:
        if not 0 <= int(self.distance) <= 4999:
            raise ValueError(f"distance (-D) must be an integer from 0 to 4999, got {self.distance}")

    @property
    def n_positions(self) -> int:
        return 2 * self.distance + 1


@dataclass(frozen=True)
class GeneInfo:
    """One annotated transcript as the scorer needs it (1-based inclusive coordinates)."""

    name: str
    chrom: str
    strand: str
    tx_start: int
    tx_end: int
    boundaries: tuple[int, ...]  # sorted exon first/last bases (the CLI's boundary set)

    def boundary_offset(self, pos: int) -> int:
        """Nearest boundary minus POS; on a tie the lower coordinate wins (as the CLI)."""
        b = np.asarray(self.boundaries, dtype=np.int64)
        return int(b[np.abs(b - pos).argmin()] - pos)


def gene_info(annotation, row: int) -> GeneInfo:
    """GeneInfo of one row of a :class:`metasplice.data.annotation.Annotation`."""
    g = annotation.genes.iloc[row]
    return GeneInfo(
        name=str(g["name"]),
        chrom=str(g["chrom"]),
        strand=str(g["strand"]),
        tx_start=int(g["tx_start"]),
        tx_end=int(g["tx_end"]),
        boundaries=tuple(int(b) for b in annotation.boundaries(row)),
    )


@dataclass(frozen=True)
class AlleleTask:
    """One (allele, gene) pair that passed the record checks. ``chrom`` is the FASTA's name."""

    chrom: str
    pos: int
    ref: str
    alt: str
    gene: GeneInfo


@dataclass
class AlleleResult:
    """Scores of one (allele, gene) pair, or why it was not scored.

    ``ds`` holds DS_AG, DS_AL, DS_DG, DS_DL as the CLI computes them (mask applied, numpy scalars of
    the CLI's dtype so that formatting matches), ``dp`` the DP offsets, ``delta`` the aligned
    alt - ref probabilities (2D + 1, 3) float32 in genome orientation, channels [neither, acceptor,
    donor]; ``ref_probs`` / ``alt_probs`` the raw ensemble outputs in genome orientation.
    """

    ds: tuple = ()
    dp: tuple = ()
    delta: np.ndarray | None = None
    ref_probs: np.ndarray | None = None
    alt_probs: np.ndarray | None = None
    skip_reason: str = ""

    @property
    def scored(self) -> bool:
        return not self.skip_reason


def format_entry(alt: str, gene: str, result: AlleleResult | None) -> str:
    """``ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL``; '.' fields when not scored."""
    if result is None or not result.scored:
        return f"{alt}|{gene}|.|.|.|.|.|.|.|."
    return "{}|{}|{:.2f}|{:.2f}|{:.2f}|{:.2f}|{}|{}|{}|{}".format(alt, gene, *result.ds, *result.dp)


def window_half(flank: int, distance: int) -> int:
    """W // 2 for W = context + 2D + 1: bases needed on each side of POS."""
    return flank + distance


def _short(text: str, n: int = 20) -> str:
    return text if len(text) <= n else f"{text[:n]}...({len(text)} nt)"


def check_record(genome: Genome, chrom: str, pos: int, ref: str, flank: int, distance: int) -> tuple[str | None, str]:
    """The CLI's record checks after the gene look-up: (FASTA contig name, skip reason or "")."""
    name = genome.resolve(chrom)
    if name is None:
        return None, SkipReason.CONTIG.format(chrom=chrom)
    half = window_half(flank, distance)
    length = genome.lengths[name]
    if pos - half < 1:
        return name, SkipReason.NEAR_START.format(half=half)
    fasta = genome.fetch(name, pos - 1, min(pos - 1 + len(ref), length)) if pos <= length else ""
    if fasta != ref:
        return name, SkipReason.REF_MISMATCH.format(ref=_short(ref), fasta=_short(fasta) or "nothing")
    if pos + half > length:
        return name, SkipReason.NEAR_END.format(half=half)
    if len(ref) > 2 * distance:
        return name, SkipReason.REF_TOO_LONG.format(n=len(ref), limit=2 * distance)
    return name, ""


def classify_allele(ref: str, alt: str) -> tuple[str, str]:
    """('score' | 'dots' | 'skip', reason) for one ALT, in the CLI's order of tests."""
    if "." in alt or "-" in alt or "*" in alt:
        return "skip", SkipReason.ALT_MISSING.format(alt=alt)
    if "<" in alt or ">" in alt:
        return "skip", SkipReason.ALT_SYMBOLIC.format(alt=alt)
    if len(ref) > 1 and len(alt) > 1:
        return "dots", SkipReason.MNV
    if set(alt.upper()) - ACGTN:
        return "skip", SkipReason.ALT_IUPAC.format(alt=alt)
    return "score", ""


def delta_scores(
    y_ref: np.ndarray, y_alt: np.ndarray, ref_len: int, alt_len: int, distance: int, mask: bool, boundary_offset: int
) -> tuple[tuple, tuple, np.ndarray]:
    """DS (masked), DP and the aligned alt - ref (2D + 1, 3), following the CLI step by step.

    ``y_ref`` (2D + 1, 3) and ``y_alt`` (2D + 1 + len(ALT) - len(REF), 3) are float32 ensemble
    outputs in genome orientation.
    """
    cov = 2 * distance + 1
    y_ref = np.asarray(y_ref, dtype=np.float32)[None]
    y_alt = np.asarray(y_alt, dtype=np.float32)[None]
    if ref_len > 1 and alt_len == 1:
        del_len = ref_len - alt_len
        y_alt = np.concatenate(
            [y_alt[:, : cov // 2 + alt_len], np.zeros((1, del_len, 3)), y_alt[:, cov // 2 + alt_len :]], axis=1
        )
    elif ref_len == 1 and alt_len > 1:
        y_alt = np.concatenate(
            [
                y_alt[:, : cov // 2],
                np.max(y_alt[:, cov // 2 : cov // 2 + alt_len], axis=1)[:, None, :],
                y_alt[:, cov // 2 + alt_len :],
            ],
            axis=1,
        )
    if y_alt.shape[1] != cov:
        raise ValueError(f"aligned alt has {y_alt.shape[1]} positions, expected {cov}")
    y = np.concatenate([y_ref, y_alt])
    idx_pa = (y[1, :, 1] - y[0, :, 1]).argmax()
    idx_na = (y[0, :, 1] - y[1, :, 1]).argmax()
    idx_pd = (y[1, :, 2] - y[0, :, 2]).argmax()
    idx_nd = (y[0, :, 2] - y[1, :, 2]).argmax()
    mask_pa = np.logical_and((idx_pa - cov // 2 == boundary_offset), mask)
    mask_na = np.logical_and((idx_na - cov // 2 != boundary_offset), mask)
    mask_pd = np.logical_and((idx_pd - cov // 2 == boundary_offset), mask)
    mask_nd = np.logical_and((idx_nd - cov // 2 != boundary_offset), mask)
    ds = (
        (y[1, idx_pa, 1] - y[0, idx_pa, 1]) * (1 - mask_pa),
        (y[0, idx_na, 1] - y[1, idx_na, 1]) * (1 - mask_na),
        (y[1, idx_pd, 2] - y[0, idx_pd, 2]) * (1 - mask_pd),
        (y[0, idx_nd, 2] - y[1, idx_nd, 2]) * (1 - mask_nd),
    )
    dp = tuple(int(i) - cov // 2 for i in (idx_pa, idx_na, idx_pd, idx_nd))
    return ds, dp, (y[1] - y[0]).astype(np.float32)


class Backend(Protocol):
    """Computes ensemble probabilities for the jobs (see :mod:`.jobs`)."""

    flank: int

    def predict(
        self, segments: Sequence[Segment], jobs: Sequence[AltJob], progress: Callable[[int], None] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]: ...


@dataclass
class _Cluster:
    chrom: str
    gene: GeneInfo
    start: int  # 1-based first base of the segment
    end: int  # 1-based last base
    tasks: list[int] = field(default_factory=list)


def _clusters(tasks: Sequence[AlleleTask], half: int, config: ScoreConfig) -> list[_Cluster]:
    """Group tasks by gene, then by position into segments whose windows overlap or nearly do."""
    by_gene: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        by_gene[(t.chrom, t.gene)].append(i)
    out: list[_Cluster] = []
    for (chrom, gene), idx in by_gene.items():
        idx.sort(key=lambda i: tasks[i].pos)
        cur: _Cluster | None = None
        for i in idx:
            lo, hi = tasks[i].pos - half, tasks[i].pos + half
            if cur is not None and lo - cur.end <= config.merge_gap and hi - cur.start < config.max_segment:
                cur.end = max(cur.end, hi)
                cur.tasks.append(i)
            else:
                cur = _Cluster(chrom, gene, lo, hi, [i])
                out.append(cur)
    return out


def build_jobs(
    tasks: Sequence[AlleleTask], genome: Genome, flank: int, config: ScoreConfig
) -> tuple[list[Segment], list[AltJob | None], list[str]]:
    """Transcript-masked, model-oriented segments and one job per task (None + reason if skipped)."""
    half = window_half(flank, config.distance)
    d = config.distance
    segments: list[Segment] = []
    jobs: list[AltJob | None] = [None] * len(tasks)
    reasons = [""] * len(tasks)
    for cl in _clusters(tasks, half, config):
        g = cl.gene
        raw = genome.fetch(cl.chrom, cl.start - 1, cl.end)
        if len(raw) != cl.end - cl.start + 1:
            raise ValueError(f"{cl.chrom}:{cl.start}-{cl.end} could not be read from {genome.path}")
        tokens = encode(raw)
        positions = np.arange(cl.start, cl.end + 1)
        outside = (positions < g.tx_start) | (positions > g.tx_end)
        tokens[outside] = 4
        odd = np.frombuffer(raw.encode(), dtype=np.uint8)
        odd = ~np.isin(odd, np.frombuffer(b"ACGTN", dtype=np.uint8)) & ~outside
        odd_cum = np.concatenate([[0], np.cumsum(odd)])
        minus = g.strand == "-"
        seg_index = len(segments)
        segments.append(
            Segment(
                tokens=reverse_complement(tokens) if minus else tokens,
                label=f"{g.name} {cl.chrom}:{cl.start}-{cl.end} ({g.strand})",
            )
        )
        for i in cl.tasks:
            t = tasks[i]
            w0, w1 = t.pos - half - cl.start, t.pos + half - cl.start + 1
            n_odd = int(odd_cum[w1] - odd_cum[w0])
            if n_odd:
                reasons[i] = SkipReason.WINDOW_IUPAC.format(n=n_odd)
                continue
            r, alt = len(t.ref), encode(t.alt)
            shift = len(alt) - r
            if minus:
                edit = cl.end - t.pos - r + 1
                ref_lo = cl.end - t.pos - d
                alt_tokens = reverse_complement(alt)
                alt_lo = ref_lo
            else:
                edit = t.pos - cl.start
                ref_lo = edit - d
                alt_tokens = alt
                alt_lo = ref_lo
            jobs[i] = AltJob(
                segment=seg_index,
                edit=int(edit),
                ref_len=r,
                alt=alt_tokens,
                ref_lo=int(ref_lo),
                n_ref=2 * d + 1,
                alt_lo=int(alt_lo),
                n_alt=2 * d + 1 + shift,
            )
    return segments, jobs, reasons


def score_tasks(
    tasks: Sequence[AlleleTask],
    genome: Genome,
    backend: Backend,
    config: ScoreConfig,
    progress: Callable[[int], None] | None = None,
) -> list[AlleleResult]:
    """Score (allele, gene) pairs that passed :func:`check_record` and :func:`classify_allele`."""
    segments, jobs, reasons = build_jobs(tasks, genome, backend.flank, config)
    live = [i for i, j in enumerate(jobs) if j is not None]
    results = [AlleleResult(skip_reason=r) for r in reasons]
    if progress is not None and len(live) < len(tasks):
        progress(len(tasks) - len(live))
    if not live:
        return results
    probs = backend.predict(segments, [jobs[i] for i in live], progress=progress)
    for i, (y_ref, y_alt) in zip(live, probs):
        t = tasks[i]
        if t.gene.strand == "-":
            y_ref, y_alt = y_ref[::-1], y_alt[::-1]
        if t.alt.upper() == t.ref:  # REF-to-REF: the CLI's two windows are identical, so are its outputs
            y_alt = y_ref
        ds, dp, delta = delta_scores(
            y_ref, y_alt, len(t.ref), len(t.alt), config.distance, config.mask, t.gene.boundary_offset(t.pos)
        )
        results[i] = AlleleResult(
            ds=ds,
            dp=dp,
            delta=delta,
            ref_probs=np.ascontiguousarray(y_ref, dtype=np.float32),
            alt_probs=np.ascontiguousarray(y_alt, dtype=np.float32),
        )
    return results
