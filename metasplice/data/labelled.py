"""A labelled variant set (a VCF with a label in an INFO key, or a TSV) as a SpliceVarDB-shaped table.

The table has the columns :func:`metasplice.data.variants.prepare_variants` reads (``source_line``,
``variant_id``, ``coordinate`` = ``CHROM-POS-REF-ALT``, ``classification`` and empty ``gene``,
``hgvs``, ``method``, ``location``, ``doi``), so a labelled set goes through the same
normalisation, REF check, de-duplication, conflict rules and rejected table as SpliceVarDB.

Labels: a value in ``positive`` is Splice-altering (label 1), one in ``negative`` Normal (label 0);
``1``/``true`` and ``0``/``false`` always (unless listed on the other side), the lists adding other
values (ClinVar's CLNSIG), so one config reads a 1/0 set and a CLNSIG set alike. Values are compared without case and surrounding
space; a value made of parts joined by ``/``, ``|`` or ``,`` (ClinVar's
``Pathogenic/Likely_pathogenic``) takes a label when every part has that label. Any other value, or
no value, makes the row Unlabelled: kept in variants.parquet (and scored by the base models) but
never trained on nor counted in a metric; with ``unlabelled: drop`` such rows are left out when the
set is read (counted in the log), which saves scoring them in a set that is mostly unlabelled. A multi-ALT VCF record gives one row per ALT, all with the
record's line number; a ``Number=A`` INFO value with one entry per ALT labels each ALT by its own.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metasplice.data.splicevardb import NEGATIVE, POSITIVE, UNLABELLED

DEFAULT_POSITIVE = ("1", "true")
DEFAULT_NEGATIVE = ("0", "false")
TSV_COLUMNS = ("chrom", "pos", "ref", "alt", "label")  # the label-config keys naming TSV columns (default: same)
_PARTS = re.compile(r"[/|,]")
_EMPTY_SOURCE_COLUMNS = ("gene", "hgvs", "method", "location", "doi")
log = logging.getLogger("metasplice.data.labelled")


@dataclass(frozen=True)
class LabelsConfig:
    """``datasets.<name>.labels``: where the labels are and which values mean what."""

    vcf: str = ""
    tsv: str = ""
    info_key: str = ""
    chrom: str = "chrom"
    pos: str = "pos"
    ref: str = "ref"
    alt: str = "alt"
    label: str = "label"
    id: str = ""  # TSV column with a variant identifier (default: the line number)
    positive: tuple[str, ...] = DEFAULT_POSITIVE
    negative: tuple[str, ...] = DEFAULT_NEGATIVE
    unlabelled: str = "keep"  # "keep": Unlabelled rows stay (scored, never trained on); "drop": left out

    def __post_init__(self) -> None:
        if self.unlabelled not in ("keep", "drop"):
            raise ValueError(f"labels: `unlabelled` is keep or drop, got {self.unlabelled!r}")
        if bool(self.vcf) == bool(self.tsv):
            raise ValueError("labels: give exactly one of `vcf` (a VCF with an INFO key) or `tsv` (a table)")
        if self.vcf and not self.info_key:
            raise ValueError(f"labels: `info_key` names the INFO key of {self.vcf} that holds the label")
        both = set(self.positive) & set(self.negative)
        if both:
            raise ValueError(f"labels: values {sorted(both)} are in both `positive` and `negative`")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LabelsConfig:
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"labels: unknown keys {unknown}; valid keys: {', '.join(sorted(known))}")
        given = {key: tuple(_normalise_value(v) for v in values.get(key) or ()) for key in ("positive", "negative")}
        # the lists add to 1/true and 0/false (a default value listed on the other side moves there)
        values["positive"] = given["positive"] + tuple(v for v in DEFAULT_POSITIVE if v not in given["negative"])
        values["negative"] = given["negative"] + tuple(v for v in DEFAULT_NEGATIVE if v not in given["positive"])
        return cls(**{k: str(v) if k not in ("positive", "negative") else v for k, v in values.items()})

    @property
    def path(self) -> str:
        return self.vcf or self.tsv


def _normalise_value(value: Any) -> str:
    """A label value as compared: text, stripped, lower case (YAML's true/1 become "true"/"1")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


def classify(values: Sequence[str | None], positive: Sequence[str], negative: Sequence[str]) -> np.ndarray:
    """Splice-altering / Normal / Unlabelled per value (see the module docstring)."""
    pos, neg = {_normalise_value(v) for v in positive}, {_normalise_value(v) for v in negative}
    out = np.full(len(values), UNLABELLED, dtype=object)
    for i, value in enumerate(values):
        if value is None:
            continue
        text = _normalise_value(value)
        parts = {p.strip() for p in _PARTS.split(text)} - {""} if text not in pos | neg else {text}
        if parts and parts <= pos:
            out[i] = POSITIVE
        elif parts and parts <= neg:
            out[i] = NEGATIVE
    return out


def _open_text(path: Path):
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8", errors="replace") if compressed else open(path, encoding="utf-8")


def _info_value(info: str, key: str) -> str | None:
    """The value of INFO key ``key`` (``None`` when absent; a flag gives ``"true"``)."""
    if info in ("", "."):
        return None
    for field in info.split(";"):
        name, sep, value = field.partition("=")
        if name == key:
            return value if sep else "true"
    return None


def _vcf_rows(path: Path, key: str) -> Iterator[tuple[int, str, str, str, str, str, str | None]]:
    """(line, id, chrom, pos, ref, alt, value) per ALT of every record; a line with fewer than 8
    fields is an error naming it."""
    with _open_text(path) as handle:
        seen_header = False
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if line.startswith("##") or not line:
                continue
            if line.startswith("#"):
                seen_header = True
                continue
            if not seen_header:
                raise ValueError(f"{path}: line {number}: a record before the #CHROM header line; is this a VCF?")
            fields = line.split("\t")
            if len(fields) < 8:
                raise ValueError(
                    f"{path}: line {number} has {len(fields)} tab-separated fields; a VCF record has at least 8 "
                    "(CHROM POS ID REF ALT QUAL FILTER INFO)"
                )
            chrom, pos, vid, ref, alts = fields[:5]
            alt_list = alts.split(",")
            value = _info_value(fields[7], key)
            per_alt = value.split(",") if value is not None and len(alt_list) > 1 else None
            if per_alt is not None and len(per_alt) != len(alt_list):
                per_alt = None
            for j, alt in enumerate(alt_list):
                yield number, vid, chrom, pos, ref, alt, per_alt[j] if per_alt is not None else value


def _shape(table: pd.DataFrame, values: Sequence[str | None], cfg: LabelsConfig) -> pd.DataFrame:
    """The SpliceVarDB-shaped table from source_line, variant_id, chrom, pos, ref, alt."""
    chrom = table["chrom"].astype(str).str.strip()
    pos = table["pos"].astype(str).str.strip()
    coordinate = (
        chrom + "-" + pos + "-" + table["ref"].astype(str).str.strip() + "-" + table["alt"].astype(str).str.strip()
    )
    out = pd.DataFrame(
        {
            "source_line": table["source_line"].to_numpy(np.int64),
            "variant_id": table["variant_id"].astype(str).to_numpy(),
            "coordinate": coordinate.to_numpy(),
            "classification": classify(values, cfg.positive, cfg.negative),
        }
    )
    for col in _EMPTY_SOURCE_COLUMNS:
        out[col] = ""
    return out


def read_labelled_vcf(path: str | Path, cfg: LabelsConfig) -> pd.DataFrame:
    """The SpliceVarDB-shaped table of a labelled VCF (plain or gzip/bgzip)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"labelled VCF not found: {path} (datasets.<dataset>.labels.vcf)")
    rows = list(_vcf_rows(path, cfg.info_key))
    table = pd.DataFrame(rows, columns=["source_line", "variant_id", "chrom", "pos", "ref", "alt", "value"])
    if table.empty:
        raise ValueError(f"{path}: no VCF records")
    ids = table["variant_id"].where(table["variant_id"] != ".", "line" + table["source_line"].astype(str))
    table["variant_id"] = ids
    n_with = int(table["value"].notna().sum())
    if n_with == 0:
        raise ValueError(
            f"{path}: no record has INFO key {cfg.info_key!r} (datasets.<dataset>.labels.info_key); "
            f"first record, line {table['source_line'].iat[0]}"
        )
    return _shape(table, table["value"].tolist(), cfg)


def read_labelled_tsv(path: str | Path, cfg: LabelsConfig) -> pd.DataFrame:
    """The SpliceVarDB-shaped table of a labelled TSV (a header line naming the columns)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"labelled TSV not found: {path} (datasets.<dataset>.labels.tsv)")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    table.columns = [c.strip() for c in table.columns]
    wanted = {key: getattr(cfg, key) for key in TSV_COLUMNS}
    if cfg.id:
        wanted["id"] = cfg.id
    missing = [f"{key}: {col!r}" for key, col in wanted.items() if col not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)} (datasets.<dataset>.labels names them); "
            f"found: {', '.join(table.columns)}"
        )
    lines = np.arange(2, len(table) + 2)
    shaped = pd.DataFrame(
        {
            "source_line": lines,
            "variant_id": table[cfg.id] if cfg.id else pd.Series([f"line{n}" for n in lines]),
            **{key: table[wanted[key]] for key in ("chrom", "pos", "ref", "alt")},
        }
    )
    values = [v if v.strip() not in ("", ".", "NA") else None for v in table[cfg.label]]
    return _shape(shaped, values, cfg)


def read_labels(cfg: LabelsConfig, path: str | Path | None = None) -> pd.DataFrame:
    """The SpliceVarDB-shaped table of ``cfg``'s VCF or TSV (``path`` overrides where it is read from)."""
    source = path if path is not None else cfg.path
    table = read_labelled_vcf(source, cfg) if cfg.vcf else read_labelled_tsv(source, cfg)
    if cfg.unlabelled == "drop":
        unlabelled = table["classification"] == UNLABELLED
        log.info("%s: left out %d Unlabelled row(s) (labels.unlabelled: drop)", source, int(unlabelled.sum()))
        table = table[~unlabelled].reset_index(drop=True)
    return table


def label_counts(table: pd.DataFrame) -> dict[str, int]:
    """Rows per class of a labelled table (for the log)."""
    return {str(k): int(v) for k, v in table["classification"].value_counts().items()}
