"""The digest of the package code a workflow script runs: the params of the cached rules carry it."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from metasplice.workflow import _imported_sources, code_digest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def package(tmp_path, monkeypatch):
    """pkgx: a imports b lazily (inside a function) and c.sub relatively; d is never imported."""
    root = tmp_path / "pkgx"
    (root / "c").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from .c import sub\n\ndef f():\n    from pkgx import b\n    return b.x\n",
        "b.py": "x = 1\n",
        "c/__init__.py": "",
        "c/sub.py": "import os\n",
        "d.py": "y = 2\n",
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    script = tmp_path / "script.py"
    script.write_text("from pkgx.a import f\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("pkgx", None)
    return root, script


def test_digest_follows_imports_and_only_them(package):
    root, script = package
    found = {p.relative_to(root.parent).as_posix() for p in _imported_sources(script.resolve(), "pkgx")}
    assert found == {"script.py", "pkgx/__init__.py", "pkgx/a.py", "pkgx/b.py", "pkgx/c/__init__.py", "pkgx/c/sub.py"}
    before = code_digest(script, "pkgx")
    (root / "d.py").write_text("y = 3\n")  # not imported: same digest
    assert code_digest(script, "pkgx") == before
    (root / "b.py").write_text("x = 2\n")  # imported inside a function of an imported module: new digest
    assert code_digest(script, "pkgx") != before


def test_scoring_digest_covers_the_engine_not_the_report():
    found = {p.name for p in _imported_sources(ROOT / "workflow_scripts" / "base_model_scores.py", "metasplice")}
    assert {"engine.py", "scoring.py", "table.py", "genome.py", "annotation.py"} <= found
    assert "report.py" not in found and "train.py" not in found
