"""Pangolin scores exactly as the official ``pangolin`` 1.0.2 command line computes them.

For a variant at POS (REF, the record's first ALT) the official tool takes the genome from
POS - 5000 - d to the last REF base + 5000 + d (no masking), builds the ALT window by replacing
REF, and, once per strand on which a gene body contains POS (the reverse complement for ``-``), runs
the 12 networks. Per tissue j, the mean over its 3 replicates of (alt - ref) P(splice site) after
aligning indels: a deletion's ALT track gets zeros for the deleted positions right after the
centre, an insertion's inserted positions collapse to their maximum at the centre. The track has
2d + len(REF) positions (deletions reach past +d), genome order on both strands. Per position,
loss is the most negative of the four tissues and gain the most positive. ``-m True`` (default):
per gene, gain is clipped to <= 0 at the gene's exon starts and ends inside the track, and loss to
>= 0 everywhere else (everywhere, with the warning ``NoAnnotatedSitesToMaskForThisGene``, when the
gene has no exon boundary in reach).

Reproduced quirks of the official tool, kept for identical output:

* The masking of one gene is applied in place to the strand's arrays, so a second gene on the same
  strand sees the first gene's masking as well (github tkzeng/Pangolin issue #29).
* Only the first ALT of a multi-allelic record is scored.
* Values are rounded to 2 decimals in the precision the official tool holds them (float32 for SNVs
  and insertions, float64 for deletions) and printed as Python prints that float: 0.06 held in
  float32 prints as 0.05999999865889549, as the official output does.

Deliberate differences: every network output comes from the shared incremental engine
(:mod:`metasplice.base_models.engine`), batched and identical whatever the batch size or device
(float32); a window that does not fit the contig is reported instead of handed to the FASTA reader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from metasplice.base_models.jobs import AltJob, Segment
from metasplice.base_models.pangolin.annotation import GeneLookup
from metasplice.base_models.pangolin.model import REPLICATES, SPLICE_CHANNEL, TISSUES
from metasplice.data.genome import Genome, encode, reverse_complement

FLANK = 5000  # context on each side of every scored position
DEFAULT_DISTANCE = 50
MERGE_GAP = 2 * FLANK  # variants closer than this share one reference segment
MAX_SEGMENT = 400_000  # nt: longest segment (bounds the reference store)


class Warning_:
    """The official tool's warning texts (after ``[Line n] WARNING, skipping variant: ``)."""

    FORMAT = "Variant format not supported."
    DELETION = "Deletion too large"
    SEQUENCE = (
        "Could not get sequence, possibly because the variant is too close to chromosome ends. See error message above."
    )
    MISMATCH = "Mismatch between FASTA (ref base: {fasta}) and variant file (ref base: {ref})."
    NO_GENE = "Variant not contained in a gene body. Do GTF/FASTA chromosome names match?"
    NO_SITES = "NoAnnotatedSitesToMaskForThisGene"


def warning_line(line: int, text: str) -> str:
    return f"[Line {line}] WARNING, skipping variant: {text}"


@dataclass(frozen=True)
class PangolinConfig:
    """The official flags: ``-d``, ``-m``, ``-s``, ``--score_exons``."""

    distance: int = DEFAULT_DISTANCE
    mask: bool = True
    score_cutoff: float | None = None
    score_exons: bool = False

    def __post_init__(self) -> None:
        if self.distance < 0:
            raise ValueError(f"-d must be >= 0, got {self.distance}")


@dataclass
class PangolinTask:
    """One variant that passed the checks: where it is and the genes of each strand."""

    line: int
    chrom: str  # the FASTA's name
    pos: int
    ref: str
    alt: str
    genes: dict[str, dict[str, list[int]]]  # strand -> {gene id: exon starts/ends}


@dataclass
class PangolinResult:
    """Per strand scored: (loss, gain) after masking, the per-tissue deltas, and the INFO text."""

    text: str
    tissue_deltas: dict[str, np.ndarray] = field(default_factory=dict)  # strand -> (4, n) before masking
    loss: dict[str, np.ndarray] = field(default_factory=dict)  # strand -> (n,) after masking
    gain: dict[str, np.ndarray] = field(default_factory=dict)


def fasta_name(genome: Genome, chrom: str) -> str | None:
    """The official name matching: the VCF name, else with ``chr`` added, else without its first 3 letters."""
    names = set(genome.names)
    if chrom in names:
        return chrom
    if "chr" + chrom in names:
        return "chr" + chrom
    if chrom[3:] in names:
        return chrom[3:]
    return None


