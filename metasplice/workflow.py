"""Glue between Snakemake's ``script:`` object and the package: logging to the rule's log file."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable


def setup_logging(log_path: str | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to ``log_path`` (when given) and stderr with timestamps; returns the package logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    return logging.getLogger("metasplice")


def run_logged(smk: Any, main: Callable[[Any], None]) -> None:
    """Run a rule's ``main(snakemake)`` with logging to its log file; errors are logged, then raised."""
    log = smk.log[0] if len(smk.log) else None
    logger = setup_logging(log)
    try:
        main(smk)
    except Exception:
        logger.exception("rule %s failed", getattr(smk, "rule", "?"))
        raise
