"""Reference and alternative sequence windows around variants, as uint8 tokens (A,C,G,T,N = 0..4).

Windows are cut per chromosome from a token array of the contig (or of the blocks of it that hold
variants); each window is a row of a strided view of that array, so no per-variant Python work is
done (indels included).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from metasplice.data.genome import N_TOKEN, Genome, encode, reverse_complement

REQUIRED_COLUMNS = ("chrom", "pos", "ref", "alt")


def check_context(context: int | str) -> int:
    """The window length as an int; it must be odd and positive so the variant has equal flanks."""
    value = context.strip() if isinstance(context, str) else context
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"context must be a positive integer, got {context!r}")
    context = int(value)
    if context % 2 == 0:
        raise ValueError(
            f"context must be odd so that the variant sits at index L//2 with equal flanks; "
            f"got {context} (use {context + 1})"
        )
    return context


@dataclass(frozen=True)
class SequencesConfig:
    """The ``sequences`` config section."""

    contexts: tuple[int, ...] = (401, 501, 1001, 2001)  # window lengths to extract (odd)
    strand_oriented: bool = True  # reverse-complement windows of minus-strand genes

    def __post_init__(self) -> None:
        object.__setattr__(self, "contexts", tuple(check_context(c) for c in self.contexts))

    @classmethod
    def from_dict(cls, values: Mapping | None) -> SequencesConfig:
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"sequences: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if "contexts" in values:
            values["contexts"] = tuple(values["contexts"])
        flag = values.get("strand_oriented", True)
        if isinstance(flag, str) and flag.strip().lower() in ("true", "false"):
            flag = flag.strip().lower() == "true"
        if not isinstance(flag, bool):
            raise ValueError(f"sequences.strand_oriented must be true or false, got {flag!r}")
        values["strand_oriented"] = flag
        return cls(**values)

    def targets(self, pattern: str = "results/sequences/ctx{ctx}.npz") -> list[str]:
        """The window files of every configured length."""
        return [pattern.format(ctx=c) for c in self.contexts]

    def rule_params(self, ctx: str | int) -> dict:
        """Params of the extract_sequences job for window length ``ctx`` (must be odd)."""
        return {"context": check_context(int(ctx)), "strand_oriented": bool(self.strand_oriented)}


def _variant_names(variants: pd.DataFrame, rows: np.ndarray) -> str:
    shown = []
    for r in rows[:5]:
        v = variants.iloc[int(r)]
        name = v["variant_id"] if "variant_id" in variants.columns else f"{v['chrom']}:{v['pos']}:{v['ref']}:{v['alt']}"
        shown.append(f"row {int(r)} ({name})")
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return ", ".join(shown) + more


def _alleles(values: pd.Series, column: str, variants: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated tokens of an allele column and each allele's length."""
    text = values.astype(str).str.upper()
    lengths = text.str.len().to_numpy(dtype=np.int64)
    bad = np.flatnonzero((lengths == 0) | ~text.str.fullmatch(r"[ACGTN]*").to_numpy(dtype=bool))
    if bad.size:
        raise ValueError(
            f"{column} must be a non-empty string of A, C, G, T, N: bad value(s) at {_variant_names(variants, bad)}"
        )
    return encode("".join(text.tolist())), lengths


def _window_rows(contig: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Token windows [len(starts), length] of ``contig`` from 0-based ``starts``; N beyond its ends."""
    size = contig.shape[0]
    out = np.empty((starts.shape[0], length), dtype=np.uint8)
    inside = (starts >= 0) & (starts + length <= size)
    if size >= length and inside.any():
        out[inside] = sliding_window_view(contig, length)[starts[inside]]
    edge = np.flatnonzero(~inside)
    if edge.size:
        idx = starts[edge, None] + np.arange(length, dtype=np.int64)[None, :]
        valid = (idx >= 0) & (idx < size)
        block = np.full(idx.shape, N_TOKEN, dtype=np.uint8)
        block[valid] = contig[idx[valid]]
        out[edge] = block
    return out


def _offsets(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For concatenated alleles: the row of each base and its index within its allele."""
    rows = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)
    first = np.cumsum(lengths) - lengths
    return rows, np.arange(rows.shape[0], dtype=np.int64) - first[rows]


