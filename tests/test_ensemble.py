"""metasplice.experiments.ensembles: combining evaluated experiments' predictions, on small synthetic tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import metasplice.evaluation.predictions as EP
import metasplice.evaluation.tasks as ET
import metasplice.experiments.plan as PLAN
from metasplice.evaluation import evaluate as E
from metasplice.evaluation import metrics as M
from metasplice.experiments import ensembles as EN

FAST = E.EvalConfig(bootstrap=M.BootstrapConfig(n=50, seed=1))
SAME_SECTIONS = (
    "n",
    "threshold",
    "fixed_threshold",
    "metrics",
    "correlation",
    "confusion_matrix",
    "breakdowns",
    "comparison",
)


def make_variants(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Variants with train/val/test splits, labels 1/0 and some unlabelled (-1)."""
    rng = np.random.default_rng(seed)
    label = rng.choice([1, 0, -1], n, p=[0.45, 0.45, 0.10]).astype(np.int8)
    return pd.DataFrame(
        {
            "variant_id": [f"chr1:{1000 + i}:A:G" for i in range(n)],
            "split": rng.choice(["train", "val", "test"], n, p=[0.2, 0.4, 0.4]),
            "label": label,
            "classification": np.where(label == 1, "Splice-altering", np.where(label == 0, "Normal", "Low-frequency")),
            "region": rng.choice(list(E.REGIONS), n),
            "variant_type": rng.choice(["snv", "insertion", "deletion"], n),
        }
    )


def make_scores(variants: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A base model's scores.parquet: DS_* higher for Splice-altering, target_DS_* the validated targets."""
    rng = np.random.default_rng(seed)
    sa = (variants["label"].to_numpy() == 1)[:, None]
    ds = np.clip(rng.beta(1, 8, (len(variants), 4)) + sa * 0.5 * rng.random((len(variants), 4)), 0, 1)
    scores = pd.DataFrame(ds, columns=list(E.DS_COLUMNS))
    label = variants["label"].to_numpy()
    for c in E.DS_COLUMNS:
        scores[f"target_{c}"] = np.where(label == 1, scores[c], np.where(label == 0, 0.0, np.nan))
    return scores


def eval_rows(variants: pd.DataFrame) -> np.ndarray:
    return np.flatnonzero(variants["split"].isin(EP.EVAL_SPLITS).to_numpy())


def delta_member(variants: pd.DataFrame, scores: pd.DataFrame, seed: int, targets: pd.DataFrame | None = None):
    """A delta model's predictions table: the targets plus noise."""
    rows = eval_rows(variants)
    truth = np.nan_to_num(scores[[f"target_{c}" for c in E.DS_COLUMNS]].to_numpy()[rows])
    noise = np.random.default_rng(seed).normal(0, 0.15, truth.shape)
    return E.model_predictions(
        variants, np.clip(truth + noise, 0, 1), rows, E.DS_COLUMNS, "delta", scores if targets is None else targets
    )


def binary_member(variants: pd.DataFrame, score: np.ndarray) -> pd.DataFrame:
    rows = eval_rows(variants)
    return E.model_predictions(variants, np.asarray(score)[rows, None], rows, ("p",), "binary")


@pytest.fixture()
def files(tmp_path):
    variants = make_variants()
    scores = make_scores(variants)
    E.write_parquet(variants, tmp_path / "variants.parquet")
    E.write_parquet(scores, tmp_path / "scores.parquet")
    return variants, scores, tmp_path / "variants.parquet", tmp_path / "scores.parquet"


def write_members(tmp_path, tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    paths = {}
    for name, table in tables.items():
        paths[name] = str(tmp_path / f"{name}.parquet")
        table.to_parquet(paths[name], index=False)
    return paths


# --------------------------------------------------------------------------------------------
# configuration


def test_config_from_dict_and_validation():
    cfg = EN.EnsembleConfig.from_dict(
        {
            "model": "ensemble",
            "members": ["a", "b"],
            "weights": [3, 1],
            "description": "d",
            "demo": {"members": ["a", "c"]},
        },
        "ens",
    )
    assert cfg == EN.EnsembleConfig(("a", "b"), "mean", (3.0, 1.0), "d")
    assert cfg.normalised_weights().tolist() == [0.75, 0.25]
    demo = EN.EnsembleConfig.from_dict(
        {"model": "ensemble", "members": ["a", "b"], "weights": [3, 1], "demo": {"members": ["a", "c"]}},
        "ens",
        demo=True,
    )
    assert demo.members == ("a", "c")
    stack = EN.EnsembleConfig.from_dict(
        {"model": "ensemble", "members": ["a", "b"], "combine": "stack", "folds": 3, "seed": 7}, "ens"
    )
    assert (stack.combine, stack.folds, stack.seed, stack.weights) == ("stack", 3, 7, None)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"model": "ensemble", "members": ["a", "b"], "epochs": 3}, r"experiment 'ens': unknown keys \['epochs'\]"),
        ({"model": "ensemble", "members": ["a", "b"], "demo": {"hidden": 3}}, r"unknown keys \['demo.hidden'\]"),
        ({"model": "ensemble", "members": ["a", "b"], "demo": [1]}, r"experiment 'ens': 'demo' must be a mapping"),
        ({"model": "ensemble"}, r"experiment 'ens': no 'members'"),
        ({"model": "gated_cnn", "members": ["a", "b"]}, r"model 'gated_cnn' is not 'ensemble'"),
        ({"model": "ensemble", "members": ["a"]}, r"experiment 'ens': an ensemble needs at least two members"),
        ({"model": "ensemble", "members": "ab"}, r"members must be a list"),
        ({"model": "ensemble", "members": ["a", "b", "a"]}, r"members listed more than once: \['a'\]"),
        ({"model": "ensemble", "members": ["a", "b"], "combine": "max"}, r"unknown combine 'max'"),
        ({"model": "ensemble", "members": ["a", "b"], "weights": [1]}, r"1 weights for 2 members"),
        ({"model": "ensemble", "members": ["a", "b"], "weights": [1, 0]}, r"weights must be positive"),
        ({"model": "ensemble", "members": ["a", "b"], "combine": "stack", "weights": [1, 2]}, r"stack fits its own"),
        ({"model": "ensemble", "members": ["a", "b"], "folds": 1}, r"folds must be an integer >= 2"),
    ],
)
def test_invalid_configs_are_errors_naming_the_experiment(values, message):
    with pytest.raises(ValueError, match=message):
        EN.EnsembleConfig.from_dict(values, "ens")


