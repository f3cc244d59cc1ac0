"""Annotate a VCF with SpliceAI scores in the official CLI's format, streaming in chunks.

Records are written back as the official CLI (pysam) writes them, with ``INFO/SpliceAI`` added
(one ``ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL`` entry per usable allele x
overlapping gene, allele-major, genes in annotation order), and the official header line is added.

The input is read as text, line by line with line numbers (:mod:`metasplice.base_models.records`),
in chunks of ``chunk_size`` lines; memory stays bounded whatever the file size. One bad line costs
that line only, and is named on stderr as ``[Line n] ...`` (n counts header lines too):

- a line that cannot be a VCF record (empty, binary data, fewer than 8 columns, POS not an
  integer) or that htslib cannot parse is **dropped** (not written);
- a record that is not scored (the official CLI's skip rules, an unknown contig, ...) is written
  unannotated, as the official CLI writes it;
- a record htslib reads but cannot write (a symbolic ALT such as ``<DEL>`` without an END
  declared in the header, a contig or INFO key missing from the header: the official CLI dies on
  these) is written as read, with ``SpliceAI=`` added to its INFO text when it was scored;
- a record whose scoring fails is written unannotated with the error as reason.

Every other record gets exactly the line the official CLI writes for it. The chunk's good lines
go through htslib (pysam) as the official CLI's: parsed with the input's header plus the SpliceAI
INFO line, scored (alleles grouped by gene, one reference per gene segment), and written by a
pysam writer with that header; its text is what is written out. Every record or allele left
unscored gets a reason (warned about as the official CLI warns, counted, and optionally written to
the ``--skipped`` TSV with its line number). Output goes to a temporary file beside the target,
renamed when complete (:class:`metasplice.base_models.cli_io.AtomicFiles`).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pysam

from metasplice.base_models.cli_io import STDOUT, AtomicFiles, encode_line, isolate_failures, open_output
from metasplice.base_models.records import (
    LineRecord,
    VcfInput,
    line_message,
    open_vcf,
    parse_line,
    short,
    tsv_field,
    with_info,
)
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
    """One line, record or allele that got no scores, with where it is and why."""

    chrom: str
    pos: int | str
    ref: str
    alt: str
    gene: str
    reason: str
    line: int = 0  # line number in the input (0: not known)

    def row(self) -> str:
        return "\t".join(
            tsv_field(str(v)) for v in (self.line, self.chrom, self.pos, self.ref, self.alt, self.gene, self.reason)
        )


SKIPPED_COLUMNS = ("line", "chrom", "pos", "ref", "alt", "gene", "reason")

# reasons of lines and records this command handles where the official CLI dies
DROPPED = "malformed line"  # parse_line's reasons start with it
UNREADABLE = "unreadable record"
AS_READ = "written as read"
SCORING_FAILED = "scoring failed"
UNDECLARED = "a contig, INFO, FILTER or FORMAT key that the header does not declare"
MAX_UNDECLARED = 20  # such warnings (every record of a VCF without ##contig lines is one)


@dataclass
class Summary:
    """Counts of one run."""

    records: int = 0  # records written
    scored_records: int = 0
    entries: int = 0
    dropped: int = 0  # lines not written
    skips: Counter = field(default_factory=Counter)
    warned: Counter = field(default_factory=Counter, repr=False)  # warnings given, per capped kind

    def text(self) -> str:
        lines = [
            f"{self.records} records, {self.scored_records} with SpliceAI scores, {self.entries} entries"
            + (f"; {self.dropped} lines dropped" if self.dropped else "")
        ]
        lines += [f"  skipped ({n}): {reason}" for reason, n in sorted(self.skips.items())]
        return "\n".join(lines)


@dataclass
class _Slot:
    alt: str
    gene: str
    task: int | None  # index into the chunk's tasks; None = '.' entry


def _field(get: Callable[[], object], default: str = ".") -> str:
    try:
        value = get()
    except (TypeError, ValueError):
        return default
    return default if value is None else str(value)


def _plan_record(
    rec, line: int, genome: Genome, annotation: Annotation, flank: int, config: ScoreConfig, tasks: list, skips: list
) -> list[_Slot]:
    try:
        chrom, pos, ref, n_alts = rec.chrom, rec.pos, rec.ref, len(rec.alts)
    except (TypeError, ValueError):  # no ALT (alts None), or text htslib reads but Python cannot decode
        where = (_field(lambda: rec.chrom), _field(lambda: rec.pos), _field(lambda: rec.ref), ".", "")
        skips.append(Skip(*where, SkipReason.BAD_INPUT, line))
        return []
    rows = annotation.overlapping(chrom, pos)
    if not rows:
        skips.append(Skip(chrom, pos, ref, ",".join(rec.alts), "", SkipReason.NO_GENE, line))
        return []
    fasta_chrom, reason = check_record(genome, chrom, pos, ref, flank, config.distance)
    if reason:
        skips.append(Skip(chrom, pos, ref, ",".join(rec.alts), "", reason, line))
        return []
    genes = [gene_info(annotation, r) for r in rows]
    slots: list[_Slot] = []
    for j in range(n_alts):
        alt = rec.alts[j]
        for g in genes:
            kind, why = classify_allele(ref, alt)
            if kind == "skip":
                skips.append(Skip(chrom, pos, ref, alt, g.name, why, line))
            elif kind == "dots":
                skips.append(Skip(chrom, pos, ref, alt, g.name, why, line))
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
    records: Sequence,
    genome: Genome,
    annotation: Annotation,
    backend,
    config: ScoreConfig,
    progress=None,
    lines: Sequence[int] | None = None,
) -> tuple[list[list[str]], list[Skip]]:
    """INFO/SpliceAI entries per record (empty list = no field) and every skip with its reason.

    ``lines``: each record's line number in the input, given to its skips.
    """
    numbers = list(lines) if lines is not None else [0] * len(records)
    tasks: list[AlleleTask] = []
    skips: list[Skip] = []
    plans = [
        _plan_record(r, n, genome, annotation, backend.flank, config, tasks, skips) for r, n in zip(records, numbers)
    ]
    results: list[AlleleResult] = score_tasks(tasks, genome, backend, config, progress=progress) if tasks else []
    out: list[list[str]] = []
    for rec, slots, n in zip(records, plans, numbers):
        entries = []
        for s in slots:
            res = results[s.task] if s.task is not None else None
            if res is not None and not res.scored:
                skips.append(Skip(rec.chrom, rec.pos, rec.ref, s.alt, s.gene, res.skip_reason, n))
                continue
            entries.append(format_entry(s.alt, s.gene, res))
        out.append(entries)
    return out, skips


def score_isolated(
    records: Sequence, lines: Sequence[int], genome, annotation, backend, config, progress=None
) -> tuple[list[list[str]], list[Skip]]:
    """:func:`score_records`, where an error scoring one record costs that record only
    (:func:`metasplice.base_models.cli_io.isolate_failures`): it gets no entries and a
    ``scoring failed`` skip."""

    def score(items):
        recs = [r for r, _ in items]
        return score_records(recs, genome, annotation, backend, config, progress=progress, lines=[n for _, n in items])

    def failed(item, exc):
        rec, n = item
        where = (_field(lambda: rec.chrom), _field(lambda: rec.pos), _field(lambda: rec.ref))
        return [[]], [Skip(*where, ".", "", f"{SCORING_FAILED}: {type(exc).__name__}: {exc}", n)]

    entries: list[list[str]] = []
    skips: list[Skip] = []
    for e, s in isolate_failures(list(zip(records, lines)), score, failed):
        entries += e
        skips += s
    return entries, skips


# --------------------------------------------------------------------------------------------
# htslib's reading and writing of a chunk, as the official CLI's pysam does it


class _Hts:
    """The input's header through htslib, and chunks of lines parsed and written by pysam.

    Each chunk's good lines are written to a small VCF (the input's header, then the lines) in a
    temporary folder and read with pysam, whose header gets the SpliceAI INFO line as the official
    CLI adds it; htslib reads on past a record it cannot parse, and each record read is checked
    against its line (CHROM, POS), so every record keeps its line number. The records are then
    written by a pysam writer with that header (as the official CLI writes them) and its text is
    read back, one line per record written.
    """

    def __init__(self, header: list[str], folder: str, loud: bool = True) -> None:
        self.header_text = "\n".join(header) + "\n"
        self.folder = folder
        self._n = 0
        self._loud = loud  # htslib's warnings about the header: with the first reader only
        reader = self._reader([])
        try:
            self.output_header, _ = self._written(reader, [])
        finally:
            reader.close()

    def _path(self, what: str) -> str:
        self._n += 1
        return os.path.join(self.folder, f"{what}{self._n}.vcf")

    def _reader(self, texts: Sequence[str]) -> pysam.VariantFile:
        path = self._path("in")
        with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
            fh.write(self.header_text)
            fh.writelines(t + "\n" for t in texts)
        verbosity = None if self._loud else pysam.set_verbosity(0)
        self._loud = False
        try:
            vcf = pysam.VariantFile(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"htslib cannot read the VCF header ({exc})") from exc
        finally:
            if verbosity is not None:
                pysam.set_verbosity(verbosity)
            os.unlink(path)
        vcf.header.add_line(INFO_HEADER)
        return vcf

    def parse(self, lines: Sequence[LineRecord]) -> tuple[list, list[pysam.VariantFile]]:
        """Per line (its pysam record, the index of its reader) or the reason htslib could not read it;
        and the readers (to close when the chunk is done)."""
        readers: list[pysam.VariantFile] = []
        out: list = []
        k = 0
        while k < len(lines):
            readers.append(self._reader([r.text for r in lines[k:]]))
            records = iter(readers[-1])
            while k < len(lines):
                try:
                    rec = next(records)
                except StopIteration:
                    break
                except (OSError, ValueError) as exc:
                    out.append(_unreadable(exc))
                    k += 1
                    continue
                if not _same(rec, lines[k]):
                    break
                out.append((rec, len(readers) - 1))
                k += 1
            if k < len(lines):  # htslib read these lines otherwise: line k alone, then the rest afresh
                readers.append(self._reader([lines[k].text]))
                try:
                    out.append((next(iter(readers[-1])), len(readers) - 1))
                except (OSError, ValueError, StopIteration) as exc:
                    out.append(_unreadable(exc))
                k += 1
        return out, readers

    def write(self, readers: Sequence[pysam.VariantFile], items: Sequence[tuple]) -> list[str | BaseException]:
        """Per (record, reader index) the line the official CLI's writer gives it (without newline), or
        the writer's error. Each record is written with its own reader's header (their IDs)."""
        results: list = []
        for r, group in itertools.groupby(items, key=lambda item: item[1]):
            results += self._written(readers[r], [rec for rec, _ in group])[1]
        return results

    def _written(self, reader: pysam.VariantFile, records: Sequence) -> tuple[list[str], list]:
        """The header and per record the line (or the error) of a pysam writer with ``reader``'s header."""
        path = self._path("out")
        results: list = []
        try:
            with pysam.VariantFile(path, "w", header=reader.header) as out:
                for rec in records:
                    try:
                        out.write(rec)
                        results.append(None)
                    except (OSError, ValueError) as exc:  # nothing of the record is written
                        results.append(exc)
            with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
                text = [line.rstrip("\n") for line in fh]
        finally:
            Path(path).unlink(missing_ok=True)
        header = [t for t in text if t.startswith("#")]
        body = iter(t for t in text if not t.startswith("#"))
        return header, [next(body) if r is None else r for r in results]


