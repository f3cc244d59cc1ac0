"""Annotate a VCF with SpliceAI scores in the official CLI's format, streaming in chunks.

Records are read with pysam and written back unchanged except for ``INFO/SpliceAI`` (one
``ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL`` entry per usable allele x
overlapping gene, allele-major, genes in annotation order), and the official header line is added.
Records are processed in chunks of ``chunk_size``: the chunk's alleles are grouped by gene (one
reference per gene segment), scored, and the chunk is written in input order, so memory stays
bounded whatever the file size. Every record or allele left unscored gets a reason (logged, counted
and optionally written to a TSV).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pysam

from metasplice.base_models.spliceai.scoring import (
    AlleleResult,
    AlleleTask,
    ScoreConfig,
    SkipReason,
    check_record,
    classify_allele,
    format_entry,
    gene_info,
    score_tasks,
)
from metasplice.data.annotation import Annotation
from metasplice.data.genome import Genome

log = logging.getLogger("metasplice.spliceai")

INFO_HEADER = (
    '##INFO=<ID=SpliceAI,Number=.,Type=String,Description="SpliceAIv1.3.1 variant '
    "annotation. These include delta scores (DS) and delta positions (DP) for "
    "acceptor gain (AG), acceptor loss (AL), donor gain (DG), and donor loss (DL). "
    'Format: ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL">'
)

# reasons the official CLI prints a warning for (the others it skips silently or crashes on)
_WARNED = ("bad input", "near chromosome", "ref mismatch", "ref too long", "unknown contig", "non-ACGTN")


@dataclass
class Skip:
    """One record or allele that got no scores, with where it is and why."""

    chrom: str
    pos: int
    ref: str
    alt: str
    gene: str
    reason: str


@dataclass
class Summary:
    """Counts of one run."""

    records: int = 0
    scored_records: int = 0
    entries: int = 0
    skips: Counter = field(default_factory=Counter)

    def text(self) -> str:
        lines = [f"{self.records} records, {self.scored_records} with SpliceAI scores, {self.entries} entries"]
        lines += [f"  skipped ({n}): {reason}" for reason, n in sorted(self.skips.items())]
        return "\n".join(lines)


@dataclass
class _Slot:
    alt: str
    gene: str
    task: int | None  # index into the chunk's tasks; None = '.' entry


def _plan_record(
    rec, genome: Genome, annotation: Annotation, flank: int, config: ScoreConfig, tasks: list, skips: list
) -> list[_Slot]:
    try:
        chrom, pos, ref, n_alts = rec.chrom, rec.pos, rec.ref, len(rec.alts)
    except TypeError:
        skips.append(Skip(str(rec.chrom), int(rec.pos), str(rec.ref), ".", "", SkipReason.BAD_INPUT))
        return []
    rows = annotation.overlapping(chrom, pos)
    if not rows:
        skips.append(Skip(chrom, pos, ref, ",".join(rec.alts), "", SkipReason.NO_GENE))
        return []
    fasta_chrom, reason = check_record(genome, chrom, pos, ref, flank, config.distance)
    if reason:
        skips.append(Skip(chrom, pos, ref, ",".join(rec.alts), "", reason))
        return []
    genes = [gene_info(annotation, r) for r in rows]
    slots: list[_Slot] = []
    for j in range(n_alts):
        alt = rec.alts[j]
        for g in genes:
            kind, why = classify_allele(ref, alt)
            if kind == "skip":
                skips.append(Skip(chrom, pos, ref, alt, g.name, why))
            elif kind == "dots":
                skips.append(Skip(chrom, pos, ref, alt, g.name, why))
                slots.append(_Slot(alt, g.name, None))
            else:
                tasks.append(AlleleTask(fasta_chrom, pos, ref, alt, g))
                slots.append(_Slot(alt, g.name, len(tasks) - 1))
    return slots


@dataclass(frozen=True)
class Record:
    """A VCF record's fields that scoring reads (pysam records work the same way)."""

    chrom: str
    pos: int
    ref: str
    alts: tuple[str, ...] | None