def _blocks(
    rows: np.ndarray, first: np.ndarray, last: np.ndarray, size: int, gap: int
) -> list[tuple[np.ndarray, int, int]]:
    """Group variants whose needed intervals [first, last) lie within ``gap`` bases of each other into
    blocks read with one fetch; a block spanning most of the contig becomes the whole contig."""
    order = np.argsort(first, kind="stable")
    first, last, rows = first[order], last[order], rows[order]
    reach = np.maximum.accumulate(last)
    new = np.ones(first.shape[0], dtype=bool)
    new[1:] = first[1:] > reach[:-1] + gap
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], first.shape[0])
    blocks = [(rows[a:b], int(first[a]), int(reach[b - 1])) for a, b in zip(starts, ends)]
    if sum(hi - lo for _, lo, hi in blocks) > size // 2:
        return [(rows, 0, size)]
    return blocks


def extract_windows(
    variants: pd.DataFrame,
    genome: Genome,
    context: int,
    strand_oriented: bool = True,
    check_ref: bool = True,
    block_gap: int = 100_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and alternative windows of length ``L = context`` for every variant.

    ``variants`` has the columns chrom, pos (1-based position of the first REF base), ref, alt and,
    when ``strand_oriented``, strand ("+"/"-"). Returns ``(ref, alt)``, two C-contiguous uint8
    arrays [N, L] of tokens A,C,G,T,N = 0..4, row i belonging to row i of ``variants``.

    Convention (L must be odd; ``c = L // 2``; ``p = pos - 1`` the 0-based first REF base):

    * ref window, genome orientation: genome bases ``p - c .. p + c``, so index ``c`` is the first
      REF base and the flanks are equal.
    * alt window, genome orientation: the alt haplotype with the same anchor, i.e.
      ``genome[p - c : p] + ALT + genome[p + len(REF) :]`` cut to L. Index ``c`` is the first ALT
      base; the left flank equals the ref window's; after ALT the genome continues behind the REF
      allele, so a deletion pulls in more right flank and an insertion pushes it out. Nothing is
      truncated except at the window's own right end (an ALT longer than ``L - c`` bases is cut
      there). SNVs and MNVs are the ref window with the ALT bases written in.
    * Positions beyond a contig's ends are N (4), in both windows.
    * With ``strand_oriented`` and strand "-", both windows are replaced by their reverse
      complement as a whole (index j <-> L-1-j, A<->T, C<->G). Index ``c`` stays the centre and
      still holds the (complemented) first REF / first ALT base in genome order; the remaining
      REF/ALT bases of a multi-base allele then lie to the LEFT of the centre (indices c-1, c-2,
      ...), the transcript's upstream flank is on the left and its downstream flank on the right.
      Plus-strand rows (and every row when ``strand_oriented`` is false) stay in genome orientation.

    Each contig is read once as a token array when its variants cover most of it, otherwise in
    blocks (variants closer than ``block_gap`` bases share a block), so a sparse variant set on a
    3 Gb genome does not read the whole genome; the result is the same either way.

    With ``check_ref`` the REF alleles are compared with the genome and any mismatch is an error
    naming the variants. Unknown contigs and positions outside a contig are errors too.
    """
    length = check_context(context)
    centre = length // 2
    missing = [c for c in REQUIRED_COLUMNS + (("strand",) if strand_oriented else ()) if c not in variants.columns]
    if missing:
        raise ValueError(f"variants table lacks column(s) {', '.join(missing)}")
    n = len(variants)
    ref_out = np.empty((n, length), dtype=np.uint8)
    alt_out = np.empty((n, length), dtype=np.uint8)
    if n == 0:
        return ref_out, alt_out

    pos = pd.to_numeric(variants["pos"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(pos) | (pos < 1) | (pos != np.round(pos)))
    if bad.size:
        raise ValueError(f"pos must be a 1-based integer position: bad value(s) at {_variant_names(variants, bad)}")
    p0 = pos.astype(np.int64) - 1
    ref_tok, ref_len = _alleles(variants["ref"], "ref", variants)
    alt_tok, alt_len = _alleles(variants["alt"], "alt", variants)
    ref_first = np.cumsum(ref_len) - ref_len  # where each REF starts in ref_tok
    alt_rows, alt_off = _offsets(alt_len)
    shift = ref_len - alt_len  # the alt haplotype's right flank starts this far from the ref window's

    if strand_oriented:
        strand = variants["strand"].astype(str).to_numpy()
        bad = np.flatnonzero((strand != "+") & (strand != "-"))
        if bad.size:
            raise ValueError(
                f"strand must be '+' or '-' for strand-oriented windows: bad value(s) at "
                f"{_variant_names(variants, bad)} (or extract with strand_oriented=False)"
            )

    codes, chroms = pd.factorize(variants["chrom"].astype(str))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(chroms) + 1))
    for k, chrom in enumerate(chroms):
        rows = order[bounds[k] : bounds[k + 1]]
        name = genome.resolve(chrom)
        if name is None:
            raise ValueError(
                f"contig {chrom!r} is not in the reference {genome.path}: {_variant_names(variants, rows)}"
            )
        size = genome.lengths[name]
        outside = rows[p0[rows] + ref_len[rows] > size]
        if outside.size:
            raise ValueError(
                f"REF extends beyond the end of contig {name} (length {size}): {_variant_names(variants, outside)}"
            )
        # the bases each variant needs: both windows and the whole REF allele, clipped to the contig
        first = p0[rows] - centre + np.minimum(shift[rows], 0)
        last = np.maximum(p0[rows] - centre + np.maximum(shift[rows], 0) + length, p0[rows] + ref_len[rows])
        for block_rows, lo, hi in _blocks(rows, np.clip(first, 0, size), np.clip(last, 0, size), size, block_gap):
            tokens = genome.tokens(name) if (lo, hi) == (0, size) else encode(genome.fetch(name, lo, hi))
            if check_ref:
                which, off = _offsets(ref_len[block_rows])
                got = tokens[p0[block_rows][which] - lo + off]
                mismatch = got != ref_tok[ref_first[block_rows][which] + off]
                if mismatch.any():
                    wrong = np.unique(block_rows[which[mismatch]])
                    raise ValueError(
                        f"REF does not match the reference {genome.path} on {name}: {_variant_names(variants, wrong)}"
                    )
            # windows inside [lo, hi) are read from the block; beyond it lie only the contig's ends
            starts = p0[block_rows] - centre - lo
            ref_out[block_rows] = _window_rows(tokens, starts, length)
            indel = shift[block_rows] != 0
            if indel.any():
                alt_out[block_rows[indel]] = _window_rows(tokens, starts[indel] + shift[block_rows[indel]], length)

    same = shift == 0
    alt_out[same] = ref_out[same]
    alt_out[~same, :centre] = ref_out[~same, :centre]
    cols = centre + alt_off
    keep = cols < length
    alt_out[alt_rows[keep], cols[keep]] = alt_tok[keep]

    if strand_oriented:
        minus = np.flatnonzero(strand == "-")
        if minus.size:
            ref_out[minus] = reverse_complement(ref_out[minus])
            alt_out[minus] = reverse_complement(alt_out[minus])
    return ref_out, alt_out


def save_windows(
    path: str | os.PathLike,
    ref: np.ndarray,
    alt: np.ndarray,
    *,
    context: int,
    strand_oriented: bool,
    variant_ids: np.ndarray | list[str] | None = None,
) -> Path:
    """Write windows to an uncompressed ``.npz`` (keys ref, alt, context, strand_oriented and, when
    given, variant_id for checking row alignment), through a temporary file and ``os.replace``."""
    path = Path(path)
    if ref.shape != alt.shape or ref.ndim != 2 or ref.shape[1] != context:
        raise ValueError(f"ref {ref.shape} and alt {alt.shape} must both be [N, {context}]")
    arrays = {
        "ref": np.ascontiguousarray(ref, dtype=np.uint8),
        "alt": np.ascontiguousarray(alt, dtype=np.uint8),
        "context": np.int64(context),
        "strand_oriented": np.bool_(strand_oriented),
    }
    if variant_ids is not None:
        ids = np.asarray(variant_ids, dtype=str)
        if ids.shape != (ref.shape[0],):
            raise ValueError(f"{ids.shape[0]} variant ids for {ref.shape[0]} windows")
        arrays["variant_id"] = ids
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_windows(path: str | os.PathLike, context: int | None = None) -> dict[str, np.ndarray]:
    """Read a windows ``.npz`` as a dict (ref, alt, context, strand_oriented[, variant_id]);
    with ``context`` given, a file of another window length is an error."""
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    missing = [k for k in ("ref", "alt", "context", "strand_oriented") if k not in out]
    if missing:
        raise ValueError(f"{path}: not a windows file, missing key(s) {', '.join(missing)}")
    if context is not None and int(out["context"]) != context:
        raise ValueError(f"{path}: windows of length {int(out['context'])}, expected {context}")
    return out
