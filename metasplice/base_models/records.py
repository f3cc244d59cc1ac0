"""VCF text read line by line with its line numbers: plain, gzip or bgzip files, BCF and stdin.

Every data line becomes a :class:`LineRecord` (or a dropped one with the reason), so that one bad
line costs that line only, and every message can name the line: ``[Line n] ...``, where n counts
every line of the file (header lines too) and lines end at ``\\n`` only. A BCF file is read as the
VCF text htslib writes for it (its header, then one line per record).
"""

from __future__ import annotations

import gzip
import io
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_INTEGER = re.compile(r"[0-9]+")
_BINARY = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters other than tab (a trailing \r is stripped)


def line_message(number: int, text: str) -> str:
    """A report about one input line, in the form every command line prints it."""
    return f"[Line {number}] {text}"


def open_text(path: str) -> IO[str]:
    """A text stream of a plain, gzip or bgzip file ('-': stdin); bytes that are not UTF-8 survive."""
    if path == "-":
        raw = sys.stdin.buffer
        binary: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == b"\x1f\x8b" else raw
        return io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="\n")
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    binary = gzip.open(path, "rb") if compressed else open(path, "rb")
    return io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="\n")


def numbered_lines(stream: Iterable[str], path: str, first: int) -> Iterator[tuple[int, str]]:
    """(line number, text without the line break); a file that cannot be read on is a ValueError."""
    number = first - 1
    try:
        for number, raw in enumerate(stream, start=first):
            yield number, raw.rstrip("\r\n")
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise ValueError(f"{path}: cannot read past line {number} ({exc}); is the file complete?") from exc


def read_header(stream: Iterable[str], path: str) -> tuple[list[str], int]:
    """Header lines (without newlines, ending with ``#CHROM``) and the number of lines read."""
    lines: list[str] = []
    for number, text in numbered_lines(stream, path, 1):
        if text.startswith("##"):
            lines.append(text)
            continue
        if text.startswith("#CHROM"):
            if len(text.split("\t")) < 8:
                raise ValueError(f"{path}, line {number}: the #CHROM line has fewer than 8 tab-separated columns")
            lines.append(text)
            return lines, number
        if text.startswith("#"):
            raise ValueError(f"{path}, line {number}: expected a '##' meta line or the '#CHROM' header line")
        raise ValueError(f"{path}, line {number}: no #CHROM header line before the first record; is it a VCF?")
    raise ValueError(f"{path}: no #CHROM header line; is it a VCF?")


def _is_bcf(path: str) -> bool:
    with open(path, "rb") as fh:
        start = fh.read(2)
    if start != b"\x1f\x8b":
        return False
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(3) == b"BCF"
    except (OSError, EOFError):
        return False


def _bcf_lines(path: str) -> Iterator[str]:
    """The VCF text of a BCF file, line by line (read with pysam)."""
    import pysam

    with pysam.VariantFile(path) as vcf:
        yield from str(vcf.header).splitlines(keepends=True)
        for rec in vcf:
            yield str(rec)


