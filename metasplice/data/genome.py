"""Reference genome access and the uint8 token alphabet (A, C, G, T, N = 0..4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam

TOKENS = "ACGTN"
N_TOKEN = 4

_ENCODE = np.full(256, N_TOKEN, dtype=np.uint8)
for _i, _base in enumerate("ACGT"):
    _ENCODE[ord(_base)] = _i
    _ENCODE[ord(_base.lower())] = _i
_DECODE = np.frombuffer(TOKENS.encode(), dtype=np.uint8)
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)


def encode(seq: str | bytes) -> np.ndarray:
    """Tokens of a sequence; A/C/G/T in either case map to 0..3, every other letter to N (4)."""
    raw = seq.encode() if isinstance(seq, str) else seq
    return _ENCODE[np.frombuffer(raw, dtype=np.uint8)]


def decode(tokens: np.ndarray) -> str:
    """The upper-case ACGTN string of a 1-D token array."""
    return _DECODE[np.asarray(tokens, dtype=np.uint8)].tobytes().decode()


def reverse_complement(tokens: np.ndarray) -> np.ndarray:
    """Reverse complement along the last axis (A<->T, C<->G, N stays N)."""
    return _COMPLEMENT[np.asarray(tokens)[..., ::-1]]


def normalise_chrom(name: str) -> str:
    """Chromosome name without a leading ``chr`` prefix (only the prefix is removed)."""
    return name[3:] if name.startswith("chr") else name


BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _fai_rows(fai: Path) -> list[tuple[str, int, int, int, int]]:
    rows = []
    for number, line in enumerate(fai.read_text(errors="replace").splitlines(), start=1):
        f = line.split("\t")
        try:
            rows.append((f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4])))
        except (IndexError, ValueError):
            raise ValueError(f"line {number} is not a FASTA index line") from None
    return rows


def _plain_fasta_problem(path: Path, rows: list[tuple[str, int, int, int, int]]) -> str:
    """Where a plain FASTA differs from what its index says ('' when they agree)."""
    size = path.stat().st_size
    end = 0
    with open(path, "rb") as fh:
        for name, length, offset, line_bases, line_width in rows:
            if length == 0 or line_bases <= 0:
                continue
            last = offset + (length - 1) // line_bases * line_width + (length - 1) % line_bases
            if last >= size:
                return f"contig {name} should end at byte {last + 1} but the file has {size} bytes: it is truncated"
            fh.seek(offset - 1 if offset > 0 else 0)
            before = fh.read(1)
            fh.seek(last)
            final = fh.read(1)
            if (offset > 0 and before != b"\n") or final in (b"\n", b"\r", b">", b""):
                return f"the bases of contig {name} are not where the index says"
            end = max(end, last + 1)
        fh.seek(end)
        rest = fh.read(4097)
    if len(rest) > 4096 or rest.strip():
        return "the file goes on after the last indexed base"
    return ""


def check_fasta(path: str | Path) -> None:
    """The FASTA exists, has an index, and the index describes this file (not an older version of it).

    A plain FASTA is checked byte by byte where the index places each contig's first and last
    base, and that nothing follows the last one; a bgzip FASTA needs its .gzi and BGZF end-of-file
    block. Raises FileNotFoundError / ValueError with one line naming the file and the fix.
    """
    path = Path(path)
    fai = Path(f"{path}.fai")
    rebuild = f"rebuild the index with `samtools faidx {path}`"
    if not path.is_file():
        raise FileNotFoundError(f"reference FASTA not found: {path}")
    if not fai.exists():
        raise FileNotFoundError(
            f"no index {fai} for the reference FASTA; build it with `samtools faidx {path}` (or the fetch_genome rule)"
        )
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] == b"\x1f\x8b":
        if not (len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"):
            raise ValueError(
                f"{path} is gzip- but not bgzip-compressed, which cannot be indexed; recompress it: "
                f"`zcat {path} | bgzip > {path.with_suffix('.bgz')}` and `samtools faidx` the new file"
            )
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - len(BGZF_EOF)))
            if fh.read() != BGZF_EOF:
                raise ValueError(
                    f"{path} is truncated (no BGZF end-of-file block); restore the complete FASTA, then {rebuild}"
                )
        if not Path(f"{path}.gzi").exists():
            raise FileNotFoundError(f"no {path}.gzi for the bgzipped reference FASTA; {rebuild}")
        return
    try:
        problem = _plain_fasta_problem(path, _fai_rows(fai))
    except ValueError as exc:
        raise ValueError(f"{fai} cannot be read as a FASTA index ({exc}); {rebuild}") from None
    if problem:
        stale = " (the index is older than the FASTA)" if fai.stat().st_mtime < path.stat().st_mtime else ""
        raise ValueError(
            f"{path} does not match its index {fai}{stale}: {problem}; was the FASTA changed after indexing? "
            f"Restore it, or {rebuild}"
        )


class Genome:
    """A plain or bgzip-compressed FASTA with its index, read through pysam (checked by :func:`check_fasta`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        check_fasta(self.path)
        try:
            self._fasta = pysam.FastaFile(str(self.path))
        except (OSError, ValueError) as exc:
            raise ValueError(f"reference FASTA {self.path} cannot be opened ({exc})") from exc
        self.names: list[str] = list(self._fasta.references)
        self.lengths: dict[str, int] = dict(zip(self.names, self._fasta.lengths))
        if self.names:  # the last indexed base can be read (a bgzip file truncated at a block boundary)
            last = self.names[-1]
            try:
                ok = len(self._fasta.fetch(last, self.lengths[last] - 1, self.lengths[last])) == 1
            except (OSError, ValueError):
                ok = False
            if not ok:
                self._fasta.close()
                raise ValueError(
                    f"{self.path}: the last base of contig {last} cannot be read; the FASTA is truncated or does "
                    f"not match its index: restore it, or rebuild the index with `samtools faidx {self.path}`"
                )
        self._by_normalised = {normalise_chrom(n): n for n in self.names}
        self._cached: tuple[str, np.ndarray] | None = None

    def resolve(self, chrom: str) -> str | None:
        """The FASTA's name for ``chrom`` (``21`` and ``chr21`` match each other), or None."""
        if chrom in self.lengths:
            return chrom
        return self._by_normalised.get(normalise_chrom(chrom))

    def _name(self, chrom: str) -> str:
        name = self.resolve(chrom)
        if name is None:
            raise KeyError(f"contig {chrom!r} is not in {self.path} (contigs: {', '.join(self.names[:10])}...)")
        return name

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Upper-case bases of ``chrom`` over the 0-based half-open interval [start, end)."""
        name = self._name(chrom)
        if start < 0 or end > self.lengths[name] or start > end:
            raise ValueError(f"{chrom}:{start}-{end} is outside contig {name} (length {self.lengths[name]})")
        return self._fasta.fetch(name, start, end).upper()

    def tokens(self, chrom: str) -> np.ndarray:
        """The whole contig as uint8 tokens (the last contig read is cached)."""
        name = self._name(chrom)
        if self._cached is None or self._cached[0] != name:
            self._cached = (name, encode(self._fasta.fetch(name)))
        return self._cached[1]

    def windows(self, chrom: str, starts: np.ndarray, length: int) -> np.ndarray:
        """Token windows [n, length] starting at 0-based ``starts``; N beyond the contig ends."""
        contig = self.tokens(chrom)
        idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(length, dtype=np.int64)[None, :]
        inside = (idx >= 0) & (idx < contig.shape[0])
        out = np.full(idx.shape, N_TOKEN, dtype=np.uint8)
        out[inside] = contig[idx[inside]]
        return out

    def close(self) -> None:
        self._fasta.close()

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
