"""The `.test/` scenarios, each run end to end as a user runs it:
``snakemake --cores 2 --configfile .test/<scenario>/config.yaml`` (deep-merged over config.yaml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / ".test"


def run_scenario(name: str, workdir: Path) -> Path:
    """Run the default target of scenario ``name`` with ``workdir`` as the working directory."""
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    configfile = SCENARIOS / name / "config.yaml"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--cores", "2", "--configfile", str(configfile)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return workdir


def summary(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / "results/report/summary.tsv", sep="\t").set_index("experiment")


def test_every_scenario_has_a_config_and_a_readme():
    names = sorted(p.name for p in SCENARIOS.iterdir() if p.is_dir())
    assert {"demo-small", "stacking"} <= set(names)
    for name in names:
        assert (SCENARIOS / name / "config.yaml").is_file(), name
        assert (SCENARIOS / name / "README.md").is_file(), name


@pytest.mark.slow
def test_demo_small_runs_the_whole_chain(tmp_path):
    workdir = run_scenario("demo-small", tmp_path)
    table = summary(workdir)
    assert list(table.index) == ["spliceai", "quick_test", "binary_quick", "cnn_ensemble", "stacked"]
    assert table.loc["cnn_ensemble", "kind"] == "ensemble"
    assert ((table["roc_auc_low"] <= table["roc_auc"]) & (table["roc_auc"] <= table["roc_auc_high"])).all()
    assert (table["roc_auc"] > 0.5).all()  # every row ranks better than chance on the test chromosomes
    assert table.loc["stacked", "roc_auc"] > 0.9
    # only the selected experiments (and the stacker's out-of-fold members) were trained
    trained = {p.name.split("__")[0] for p in (workdir / "results/models").iterdir()}
    assert trained == {"quick_test", "binary_quick", "stacked"}
    assert (workdir / "results/report/summary.md").read_text().count("| stacked |") >= 1
    variants = pd.read_parquet(workdir / "results/variants/variants.parquet")
    assert set(variants.loc[variants["split"] == "test", "chrom"]) == {"chr21", "chr22"}


@pytest.mark.slow
def test_stacking_scenario_has_both_base_models(tmp_path):
    workdir = run_scenario("stacking", tmp_path)
    table = summary(workdir)
    assert list(table.index) == ["spliceai", "pangolin", "stacked"]
    variants = pd.read_parquet(workdir / "results/variants/variants.parquet")
    scores = pd.read_parquet(workdir / "results/targets/pangolin/scores.parquet")
    deltas = np.load(workdir / "results/targets/pangolin/deltas.npy")
    assert len(scores) == len(variants) and deltas.shape[0] == len(variants)
    assert scores["scored"].mean() > 0.95
    tissues = [c for c in scores.columns if c.startswith("gain_") and c != "gain_pos"]
    assert len(tissues) == 4  # heart, liver, brain, testis
    scored = scores[scores["scored"]]
    np.testing.assert_allclose(scored["score"], np.maximum(scored["gain"], -scored["loss"]), atol=1e-6)
    # the stacker learned from both base models' features
    import json

    model_dir = workdir / "results/models/stacked"
    features = json.loads((model_dir / "model.json").read_text())["available_features"]
    assert any(f.startswith("pangolin") for f in features) and any(f.startswith("spliceai") for f in features)
    # what the stacked row ships was chosen by inner CV among both base scores and the learners
    choice = json.loads((model_dir / "stacker.json").read_text())
    inner = pd.read_csv(model_dir / "inner_cv.tsv", sep="\t").set_index("candidate")
    assert {"spliceai.score", "pangolin.score", "logreg.scores", "hgb0.profiles"} <= set(inner.index)
    assert inner.loc[inner["chosen"]].index.tolist() == [choice["chosen"]]
    stacked = table.loc["stacked"]
    assert stacked["best_base"] == max(("spliceai", "pangolin"), key=lambda b: table.loc[b, "roc_auc"])
    assert stacked["roc_auc_vs_best_base"] == pytest.approx(
        stacked["roc_auc"] - table.loc[stacked["best_base"], "roc_auc"], abs=1e-9
    )
    assert 0 <= stacked["p_vs_best_base_bootstrap"] <= 1 or choice["ships_base"] == stacked["best_base"]
    assert choice["summary"] in (workdir / "results/report/summary.md").read_text()
    # the baseline rows are the base models' own scores, evaluated on the same test rows
    assert table.loc["pangolin", "n_test"] == table.loc["spliceai", "n_test"]
    assert table.loc["pangolin", "roc_auc"] > 0.7


def _row(table: pd.DataFrame, name: str) -> pd.Series:
    """The summary row of base model or experiment ``name`` (``spliceai`` or ``spliceai (baseline)``)."""
    hits = [i for i in table.index if i == name or str(i).startswith(f"{name} (")]
    assert len(hits) == 1, f"no single row for {name}: {list(table.index)}"
    return table.loc[hits[0]]


@pytest.mark.slow
def test_clinvar_brca1_scenario_is_evaluated_out_of_fold(tmp_path):
    workdir = run_scenario("clinvar-brca1", tmp_path)
    table = summary(workdir)
    spliceai, pangolin = _row(table, "spliceai"), _row(table, "pangolin")
    assert any("stack" in str(name) for name in table.index)
    assert spliceai["roc_auc"] > 0.8  # SpliceAI separates ClinVar's splice-relevant P/LP from B/LB
    assert pangolin["roc_auc"] > 0.7 and pangolin["n_test"] >= 380  # a pangolin row on (nearly) every labelled variant
    variants = pd.read_parquet(workdir / "results/variants/variants.parquet")
    labelled = variants.loc[variants["label"].isin((0, 1)), "variant_id"]
    assert 380 <= len(labelled) <= 420 and (variants["classification"] == "Unlabelled").sum() > 200
    for row in ("results/eval_cv/baseline/spliceai", "results/eval_cv/stacked", "results/eval_cv/small_cnn"):
        pooled = pd.read_parquet(workdir / row / "predictions.parquet")
        # every labelled variant predicted out-of-fold exactly once, by the fold holding its exon
        assert sorted(pooled["variant_id"]) == sorted(labelled), row
        folds = variants.set_index("variant_id").loc[pooled["variant_id"], "cv_fold"].to_numpy()
        assert (pooled["fold"].to_numpy() == folds).all(), row
