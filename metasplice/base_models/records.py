"""VCF text read line by line with its line numbers: plain, gzip or bgzip files and stdin.

Every data line becomes a :class:`LineRecord` (or a dropped one with the reason), so that one bad
line costs that line only, and every message can name the line.
"""

from __future__ import annotations

import gzip
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

_INTEGER = re.compile(r"[0-9]+")


def open_text(path: str) -> IO[str]:
    """A text stream of a plain, gzip or bgzip file ('-': stdin); bytes that are not UTF-8 survive."""
    if path == "-":
        raw = sys.stdin.buffer
        binary: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == b"\x1f\x8b" else raw
        return io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    binary = gzip.open(path, "rb") if compressed else open(path, "rb")
    return io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")


def numbered_lines(stream: IO[str], path: str, first: int) -> Iterator[tuple[int, str]]:
    """(line number, text without the line break); a file that cannot be read on is a ValueError."""
    number = first - 1
    try:
        for number, raw in enumerate(stream, start=first):
            yield number, raw.rstrip("\r\n")
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise ValueError(f"{path}: cannot read past line {number} ({exc}); is the file complete?") from exc


def read_header(stream: IO[str], path: str) -> tuple[list[str], int]:
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
    """The record of a data line, or (a dropped record, why)."""
    rec = LineRecord(number, text)
    if not text.strip():
        return rec, "malformed line: empty line"
    if text.startswith("#"):
        return rec, "malformed line: a header line after the first record"
    fields = text.split("\t")
    if len(fields) < 8:
        return rec, f"malformed line: {len(fields)} tab-separated column(s), a VCF record has at least 8"
    if not _INTEGER.fullmatch(fields[1]):
        return rec, f"malformed line: POS {short(fields[1])!r} is not an integer"
    rec.fields = fields
    rec.chrom, rec.pos, rec.ref = fields[0], int(fields[1]), fields[3]
    rec.alts = () if fields[4] in (".", "") else tuple(fields[4].split(","))
    return rec, ""


def line_chunks(stream: IO[str], path: str, first_line: int, size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for number, text in numbered_lines(stream, path, first_line):
        chunk.append((number, text))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
