"""metasplice.evaluation.evaluate and metasplice.evaluation.crossval on small synthetic variant, score and window files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import metasplice.data.splits as SPL
import metasplice.experiments.plan as PLAN
from metasplice.evaluation import crossval as CV
from metasplice.evaluation import evaluate as E
from metasplice.evaluation import metrics as M

CHROMS = ("chr1", "chr2", "chr3", "chr4", "chr5", "chr21", "chr22")
FAST = E.EvalConfig(bootstrap=M.BootstrapConfig(n=200, seed=1))


def make_variants(n: int = 700, seed: int = 0) -> pd.DataFrame:
    """Variants on 7 chromosomes, 6 genes each; test = chr21/22, val = genes 0-1 of chr5."""
    rng = np.random.default_rng(seed)
    chrom = rng.choice(CHROMS, n)
    gene = rng.integers(0, 6, n)
    label = rng.choice([1, 0, -1], n, p=[0.45, 0.45, 0.10]).astype(np.int8)
    split = np.where(
        np.isin(chrom, ["chr21", "chr22"]), "test", np.where((chrom == "chr5") & (gene < 3), "val", "train")
    )
    cls = np.where(label == 1, "Splice-altering", np.where(label == 0, "Normal", "Low-frequency"))
    pos = gene * 50_000 + rng.integers(1, 20_000, n)
    return pd.DataFrame(
        {
            "variant_id": [f"{c}:{p}:A:G:{i}" for i, (c, p) in enumerate(zip(chrom, pos))],
            "chrom": chrom,
            "pos": pos.astype(np.int64),
            "split": split,
            "label": label,
            "classification": cls,
            "gene": [f"{c}_G{g}" for c, g in zip(chrom, gene)],
            "tx_start": (gene * 50_000 + 1).astype(np.int64),
            "tx_end": (gene * 50_000 + 20_000).astype(np.int64),
            "region": rng.choice(list(E.REGIONS), n),
            "variant_type": rng.choice(["snv", "snv", "insertion", "deletion"], n),
        }
    )


def make_scores(variants: pd.DataFrame, seed: int = 0, strength: float = 0.5, unscored: int = 5) -> pd.DataFrame:
    """SpliceAI-like scores: higher for Splice-altering; the first ``unscored`` rows skipped (NaN)."""
    rng = np.random.default_rng(seed)
    n = len(variants)
    sa = (variants["label"].to_numpy() == 1)[:, None]
    ds = np.clip(rng.beta(1, 8, (n, 4)) + sa * strength * rng.random((n, 4)), 0, 1).astype(np.float32)
    ds[:unscored] = np.nan
    scores = pd.DataFrame(ds, columns=list(E.DS_COLUMNS))
    label = variants["label"].to_numpy()
    for c in E.DS_COLUMNS:
        scores[f"target_{c}"] = np.where(label == 1, scores[c], np.where(label == 0, 0.0, np.nan)).astype(np.float32)
    scores["scored"] = np.isfinite(ds).all(axis=1)
    return scores


@pytest.fixture()
def data():
    variants = make_variants()
    return variants, make_scores(variants)


def test_threshold_is_chosen_on_validation_only(data, monkeypatch):
    variants, scores = data
    pred = E.baseline_predictions(variants, scores)
    base = E.evaluate_predictions(pred, FAST, "x", "baseline")

    # 1. permuting the test labels leaves the threshold (and the validation F1) unchanged ...
    rng = np.random.default_rng(9)
    shuffled = pred.copy()
    test = np.flatnonzero((shuffled["split"] == "test").to_numpy())
    shuffled.loc[test, "label"] = rng.permutation(shuffled.loc[test, "label"].to_numpy())
    permuted = E.evaluate_predictions(shuffled, FAST, "x", "baseline")
    assert permuted["threshold"] == base["threshold"]
    # ... while the test metrics do see the permutation (the check could fail)
    assert permuted["metrics"]["roc_auc"]["estimate"] != base["metrics"]["roc_auc"]["estimate"]

    # 2. permuting the validation labels does move it
    val = np.flatnonzero((pred["split"] == "val").to_numpy())
    moved = pred.copy()
    moved.loc[val, "label"] = rng.permutation(moved.loc[val, "label"].to_numpy())
    assert E.evaluate_predictions(moved, FAST, "x", "baseline")["threshold"] != base["threshold"]

    # 3. the chooser receives exactly the scored, labelled validation rows
    seen = []
    real = M.max_f1_threshold
    monkeypatch.setattr(M, "max_f1_threshold", lambda y, s: seen.append((np.asarray(y), np.asarray(s))) or real(y, s))
    E.evaluate_predictions(pred, FAST, "x", "baseline")
    v = pred[(pred["split"] == "val") & pred["label"].isin([0, 1]) & np.isfinite(pred["score"])]
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0][0], v["label"].to_numpy())
    np.testing.assert_array_equal(seen[0][1], v["score"].to_numpy())


def test_baseline_files(tmp_path, data):
    variants, scores = data
    variants.to_parquet(tmp_path / "variants.parquet")
    scores.to_parquet(tmp_path / "spliceai.parquet")
    other = make_scores(variants, seed=5, strength=0.1, unscored=0)
    other.to_parquet(tmp_path / "openspliceai.parquet")
    res = E.evaluate_baseline_files(
        tmp_path / "variants.parquet",
        tmp_path / "spliceai.parquet",
        tmp_path / "p.parquet",
        tmp_path / "m.json",
        "spliceai",
        FAST,
        reference_scores_path=tmp_path / "spliceai.parquet",
    )
    pred = pd.read_parquet(tmp_path / "p.parquet")
    assert set(pred["split"]) == {"val", "test"}
    assert list(pred.columns[:7]) == [
        "variant_id",
        "split",
        "label",
        "classification",
        "region",
        "variant_type",
        "score",
    ]
    ds = scores[list(E.DS_COLUMNS)].to_numpy(np.float64)
    rows = np.flatnonzero(variants["split"].isin(["val", "test"]))
    np.testing.assert_allclose(pred["score"], ds[rows].max(axis=1))
    # strict JSON (no NaN), n per class, unscored counted
    on_disk = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
    assert on_disk == json.loads(json.dumps(E._clean(res)))
    test = variants[(variants["split"] == "test") & variants["label"].isin([0, 1])]
    unscored = int((~np.isfinite(ds[test.index].max(axis=1))).sum())
    assert res["n"]["test"]["positive"] == int((test["label"] == 1).sum())
    assert res["n"]["test"]["negative"] == int((test["label"] == 0).sum())
    assert res["n"]["test"]["unscored"] == unscored
    assert res["n"]["test"]["scored"] == len(test) - unscored
    cm = res["confusion_matrix"]
    assert sum(cm.values()) == res["n"]["test"]["scored"]
    assert res["comparison"] is None  # the reference itself
    for key in ("roc_auc", "pr_auc"):
        iv = res["metrics"][key]
        assert iv["low"] <= iv["estimate"] <= iv["high"] and iv["n_boot"] + iv["n_skipped"] == 200
    for rule in ("at_val_threshold", "at_fixed_threshold"):
        assert set(res["metrics"][rule]) == {"detection_rate", "fpr", "precision", "f1", "confusion"}
    assert res["fixed_threshold"] == {"threshold": 0.1, "rule": "score > threshold", "applies": True}
    y, s = E.scored_arrays(E.labelled_rows(pred, "test"))
    assert res["metrics"]["roc_auc"]["estimate"] == pytest.approx(M.roc_auc(y, s))
    # breakdowns: every region / type present, counts add up to the test n
    for column, order in (("region", E.REGIONS), ("variant_type", ("snv", "insertion", "deletion"))):
        cells = res["breakdowns"][column]
        assert [c["group"] for c in cells] == list(order)
        assert sum(c["n"] for c in cells) == res["n"]["test"]["scored"]
        assert all(c["n_positive"] + c["n_negative"] == c["n"] for c in cells)
    # a second base model is compared with the reference on the shared variants
    res2 = E.evaluate_baseline_files(
        tmp_path / "variants.parquet",
        tmp_path / "openspliceai.parquet",
        tmp_path / "p2.parquet",
        tmp_path / "m2.json",
        "openspliceai",
        FAST,
        reference_scores_path=tmp_path / "spliceai.parquet",
    )
    comp = res2["comparison"]
    assert comp["reference"] == "spliceai"
    assert comp["n"] == res["n"]["test"]["scored"]  # openspliceai scored all; spliceai's unscored are left out
    assert comp["roc_auc"]["difference"] < 0 and comp["roc_auc"]["p_value"] < 0.05
    assert comp["roc_auc_delong"]["p_value"] < 0.05


def test_scores_must_be_row_aligned(tmp_path, data):
    variants, scores = data
    variants.to_parquet(tmp_path / "variants.parquet")
    scores.iloc[:-1].to_parquet(tmp_path / "short.parquet")
    with pytest.raises(ValueError, match="rows but .*variants.parquet has"):
        E.evaluate_baseline_files(
            tmp_path / "variants.parquet",
            tmp_path / "short.parquet",
            tmp_path / "p.parquet",
            tmp_path / "m.json",
            "spliceai",
            FAST,
        )
    assert not (tmp_path / "p.parquet").exists() and not (tmp_path / "m.json").exists()


def test_correlation_of_delta_predictions(data):
    variants, scores = data
    rows = np.flatnonzero(variants["split"].isin(["val", "test"]))
    perfect = np.nan_to_num(scores[[f"target_{c}" for c in E.DS_COLUMNS]].to_numpy(np.float64)[rows])
    pred = E.model_predictions(variants, perfect, rows, E.DS_COLUMNS, "delta", scores)
    res = E.evaluate_predictions(pred, FAST, "perfect", "delta")
    assert res["correlation"]["max"]["estimate"] == pytest.approx(1.0)
    assert res["correlation"]["n"] == int(
        ((pred["split"] == "test") & (pred["label"] == 1) & np.isfinite(pred["target_DS_AG"])).sum()
    )
    np.testing.assert_allclose(pred["score"], perfect.max(axis=1))
    binary = E.model_predictions(variants, perfect[:, :1], rows, ("splice_altering",), "binary")
    assert "pred_DS_AG" not in binary and E.evaluate_predictions(binary, FAST, "b", "binary")["correlation"] is None


def test_experiment_files_with_a_real_model(tmp_path, data):
    import torch

    from metasplice.models import build_model, model_config, save_model

    variants, scores = data
    torch.manual_seed(0)
    context = 41
    model = build_model(
        "gated_cnn",
        model_config(
            "gated_cnn", {"task": "delta", "context": context, "hidden": 8, "layers": 1, "attention_heads": 1}
        ),
    )
    save_model(tmp_path / "model.pt", model, info={"best_epoch": 2, "epochs_run": 3})
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, (len(variants), context), dtype=np.uint8)
    alt = ref.copy()
    alt[:, context // 2] = (ref[:, context // 2] + 1) % 4
    np.savez(tmp_path / "ctx41.npz", ref=ref, alt=alt)
    variants.to_parquet(tmp_path / "variants.parquet")
    scores.to_parquet(tmp_path / "scores.parquet")
    cfg = E.EvalConfig(bootstrap=M.BootstrapConfig(n=100), device="cpu", batch_size=64)
    res = E.evaluate_experiment_files(
        tmp_path / "model.pt",
        tmp_path / "variants.parquet",
        tmp_path / "ctx41.npz",
        tmp_path / "scores.parquet",
        tmp_path / "p.parquet",
        tmp_path / "m.json",
        "tiny",
        cfg,
    )
    pred = pd.read_parquet(tmp_path / "p.parquet")
    rows = np.flatnonzero(variants["split"].isin(["val", "test"]))
    assert len(pred) == len(rows)
    with torch.no_grad():
        expected = torch.sigmoid(model.eval()(torch.from_numpy(ref[rows[:5]]), torch.from_numpy(alt[rows[:5]])))
    np.testing.assert_allclose(pred[[f"pred_{c}" for c in E.DS_COLUMNS]].to_numpy()[:5], expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(pred["score"], pred[[f"pred_{c}" for c in E.DS_COLUMNS]].max(axis=1))
    assert {f"target_{c}" for c in E.DS_COLUMNS} <= set(pred.columns)
    assert res["task"] == "delta" and res["training"]["best_epoch"] == 2
    assert res["comparison"]["reference"] == "spliceai"
    assert 0 <= res["comparison"]["roc_auc"]["p_value"] <= 1
    assert res["correlation"] is not None
    zeros = np.zeros((len(variants), 51), np.uint8)
    np.savez(tmp_path / "ctx51.npz", ref=zeros, alt=zeros)
    with pytest.raises(ValueError, match="windows are 51 nt but the model's context is 41"):
        E.evaluate_experiment_files(
            tmp_path / "model.pt",
            tmp_path / "variants.parquet",
            tmp_path / "ctx51.npz",
            tmp_path / "scores.parquet",
            tmp_path / "p.parquet",
            tmp_path / "m.json",
            "t",
            cfg,
        )


def test_eval_config_from_dict():
    cfg = E.EvalConfig.from_dict({"bootstrap_n": 50, "seed": 3, "fixed_threshold": 0.2, "cross_validation": {}})
    assert cfg.bootstrap.n == 50 and cfg.bootstrap.seed == 3 and cfg.fixed_threshold == 0.2
    with pytest.raises(ValueError, match="unknown evaluation keys"):
        E.EvalConfig.from_dict({"bootstrap": 5})


# ------------------------------------------------------------------------------------------ cross-validation


def test_folds_cover_every_labelled_variant_once(data):
    variants, _ = data
    cfg = SPL.CrossValConfig(enabled=True, n_folds=3, val_fraction=0.2, seed=4)
    groups, splits = SPL.assign_folds(variants, cfg)
    assert sorted(c for g in groups for c in g) == sorted(CHROMS)
    labelled = variants["label"].isin([0, 1]).to_numpy()
    n_test = (splits.to_numpy() == "test").sum(axis=1)
    assert (n_test[labelled] == 1).all()  # every labelled variant tested by exactly one fold
    chrom = variants["chrom"].to_numpy()
    for k, group in enumerate(groups):
        split = splits[f"fold{k}"].to_numpy()
        assert set(chrom[split == "test"]) == set(group)
        assert not set(chrom[split != "test"]) & set(group)  # its test never in its training / validation
        assert (split == "val").any()
        # validation takes whole gene clusters: no gene on both sides
        genes = variants["gene"].to_numpy()
        assert not set(genes[split == "val"]) & set(genes[split == "train"])
    _, again = SPL.assign_folds(variants, cfg)
    pd.testing.assert_frame_equal(splits, again)  # seeded


def test_chromosome_groups_are_balanced_and_explicit_groups_checked(data):
    variants, _ = data
    groups = SPL.chromosome_groups(variants, 3)
    counts = variants[variants["label"].isin([0, 1])]["chrom"].value_counts()
    totals = [sum(counts[c] for c in g) for g in groups]
    assert max(totals) - min(totals) <= counts.max()
    with pytest.raises(ValueError, match="in no cross_validation group"):
        SPL.assign_folds(variants, SPL.CrossValConfig(enabled=True, groups=(("chr1", "2"), ("chr3",))))
    with pytest.raises(ValueError, match="groups 0 and 1"):
        SPL.assign_folds(variants, SPL.CrossValConfig(enabled=True, groups=(("chr1",), ("1",))))
    groups, _ = SPL.assign_folds(
        variants, SPL.CrossValConfig(enabled=True, groups=(("1", "2", "3"), ("chr4", "chr5"), ("21", "22")))
    )
    assert groups == [["chr1", "chr2", "chr3"], ["chr4", "chr5"], ["chr21", "chr22"]]
    assert SPL.split_fold_name("quick_test__fold2") == ("quick_test", 2)
    assert SPL.split_fold_name("quick_test") == ("quick_test", None)


def test_fold_files_and_pooled_aggregation(tmp_path, data):
    variants, scores = data
    variants.to_parquet(tmp_path / "variants.parquet")
    scores.to_parquet(tmp_path / "spliceai.parquet")
    cfg = SPL.CrossValConfig(enabled=True, n_folds=3, val_fraction=0.2)
    outs = [tmp_path / f"fold{k}" / "variants.parquet" for k in range(3)]
    summary = SPL.write_fold_variants(tmp_path / "variants.parquet", outs, tmp_path / "folds.tsv", cfg)
    assert len(summary) == 3 and (tmp_path / "folds.tsv").exists()
    fold0 = pd.read_parquet(outs[0])
    pd.testing.assert_frame_equal(fold0.drop(columns="split"), variants.drop(columns="split"))
    # the baseline through the fold files: every labelled, scored variant pooled once
    res = CV.aggregate_baseline_files(
        outs, tmp_path / "spliceai.parquet", tmp_path / "p.parquet", tmp_path / "m.json", "spliceai", FAST
    )
    pooled = pd.read_parquet(tmp_path / "p.parquet")
    labelled = variants["label"].isin([0, 1])
    assert sorted(pooled["variant_id"]) == sorted(variants.loc[labelled, "variant_id"])
    assert res["cross_validation"]["n_folds"] == 3 and len(res["threshold"]["per_fold"]) == 3
    y, s = E.scored_arrays(pooled)
    assert res["metrics"]["roc_auc"]["estimate"] == pytest.approx(M.roc_auc(y, s))
    # the pooled calls use each fold's own validation threshold
    for k, t in enumerate(res["threshold"]["per_fold"]):
        part = pooled[pooled["fold"] == k]
        np.testing.assert_array_equal(part["call_at_val_threshold"], part["score"] >= t)
    folds = res["cross_validation"]["folds"]
    assert res["cross_validation"]["across_folds"]["roc_auc"]["mean"] == pytest.approx(
        np.mean([f["roc_auc"]["estimate"] for f in folds])
    )
    # folds that overlap are refused
    fold_preds = [E.baseline_predictions(pd.read_parquet(p), scores) for p in outs]
    with pytest.raises(ValueError, match="more than one fold"):
        CV.aggregate_folds([fold_preds[0], fold_preds[0]], FAST, "x", "baseline")


def test_workflow_wiring_paths():
    config = {
        "dataset": "demo",
        "sequences": {"contexts": [401, 1001]},
        "experiments": {
            "d": {"model": "gated_cnn", "task": "delta", "context": 401},
            "b": {"model": "gated_cnn", "task": "binary", "context": 1001},
        },
        "evaluation": {"baselines": ["openspliceai"], "cross_validation": {"enabled": True, "n_folds": 4}},
    }
    v = "results/variants/variants.parquet"
    assert PLAN.baseline_bases(config) == ["spliceai", "openspliceai"]  # the reference always first
    assert PLAN.report_experiments(config) == ["d", "b"]
    d = PLAN.evaluate_inputs(config, "d", v)
    assert d == {
        "model": "results/models/d/model.pt",
        "variants": v,
        "sequences": "results/sequences/ctx401.npz",
        "reference": "results/targets/spliceai/scores.parquet",
        "targets": "results/targets/spliceai/scores.parquet",
    }
    fold = PLAN.evaluate_inputs(config, "b__fold3", v)
    assert fold["variants"] == "results/crossval/fold3/variants.parquet"
    assert fold["model"] == "results/models/b__fold3/model.pt" and "targets" not in fold
    assert fold["sequences"] == "results/sequences/ctx1001.npz"
    with pytest.raises(ValueError, match="fold 4 does not exist"):
        PLAN.experiment_variants(config, "d__fold4", v)
    inputs = PLAN.report_inputs(config)
    assert inputs["cv_metrics"] == ["results/eval_cv/d/metrics.json", "results/eval_cv/b/metrics.json"]
    assert inputs["baseline_metrics"][0] == "results/eval/baseline/spliceai/metrics.json"
    assert not any("model.pt" in p for paths in inputs.values() for p in paths)  # the report never needs a model
    cv = PLAN.evaluate_cv_inputs(config, "d", v)
    assert cv["predictions"][-1] == "results/eval/d__fold3/predictions.parquet"
    config["evaluation"]["cross_validation"]["enabled"] = False
    assert "cv_metrics" not in PLAN.report_inputs(config)
    config["evaluation"]["experiments"] = ["nope"]
    with pytest.raises(ValueError, match="unknown experiments"):
        PLAN.report_experiments(config)


def test_every_row_is_measured_on_the_variants_the_reference_scored(data):
    """A model that also scores what the reference base model skipped is measured on the reference's test
    variants (its numbers on all of them are kept apart); the fixed SpliceAI threshold applies to delta scores
    only."""
    variants, scores = data
    test_rows = np.flatnonzero(((variants["split"] == "test") & variants["label"].isin([0, 1])).to_numpy())
    scores = scores.copy()
    skipped = test_rows[:30]
    scores.loc[skipped, list(E.DS_COLUMNS)] = np.nan  # the reference skips 30 labelled test variants
    reference = E.reference_table(variants, scores)
    baseline = E.evaluate_predictions(E.baseline_predictions(variants, scores), FAST, "spliceai", "baseline")
    rows = E.eval_rows(variants)
    rng = np.random.default_rng(3)
    prob = np.clip(0.3 * variants["label"].to_numpy()[rows] + rng.random(len(rows)) * 0.7, 0, 1)[:, None]
    binary = E.model_predictions(variants, prob, rows, ("splice_altering",), "binary")
    res = E.evaluate_predictions(binary, FAST, "meta", "binary", reference, "spliceai")
    n_base, n_meta = baseline["n"]["test"], res["n"]["test"]
    assert n_meta["scored"] == n_base["scored"] == len(test_rows) - 30
    assert n_meta["unscored_by_reference"] == 30 and sum(res["confusion_matrix"].values()) == n_base["scored"]
    assert res["comparison"]["n"] == n_base["scored"] and res["comparison"]["n_excluded"] == 0
    measured = binary[
        binary["split"].eq("test")
        & binary["label"].isin([0, 1])
        & ~binary["variant_id"].isin(variants["variant_id"].iloc[skipped])
    ]
    assert res["metrics"]["roc_auc"]["estimate"] == pytest.approx(M.roc_auc(measured["label"], measured["score"]))
    assert res["all_scored"]["n"] == len(test_rows) and res["all_scored"]["n_unscored_by_reference"] == 30
    # a probability is not a delta score: no fixed-threshold metrics for it, unlike the baseline's
    assert res["metrics"]["at_fixed_threshold"] is None and not res["fixed_threshold"]["applies"]
    assert baseline["metrics"]["at_fixed_threshold"]["f1"]["estimate"] is not None
    assert all("at_fixed_threshold" not in cell for cells in res["breakdowns"].values() for cell in cells)
    delta = E.model_predictions(variants, np.repeat(prob, 4, axis=1), rows, E.DS_COLUMNS, "delta")
    assert E.delta_scale(delta) and not E.delta_scale(binary)
    assert E.evaluate_predictions(delta, FAST, "d", "delta", reference, "spliceai")["fixed_threshold"]["applies"]
