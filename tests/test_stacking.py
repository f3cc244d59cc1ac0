"""Stacked meta-model: out-of-fold splits, the leakage guard, features, learner choice, files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import metasplice.experiments.plan as PLAN
from metasplice.evaluation import evaluate as E
from metasplice.experiments.stacking import (
    LeakageError,
    OOFConfig,
    StackConfig,
    StackedModel,
    annotation_features,
    assign_oof_folds,
    base_features,
    build_features,
    evaluate_stacked_files,
    fit_stacker,
    member_feature,
    oof_split,
    split_oof_name,
    train_stacked_files,
    write_oof_variants,
)


def make_variants(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Synthetic variants on 30 genes of 3 chromosomes: chr3 test, a few genes val, the rest train."""
    rng = np.random.default_rng(seed)
    gene = rng.integers(0, 30, n)
    chrom = np.array(["chr1", "chr2", "chr3"])[gene % 3]
    tx_start = 1_000_000 + (gene // 3) * 100_000
    pos = tx_start + rng.integers(0, 20_000, n)
    split = np.where(chrom == "chr3", "test", np.where(np.isin(gene, [1, 4, 7]), "val", "train"))
    label = rng.integers(0, 2, n)
    label[rng.random(n) < 0.1] = -1
    return pd.DataFrame(
        {
            "variant_id": [f"{c}:{p}:A:G:{i}" for i, (c, p) in enumerate(zip(chrom, pos))],
            "chrom": chrom,
            "pos": pos,
            "ref": "A",
            "alt": np.where(rng.random(n) < 0.2, "AT", "G"),
            "variant_type": "snv",
            "classification": np.where(label == 1, "Splice-altering", "Normal"),
            "label": label,
            "split": split,
            "gene": [f"G{g}" for g in gene],
            "strand": np.where(gene % 2 == 0, "+", "-"),
            "tx_start": tx_start,
            "tx_end": tx_start + 20_000,
            "region": np.array(["exonic", "canonical", "intronic"])[rng.integers(0, 3, n)],
            "boundary_offset": rng.integers(-300, 300, n),
        }
    )


def make_scores(variants: pd.DataFrame, seed: int = 1, skill: float = 0.3) -> tuple[pd.DataFrame, np.ndarray]:
    """Base-model-like scores: DS larger for label-1 rows (``skill``), a few unscored rows."""
    rng = np.random.default_rng(seed)
    n = len(variants)
    y = (variants["label"].to_numpy() == 1).astype(float)
    ds = np.clip(rng.random((n, 4)) * 0.3 + skill * y[:, None] * rng.random((n, 4)), 0, 1)
    deltas = rng.normal(0, 0.02, (n, 101, 3)).astype(np.float32)
    deltas[:, 50, 1] += ds[:, 0]
    scores = pd.DataFrame(ds, columns=["DS_AG", "DS_AL", "DS_DG", "DS_DL"])
    for c in ("DP_AG", "DP_AL", "DP_DG", "DP_DL"):
        scores[c] = pd.array(rng.integers(-50, 51, n), dtype="Int64")
    scores["target_DS_AG"] = np.where(y == 1, ds[:, 0], 0.0)  # label-derived: never a feature
    unscored = rng.random(n) < 0.03
    scores.loc[unscored, ["DS_AG", "DS_AL", "DS_DG", "DS_DL"]] = np.nan
    scores.loc[unscored, ["DP_AG", "DP_AL", "DP_DG", "DP_DL"]] = pd.NA
    deltas[unscored] = np.nan
    return scores, deltas


def test_oof_groups_partition_training_rows_by_gene_cluster():
    variants = make_variants()
    groups = assign_oof_folds(variants, OOFConfig(oof_folds=3, group_gap=10_000, seed=5))
    train = variants["split"].to_numpy() == "train"
    assert (groups[~train] == -1).all() and set(groups[train]) == {0, 1, 2}
    # a gene (cluster) never straddles two groups, and the groups are of similar size
    per_gene = pd.Series(groups[train]).groupby(variants["gene"].to_numpy()[train]).nunique()
    assert (per_gene == 1).all()
    sizes = np.bincount(groups[train])
    assert sizes.min() > 0.5 * sizes.max()
    assert np.array_equal(groups, assign_oof_folds(variants, OOFConfig(oof_folds=3, seed=5)))  # deterministic
    split = oof_split(variants["split"].to_numpy(), groups, 1)
    assert set(split[groups == 1]) == {"test"}  # held-out rows are what the instance scores
    assert set(split[variants["split"].to_numpy() == "test"]) == {"excluded"}  # the real test rows are never used
    assert set(split[variants["split"].to_numpy() == "val"]) == {"val"}
    assert set(split[train & (groups != 1)]) == {"train"}


def test_too_many_oof_groups_is_a_clear_error():
    variants = make_variants(n=40)
    with pytest.raises(ValueError, match="cannot form 40 grouped folds"):
        assign_oof_folds(variants, OOFConfig(oof_folds=40))
    with pytest.raises(ValueError, match="oof_folds must be >= 2"):
        OOFConfig(oof_folds=1)


def test_instance_names():
    assert split_oof_name("binary_quick__oof2") == ("binary_quick", 2)
    assert split_oof_name("binary_quick__fold1__oof0") == ("binary_quick__fold1", 0)
    assert split_oof_name("binary_quick") == ("binary_quick", None)


def _oof_sources(variants: pd.DataFrame, tmp_path, k: int = 3):
    """Write the OOF variants files and return (full predictions, [(oof predictions, oof variants)])."""
    paths = [tmp_path / f"oof{j}.parquet" for j in range(k)]
    write_oof_variants(tmp_path / "variants.parquet", paths, tmp_path / "oof.tsv", OOFConfig(oof_folds=k))
    rng = np.random.default_rng(3)
    oof = []
    for p in paths:
        table = pd.read_parquet(p)
        rows = table["split"].isin(["val", "test"]).to_numpy()
        oof.append(
            (
                pd.DataFrame(
                    {
                        "variant_id": table["variant_id"][rows],
                        "split": table["split"][rows],
                        "score": rng.random(rows.sum()),
                    }
                ),
                table,
                ("test",),
            )
        )
    rows = variants["split"].isin(["val", "test"]).to_numpy()
    full = pd.DataFrame(
        {"variant_id": variants["variant_id"][rows], "split": variants["split"][rows], "score": rng.random(rows.sum())}
    )
    return full, oof


def test_member_feature_takes_every_value_out_of_fold(tmp_path):
    variants = make_variants()
    variants.to_parquet(tmp_path / "variants.parquet")
    full, oof = _oof_sources(variants, tmp_path)
    required = np.flatnonzero(variants["label"].isin((0, 1)).to_numpy())
    value = member_feature("m", variants, [(full, variants), *oof], required)
    by_id = dict(zip(variants["variant_id"], value))
    for pred, _table, _ in oof:  # training rows: the score of the instance that held them out
        held = pred[pred["split"] == "test"]
        assert np.allclose([by_id[v] for v in held["variant_id"]], held["score"])
    for _, r in full.iterrows():  # validation and test rows: the full member
        assert by_id[r["variant_id"]] == r["score"]


def test_leakage_guard_refuses_in_fold_member_scores(tmp_path):
    """A deliberately leaky feature: the full member's scores of its own training rows."""
    variants = make_variants()
    variants.to_parquet(tmp_path / "variants.parquet")
    full, oof = _oof_sources(variants, tmp_path)
    leaky = pd.DataFrame(
        {
            "variant_id": variants["variant_id"],
            "split": variants["split"],
            "score": variants["label"].clip(0, 1).astype(float),
        }
    )  # trained on, and perfect
    required = np.flatnonzero(variants["label"].isin((0, 1)).to_numpy())
    with pytest.raises(LeakageError, match="only have scores from a model trained on them"):
        member_feature("m", variants, [(leaky, variants)], required)
    # the in-fold scores of training rows are ignored when out-of-fold ones exist
    clean = member_feature("m", variants, [(full, variants), *oof], required)
    mixed = member_feature("m", variants, [(leaky, variants), *oof], required)
    train = (variants["split"] == "train").to_numpy()
    assert np.array_equal(mixed[train], clean[train], equal_nan=True)
    # one OOF group missing: its rows have no out-of-fold score
    with pytest.raises(LeakageError):
        member_feature("m", variants, [(leaky, variants), *oof[:2]], required)
    with pytest.raises(ValueError, match="more than one out-of-fold model"):
        member_feature("m", variants, [(full, variants), *oof, oof[0]], required)


def test_label_derived_columns_are_never_features():
    variants = make_variants()
    scores, deltas = make_scores(variants)
    features = build_features(variants, {"spliceai": (scores, deltas)})
    assert not [c for c in features.columns if "target" in c or "label" in c]
    with pytest.raises(LeakageError, match="derived from the labels"):
        build_features(variants, {"spliceai": (scores, deltas)}, members={"target_DS_AG": np.zeros(len(variants))})


def test_base_and_annotation_features():
    variants = make_variants(n=50)
    scores, deltas = make_scores(variants)
    feats = base_features("b", scores, deltas)
    ok = scores["DS_AG"].notna().to_numpy()
    assert np.allclose(feats["b_score"][ok], scores[["DS_AG", "DS_AL", "DS_DG", "DS_DL"]].max(axis=1)[ok])
    assert feats.loc[~ok].isna().all().all()
    gains = np.clip(deltas[ok, :, 1].astype(np.float64), 0, None).sum(axis=1)
    assert np.allclose(feats["b_acceptor_gain_sum"][ok], gains)
    assert np.allclose(feats["b_absDP_AG"][ok], np.abs(scores["DP_AG"][ok].astype(float)))
    ann = annotation_features(variants)
    minus = variants["strand"].to_numpy() == "-"
    assert np.array_equal(ann["boundary_offset_tx"], np.where(minus, -1, 1) * variants["boundary_offset"])
    assert (ann[[c for c in ann if c.startswith("region_")]].sum(axis=1) == 1).all()
    assert np.array_equal(ann["length_change"], (variants["alt"].str.len() - 1).to_numpy())


def _auc(y, s):
    from sklearn.metrics import roc_auc_score

    ok = np.isfinite(s)
    return roc_auc_score(y[ok], s[ok])


def test_a_learner_ships_when_a_feature_carries_information_the_base_lacks():
    variants = make_variants(n=1500)
    scores, deltas = make_scores(variants, skill=0.1)
    rng = np.random.default_rng(9)
    y = (variants["label"].to_numpy() == 1).astype(float)
    strong = y + rng.normal(0, 0.4, len(y))  # an informative member
    features = build_features(variants, {"spliceai": (scores, deltas)}, {"cnn": strong})
    model, importance = fit_stacker(features, variants, StackConfig(name="stack", importance_repeats=3))
    table = model.inner_cv.set_index("candidate")
    assert model.candidate.kind == "learner" and model.candidate.feature_set == "members"
    assert "spliceai.score" in table.index and table["chosen"].sum() == 1 and table.at[model.learner, "chosen"]
    assert table.at[model.learner, "beats_best_base"] and table.at[model.learner, "difference_vs_best_base"] > 0.1
    assert model.selection["chosen"] == model.learner and model.selection["best_base"] == "spliceai"
    assert model.selection["summary"].startswith(f"stacked model = {model.learner} (inner-CV ROC-AUC")
    assert importance["feature"].iloc[0] == "member_cnn"
    test = (variants["split"] == "test").to_numpy() & (variants["label"] >= 0).to_numpy()
    stacked = _auc(y[test], model.predict_score(features[test]))
    assert stacked > _auc(y[test], features["spliceai_score"][test].to_numpy()) + 0.1
    assert stacked > 0.8
    # the calibrated probability ranks the variants as the shipped score does
    assert _auc(y[test], model.predict_proba(features[test])) == pytest.approx(stacked)


def base_is_best(n: int = 1200, seed: int = 3):
    """Variants whose only signal is the base model's score: every other feature is noise."""
    variants = make_variants(n=n, seed=seed)
    rng = np.random.default_rng(seed)
    y = (variants["label"].to_numpy() == 1).astype(float)
    signal = np.clip(0.25 * y + rng.random(n) * 0.5, 0, 1)
    scores = pd.DataFrame({c: signal * f for c, f in zip(("DS_AG", "DS_AL", "DS_DG", "DS_DL"), (1, 0.5, 0.3, 0.2))})
    for c in ("DP_AG", "DP_AL", "DP_DG", "DP_DL"):
        scores[c] = pd.array(rng.integers(-50, 51, n), dtype="Int64")
    scores.loc[rng.random(n) < 0.03, ["DS_AG", "DS_AL", "DS_DG", "DS_DL"]] = np.nan
    deltas = rng.normal(0, 0.02, (n, 101, 3)).astype(np.float32)
    return variants, scores, deltas


def test_the_best_base_score_ships_unchanged_when_no_learner_beats_it():
    from metasplice.evaluation.predictions import base_score

    variants, scores, deltas = base_is_best()
    features = build_features(variants, {"spliceai": (scores, deltas)})
    model, importance = fit_stacker(features, variants, StackConfig(name="stack", importance_repeats=2))
    assert model.candidate.kind == "base" and model.ships_base == "spliceai" and model.estimator is None
    assert model.selection["summary"] == "stacked model = spliceai's score: no learner beat it in inner CV"
    table = model.inner_cv.set_index("candidate")
    assert not table["beats_best_base"].any() and table.at["spliceai.score", "chosen"]
    assert len(table) > 5  # logistic regressions and boosters over every feature set were tried
    # the shipped values are the baseline row's score, identical (unscored stays unscored)
    np.testing.assert_array_equal(model.predict_score(features), base_score(scores))
    assert list(importance["feature"]) == ["spliceai_score"]


def test_the_choice_never_reads_the_rows_it_scores():
    """Leakage probe: whatever the validation and test rows hold (labels, features), the inner CV and
    the chosen candidate are the same, and so are the scores of the training rows."""
    variants = make_variants(n=900)
    scores, deltas = make_scores(variants, skill=0.2)
    y = (variants["label"].to_numpy() == 1).astype(float)
    features = build_features(variants, {"spliceai": (scores, deltas)})
    cfg = StackConfig(name="stack", importance_repeats=1, learners=("logreg",))
    model, _ = fit_stacker(features, variants, cfg)
    held = variants["split"].isin(["val", "test"]).to_numpy()
    probe_v, probe_f = variants.copy(), features.copy()
    rng = np.random.default_rng(0)
    probe_v.loc[held, "label"] = rng.permutation(probe_v.loc[held, "label"].to_numpy())
    # a feature that is the (probed) label itself on held-out rows, noise on training rows
    probe_f["spliceai_DS_AG"] = np.where(held, probe_v["label"].to_numpy() == 1, rng.random(len(y)))
    features["spliceai_DS_AG"] = np.where(held, 0.0, probe_f["spliceai_DS_AG"])
    model, _ = fit_stacker(features, variants, cfg)
    probed, _ = fit_stacker(probe_f, probe_v, cfg)
    pd.testing.assert_frame_equal(model.inner_cv, probed.inner_cv)
    assert model.learner == probed.learner
    train = ~held
    np.testing.assert_array_equal(model.predict_score(features[train]), probed.predict_score(probe_f[train]))


def test_inner_folds_keep_genes_and_positions_together():
    from metasplice.experiments.stacking import inner_folds

    variants = make_variants(n=900)
    train = np.flatnonzero(variants["split"].to_numpy() == "train")
    fold, how = inner_folds(variants, train, 3, 10_000, 0)
    assert how == "gene clusters" and set(fold) == {0, 1, 2}
    assert (pd.Series(fold).groupby(variants["gene"].to_numpy()[train]).nunique() == 1).all()
    # one locus (a single gene): contiguous genomic blocks, a position never in two folds
    one = variants.assign(tx_start=1_000_000, tx_end=1_020_000, chrom="chr1")
    one.loc[::7, "pos"] = one["pos"].iloc[0]  # many variants at one position
    fold, how = inner_folds(one, train, 5, 10_000, 0)
    assert how == "genomic blocks" and set(fold) == set(range(5))
    assert (pd.Series(fold).groupby(one["pos"].to_numpy()[train]).nunique() == 1).all()
    sizes = np.bincount(fold)
    assert sizes.min() > 0.4 * sizes.max()


def test_platt_calibration_keeps_the_ranking():
    from metasplice.experiments.stacking import apply_platt, fit_platt

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.clip(0.3 * y + rng.random(500) * 0.6, 0, 1)
    s[:5] = np.nan
    cal = fit_platt(s, y)
    assert cal["a"] > 0 and cal["method"].startswith("platt")
    p = apply_platt(s, cal)
    assert np.isnan(p[:5]).all() and ((p[5:] > 0) & (p[5:] < 1)).all()
    ok = np.isfinite(s)
    assert (np.diff(p[ok][np.argsort(s[ok], kind="stable")]) >= 0).all()
    assert fit_platt(1 - s, y)["method"] == "identity"  # a decreasing fit would reverse the ranking


def test_learner_list_and_bad_configs():
    with pytest.raises(ValueError, match="unknown learners"):
        StackConfig(name="stack", learners=("forest",))
    with pytest.raises(ValueError, match="unknown feature_sets"):
        StackConfig(name="stack", feature_sets=("everything",))
    with pytest.raises(ValueError, match="inner_folds must be >= 2"):
        StackConfig(name="stack", inner_folds=1)
    with pytest.raises(ValueError, match="name must contain 'stack'"):
        StackConfig(name="meta")
    with pytest.raises(ValueError, match="unknown keys"):
        StackConfig.from_spec("s_stack", {"model": "stacked", "memebers": ["a"]})
    with pytest.raises(ValueError, match="must be a list"):
        StackConfig.from_spec("s_stack", {"model": "stacked", "members": "a"})
    cfg = StackConfig.from_spec(
        "s_stack",
        {"model": "stacked", "learners": ["logreg"], "feature_sets": ["scores"], "demo": {"importance_repeats": 2}},
        demo=True,
    )
    assert cfg.learners == ("logreg",) and cfg.importance_repeats == 2 and cfg.feature_sets == ("scores",)
    from metasplice.experiments.stacking import candidates

    columns = ["spliceai_score", "spliceai_DS_AG", "spliceai_absDP_AG", "region_exonic"]
    names = [c.name for c in candidates(columns, StackConfig(name="stack"))]
    assert names[0] == "spliceai.score" and "hgb1.annotation" in names and "logreg.scores" in names
    forced = candidates(columns, StackConfig(name="stack", base_candidates=False))
    assert forced and all(c.kind == "learner" for c in forced)


def test_train_and_evaluate_stacked_files(tmp_path):
    variants = make_variants(n=800)
    variants.to_parquet(tmp_path / "variants.parquet")
    scores, deltas = make_scores(variants, skill=0.4)
    scores.to_parquet(tmp_path / "scores.parquet")
    np.save(tmp_path / "deltas.npy", deltas)
    full, oof = _oof_sources(variants, tmp_path)
    full.to_parquet(tmp_path / "full.parquet")
    member_oof = []
    for j, (pred, _, _) in enumerate(oof):
        pred.to_parquet(tmp_path / f"pred{j}.parquet")
        member_oof.append((tmp_path / f"pred{j}.parquet", tmp_path / f"oof{j}.parquet"))
    (tmp_path / "m.pt").write_bytes(b"checkpoint")
    cfg = StackConfig(name="stacked", members=("m",), importance_repeats=2)
    out = tmp_path / "models/stacked"
    model = train_stacked_files(
        cfg,
        tmp_path / "variants.parquet",
        {"spliceai": tmp_path / "scores.parquet"},
        {"spliceai": tmp_path / "deltas.npy"},
        {"m": tmp_path / "full.parquet"},
        {"m": member_oof},
        {"m": tmp_path / "m.pt"},
        out,
        base_models={"spliceai": {"kind": "spliceai", "distance": 50}},
    )
    assert (out / "members/m.pt").read_bytes() == b"checkpoint"
    import json

    choice = json.loads((out / "stacker.json").read_text())
    inner = pd.read_csv(out / "inner_cv.tsv", sep="\t")
    assert choice["chosen"] == model.learner == inner.loc[inner["chosen"], "candidate"].item()
    assert choice["inner_cv"]["folds"] == 5 and "spliceai.score" in set(inner["candidate"])
    loaded = StackedModel.load(out)
    assert loaded.candidate == model.candidate and loaded.calibration == model.calibration
    features = pd.read_parquet(out / "features.parquet")
    assert np.array_equal(features["variant_id"], variants["variant_id"])
    assert np.allclose(loaded.predict_proba(features), model.predict_proba(features), equal_nan=True)
    assert loaded.base_models == {"spliceai": {"kind": "spliceai", "distance": 50}}
    assert loaded.member_files == {"m": "members/m.pt"}
    cfg_eval = E.EvalConfig.from_dict({"bootstrap_n": 50})
    result = evaluate_stacked_files(
        out,
        tmp_path / "variants.parquet",
        tmp_path / "scores.parquet",
        tmp_path / "pred.parquet",
        tmp_path / "metrics.json",
        "stacked",
        cfg_eval,
    )
    assert result["kind"] == "stacked" and result["comparison"]["reference"] == "spliceai"
    assert result["threshold"]["chosen_on"] == "val"
    assert result["stacking"]["chosen"] == model.learner and result["stacking"]["summary"]
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    assert set(pred["split"]) == {"val", "test"}
    ok = pred["score"].notna()
    assert (pred.loc[ok, "score_calibrated"].rank() == pred.loc[ok, "score"].rank()).all()
    # a stale features file (other variants) is refused
    variants.iloc[::-1].to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not row-aligned"):
        evaluate_stacked_files(
            out,
            tmp_path / "other.parquet",
            tmp_path / "scores.parquet",
            tmp_path / "p2.parquet",
            tmp_path / "m2.json",
            "stacked",
            cfg_eval,
        )


def test_workflow_wiring_of_stacked_instances():
    from pathlib import Path

    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    config["dataset"] = "demo"
    inputs = PLAN.stacked_inputs(config, "stacked", "results/variants/variants.parquet")
    assert inputs["oof_predictions__binary_quick__2"] == "results/eval/binary_quick__oof2/predictions.parquet"
    assert inputs["oof_variants__binary_quick__2"] == "results/stacking/main/oof2/variants.parquet"
    assert "oof_predictions__binary_quick__3" not in inputs  # the demo uses 3 groups
    config["evaluation"] = {**config["evaluation"], "cross_validation": {"enabled": True, "n_folds": 2}}
    fold = PLAN.stacked_inputs(config, "stacked__fold1", "results/variants/variants.parquet")
    assert fold["variants"] == "results/crossval/fold1/variants.parquet"
    assert fold["predictions__binary_quick"] == "results/eval/binary_quick__fold1/predictions.parquet"
    assert fold["oof_variants__binary_quick__0"] == "results/stacking/fold1/oof0/variants.parquet"
    assert PLAN.oof_scope_variants(config, "fold1", "v.parquet") == "results/crossval/fold1/variants.parquet"
    assert PLAN.resolve_instance(config, "binary_quick__fold1__oof2").name == "binary_quick"
    assert (
        PLAN.experiment_variants(config, "binary_quick__fold1__oof2", "v")
        == "results/stacking/fold1/oof2/variants.parquet"
    )
    with pytest.raises(ValueError, match="out-of-fold group 3 does not exist"):
        PLAN.experiment_variants(config, "binary_quick__oof3", "v")
    assert "stacker" in PLAN.evaluate_inputs(config, "stacked", "v")
    bad = {**config, "experiments": {**config["experiments"], "s2_stack": {"model": "stacked", "members": ["nope"]}}}
    with pytest.raises(ValueError, match="member 'nope' is not a configured experiment"):
        PLAN.stacked_inputs(bad, "s2_stack", "v")
    bad["experiments"]["s2_stack"] = {"model": "stacked", "members": ["stacked"]}
    with pytest.raises(ValueError, match="members must be trained experiments"):
        PLAN.stacked_inputs(bad, "s2_stack", "v")
    bad["experiments"]["s2_stack"] = {"model": "stacked", "bases": ["openspliceai"]}
    with pytest.raises(ValueError, match="not configured under base_models"):
        PLAN.stacked_inputs(bad, "s2_stack", "v")
