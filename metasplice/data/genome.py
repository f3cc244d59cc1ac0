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


class Genome:
    """A plain or bgzip-compressed FASTA with its index, read through pysam."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"reference FASTA not found: {self.path}")
        if not Path(f"{self.path}.fai").exists():
            raise FileNotFoundError(
                f"no index {self.path}.fai for the reference FASTA; build it with "
                f"`samtools faidx {self.path}` (or the fetch_genome rule)"
            )
        self._fasta = pysam.FastaFile(str(self.path))
        self.names: list[str] = list(self._fasta.references)
        self.lengths: dict[str, int] = dict(zip(self.names, self._fasta.lengths))
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