def check_variant(
    line: int, chrom: str, pos: int, ref: str, alt: str, genome: Genome, genes: GeneLookup, config: PangolinConfig
) -> tuple[PangolinTask | None, str]:
    """The official checks in their order; (task, "") or (None, the warning line)."""
    d = config.distance
    if (
        not set("ACGT") & set(ref)
        or not set("ACGT") & set(alt)
        or (len(ref) != 1 and len(alt) != 1 and len(ref) != len(alt))
    ):
        return None, warning_line(line, Warning_.FORMAT)
    if len(ref) > 2 * d:
        return None, warning_line(line, Warning_.DELETION)
    name = fasta_name(genome, chrom)
    start, end = pos - FLANK - d - 1, pos + len(ref) + FLANK - 1 + d  # 0-based half-open window
    if name is None:
        return None, f"'{chrom}' is not in the FASTA\n" + warning_line(line, Warning_.SEQUENCE)
    if start < 0 or end > genome.lengths[name]:
        return None, (
            f"{name}:{start + 1}-{end} is outside the contig (length {genome.lengths[name]})\n"
            + warning_line(line, Warning_.SEQUENCE)
        )
    fasta_ref = genome.fetch(name, pos - 1, pos - 1 + len(ref))
    if fasta_ref != ref:
        return None, warning_line(line, Warning_.MISMATCH.format(fasta=fasta_ref, ref=ref))
    plus, minus = genes.genes_at(name, pos)
    if not plus and not minus:
        return None, warning_line(line, Warning_.NO_GENE)
    strands = {s: g for s, g in (("+", plus), ("-", minus)) if g}
    return PangolinTask(line, name, pos, ref, alt, strands), ""


@dataclass
class _Cluster:
    chrom: str
    strand: str
    start: int  # 1-based first base of the segment
    end: int  # 1-based last base
    items: list[tuple[int, str]] = field(default_factory=list)  # (task index, strand)


def _clusters(tasks: Sequence[PangolinTask], d: int) -> list[_Cluster]:
    """Tasks grouped per (chrom, strand) into segments whose windows overlap or nearly do."""
    keyed: dict[tuple[str, str], list[int]] = {}
    for i, t in enumerate(tasks):
        for strand in t.genes:
            keyed.setdefault((t.chrom, strand), []).append(i)
    out: list[_Cluster] = []
    for (chrom, strand), idx in keyed.items():
        idx.sort(key=lambda i: tasks[i].pos)
        cur: _Cluster | None = None
        for i in idx:
            t = tasks[i]
            lo, hi = t.pos - FLANK - d, t.pos + len(t.ref) - 1 + FLANK + d
            if cur is not None and lo - cur.end <= MERGE_GAP and hi - cur.start < MAX_SEGMENT:
                cur.end = max(cur.end, hi)
            else:
                cur = _Cluster(chrom, strand, lo, hi)
                out.append(cur)
            cur.items.append((i, strand))
    return out


def build_jobs(
    tasks: Sequence[PangolinTask], genome: Genome, d: int
) -> tuple[list[Segment], list[AltJob], list[tuple[int, str]]]:
    """Model-oriented segments (unmasked genome, reverse complement for ``-``), one job per (task, strand)."""
    segments: list[Segment] = []
    jobs: list[AltJob] = []
    keys: list[tuple[int, str]] = []
    for cl in _clusters(tasks, d):
        tokens = encode(genome.fetch(cl.chrom, cl.start - 1, cl.end))
        minus = cl.strand == "-"
        seg = len(segments)
        segments.append(
            Segment(
                reverse_complement(tokens) if minus else tokens, label=f"{cl.chrom}:{cl.start}-{cl.end} ({cl.strand})"
            )
        )
        for i, strand in cl.items:
            t = tasks[i]
            r, alt = len(t.ref), encode(t.alt)
            edit = (cl.end - t.pos - r + 1) if minus else (t.pos - cl.start)
            jobs.append(
                AltJob(
                    segment=seg,
                    edit=int(edit),
                    ref_len=r,
                    alt=reverse_complement(alt) if minus else alt,
                    ref_lo=int(edit - d),
                    n_ref=2 * d + r,
                    alt_lo=int(edit - d),
                    n_alt=2 * d + len(alt),
                )
            )
            keys.append((i, strand))
    return segments, jobs, keys