def test_workflow_inputs_and_member_checks():
    config = {
        "dataset": "full",
        "evaluation": {"cross_validation": {"enabled": True, "n_folds": 3}},
        "experiments": {
            "a": {"model": "gated_cnn"},
            "b": {"model": "gated_cnn"},
            "ens": {"model": "ensemble", "members": ["a", "b"], "combine": "rank_mean"},
            "outer": {"model": "ensemble", "members": ["ens", "a"]},
            "bad": {"model": "ensemble", "members": ["a", "nope"]},
            "x": {"model": "ensemble", "members": ["a", "y"]},
            "y": {"model": "ensemble", "members": ["b", "x"]},
        },
    }
    assert EN.is_ensemble(config["experiments"]["ens"]) and not EN.is_ensemble(config["experiments"]["a"])
    assert PLAN.ensemble_inputs(config, "ens", "results/variants/variants.parquet") == {
        "predictions": ["results/eval/a/predictions.parquet", "results/eval/b/predictions.parquet"],
        "variants": "results/variants/variants.parquet",
        "reference": "results/targets/spliceai/scores.parquet",
    }
    fold = PLAN.ensemble_inputs(config, "outer__fold2", "results/variants/variants.parquet")
    assert fold["predictions"] == [
        "results/eval/ens__fold2/predictions.parquet",
        "results/eval/a__fold2/predictions.parquet",
    ]
    assert fold["variants"] == "results/crossval/fold2/variants.parquet"
    with pytest.raises(ValueError, match=r"experiment 'bad': members \['nope'\] are not configured"):
        EN.ensemble_for("bad", config)
    with pytest.raises(ValueError, match=r"experiment 'x': ensembles contain each other \(x -> y -> x\)"):
        EN.ensemble_for("x", config)
    with pytest.raises(ValueError, match=r"'a' is not an ensemble"):
        EN.ensemble_for("a", config)


# --------------------------------------------------------------------------------------------
# combination


