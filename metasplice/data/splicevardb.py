"""The SpliceVarDB export: its columns, its classes and how they are read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metasplice.data.fetch import splicevardb_instructions

REQUIRED_COLUMNS = ("variant_id", "hg19", "hg38", "gene", "hgvs", "method", "classification", "location", "doi")


UNLABELLED = "Unlabelled"  # a row of a labelled set whose value maps to no label: kept, never trained on or scored
CLASSES = ("Splice-altering", "Normal", "Low-frequency", "Conflicting", UNLABELLED)


_CLASS_ALIASES = {
    "splice-altering": "Splice-altering",
    "splice altering": "Splice-altering",
    "normal": "Normal",
    "low-frequency": "Low-frequency",
    "low frequency": "Low-frequency",
    "low-frequency splice-altering": "Low-frequency",
    "low frequency splice-altering": "Low-frequency",
    "conflicting": "Conflicting",
    "unlabelled": UNLABELLED,
}


POSITIVE, NEGATIVE = "Splice-altering", "Normal"
LABELS = {POSITIVE: 1, NEGATIVE: 0}  # every other class is label -1: never trained on nor scored


_COORD = r"^\s*(?:chr)?(?P<chrom>[A-Za-z0-9_.]+)-(?P<pos>\d+)-(?P<ref>[A-Za-z]+)-(?P<alt>[A-Za-z]+)\s*$"


def read_splicevardb(path: str | Path) -> pd.DataFrame:
    """Read a SpliceVarDB export (TSV); a missing column is an error that names it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"SpliceVarDB export not found: {path}.\n" + splicevardb_instructions("datasets.<dataset>.splicevardb")
        )
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except pd.errors.ParserError as err:
        raise pd.errors.ParserError(_ragged_message(path, err)) from err
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: missing SpliceVarDB column(s): {', '.join(missing)} "
            f"(expected columns: {', '.join(REQUIRED_COLUMNS)}; found: {', '.join(table.columns)})"
        )
    table.insert(0, "source_line", np.arange(2, len(table) + 2))
    return table


def _ragged_message(path: Path, err: Exception) -> str:
    """Why a SpliceVarDB export cannot be parsed: the first line with more fields than the header."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        n_header = handle.readline().count("\t") + 1
        ragged = [(i, line.count("\t") + 1) for i, line in enumerate(handle, start=2) if line.count("\t") >= n_header]
    if not ragged:
        return f"{path}: cannot be read as a tab-separated SpliceVarDB export: {err}"
    line, n_fields = ragged[0]
    return (
        f"{path}: line {line} has {n_fields} tab-separated fields but the header has {n_header} "
        f"({len(ragged)} such line(s)). A tab inside a field (HGVS, gene, method...) splits it; "
        "fix or remove the line(s), or export the table again, then rerun."
    )


def normalise_classification(values: pd.Series) -> pd.Series:
    """Map SpliceVarDB class spellings to :data:`CLASSES`; unknown spellings become NaN."""
    return values.str.strip().str.lower().map(_CLASS_ALIASES)


def parse_coordinates(values: pd.Series) -> pd.DataFrame:
    """Split ``CHROM-POS-REF-ALT`` strings; unparsable rows get NaN fields."""
    parts = values.str.extract(_COORD)
    parts["ref"] = parts["ref"].str.upper()
    parts["alt"] = parts["alt"].str.upper()
    return parts
