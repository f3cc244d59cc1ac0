"""Gene annotation in the SpliceAI table format, gene assignment and splice-region classes.

The table is tab-separated with the header ``#NAME CHROM STRAND TX_START TX_END EXON_START EXON_END``;
TX_START and EXON_START are 0-based, TX_END and EXON_END 1-based inclusive, exon lists are
comma-separated with a trailing comma. In memory every coordinate is 1-based inclusive.

Difference from the SpliceAI CLI: the CLI drops the last comma-separated field of each exon list,
so a row written without the trailing comma silently loses its last exon. Here empty fields are
ignored and every listed exon is kept.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from metasplice.data.genome import normalise_chrom

COLUMNS = ("#NAME", "CHROM", "STRAND", "TX_START", "TX_END", "EXON_START", "EXON_END")
BUNDLED = ("grch37", "grch38")
REGIONS = ("exonic", "canonical", "splice_region", "intronic", "deep_intronic")
# most severe first: a variant spanning several classes takes the most severe one
_SEVERITY = {"canonical": 0, "splice_region": 1, "exonic": 2, "intronic": 3, "deep_intronic": 4}


@dataclass(frozen=True)
class RegionConfig:
    """Distances (nt) that split variants into region classes by the nearest splice site."""

    canonical: int = 2  # intronic bases 1..2 next to an exon (the GT / AG dinucleotides)
    splice_region_intron: int = 8  # intronic bases 3..8
    splice_region_exon: int = 3  # exonic bases 1..3 next to a splice site
    deep_intronic: int = 50  # intronic bases farther than this are deep intronic


def bundled_annotation_path(name: str) -> Path:
    """Path of the spliceai package's ``grch37``/``grch38`` table (the package is not imported)."""
    spec = importlib.util.find_spec("spliceai")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"annotation {name!r} means the table bundled with the spliceai package, which is not "
            "installed (`pip install spliceai==1.3.1`); or give the path of a SpliceAI-format table"
        )
    return Path(spec.submodule_search_locations[0]) / "annotations" / f"{name}.txt"