def score_records(
    records: Sequence, genome: Genome, annotation: Annotation, backend, config: ScoreConfig, progress=None
) -> tuple[list[list[str]], list[Skip]]:
    """INFO/SpliceAI entries per record (empty list = no field) and every skip with its reason."""
    tasks: list[AlleleTask] = []
    skips: list[Skip] = []
    plans = [_plan_record(r, genome, annotation, backend.flank, config, tasks, skips) for r in records]
    results: list[AlleleResult] = score_tasks(tasks, genome, backend, config, progress=progress) if tasks else []
    out: list[list[str]] = []
    for rec, slots in zip(records, plans):
        entries = []
        for s in slots:
            res = results[s.task] if s.task is not None else None
            if res is not None and not res.scored:
                skips.append(Skip(rec.chrom, rec.pos, rec.ref, s.alt, s.gene, res.skip_reason))
                continue
            entries.append(format_entry(s.alt, s.gene, res))
        out.append(entries)
    return out, skips


def _chunks(records: Iterable, size: int) -> Iterable[list]:
    chunk: list = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_mode(path: str) -> str:
    """pysam mode from the output name: .gz/.bgz -> bgzipped VCF, .bcf -> BCF, else plain VCF."""
    if path.endswith((".gz", ".bgz")):
        return "wz"
    return "wb" if path.endswith(".bcf") else "w"


def _short(text: str, n: int = 20) -> str:
    return text if len(text) <= n else f"{text[:n]}...({len(text)} nt)"


def _report_line(s: Skip) -> str:
    return "\t".join([s.chrom, str(s.pos), s.ref, s.alt, s.gene, s.reason])


def annotate_vcf(
    input_path: str,
    output_path: str,
    genome: Genome,
    annotation: Annotation,
    backend,
    config: ScoreConfig,
    chunk_size: int = 2000,
    progress: bool = True,
    skipped_path: str | None = None,
) -> Summary:
    """Write ``input_path`` to ``output_path`` with INFO/SpliceAI added ('-' = stdin / stdout).

    A file output is written to a temporary file next to it and renamed when complete.
    """
    from tqdm import tqdm

    try:
        vcf = pysam.VariantFile(input_path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read VCF {input_path}: {exc}") from exc
    header = vcf.header
    header.add_line(INFO_HEADER)
    to_stdout = output_path in ("-", "/dev/stdout")
    if to_stdout:
        tmp = "-"
    else:
        out_dir = Path(output_path).resolve().parent
        fd, tmp = tempfile.mkstemp(prefix=f".{Path(output_path).name}.", suffix=".tmp", dir=out_dir)
        os.close(fd)
    report = open(skipped_path + ".tmp", "w") if skipped_path else None
    if report:
        report.write("chrom\tpos\tref\talt\tgene\treason\n")
    summary = Summary()
    ok = False
    try:
        out = pysam.VariantFile(tmp, mode=_write_mode(output_path), header=header)
        bar = tqdm(unit=" alleles", disable=not progress, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
        try:
            for chunk in _chunks(vcf, chunk_size):
                entries_per_record, skips = score_records(
                    chunk, genome, annotation, backend, config, progress=bar.update
                )
                for rec, entries in zip(chunk, entries_per_record):
                    if entries:
                        rec.info["SpliceAI"] = entries
                        summary.scored_records += 1
                        summary.entries += len(entries)
                    try:
                        out.write(rec)
                    except OSError as exc:
                        raise ValueError(
                            f"{input_path}: record {rec.chrom}:{rec.pos} {_short(rec.ref)}>"
                            f"{','.join(rec.alts or ('.',))} cannot be written by pysam/htslib ({exc}); a symbolic "
                            "ALT such as <DEL> needs INFO/END in the record and an ##INFO=<ID=END,...> header line "
                            "(the official CLI fails on such records too)"
                        ) from exc
                summary.records += len(chunk)
                for s in skips:
                    key = s.reason.split(":")[0]
                    summary.skips[key] += 1
                    if key.startswith(_WARNED):
                        bar.write(
                            f"WARNING: skipping {s.chrom}:{s.pos} {_short(s.ref)}>{_short(s.alt)} ({s.reason})",
                            file=sys.stderr,
                        )
                    if report:
                        report.write(_report_line(s) + "\n")
        finally:
            bar.close()
            out.close()
            vcf.close()
        ok = True
    finally:
        if report:
            report.close()
            if ok:
                os.replace(skipped_path + ".tmp", skipped_path)
            else:
                os.unlink(skipped_path + ".tmp")
        if not to_stdout:
            if ok:
                os.replace(tmp, output_path)
            elif os.path.exists(tmp):
                os.unlink(tmp)
    return summary
