"""Text forms of the report's numbers: estimates, intervals, p-values, durations, Markdown tables."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")  # what an experiment name (and so a sweep value) may hold
# the "set" column of the report tables: where a row was measured (test split or pooled CV folds)
TEST_SET, CV_SET = "test", "cv"
CV_SUFFIX = " (CV)"  # how summary.md and the figures show a cross-validated row's name


def shown_name(name: str, where: str) -> str:
    """A row's name as summary.md and the figures show it (the tables hold the name and its set)."""
    return f"{name}{CV_SUFFIX}" if where == CV_SET else name


def fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.{digits}f}"


def fmt_n(v: Any) -> str:
    """A count (tables turn integer columns with gaps into floats)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return str(int(round(float(v))))


def fmt_ci(row: Mapping, prefix: str) -> str:
    est = row.get(prefix)
    if est is None or (isinstance(est, float) and not math.isfinite(est)):
        return "–"
    return f"{fmt(est)} [{fmt(row.get(prefix + '_low'))}, {fmt(row.get(prefix + '_high'))}]"


def fmt_p(v: Any, n_boot: Any = None) -> str:
    """A p-value; a bootstrap p at its resolution floor 2/(B+1) is shown as an upper bound."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    text = f"{v:.2g}" if v >= 1e-3 else f"{v:.1e}"
    finite = n_boot is not None and not (isinstance(n_boot, float) and not math.isfinite(n_boot))
    if finite and v <= 2.0 / (float(n_boot) + 1.0) + 1e-12:
        return f"≤{text}"
    return text


def fmt_duration(s: Any) -> str:
    if s is None or (isinstance(s, float) and not math.isfinite(s)):
        return "–"
    s = float(s)
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def format_value(value: Any) -> str:
    """The name part of a sweep value (``1e-3`` -> ``"0.001"``, ``True`` -> ``"true"``).

    Raises ValueError for a value that cannot be part of an experiment name.
    """
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{value!r} is not a finite number")
        return np.format_float_positional(v, trim="0")
    if isinstance(value, str):
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"string {value!r} has characters outside [A-Za-z0-9_.-]")
        return value
    raise ValueError(f"{value!r} ({type(value).__name__}) is not a number, boolean or name-like string")