def _unreadable(exc: BaseException) -> str:
    detail = str(exc)
    generic = ("", "truncated file", "unable to parse next record")  # pysam's words for any parse error
    return f"{UNREADABLE}: htslib cannot parse it" + ("" if detail in generic else f" ({detail})")


def check_header(source: VcfInput) -> None:
    """htslib (as the official CLI) reads the input's header; a ValueError naming the file if not."""
    with tempfile.TemporaryDirectory(prefix="metasplice-spliceai-") as folder:
        try:
            _Hts(source.header, folder)
        except ValueError as exc:
            raise ValueError(f"{source.path}: {exc}") from exc
    source.checked = True


def _same(rec: pysam.VariantRecord, line: LineRecord) -> bool:
    """Whether htslib's record is this line's (a False only costs time: the lines are read one by one)."""
    try:
        return rec.pos == line.pos and rec.chrom == line.chrom and rec.ref == (line.ref or ".")
    except ValueError:  # text that is not UTF-8
        return False


def _symbolic(rec: pysam.VariantRecord) -> bool:
    try:
        return any(a.startswith("<") for a in rec.alts or ())
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# the whole file


END_HEADER = '##INFO=<ID=END,Number=1,Type=Integer,Description="Stop position of the interval">'


class _Writer:
    """The output's text lines: plain, bgzip or stdout; for BCF, a VCF in the temporary folder that
    :meth:`close` converts (see :func:`_vcf_to_bcf`)."""

    def __init__(self, path: str, files: AtomicFiles, hts: _Hts) -> None:
        self.stdout = path in STDOUT
        self.bcf = files.temp(path) if path.endswith(".bcf") else None
        self.text = os.path.join(hts.folder, "output.vcf") if self.bcf else None
        self.out = open(self.text, "wb") if self.text else open_output(path, files)
        for line in hts.output_header:
            self.out.write(encode_line(line))

    def line(self, text: str) -> None:
        self.out.write(encode_line(text))

    def close(self, complete: bool = True) -> None:
        if self.stdout:
            self.out.flush()
            return
        self.out.close()
        if self.bcf and complete:
            _vcf_to_bcf(self.text, self.bcf)