def _parse_exons(text: str, where: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError as exc:
        raise ValueError(f"{where}: exon list {text!r} is not a comma-separated list of integers") from exc


@dataclass
class Annotation:
    """Genes (one transcript each) in file order; coordinates 1-based inclusive."""

    genes: pd.DataFrame
    _by_chrom: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.genes = self.genes.reset_index(drop=True)
        keys = self.genes["chrom"].map(normalise_chrom).to_numpy()
        self._by_chrom = {c: np.flatnonzero(keys == c) for c in pd.unique(keys)}

    def rows_on(self, chrom: str) -> np.ndarray:
        """Row indices (file order) of genes on ``chrom`` (``chr`` prefix ignored)."""
        return self._by_chrom.get(normalise_chrom(chrom), np.empty(0, dtype=np.int64))

    def overlapping(self, chrom: str, pos: int) -> list[int]:
        """Rows whose transcript contains ``pos`` (tx_start <= pos <= tx_end), in file order."""
        rows = self.rows_on(chrom)
        g = self.genes
        hit = (g["tx_start"].to_numpy()[rows] <= pos) & (pos <= g["tx_end"].to_numpy()[rows])
        return [int(r) for r in rows[hit]]

    def boundaries(self, row: int) -> np.ndarray:
        """Sorted 1-based boundary set as the SpliceAI CLI uses it: exon first and last bases."""
        g = self.genes.iloc[row]
        return np.unique(np.array(g["exon_starts"] + g["exon_ends"], dtype=np.int64))

    def assign(self, chroms: np.ndarray, positions: np.ndarray, preferred: np.ndarray | None = None) -> np.ndarray:
        """One gene row per variant (-1 when no transcript contains it).

        Among overlapping genes the one named in ``preferred`` (e.g. the source's gene column) wins,
        otherwise the first in file order, as the SpliceAI CLI lists them.
        """
        chroms = np.asarray(chroms, dtype=object)
        positions = np.asarray(positions, dtype=np.int64)
        out = np.full(len(positions), -1, dtype=np.int64)
        starts = self.genes["tx_start"].to_numpy()
        ends = self.genes["tx_end"].to_numpy()
        names = self.genes["name"].to_numpy(dtype=object)
        keys = np.array([normalise_chrom(c) for c in chroms], dtype=object)
        for chrom in pd.unique(keys):
            rows = self._by_chrom.get(chrom)
            if rows is None or len(rows) == 0:
                continue
            idx = np.flatnonzero(keys == chrom)
            for chunk in np.array_split(idx, max(1, len(idx) // 4096)):
                p = positions[chunk][:, None]
                hit = (starts[rows][None, :] <= p) & (p <= ends[rows][None, :])
                if preferred is not None:
                    pref = np.asarray(preferred, dtype=object)[chunk][:, None] == names[rows][None, :]
                    score = hit.astype(np.int8) + (hit & pref)
                else:
                    score = hit.astype(np.int8)
                best = score.argmax(axis=1)  # first maximum = preferred name, else file order
                found = hit.any(axis=1)
                out[chunk[found]] = rows[best[found]]
        return out

    def boundary_offsets(self, rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Nearest boundary minus position (genome orientation), with the SpliceAI CLI's boundary
        set and tie rule (the lower coordinate wins); 0 for rows of -1."""
        rows = np.asarray(rows, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        offsets = np.zeros(len(rows), dtype=np.int64)
        for row in np.unique(rows[rows >= 0]):
            sel = np.flatnonzero(rows == row)
            bounds = self.boundaries(int(row))
            near = np.abs(bounds[None, :] - positions[sel][:, None]).argmin(axis=1)
            offsets[sel] = bounds[near] - positions[sel]
        return offsets

    def regions(
        self, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, cfg: RegionConfig = RegionConfig()
    ) -> np.ndarray:
        """Region class per variant from its first and last affected bases (1-based).

        The most severe class over the span is taken (canonical > splice_region > exonic > intronic >
        deep_intronic); distances count from the nearest internal splice site of the assigned gene.
        """
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.maximum(np.asarray(ends, dtype=np.int64), starts)
        severity = np.full(len(rows), len(_SEVERITY) - 1, dtype=np.int8)
        names = np.array(list(_SEVERITY), dtype=object)
        for row in np.unique(rows[rows >= 0]):
            sel = np.flatnonzero(rows == row)
            g = self.genes.iloc[row]
            ex_s = np.asarray(g["exon_starts"], dtype=np.int64)
            ex_e = np.asarray(g["exon_ends"], dtype=np.int64)
            span = int((ends[sel] - starts[sel]).max()) + 1
            sev = np.full(len(sel), len(_SEVERITY) - 1, dtype=np.int8)
            for k in range(span):
                valid = starts[sel] + k <= ends[sel]
                cls = _position_severity(starts[sel] + k, ex_s, ex_e, cfg)
                sev = np.where(valid, np.minimum(sev, cls), sev)
            severity[sel] = sev
        return names[severity]


def _position_severity(p: np.ndarray, ex_s: np.ndarray, ex_e: np.ndarray, cfg: RegionConfig) -> np.ndarray:
    """Severity index of single positions inside one transcript (exons sorted ascending)."""
    n = len(ex_s)
    i = np.clip(np.searchsorted(ex_s, p, side="right") - 1, 0, n - 1)
    in_exon = (p >= ex_s[i]) & (p <= ex_e[i])
    big = np.iinfo(np.int64).max // 4
    # exonic: distance (1-based) to an internal splice site at either exon edge
    left = np.where(i > 0, p - ex_s[i] + 1, big)
    right = np.where(i < n - 1, ex_e[i] - p + 1, big)
    exon_dist = np.minimum(left, right)
    # intronic: p lies between exon i and exon i + 1
    nxt = np.clip(i + 1, 0, n - 1)
    intron_dist = np.minimum(np.where(p > ex_e[i], p - ex_e[i], big), np.where(ex_s[nxt] > p, ex_s[nxt] - p, big))
    sev = np.where(
        in_exon,
        np.where(exon_dist <= cfg.splice_region_exon, _SEVERITY["splice_region"], _SEVERITY["exonic"]),
        np.select(
            [
                intron_dist <= cfg.canonical,
                intron_dist <= cfg.splice_region_intron,
                intron_dist <= cfg.deep_intronic,
            ],
            [_SEVERITY["canonical"], _SEVERITY["splice_region"], _SEVERITY["intronic"]],
            _SEVERITY["deep_intronic"],
        ),
    )
    return sev.astype(np.int8)


def read_annotation_table(path: str | Path) -> pd.DataFrame:
    """Parse a SpliceAI-format table into the in-memory (1-based) gene frame, with clear errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"gene annotation not found: {path}")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; a SpliceAI annotation table has the "
            f"tab-separated header {' '.join(COLUMNS)}"
        )
    records = []
    for i, row in enumerate(table.itertuples(index=False), start=2):
        where = f"{path}, line {i} ({row[0]})"
        values = dict(zip(table.columns, row))
        strand = values["STRAND"]
        if strand not in ("+", "-"):
            raise ValueError(f"{where}: STRAND must be '+' or '-', got {strand!r}")
        try:
            tx_start, tx_end = int(values["TX_START"]) + 1, int(values["TX_END"])
        except ValueError as exc:
            raise ValueError(f"{where}: TX_START/TX_END must be integers") from exc
        ex_s = _parse_exons(values["EXON_START"], where)
        ex_e = _parse_exons(values["EXON_END"], where)
        if len(ex_s) != len(ex_e) or not ex_s:
            raise ValueError(f"{where}: EXON_START and EXON_END list {len(ex_s)} and {len(ex_e)} exons")
        order = np.argsort(ex_s)
        starts = tuple(int(ex_s[j]) + 1 for j in order)
        ends = tuple(int(ex_e[j]) for j in order)
        if any(s > e for s, e in zip(starts, ends)) or tx_start > tx_end:
            raise ValueError(f"{where}: an interval ends before it starts")
        records.append((values["#NAME"], values["CHROM"], strand, tx_start, tx_end, starts, ends))
    genes = pd.DataFrame.from_records(
        records, columns=["name", "chrom", "strand", "tx_start", "tx_end", "exon_starts", "exon_ends"]
    )
    return genes.astype({"tx_start": np.int64, "tx_end": np.int64})


def load_annotation(source: str | Path) -> Annotation:
    """Load ``grch37``/``grch38`` (bundled with the spliceai package) or a SpliceAI-format table."""
    path = bundled_annotation_path(str(source)) if str(source) in BUNDLED else Path(source)
    return Annotation(read_annotation_table(path))


def write_annotation(genes: pd.DataFrame, path: str | Path) -> None:
    """Write a gene frame (1-based, as in :class:`Annotation`) in the SpliceAI table format."""

    def joined(values: tuple[int, ...], shift: int) -> str:
        return "".join(f"{v + shift}," for v in values)

    table = pd.DataFrame(
        {
            "#NAME": genes["name"],
            "CHROM": genes["chrom"],
            "STRAND": genes["strand"],
            "TX_START": genes["tx_start"].astype(np.int64) - 1,
            "TX_END": genes["tx_end"].astype(np.int64),
            "EXON_START": [joined(tuple(s), -1) for s in genes["exon_starts"]],
            "EXON_END": [joined(tuple(e), 0) for e in genes["exon_ends"]],
        }
    )
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    table.to_csv(tmp, sep="\t", index=False)
    tmp.replace(path)
