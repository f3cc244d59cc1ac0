"""Atomic file outputs: nothing half-written is ever left under a final name."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_tsv(table: pd.DataFrame, path: str | Path) -> None:
    """Write a tab-separated table atomically."""
    with atomic_output(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def write_parquet(table: pd.DataFrame, path: str | Path) -> None:
    """Write a parquet table atomically."""
    with atomic_output(path) as tmp:
        table.to_parquet(tmp, index=False)
