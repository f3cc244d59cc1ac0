"""summary.tsv as a contract (names, set column, difference to the best base model) and the pooling of a
stacked model's cross-validation folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metasplice.evaluation import crossval as CV
from metasplice.evaluation import evaluate as E
from metasplice.evaluation import metrics as M
from metasplice.evaluation.report import FIGURES, Entry, build_report

FAST = E.EvalConfig(bootstrap=M.BootstrapConfig(n=100, seed=0))
SHIPS_PANGOLIN = "stacked model = pangolin's score: no learner beat it in inner CV"


def _predictions(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n).astype(np.int8)
    frame = pd.DataFrame(
        {
            "variant_id": [f"chr1:{i}:A:G" for i in range(n)],
            "split": rng.choice(["val", "test"], n, p=[0.3, 0.7]),
            "label": label,
            "classification": np.where(label == 1, "Splice-altering", "Normal"),
            "region": rng.choice(list(E.REGIONS), n),
            "variant_type": "snv",
        }
    )
    scores = {
        "spliceai": np.clip(0.3 * label + rng.random(n) * 0.7, 0, 1),  # weaker
        "pangolin": np.clip(0.5 * label + rng.random(n) * 0.6, 0, 1),  # the best base model
    }
    return frame, scores


def _write(root: Path, name: str, pred: pd.DataFrame, kind: str, extra: dict | None = None) -> Entry:
    res = E.evaluate_predictions(pred, FAST, name, kind, extra={"kind": kind, **(extra or {})})
    out = root / name
    E.write_parquet(pred, out / "predictions.parquet")
    E.write_json(res, out / "metrics.json")
    return Entry(name, out / "metrics.json", out / "predictions.parquet")


def test_summary_rows_are_named_after_models_and_compared_with_the_best_base(tmp_path):
    frame, scores = _predictions()
    entries = [_write(tmp_path, b, frame.assign(score=s), "baseline") for b, s in scores.items()]
    stacking = {"chosen": "pangolin.score", "summary": SHIPS_PANGOLIN}
    entries.append(
        _write(tmp_path, "stacked", frame.assign(score=scores["pangolin"]), "stacked", {"stacking": stacking})
    )
    figures = {f: tmp_path / "report" / f"{f}.png" for f in FIGURES}
    build_report(entries, tmp_path / "summary.md", tmp_path / "summary.tsv", figures, meta={"reference": "spliceai"})
    table = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    assert list(table.columns[:2]) == ["experiment", "set"]
    assert table["experiment"].tolist() == ["spliceai", "pangolin", "stacked"] and set(table["set"]) == {"test"}
    assert {"roc_auc", "roc_auc_low", "roc_auc_high"} <= set(table.columns)
    rows = table.set_index("experiment")
    assert (rows["best_base"] == "pangolin").all()
    assert rows.at["pangolin", "roc_auc"] > rows.at["spliceai", "roc_auc"]
    # the stacked row ships pangolin's score: no difference; spliceai's difference is the paired bootstrap's
    assert rows.at["stacked", "roc_auc"] == rows.at["pangolin", "roc_auc"]
    assert rows.at["stacked", "roc_auc_vs_best_base"] == 0 and rows.at["pangolin", "roc_auc_vs_best_base"] == 0
    test = frame["split"] == "test"
    y = frame.loc[test, "label"].to_numpy()
    boot = M.paired_bootstrap(y, scores["spliceai"][test], scores["pangolin"][test], "roc_auc", FAST.bootstrap)
    assert rows.at["spliceai", "roc_auc_vs_best_base"] == np.float64(boot.difference)
    assert (
        rows.at["spliceai", "roc_auc_vs_best_base_low"] < 0 and rows.at["spliceai", "p_vs_best_base_bootstrap"] < 0.05
    )
    assert rows.at["spliceai", "best_base_n"] == test.sum()
    assert rows.at["stacked", "stacking_choice"] == "pangolin.score"
    md = (tmp_path / "summary.md").read_text()
    assert f"- **stacked**: {SHIPS_PANGOLIN}." in md
    assert "## Against the best base model" in md


def _fold(frame: pd.DataFrame, k: int, score: np.ndarray, calibrated: np.ndarray) -> pd.DataFrame:
    part = frame[np.arange(len(frame)) % 2 == k].reset_index(drop=True)
    rows = np.flatnonzero(np.arange(len(frame)) % 2 == k)
    return part.assign(score=score[rows], score_calibrated=calibrated[rows])


def test_stacked_folds_that_disagree_are_pooled_on_calibrated_scores():
    frame, scores = _predictions(seed=2)
    prob = 1 / (1 + np.exp(-(4 * scores["pangolin"] - 2)))
    same = [_fold(frame, k, scores["pangolin"], prob) for k in (0, 1)]
    chose = [{"stacking": {"chosen": "pangolin.score", "summary": SHIPS_PANGOLIN}}] * 2
    pooled, info = CV.pool_stacked_folds(same, chose)
    assert info["pooled_score"] == "shipped" and info["folds"] == ["pangolin.score"] * 2
    assert info["summary"] == f"{SHIPS_PANGOLIN} of any fold"
    assert all(np.array_equal(p["score"], s["score"]) for p, s in zip(pooled, same))  # the base score, unchanged
    # fold 1 ships a probability in [0.9, 1] beside fold 0's raw score: pooled on the calibrated ones
    mixed = [same[0], same[1].assign(score=0.9 + 0.1 * same[1]["score"])]
    chose = [chose[0], {"stacking": {"chosen": "hgb0.annotation", "summary": "stacked model = hgb0.annotation"}}]
    pooled, info = CV.pool_stacked_folds(mixed, chose)
    assert (
        info["pooled_score"] == "calibrated"
        and "folds chose pangolin.score (1), hgb0.annotation (1)" in info["summary"]
    )
    assert all(np.array_equal(p["score"], p["score_calibrated"]) for p in pooled)
    _, metrics = CV.aggregate_folds(pooled, FAST, "stacked", "stacked")
    _, raw = CV.aggregate_folds(mixed, FAST, "stacked", "stacked")
    assert metrics["metrics"]["roc_auc"]["estimate"] > raw["metrics"]["roc_auc"]["estimate"]
