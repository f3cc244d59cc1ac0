"""metasplice.evaluation.report from small synthetic evaluation outputs, and the report rules of the workflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from metasplice.evaluation import evaluate as E
from metasplice.evaluation import metrics as M
from metasplice.evaluation.report import FIGURES, Entry, build_report

ROOT = Path(__file__).resolve().parents[1]
FAST = E.EvalConfig(bootstrap=M.BootstrapConfig(n=100, seed=0))
EXPERIMENTS = {"delta_small": "delta", "binary_small": "binary"}
PNG = b"\x89PNG\r\n\x1a\n"


def _variants(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.choice([1, 0, -1], n, p=[0.45, 0.45, 0.1]).astype(np.int8)
    return pd.DataFrame(
        {
            "variant_id": [f"chr1:{i}:A:G" for i in range(n)],
            "split": rng.choice(["train", "val", "test"], n, p=[0.4, 0.25, 0.35]),
            "label": label,
            "classification": np.where(label == 1, "Splice-altering", np.where(label == 0, "Normal", "Low-frequency")),
            "region": rng.choice(list(E.REGIONS), n),
            "variant_type": rng.choice(["snv", "insertion", "deletion"], n),
        }
    )


def write_synthetic_results(root: Path) -> dict:
    """results/eval/... and results/models/.../history.tsv as the pipeline lays them out."""
    rng = np.random.default_rng(1)
    variants = _variants()
    n = len(variants)
    sa = (variants["label"].to_numpy() == 1)[:, None]
    ds = np.clip(rng.beta(1, 8, (n, 4)) + 0.4 * sa * rng.random((n, 4)), 0, 1)
    scores = pd.DataFrame(ds, columns=list(E.DS_COLUMNS))
    for c in E.DS_COLUMNS:
        scores[f"target_{c}"] = np.where(sa[:, 0], scores[c], np.where(variants["label"] == 0, 0.0, np.nan))
    out = root / "results"
    pred = E.baseline_predictions(variants, scores)
    res = E.evaluate_predictions(pred, FAST, "spliceai", "baseline", extra={"kind": "baseline"})
    E.write_parquet(pred, out / "eval/baseline/spliceai/predictions.parquet")
    E.write_json(res, out / "eval/baseline/spliceai/metrics.json")
    reference = E.reference_table(variants, scores)
    rows = np.flatnonzero(variants["split"].isin(["val", "test"]))
    for i, (name, task) in enumerate(EXPERIMENTS.items()):
        prob = np.clip(ds[rows] + rng.normal(0, 0.05 * (i + 1), (len(rows), 4)), 0, 1)
        if task == "delta":
            p = E.model_predictions(variants, prob, rows, E.DS_COLUMNS, "delta", scores)
        else:
            p = E.model_predictions(variants, prob.max(axis=1, keepdims=True), rows, ("splice_altering",), "binary")
        r = E.evaluate_predictions(p, FAST, name, task, reference, "spliceai", {"kind": "experiment"})
        E.write_parquet(p, out / f"eval/{name}/predictions.parquet")
        E.write_json(r, out / f"eval/{name}/metrics.json")
        epochs = 4 + i
        hist = pd.DataFrame(
            {
                "epoch": np.arange(1, epochs + 1),
                "train_loss": np.linspace(0.7, 0.3, epochs),
                "val_loss": np.linspace(0.72, 0.4, epochs),
                "val_auroc": np.linspace(0.6, 0.8, epochs),
                "lr_model": 1e-3,
                "seconds": 1.5,
                "best": [False] * (epochs - 2) + [True, False],
            }
        )
        (out / f"models/{name}").mkdir(parents=True, exist_ok=True)
        hist.to_csv(out / f"models/{name}/history.tsv", sep="\t", index=False)
    return {"variants": variants, "scores": scores}


def _entries(root: Path) -> list[Entry]:
    r = root / "results"
    entries = [
        Entry(
            name,
            r / f"eval/{name}/metrics.json",
            r / f"eval/{name}/predictions.parquet",
            r / f"models/{name}/history.tsv",
        )
        for name in EXPERIMENTS
    ]
    return [
        *entries,
        Entry(
            "spliceai",
            r / "eval/baseline/spliceai/metrics.json",
            r / "eval/baseline/spliceai/predictions.parquet",
        ),
    ]


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000, path


def test_report_has_every_row_and_figures(tmp_path):
    write_synthetic_results(tmp_path)
    figures = {f: tmp_path / "report" / f"{f}.png" for f in FIGURES}
    summary = build_report(
        _entries(tmp_path),
        tmp_path / "report/summary.md",
        tmp_path / "report/summary.tsv",
        figures,
        tmp_path / "report/breakdowns.tsv",
        {"reference": "spliceai"},
    )
    table = pd.read_csv(tmp_path / "report/summary.tsv", sep="\t")
    assert list(table["experiment"]) == ["spliceai", *EXPERIMENTS]  # baseline row first
    assert len(summary) == 3
    for col in (
        "experiment",
        "task",
        "correlation",
        "roc_auc",
        "roc_auc_low",
        "roc_auc_high",
        "pr_auc",
        "pr_auc_low",
        "pr_auc_high",
        "stopped_epoch",
        "training_time_s",
        "n_test",
        "p_roc_auc_bootstrap",
    ):
        assert col in table.columns
    rows = table.set_index("experiment")
    assert rows.loc["delta_small", "stopped_epoch"] == 4 and rows.loc["binary_small", "stopped_epoch"] == 5
    assert rows.loc["delta_small", "best_epoch"] == 3
    assert rows.loc["delta_small", "training_time_s"] == pytest.approx(6.0)
    assert np.isfinite(rows.loc["delta_small", "correlation"]) and np.isnan(rows.loc["binary_small", "correlation"])
    assert np.isnan(rows.loc["spliceai", "p_roc_auc_bootstrap"])
    assert 0 < rows.loc["delta_small", "p_roc_auc_bootstrap"] <= 1
    assert (rows["roc_auc_low"] <= rows["roc_auc"]).all() and (rows["roc_auc"] <= rows["roc_auc_high"]).all()
    md = (tmp_path / "report/summary.md").read_text()
    for name in [*EXPERIMENTS, "spliceai"]:
        assert f"| {name} |" in md
    assert "## By region" in md and "deep_intronic" in md
    breakdowns = pd.read_csv(tmp_path / "report/breakdowns.tsv", sep="\t")
    assert set(breakdowns["breakdown"]) == {"region", "variant_type"}
    assert set(breakdowns["experiment"]) == set(table["experiment"])
    for f in FIGURES:
        _assert_png(figures[f])


def test_report_needs_rows(tmp_path):
    with pytest.raises(ValueError, match="nothing to report"):
        build_report([], tmp_path / "s.md", tmp_path / "s.tsv", {f: tmp_path / f"{f}.png" for f in FIGURES})


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(workdir / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _jobs(proc: subprocess.CompletedProcess) -> set[str]:
    """Rule names in the job-count table Snakemake prints before running."""
    text = proc.stdout + proc.stderr
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {line.split()[0] for line in table.splitlines()[3:] if line.strip()}


def test_tables_target_and_html_report(tmp_path):
    """`snakemake tables` rebuilds the report from existing evaluations only; `--report` makes the HTML."""
    write_synthetic_results(tmp_path)
    config = {
        "dataset": "demo",
        "sequences": {"contexts": [401]},
        "training": {"base": "spliceai", "gpu": 0},
        "experiments": {n: {"model": "gated_cnn", "task": t, "context": 401} for n, t in EXPERIMENTS.items()},
        "evaluation": {"bootstrap_n": 100, "seed": 0, "baselines": ["spliceai"]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\n'
        'wildcard_constraints:\n    base=r"[A-Za-z0-9_]+",\n    experiment=r"[A-Za-z0-9_.-]+",\n\n\n'
        'VARIANTS = "results/variants/variants.parquet"\n'
        "import metasplice.experiments.plan as msplan\n"
        "CONFIG = msplan.planned_config(config)\n\n\n"
        f'include: "{ROOT}/rules/evaluate.smk"\n\n\n'
        "rule all:\n    input:\n        rules.tables.input,\n    default_target: True\n"
    )
    # the report is missing, its inputs exist: only the report job runs (no evaluation, no training)
    proc = _snakemake(tmp_path, "tables", "--cores", "1")
    assert _jobs(proc) == {"report", "tables"}
    for f in FIGURES:
        _assert_png(tmp_path / f"results/report/figures/{f}.png")
    table = pd.read_csv(tmp_path / "results/report/summary.tsv", sep="\t")
    assert list(table["experiment"]) == ["spliceai", *EXPERIMENTS]
    _snakemake(tmp_path, "--report", "results/report.html")
    html = (tmp_path / "results/report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "summary" in html