class VcfInput:
    """A VCF opened for reading: its header (read and checked), then its data lines in chunks."""

    def __init__(self, path: str, stream: Iterable[str], header: list[str], n_header: int, closer=None) -> None:
        self.path, self.stream, self.header, self.n_header = path, stream, header, n_header
        self.checked = False  # a command line's own checks of the header have passed (and warned)
        self.unterminated: int | None = None
        self._closer = closer

    def chunks(self, size: int) -> Iterator[list[tuple[int, str]]]:
        """The data lines as lists of (line number, text), each holding ``size`` records.

        Lines that are not records (see :func:`parse_line`) come in the chunk where they stand and
        do not count, so a damaged line never changes which records are scored together: the
        records of a file with damaged lines are chunked as those of the file without them. (A
        chunk also ends after ``max(4 * size, 10000)`` lines, so that memory stays bounded in a
        file of damaged lines.) When the last line has no line break (the file may have been cut
        short), its number is :attr:`unterminated` once the chunks are read, and
        :meth:`ending_note` says so.
        """
        longest = max(4 * size, 10_000)
        chunk: list[tuple[int, str]] = []
        records = 0
        for number, text in numbered_lines(self._watched(), self.path, self.n_header + 1):
            chunk.append((number, text))
            records += not parse_line(number, text)[1]
            if records >= size or len(chunk) >= longest:
                yield chunk
                chunk, records = [], 0
        if chunk:
            yield chunk

    def _watched(self) -> Iterator[str]:
        number = self.n_header
        raw = "\n"
        for raw in self.stream:
            number += 1
            yield raw
        if not raw.endswith("\n"):
            self.unterminated = number

    def ending_note(self) -> str | None:
        """A warning naming a last line without line break (read as a line all the same), or None."""
        if self.unterminated is None:
            return None
        return line_message(
            self.unterminated, "WARNING: the file ends inside this line (no line break after it); is the file complete?"
        )

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> VcfInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_vcf(path: str) -> VcfInput:
    """Open a VCF (plain, gzip, bgzip or BCF; '-' = stdin) and read its header.

    FileNotFoundError / ValueError name the file: call it before anything slow, so that a wrong
    input is reported at once.
    """
    if path != "-":
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"input VCF not found: {path}")
        try:
            bcf = _is_bcf(path)
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the input VCF ({exc.strerror or exc})") from exc
        if bcf:
            lines = _bcf_lines(path)
            try:
                header, n_header = read_header(lines, path)
            except ValueError:
                lines.close()
                raise
            return VcfInput(path, lines, header, n_header, lines.close)
    stream = open_text(path)
    try:
        header, n_header = read_header(stream, path)
    except ValueError:
        if path != "-":
            stream.close()
        raise
    return VcfInput(path, stream, header, n_header, stream.close if path != "-" else None)


def tsv_field(text: str) -> str:
    """``text`` as one field of a TSV row: tabs and line breaks become spaces, other control characters ``\\xNN``."""
    text = text.replace("\t", " ").replace("\n", " ")
    return _BINARY.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def short(text: str, n: int = 20) -> str:
    return text if len(text) <= n else f"{text[:n]}...({len(text)} nt)"


@dataclass
class Slot:
    """One (ALT, gene) of a record."""

    alt: str
    gene_row: int
    gene: str
    info_key: int | None = None  # chunk key of the SpliceAI entry (the allele as written)
    feature: int | None = None  # row of the chunk's feature table (the normalised allele)
    reason: str = ""  # allele-level skip


@dataclass
class LineRecord:
    """A data line and what becomes of it."""

    line: int
    text: str
    fields: list[str] | None = None  # None: not a record (dropped)
    chrom: str = ""
    pos: int = 0
    ref: str = ""
    alts: tuple[str, ...] = ()
    fasta: str = ""  # the FASTA's contig name
    reason: str = ""  # record-level skip
    slots: list[Slot] = field(default_factory=list)


def parse_line(number: int, text: str) -> tuple[LineRecord, str]:
    """The record of a data line, or (a dropped record, why).

    A line is dropped when it cannot be a VCF record: empty, a header line among the records,
    binary data (control characters other than tab), fewer than 8 tab-separated columns, or a POS
    that is not an integer.
    """
    rec = LineRecord(number, text)
    if not text.strip():
        return rec, "malformed line: empty line"
    if text.startswith("#"):
        return rec, "malformed line: a header line after the first record"
    binary = _BINARY.search(text)
    if binary:
        return rec, f"malformed line: binary data (byte 0x{ord(binary.group()):02x} at character {binary.start() + 1})"
    fields = text.split("\t")
    if len(fields) < 8:
        return rec, f"malformed line: {len(fields)} tab-separated column(s), a VCF record has at least 8"
    if not _INTEGER.fullmatch(fields[1]):
        return rec, f"malformed line: POS {short(fields[1])!r} is not an integer"
    rec.fields = fields
    rec.chrom, rec.pos, rec.ref = fields[0], int(fields[1]), fields[3]
    rec.alts = () if fields[4] in (".", "") else tuple(fields[4].split(","))
    return rec, ""


def with_info(fields: list[str], key: str, values: list[str]) -> str:
    """The line of ``fields`` with ``key=values`` appended to INFO (any earlier ``key`` replaced)."""
    info = fields[7]
    items = [i for i in ([] if info in (".", "") else info.split(";")) if i.split("=", 1)[0] != key]
    fields = list(fields)
    fields[7] = ";".join([*items, f"{key}={','.join(values)}"])
    return "\t".join(fields)
