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


def plan_scenario(name: str, workdir: Path) -> dict[str, int]:
    """Jobs per rule of scenario ``name``'s default target in a dry run (nothing is computed)."""
    import re

    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    configfile = SCENARIOS / name / "config.yaml"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--cores", "2", "--configfile", str(configfile), "--dry-run", "--quiet", "rules"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M) if rule != "total"}


# demo-small and stacking are planned here and run end to end by users; the demo workflow test
# (tests/test_workflow.py) runs the whole chain on the demo and the clinvar-brca1 scenario runs
# both base models and the stacked model end to end.


def test_demo_small_plans_only_its_selected_experiments(tmp_path):
    jobs = plan_scenario("demo-small", tmp_path)
    assert jobs["base_model_scores"] == 1  # SpliceAI only
    # quick_test and binary_quick, plus binary_quick's 2 out-of-fold fits for the stacker
    assert jobs["train"] == 4 and jobs["train_stacked"] == 1
    assert jobs["report"] == 1 and jobs["make_demo"] == 1


def test_stacking_scenario_plans_both_base_models_and_the_stacker(tmp_path):
    jobs = plan_scenario("stacking", tmp_path)
    assert jobs["base_model_scores"] == 2  # spliceai and pangolin
    assert jobs["fetch_pangolin_weights"] == 12  # the 12 official state dicts, sha256 checked
    assert jobs["train_stacked"] == 1 and "train" not in jobs  # base-model features only


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
    assert 380 <= len(labelled) <= 420 and not (variants["classification"] == "Unlabelled").any()
    assert "left out 273 Unlabelled row(s)" in (workdir / "logs/prepare_variants.log").read_text()
    for row in ("results/eval_cv/baseline/spliceai", "results/eval_cv/stacked", "results/eval_cv/small_cnn"):
        pooled = pd.read_parquet(workdir / row / "predictions.parquet")
        # every labelled variant predicted out-of-fold exactly once, by the fold holding its exon
        assert sorted(pooled["variant_id"]) == sorted(labelled), row
        folds = variants.set_index("variant_id").loc[pooled["variant_id"], "cv_fold"].to_numpy()
        assert (pooled["fold"].to_numpy() == folds).all(), row
    # Pangolin's targets follow the SpliceAI contract: one row per variant, four tissues, score = max(gain, -loss)
    scores = pd.read_parquet(workdir / "results/targets/pangolin/scores.parquet")
    deltas = np.load(workdir / "results/targets/pangolin/deltas.npy")
    assert len(scores) == len(variants) and deltas.shape[0] == len(variants) and scores["scored"].mean() > 0.95
    tissues = [c for c in scores.columns if c.startswith("gain_") and c != "gain_pos"]
    assert len(tissues) == 4  # heart, liver, brain, testis
    scored = scores[scores["scored"]]
    np.testing.assert_allclose(scored["score"], np.maximum(scored["gain"], -scored["loss"]), atol=1e-6)
    # each fold's stacker: both base models' features, its choice made by inner CV on its training rows only
    import json

    for fold in range(5):
        model_dir = workdir / f"results/models/stacked__fold{fold}"
        features = json.loads((model_dir / "model.json").read_text())["available_features"]
        assert any(f.startswith("pangolin") for f in features) and any(f.startswith("spliceai") for f in features)
        choice = json.loads((model_dir / "stacker.json").read_text())
        inner = pd.read_csv(model_dir / "inner_cv.tsv", sep="\t").set_index("candidate")
        assert {"spliceai.score", "pangolin.score", "logreg.scores", "hgb0.profiles"} <= set(inner.index)
        assert inner.loc[inner["chosen"]].index.tolist() == [choice["chosen"]]
        test_ids = set(variants.loc[variants["cv_fold"] == fold, "variant_id"])
        trained_on = pd.read_parquet(model_dir / "features.parquet")["variant_id"]
        assert choice["n_train"] > 0 and choice["n_train"] + choice["n_val"] <= len(labelled) - len(
            test_ids & set(labelled)
        )
        assert len(trained_on) == len(variants)  # features row-aligned with the variant table
    stacked = _row(table, "stacked")
    assert stacked["best_base"] == max(("spliceai", "pangolin"), key=lambda b: _row(table, b)["roc_auc"])
    assert stacked["roc_auc_vs_best_base"] == pytest.approx(
        stacked["roc_auc"] - _row(table, stacked["best_base"])["roc_auc"], abs=1e-9
    )
    assert 0 <= stacked["p_vs_best_base_bootstrap"] <= 1
    assert stacked["roc_auc_vs_best_base"] > -0.02  # never far below the better base model
