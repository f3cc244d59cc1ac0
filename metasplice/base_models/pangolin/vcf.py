"""Pangolin annotation of a VCF or CSV file, record for record as the official command line writes it.

VCF: every record is written in input order, its text unchanged except that scored records get
``Pangolin=...`` appended to INFO; a ``##INFO=<ID=Pangolin,...>`` line is added before ``#CHROM``.
CSV (``-c`` names the CHROM, POS, REF, ALT columns): every row is written followed by ``,`` and the
Pangolin text (empty when skipped), under the header plus ``,Pangolin``; REF and ALT are upper-cased
as the official tool does, and ``[Line n]`` counts data rows from 1 as it does. A line that is not a
record (too few columns, a POS that is not an integer) is reported with its line number and dropped;
every other record is still scored. Output goes to a temporary file beside the target, renamed when
complete (:class:`metasplice.base_models.cli_io.AtomicFiles`); on an error or interruption it is removed.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

from metasplice.base_models.cli_io import AtomicFiles
from metasplice.base_models.pangolin.annotation import GeneLookup
from metasplice.base_models.pangolin.scoring import PangolinConfig, PangolinTask, check_variant, score_tasks
from metasplice.base_models.records import VcfInput, line_message, open_text, open_vcf, parse_line
from metasplice.data.genome import Genome

log = logging.getLogger("metasplice.pangolin")

INFO_HEADER = (
    '##INFO=<ID=Pangolin,Number=.,Type=String,Description="Pangolin splice scores. '
    'Format: gene|pos:score_change|pos:score_change|warnings,...">'
)


@dataclass
class PangolinSummary:
    records: int = 0
    scored: int = 0
    skipped: int = 0
    dropped: int = 0


def _emit(warn: Callable[[str], None], text: str) -> None:
    for line in text.split("\n"):
        warn(line)


def _with_info(fields: list[str], text: str) -> str:
    info = fields[7]
    fields = list(fields)
    fields[7] = f"Pangolin={text}" if info in (".", "") else f"{info};Pangolin={text}"
    return "\t".join(fields)


def _score_chunk(items, genome, genes, backend, config, warn):
    """items: (line number, chrom, pos, ref, alt); returns the INFO text per item ('' when skipped)."""
    tasks: list[PangolinTask] = []
    where: list[int] = []
    texts = [""] * len(items)
    for k, (line, chrom, pos, ref, alt) in enumerate(items):
        task, warning = check_variant(line, chrom, pos, ref, alt, genome, genes, config)
        if task is None:
            _emit(warn, warning)
            continue
        tasks.append(task)
        where.append(k)
    for k, res in zip(where, score_tasks(tasks, genome, backend, config), strict=True):
        texts[k] = res.text
    return texts


def annotate_vcf(
    path: str | VcfInput,
    genome: Genome,
    genes: GeneLookup,
    backend,
    config: PangolinConfig,
    output: str,
    chunk_size: int = 2000,
    warn: Callable[[str], None] | None = None,
) -> PangolinSummary:
    """Write ``output`` (a .vcf) with the Pangolin field; returns the counts.

    ``path``: a file name or a :class:`~metasplice.base_models.records.VcfInput` opened (and its
    header checked) before the models were loaded.
    """
    warn = warn or (lambda s: print(s, file=sys.stderr))
    summary = PangolinSummary()
    source = path if isinstance(path, VcfInput) else open_vcf(path)
    with source, AtomicFiles() as files, files.text(output) as out:
        header = [h for h in source.header if not h.startswith("##INFO=<ID=Pangolin,")]
        out.write("\n".join([*header[:-1], INFO_HEADER, header[-1]]) + "\n")
        for chunk in source.chunks(chunk_size):
            records, items = [], []
            for number, text in chunk:
                rec, why = parse_line(number, text)
                if rec.fields is None:
                    warn(line_message(number, f"WARNING, skipping line: {why}"))
                    summary.dropped += 1
                    continue
                alt = rec.alts[0] if rec.alts else "."
                records.append(rec)
                items.append((number, rec.chrom, rec.pos, rec.ref, alt))
            texts = _score_chunk(items, genome, genes, backend, config, warn)
            for rec, text in zip(records, texts, strict=True):
                summary.records += 1
                summary.scored += bool(text)
                summary.skipped += not text
                out.write((_with_info(rec.fields, text) if text else rec.text) + "\n")
        if source.ending_note():
            warn(source.ending_note())
    return summary


def annotate_csv(
    path: str,
    genome: Genome,
    genes: GeneLookup,
    backend,
    config: PangolinConfig,
    output: str,
    columns: str = "CHROM,POS,REF,ALT",
    chunk_size: int = 2000,
    warn: Callable[[str], None] | None = None,
) -> PangolinSummary:
    """Write ``output`` (a .csv): the input rows, each followed by ``,`` and its Pangolin text."""
    warn = warn or (lambda s: print(s, file=sys.stderr))
    names = [c.strip() for c in columns.split(",")]
    if len(names) != 4:
        raise ValueError(f"-c must name 4 columns (chromosome, position, ref, alt), got {columns!r}")
    summary = PangolinSummary()
    with open_text(path) as stream, AtomicFiles() as files, files.text(output) as out:
        header_text = stream.readline().rstrip("\r\n")
        header = next(csv.reader([header_text]))
        missing = [n for n in names if n not in header]
        if missing:
            raise ValueError(f"{path}: column(s) {', '.join(missing)} not in the header ({', '.join(header)}); set -c")
        cols = [header.index(n) for n in names]
        out.write(header_text + ",Pangolin\n")
        row = 0
        lines = iter(stream)
        while True:
            batch: list[tuple[int, str]] = []
            for text in lines:
                batch.append((0, text.rstrip("\r\n")))
                if len(batch) >= chunk_size:
                    break
            if not batch:
                break
            kept, items = [], []
            for _, text in batch:
                row += 1
                values = next(csv.reader([text]), [])
                try:
                    chrom, pos, ref, alt = (values[c] for c in cols)
                    pos_i = int(pos)
                except (IndexError, ValueError):
                    warn(f"[Line {row}] WARNING, skipping line: not a row with {', '.join(names)}")
                    summary.dropped += 1
                    continue
                kept.append(text)
                items.append((row, chrom, pos_i, ref.upper(), alt.upper()))
            texts = _score_chunk(items, genome, genes, backend, config, warn)
            for text, info in zip(kept, texts, strict=True):
                summary.records += 1
                summary.scored += bool(info)
                summary.skipped += not info
                out.write(f"{text},{info}\n")
    return summary