def test_identical_members_give_the_member_itself(tmp_path, files):
    variants, scores, variants_path, scores_path = files
    member = delta_member(variants, scores, seed=3)
    paths = write_members(tmp_path, {"a": member, "b": member})
    alone = E.evaluate_predictions(member, FAST, "a", "delta", E.reference_table(variants, scores), FAST.reference)
    E.write_json(alone, tmp_path / "alone.json")  # the same JSON cleaning as the ensemble's file
    alone = E.read_json(tmp_path / "alone.json")

    cfg = EN.EnsembleConfig(("a", "b"), "mean")
    out = tmp_path / "ens"
    result = EN.evaluate_ensemble_files(
        paths, variants_path, scores_path, out / "predictions.parquet", out / "metrics.json", "ens", cfg, FAST
    )
    pred = pd.read_parquet(out / "predictions.parquet")
    assert list(pred.columns[:7]) == [*EP.VARIANT_COLUMNS, "score"]
    pd.testing.assert_frame_equal(pred[list(EP.VARIANT_COLUMNS)], member[list(EP.VARIANT_COLUMNS)])
    assert np.array_equal(pred["score"], member["score"])
    for c in E.DS_COLUMNS:
        assert np.array_equal(pred[f"pred_{c}"], member[f"pred_{c}"])
        assert np.array_equal(pred[f"target_{c}"], member[f"target_{c}"], equal_nan=True)
    assert np.array_equal(pred["member_a"], member["score"]) and np.array_equal(pred["member_b"], member["score"])

    written = E.read_json(out / "metrics.json")
    assert written["name"] == result["name"] == "ens"
    for key in SAME_SECTIONS:
        assert written[key] == alone[key], key
    assert written["metrics"]["roc_auc"]["estimate"] > 0.6 and written["correlation"]["max"]["estimate"] > 0.5
    assert written["comparison"]["reference"] == "spliceai" and written["comparison"]["n"] > 0
    assert (written["kind"], written["task"], written["members"], written["combine"]) == (
        "ensemble",
        "ensemble",
        ["a", "b"],
        "mean",
    )

    # rank_mean: a monotone transform of the same scores -> same AUCs and the same calls (other threshold)
    ranked = EN.ensemble_predictions({"a": member, "b": member}, EN.EnsembleConfig(("a", "b"), "rank_mean"))
    rank_metrics = E.evaluate_predictions(
        ranked, FAST, "r", "ensemble", E.reference_table(variants, scores), FAST.reference
    )
    for key in ("roc_auc", "pr_auc", "at_val_threshold"):
        assert rank_metrics["metrics"][key] == result["metrics"][key], key
    assert rank_metrics["threshold"]["threshold"] != result["threshold"]["threshold"]


def scaled_members(seed: int = 0, n: int = 600) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Two informative members with independent noise; b's scores are on a 50 x smaller scale."""
    variants = make_variants(n, seed)
    rng = np.random.default_rng(seed + 100)
    y = (variants["label"].to_numpy() == 1).astype(float)
    a = 1 / (1 + np.exp(-(y + rng.normal(size=n))))
    b = 0.02 / (1 + np.exp(-(y + rng.normal(size=n))))
    return variants, {"a": binary_member(variants, a), "b": binary_member(variants, b)}


def auc_of(table: pd.DataFrame, column: str = "score") -> float:
    test = table[(table["split"] == "test") & table["label"].isin((0, 1))]
    return roc_auc_score(test["label"], test[column])


def test_mean_rank_mean_and_stack_on_two_informative_members():
    variants, tables = scaled_members()
    auc = {m: auc_of(t) for m, t in tables.items()}
    combined = {c: EN.ensemble_predictions(tables, EN.EnsembleConfig(("a", "b"), c)) for c in EN.COMBINE_METHODS}
    got = {c: auc_of(t) for c, t in combined.items()}
    assert got["mean"] >= min(auc.values())
    # b's small scale makes the plain mean follow a; rank fractions and stacking use both members' information
    assert got["rank_mean"] > max(auc.values()) + 0.03 and got["rank_mean"] > got["mean"] + 0.03
    assert got["stack"] > max(auc.values()) + 0.03
    mean = combined["mean"]
    assert np.allclose(mean["score"], (mean["member_a"] + mean["member_b"]) / 2)
    weighted = EN.ensemble_predictions(tables, EN.EnsembleConfig(("a", "b"), "mean", (3, 1)))
    assert np.allclose(weighted["score"], 0.75 * mean["member_a"] + 0.25 * mean["member_b"])
    ranks = combined["rank_mean"]["score"]
    assert ranks.between(0, 1).all() and "pred_p" not in combined["mean"]  # binary members: no delta columns


def test_stack_learns_which_member_informs():
    variants = make_variants(600, 1)
    rng = np.random.default_rng(5)
    y = (variants["label"].to_numpy() == 1).astype(float)
    tables = {
        "good": binary_member(variants, y + rng.normal(size=len(y))),
        "noise": binary_member(variants, rng.normal(size=len(y))),
    }
    cfg = EN.EnsembleConfig(("good", "noise"), "stack")
    pred, info = EN.build_ensemble(tables, cfg)
    assert info["coefficients"]["good"] > 5 * abs(info["coefficients"]["noise"])
    assert info["folds"] == 5 and info["n_fit"] == int(((pred["split"] == "val") & pred["label"].isin((0, 1))).sum())
    assert auc_of(pred) > auc_of(tables["good"]) - 0.02
    assert auc_of(EN.ensemble_predictions(tables, EN.EnsembleConfig(("good", "noise")))) >= auc_of(tables["noise"])
    assert pred["score"].notna().all()  # unlabelled validation rows are scored too (by the full fit)


