"""The workflow itself: lint, formatting, and the default target run end to end on the demo."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real workflow from this checkout with ``workdir`` as its working directory."""
    cmd = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """One full default run of the pipeline on the demo data (shared by the tests below)."""
    workdir = tmp_path_factory.mktemp("demo_run")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    snakemake(workdir, "--cores", "2")
    return workdir


def test_lint_is_clean(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_snakefmt_would_change_nothing():
    targets = [str(ROOT / "Snakefile"), str(ROOT / "rules")]
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *targets], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_demo_variants_table(demo_run):
    variants = pd.read_parquet(demo_run / "results/variants/variants.parquet")
    assert len(variants) >= 2000
    assert not variants.duplicated(["build", "chrom", "pos", "ref", "alt"]).any()
    assert set(variants["classification"]) == {"Splice-altering", "Normal", "Low-frequency", "Conflicting"}
    assert set(variants["strand"]) == {"+", "-"}
    test_chroms = set(variants.loc[variants["split"] == "test", "chrom"])
    assert test_chroms == {"chr21", "chr22"}
    assert set(variants.loc[variants["chrom"].isin(["chr21", "chr22"]), "split"]) == {"test"}
    assert {"train", "val"} <= set(variants["split"])
    # validation genes never appear in training
    assert not set(variants.loc[variants.split == "val", "gene"]) & set(variants.loc[variants.split == "train", "gene"])
    assert set(variants["region"]) >= {"exonic", "canonical", "splice_region", "intronic", "deep_intronic"}
    assert (variants["label"] == variants["classification"].map({"Splice-altering": 1, "Normal": 0}).fillna(-1)).all()


def test_demo_rejected_rows_have_reasons(demo_run):
    rejected = pd.read_csv(demo_run / "results/variants/rejected.tsv", sep="\t")
    reasons = " | ".join(rejected["reason"])
    for expected in ("does not match the reference", "is not in the reference FASTA", "malformed coordinate", "IUPAC"):
        assert expected in reasons
    summary = pd.read_csv(demo_run / "results/variants/summary.tsv", sep="\t").set_index("classification")
    assert summary.loc["all", "total"] == len(pd.read_parquet(demo_run / "results/variants/variants.parquet"))
    assert summary.loc["Conflicting", "total"] >= 1


def test_rerun_does_nothing(demo_run):
    proc = snakemake(demo_run, "--cores", "2", "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_demo_base_model_scores_are_row_aligned(demo_run):
    import numpy as np

    variants = pd.read_parquet(demo_run / "results/variants/variants.parquet")
    scores = pd.read_parquet(demo_run / "results/targets/spliceai/scores.parquet")
    deltas = np.load(demo_run / "results/targets/spliceai/deltas.npy")
    assert len(scores) == len(variants) and deltas.shape == (len(variants), 101, 3)
    assert scores["scored"].mean() > 0.95
    labelled = scores[variants["label"] == 0]
    assert (labelled["target_DS_AG"].dropna() == 0).all()  # Normal -> zero targets


def test_demo_trains_every_experiment_and_reports_them_with_the_baseline(demo_run):
    import yaml

    experiments = list(yaml.safe_load((ROOT / "config.yaml").read_text())["experiments"])
    for name in experiments:
        assert (demo_run / f"results/models/{name}/model.pt").stat().st_size > 0
        assert len(pd.read_csv(demo_run / f"results/models/{name}/history.tsv", sep="\t")) >= 1
        assert (demo_run / f"logs/train/{name}.log").exists()
    summary = pd.read_csv(demo_run / "results/report/summary.tsv", sep="\t")
    assert set(experiments) | {"spliceai (baseline)"} <= set(summary["experiment"])
    baseline = summary.set_index("experiment").loc["spliceai (baseline)"]
    assert 0.85 < baseline["roc_auc"] <= 1 and baseline["roc_auc_low"] < baseline["roc_auc"] < baseline["roc_auc_high"]
    assert summary["roc_auc_low"].notna().all() and summary["roc_auc_high"].notna().all()
    for figure in ("roc", "pr", "training", "scatter", "regions"):
        png = demo_run / f"results/report/figures/{figure}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