def _align(alt: np.ndarray, n_ref: int, d: int) -> np.ndarray:
    """The official indel alignment of one network's ALT track (genome order) to the REF track."""
    l = 2 * d + 1
    n_alt = alt.shape[0]
    ndiff = abs(n_ref - n_alt)
    if n_ref > n_alt:  # deletion: zeros (float64, as the official np.zeros) after the centre
        return np.concatenate([alt[: l // 2 + 1], np.zeros(ndiff), alt[l // 2 + 1 :]])
    if n_ref < n_alt:  # insertion: the centre and inserted positions collapse to their maximum
        peak = np.max(alt[l // 2 : l // 2 + ndiff + 1], keepdims=True)
        return np.concatenate([alt[: l // 2], peak, alt[l // 2 + ndiff + 1 :]])
    return alt


def tissue_deltas(per_member: Sequence[tuple[np.ndarray, np.ndarray]], minus: bool, d: int) -> np.ndarray:
    """(4, n) mean over replicates of aligned (alt - ref) P(splice), genome order, in the official precision."""
    out = []
    for j in range(len(TISSUES)):
        score = []
        for k in range(j * len(REPLICATES), (j + 1) * len(REPLICATES)):
            ref, alt = per_member[k]
            ref, alt = ref[:, SPLICE_CHANNEL], alt[:, SPLICE_CHANNEL]
            if minus:
                ref, alt = ref[::-1], alt[::-1]
            score.append(_align(alt, ref.shape[0], d) - ref)
        out.append(np.mean(score, axis=0))
    return np.array(out)


def _num(value: np.floating) -> str:
    """A score as the official tool prints it: rounded to 2 decimals in its own precision."""
    return repr(float(np.round(value, 2)))


def format_gene(
    gene: str, exons: list[int], loss: np.ndarray, gain: np.ndarray, pos: int, config: PangolinConfig
) -> str:
    """One gene's entry; masks ``loss`` and ``gain`` in place when ``config.mask`` (the official order)."""
    d = config.distance
    warnings = "Warnings:"
    positions = np.array(exons, dtype=np.int64) - (pos - d)
    if config.mask and len(positions) != 0:
        inside = positions[(positions >= 0) & (positions < len(loss))]
        gain[inside] = np.minimum(gain[inside], 0)
        others = ~np.isin(np.arange(len(loss)), inside)
        loss[others] = np.maximum(loss[others], 0)
    elif config.mask:
        warnings += Warning_.NO_SITES
        loss[:] = np.maximum(loss[:], 0)
    parts: list[str] = []
    if config.score_exons:
        sites1, sites2 = [gene + "_sites1"], [gene + "_sites2"]
        for i in range(len(positions) // 2):
            p1, p2 = int(positions[2 * i]), int(positions[2 * i + 1])
            s1 = s2 = "NA"
            if 0 <= p1 < len(loss):
                v = np.array([loss[p1], gain[p1]])
                s1 = _num(v[np.argmax(np.abs(v))])
            if 0 <= p2 < len(loss):
                v = np.array([loss[p2], gain[p2]])
                s2 = _num(v[np.argmax(np.abs(v))])
            if s1 == "NA" and s2 == "NA":
                continue
            sites1.append(f"{p1 - d}:{s1}")
            sites2.append(f"{p2 - d}:{s2}")
        parts += sites1 + sites2
    elif config.score_cutoff is not None:
        parts.append(gene)
        lo, hi = np.where(loss <= -config.score_cutoff)[0], np.where(gain >= config.score_cutoff)[0]
        for p, s in zip(np.concatenate([hi - d, lo - d]), np.concatenate([gain[hi], loss[lo]]), strict=True):
            parts.append(f"{int(p)}:{_num(s)}")
    else:
        parts.append(gene)
        lo, hi = int(np.argmin(loss)), int(np.argmax(gain))
        parts += [f"{hi - d}:{_num(gain[hi])}", f"{lo - d}:{_num(loss[lo])}"]
    parts.append(warnings)
    return "|".join(parts)


def score_tasks(
    tasks: Sequence[PangolinTask],
    genome: Genome,
    backend,
    config: PangolinConfig,
    progress: Callable[[int], None] | None = None,
) -> list[PangolinResult]:
    """Score variants that passed :func:`check_variant` with a per-member engine over the 12 networks."""
    d = config.distance
    segments, jobs, keys = build_jobs(tasks, genome, d)
    probs = backend.predict(segments, jobs, progress=progress) if jobs else []
    deltas: dict[tuple[int, str], np.ndarray] = {}
    for (i, strand), (ref, alt) in zip(keys, probs, strict=True):
        t = tasks[i]
        if t.alt == t.ref:  # identical windows give identical outputs
            alt = ref
        deltas[(i, strand)] = tissue_deltas(list(zip(ref, alt, strict=True)), strand == "-", d)
    results: list[PangolinResult] = []
    for i, t in enumerate(tasks):
        res = PangolinResult(text="")
        entries: list[str] = []
        for strand in ("+", "-"):
            if strand not in t.genes:
                continue
            pangolin = deltas[(i, strand)]
            cols = np.arange(pangolin.shape[1])
            loss = pangolin[np.argmin(pangolin, axis=0), cols]
            gain = pangolin[np.argmax(pangolin, axis=0), cols]
            res.tissue_deltas[strand] = pangolin
            for gene, exons in t.genes[strand].items():
                entries.append(format_gene(gene, exons, loss, gain, t.pos, config))
            res.loss[strand], res.gain[strand] = loss, gain
        res.text = ",".join(entries)
        results.append(res)
    return results