def test_stack_validation_scores_are_out_of_fold():
    """With pure-noise members an in-sample fit looks informative on validation; the cross-fitted
    validation scores (on which the threshold is chosen) do not, and test rows get the full fit."""
    in_sample, out_of_fold = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n, n_val = 90, 60
        scores = rng.normal(size=(n, 10))
        label = rng.integers(0, 2, n)
        split = np.array(["val"] * n_val + ["test"] * (n - n_val))
        out, info = EN.stack_scores(scores, split, label, folds=5, seed=0)
        full = EN.stack_model(0).fit(scores[:n_val], label[:n_val])
        assert np.allclose(out[n_val:], full.predict_proba(scores[n_val:])[:, 1])  # test: the full fit
        assert not np.allclose(out[:n_val], full.predict_proba(scores[:n_val])[:, 1])
        in_sample.append(roc_auc_score(label[:n_val], full.predict_proba(scores[:n_val])[:, 1]))
        out_of_fold.append(roc_auc_score(label[:n_val], out[:n_val]))
        # test labels are never read
        flipped = label.copy()
        flipped[n_val:] = 1 - flipped[n_val:]
        assert np.array_equal(EN.stack_scores(scores, split, flipped, folds=5, seed=0)[0], out)
    assert np.mean(in_sample) > 0.7 and np.mean(out_of_fold) < 0.6
    assert np.mean(in_sample) - np.mean(out_of_fold) > 0.2


def test_stack_needs_both_classes_on_validation():
    scores = np.random.default_rng(0).normal(size=(20, 2))
    label = np.array([1] + [0] * 19)
    split = np.array(["val"] * 10 + ["test"] * 10)
    with pytest.raises(ValueError, match="at least 2 scored validation variants of each class; got 1"):
        EN.stack_scores(scores, split, label)
    label[:3] = 1  # 3 of the smaller class -> 3 folds
    assert EN.stack_scores(scores, split, label, folds=5)[1]["folds"] == 3


def test_missing_member_scores_leave_the_variant_unscored(files):
    variants, scores, _, _ = files
    a = delta_member(variants, scores, seed=1)
    b = delta_member(variants, scores, seed=2)
    b.loc[[0, 5], "score"] = np.nan
    for combine in EN.COMBINE_METHODS:
        pred = EN.ensemble_predictions({"a": a, "b": b}, EN.EnsembleConfig(("a", "b"), combine))
        assert np.flatnonzero(pred["score"].isna()).tolist() == [0, 5], combine


def test_delta_columns_need_delta_members_with_the_same_targets(files):
    variants, scores, _, _ = files
    a, b = delta_member(variants, scores, seed=1), delta_member(variants, scores, seed=2)
    pred = EN.ensemble_predictions({"a": a, "b": b}, EN.EnsembleConfig(("a", "b"), "mean", (1, 3)))
    assert np.allclose(pred["pred_DS_AG"], 0.25 * a["pred_DS_AG"] + 0.75 * b["pred_DS_AG"])
    stacked = EN.ensemble_predictions({"a": a, "b": b}, EN.EnsembleConfig(("a", "b"), "stack"))
    assert np.allclose(stacked["pred_DS_AG"], (a["pred_DS_AG"] + b["pred_DS_AG"]) / 2)
    # a member trained on another base model's targets, or a binary member: no delta columns
    other = delta_member(variants, scores, seed=2, targets=make_scores(variants, seed=9))
    binary = binary_member(variants, np.random.default_rng(0).random(len(variants)))
    for second in (other, binary):
        pred = EN.ensemble_predictions({"a": a, "b": second}, EN.EnsembleConfig(("a", "b")))
        assert not [c for c in pred.columns if c.startswith(("pred_", "target_"))]


# --------------------------------------------------------------------------------------------
# mismatches