def _vcf_to_bcf(text_path: str, bcf_path: str) -> None:
    """The VCF written as BCF. BCF needs every contig and key declared: a first pass collects what
    htslib declares for undeclared ones (and END for a symbolic allele without it), the second writes
    the records under that header (records the official CLI can write are unchanged by it)."""
    verbosity = pysam.set_verbosity(0)  # its warnings were given when the input was read
    try:
        with pysam.VariantFile(text_path) as first:
            symbolic = False
            for rec in first:
                symbolic = symbolic or _symbolic(rec)
            header = str(first.header).rstrip("\n").split("\n")
            if symbolic and "END" not in first.header.info:
                header.insert(len(header) - 1, END_HEADER)
        full = text_path + ".declared.vcf"
        with open(text_path, "rb") as src, open(full, "wb") as dst:
            dst.write(("\n".join(header) + "\n").encode())
            dst.writelines(line for line in src if not line.startswith(b"#"))
        with pysam.VariantFile(full) as vcf, pysam.VariantFile(bcf_path, "wb", header=vcf.header) as out:
            for rec in vcf:
                out.write(rec)
    finally:
        pysam.set_verbosity(verbosity)


def annotate_vcf(
    input_path: str | VcfInput,
    output_path: str,
    genome: Genome,
    annotation: Annotation,
    backend,
    config: ScoreConfig,
    chunk_size: int = 2000,
    progress: bool = True,
    skipped_path: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> Summary:
    """Write ``input_path`` to ``output_path`` with INFO/SpliceAI added ('-' = stdin / stdout).

    ``input_path`` may be a path or a :class:`~metasplice.base_models.records.VcfInput` opened
    (and its header checked) before the models were loaded. The outputs are written to temporary
    files next to them and renamed when complete; on any error or interruption they are removed.
    ``warn`` gets every warning line (default: stderr).
    """
    from tqdm import tqdm

    if chunk_size < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk_size}")
    source = input_path if isinstance(input_path, VcfInput) else open_vcf(input_path)
    summary = Summary()
    try:
        with tempfile.TemporaryDirectory(prefix="metasplice-spliceai-") as folder, AtomicFiles() as files:
            hts = _Hts(source.header, folder, loud=not source.checked)
            report = files.text(skipped_path) if skipped_path else None
            if report:
                report.write("\t".join(SKIPPED_COLUMNS) + "\n")
            writer = _Writer(output_path, files, hts)  # registered last: renamed last
            bar = tqdm(unit=" alleles", disable=not progress, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
            say = warn or (lambda text: bar.write(text, file=sys.stderr))
            complete = False
            try:
                for chunk in source.chunks(chunk_size):
                    _annotate_chunk(chunk, hts, writer, genome, annotation, backend, config, bar, say, report, summary)
                if source.ending_note():
                    say(source.ending_note())
                complete = True
            finally:
                bar.close()
                writer.close(complete)
                if report:
                    report.close()
    finally:
        source.close()
    return summary


def _annotate_chunk(chunk, hts, writer, genome, annotation, backend, config, bar, say, report, summary) -> None:
    """Parse, score and write one chunk of (line number, text); every problem reported with its line."""
    skips: list[Skip] = []
    lines: list[LineRecord] = []
    for number, text in chunk:
        rec, why = parse_line(number, text)
        if why:
            f = text.split("\t")
            skips.append(Skip(*(f[i] if len(f) > i else "" for i in (0, 1, 3, 4)), "", why, number))
        else:
            lines.append(rec)
    parsed, readers = hts.parse(lines)
    try:
        kept = [(line, item) for line, item in zip(lines, parsed) if not isinstance(item, str)]
        skips += [
            Skip(line.chrom, line.pos, line.ref, line.fields[4], "", item, line.line)
            for line, item in zip(lines, parsed)
            if isinstance(item, str)
        ]
        records = [rec for _, (rec, _) in kept]
        entries_per_record, scored_skips = score_isolated(
            records, [line.line for line, _ in kept], genome, annotation, backend, config, progress=bar.update
        )
        skips += scored_skips
        for rec, entries in zip(records, entries_per_record):
            if entries:
                rec.info["SpliceAI"] = entries
        end_declared = ["END" in r.header.info for r in readers]  # before writing: pysam's writer may add it
        outcomes = hts.write(readers, [item for _, item in kept])  # the official CLI's line, or its error
        out: dict[int, str] = {}
        for (line, (rec, r)), entries, outcome in zip(kept, entries_per_record, outcomes):
            if isinstance(outcome, BaseException):  # the official CLI dies here: the line as read
                why = (
                    "a symbolic ALT without an END declared in the header"
                    if _symbolic(rec) and not end_declared[r]
                    else UNDECLARED
                )
                outcome = with_info(line.fields, "SpliceAI", entries) if entries else line.text
                reason = AS_READ + (", with its SpliceAI scores" if entries else "") + f": {why}"
                skips.append(Skip(line.chrom, line.pos, line.ref, line.fields[4], "", reason, line.line))
            out[line.line] = outcome
            summary.records += 1
            summary.scored_records += bool(entries)
            summary.entries += len(entries)
        for number, _ in chunk:
            if number in out:
                writer.line(out[number])
        summary.dropped += len(chunk) - len(out)
    finally:
        for r in readers:
            r.close()
    for s in sorted(skips, key=lambda s: s.line):
        summary.skips[s.reason.split(":")[0]] += 1
        message = _warning(s, summary)
        if message:
            say(message)
        if report:
            report.write(s.row() + "\n")


def _warning(s: Skip, summary: Summary) -> str | None:
    """The stderr line of a skip: the official CLI's warnings and every line this command handles
    where the official CLI dies, with ``[Line n]`` (None: not warned about, as the official CLI)."""
    key = s.reason.split(":")[0]
    where = f"{s.chrom}:{s.pos} {short(s.ref)}>{short(s.alt)}"
    if key.startswith(_WARNED):
        return line_message(s.line, f"WARNING: skipping {where} ({s.reason})")
    if key in (DROPPED, UNREADABLE):
        return line_message(s.line, f"WARNING: line dropped ({s.reason})")
    if not key.startswith((AS_READ, SCORING_FAILED)):
        return None
    if s.reason.endswith(UNDECLARED):  # a header without ##contig lines makes every record one: capped
        summary.warned[UNDECLARED] += 1
        if summary.warned[UNDECLARED] > MAX_UNDECLARED + 1:
            return None
        if summary.warned[UNDECLARED] == MAX_UNDECLARED + 1:
            return f"WARNING: further records written as read ({UNDECLARED}) are listed in --skipped only"
    return line_message(s.line, f"WARNING: {where} {s.reason}")
