"""Glue between Snakemake's ``script:`` object and the package: logging to the rule's log file."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def code_digest(script: str | os.PathLike, package: str = "metasplice") -> str:
    """sha256 (first 16 hex digits) of a workflow script and of every ``package`` module it imports, directly or
    through other modules (imports inside functions included). A cached rule carries it in its params: Snakemake's
    cache key covers the script and the params but not the package, so without it a change of the code the rule
    runs would be served the old result from the cache."""
    digest = hashlib.sha256()
    for path in sorted(_imported_sources(Path(script), package)):
        digest.update(str(path.name).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _imported_sources(script: Path, package: str) -> set[Path]:
    """The script and the source files of the ``package`` modules it reaches by imports (found by path,
    nothing is imported)."""
    root = Path(importlib.util.find_spec(package).origin).parent
    seen: set[Path] = set()
    todo = [(script, "")]
    while todo:
        path, module = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: against this module's package
                    parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join(p for p in [*parts, base] if p)
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            parents = {".".join(n.split(".")[:k]) for n in names for k in range(1, n.count(".") + 1)}
            for name in [*names, *parents]:  # importing a module runs its parent packages' __init__ too
                if name == package or name.startswith(package + "."):
                    stem = root.joinpath(*name.split(".")[1:])
                    for candidate in (stem / "__init__.py", stem.with_suffix(".py")):
                        if candidate.is_file():
                            todo.append((candidate, name))
    return seen


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