def test_members_on_different_variants_are_an_error(tmp_path, files):
    variants, scores, variants_path, scores_path = files
    a = delta_member(variants, scores, seed=1)
    b = delta_member(variants, scores, seed=2)
    cfg = EN.EnsembleConfig(("a", "b"))
    with pytest.raises(
        ValueError,
        match=rf"ensemble members 'a' \({len(a)} variants\) and 'b' \({len(a) - 3} "
        r"variants\) cover different variants: 3 only in 'a', 0 only in 'b'",
    ):
        EN.ensemble_predictions({"a": a, "b": b.iloc[3:]}, cfg)
    moved = b.copy()
    moved.loc[moved["split"] == "val", "split"] = "test"
    with pytest.raises(ValueError, match=r"members 'a' and 'b' disagree on 'split' for \d+ variants"):
        EN.ensemble_predictions({"a": a, "b": moved}, cfg)
    with pytest.raises(ValueError, match=r"no predictions for ensemble members \['b'\]"):
        EN.ensemble_predictions({"a": a}, cfg)
    with pytest.raises(ValueError, match=r"predictions of member 'b' repeat variant ids"):
        EN.ensemble_predictions({"a": a, "b": pd.concat([b, b.iloc[:1]])}, cfg)
    # members that agree with each other but not with the variants file given (stale predictions)
    paths = write_members(tmp_path, {"a": a, "b": b})
    stale = variants.copy()
    stale.loc[stale["split"] == "train", "split"] = "val"
    E.write_parquet(stale, tmp_path / "stale.parquet")
    n_train = int((variants["split"] == "train").sum())
    with pytest.raises(
        ValueError,
        match=rf"ens: member predictions cover {len(a)} variants but .*stale.parquet has "
        rf"{len(a) + n_train} validation/test variants \({n_train} missing",
    ):
        EN.evaluate_ensemble_files(
            paths,
            tmp_path / "stale.parquet",
            scores_path,
            tmp_path / "p.parquet",
            tmp_path / "m.json",
            "ens",
            cfg,
            FAST,
        )
    assert not (tmp_path / "p.parquet").exists() and not (tmp_path / "m.json").exists()


def quantile_member(variants: pd.DataFrame, scores: pd.DataFrame, seed: int, width: float) -> pd.DataFrame:
    """A quantile model's predictions table: intervals of half-width ``width`` around noisy targets."""
    rows = eval_rows(variants)
    truth = np.nan_to_num(scores[[f"target_{c}" for c in E.DS_COLUMNS]].to_numpy()[rows])
    mid = np.clip(truth + np.random.default_rng(seed).normal(0, 0.05, truth.shape), 0, 1)
    table = E.model_predictions(variants, mid, rows, E.DS_COLUMNS, "delta", scores)
    for j, c in enumerate(E.DS_COLUMNS):
        table[f"pred_{c}_q0.1"] = np.clip(mid[:, j] - width, 0, 1)
        table[f"pred_{c}_q0.5"] = mid[:, j]
        table[f"pred_{c}_q0.9"] = np.clip(mid[:, j] + width, 0, 1)
    return table


def test_quantile_ensemble_averages_the_quantiles_and_reports_coverage(tmp_path, files):
    variants, scores, variants_path, scores_path = files
    narrow, wide = quantile_member(variants, scores, 1, 0.02), quantile_member(variants, scores, 2, 0.3)
    config = EN.EnsembleConfig(members=("narrow", "wide"))
    table = EN.ensemble_predictions({"narrow": narrow, "wide": wide}, config)
    for c in E.DS_COLUMNS:
        for q in ("0.1", "0.5", "0.9"):
            expected = (narrow[f"pred_{c}_q{q}"].to_numpy() + wide[f"pred_{c}_q{q}"].to_numpy()) / 2
            assert np.allclose(table[f"pred_{c}_q{q}"], expected)
        assert (table[f"pred_{c}_q0.1"] <= table[f"pred_{c}_q0.9"]).all()
    paths = write_members(tmp_path, {"narrow": narrow, "wide": wide})
    cfg = E.EvalConfig.from_dict({"bootstrap_n": 50})
    result = EN.evaluate_ensemble_files(
        paths, variants_path, scores_path, tmp_path / "p.parquet", tmp_path / "m.json", "qens", config, cfg
    )
    coverage = {
        name: ET.quantile_metrics(E.labelled_rows(t, "test"), cfg)["coverage"]["estimate"]
        for name, t in (("narrow", narrow), ("wide", wide))
    }
    assert coverage["narrow"] <= result["quantile"]["coverage"]["estimate"] <= coverage["wide"]
    # members without the same quantile columns give no quantile ensemble
    plain = EN.ensemble_predictions(
        {"narrow": narrow, "delta": delta_member(variants, scores, 3)}, EN.EnsembleConfig(members=("narrow", "delta"))
    )
    assert not [c for c in plain.columns if "_q" in c]
