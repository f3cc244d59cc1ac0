"""metasplice.evaluation.metrics against hand-computed values and against scikit-learn on explicit resamples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from metasplice.evaluation import metrics as M

# four variants: positives score 0.35 and 0.8, negatives 0.1 and 0.4
Y = np.array([0, 0, 1, 1])
S = np.array([0.1, 0.4, 0.35, 0.8])
# ties: a positive and a negative share 0.5
YT = np.array([0, 1, 0, 1])
ST = np.array([0.5, 0.5, 0.2, 0.9])


def test_roc_auc_hand_computed():
    # pairs (pos, neg): (0.35, 0.1) win, (0.35, 0.4) loss, (0.8, 0.1) win, (0.8, 0.4) win -> 3/4
    assert M.roc_auc(Y, S) == pytest.approx(0.75)
    # ties count one half: (0.5 vs 0.5) 1/2, (0.5 vs 0.2) 1, (0.9 vs 0.5) 1, (0.9 vs 0.2) 1 -> 3.5/4
    assert M.roc_auc(YT, ST) == pytest.approx(0.875)


def test_pr_auc_hand_computed():
    # descending: 0.8 (tp) P=1 R=.5; 0.4 (fp) P=.5; 0.35 (tp) P=2/3 R=1 -> .5*1 + .5*2/3
    assert M.pr_auc(Y, S) == pytest.approx(0.5 + 1 / 3)
    # tied level 0.5 holds one tp and one fp: 0.9 -> P=1 R=.5; 0.5 -> P=2/3 R=1
    assert M.pr_auc(YT, ST) == pytest.approx(0.5 + 1 / 3)


def test_single_class_is_nan():
    assert np.isnan(M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(M.pr_auc([0, 0], [0.1, 0.2]))
    assert np.isnan(M.threshold_metrics([1, 1], [0.1, 0.9], 0.5)["f1"])
    assert np.isnan(M.threshold_metrics([1, 1], [0.1, 0.9], 0.5)["fpr"])
    assert M.threshold_metrics([1, 1], [0.1, 0.9], 0.5)["detection_rate"] == 0.5


def test_pearson_hand_computed():
    assert M.pearson_r([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert M.pearson_r([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # x = [0, 1, 2, 3], y = [0, 1, 1, 0]: cov 0 -> r 0
    assert M.pearson_r([0, 1, 2, 3], [0, 1, 1, 0]) == pytest.approx(0.0, abs=1e-12)
    # x = [1, 2, 3], y = [1, 3, 2]: sxy = 1, sxx = 2, syy = 2 -> 0.5
    assert M.pearson_r([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert np.isnan(M.pearson_r([1, 1, 1], [1, 2, 3]))


def test_threshold_metrics_and_confusion_hand_computed():
    # score >= 0.35: calls [F, T, T, T] -> tp 2, fp 1, tn 1, fn 0
    r = M.threshold_metrics(Y, S, 0.35, inclusive=True)
    assert r["confusion"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 2}
    assert r["detection_rate"] == pytest.approx(1.0)
    assert r["fpr"] == pytest.approx(0.5)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(0.8)
    # the fixed rule is strict: score > 0.35 drops the tied positive
    s = M.threshold_metrics(Y, S, 0.35, inclusive=False)
    assert s["confusion"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert s["f1"] == pytest.approx(0.5)
    assert r["f1"] == pytest.approx(f1_score(Y, S >= 0.35))


def test_max_f1_threshold_hand_computed():
    # candidates: >=0.8 F1 2/3; >=0.4 F1 .5; >=0.35 F1 .8; >=0.1 F1 2/3 -> 0.35
    t, f1 = M.max_f1_threshold(Y, S)
    assert t == pytest.approx(0.35)
    assert f1 == pytest.approx(0.8)
    # >=0.9: F1 .5; >=0.8: .4; >=0.7: 2/3; >=0.2: 4/7; >=0.1: P 3/5 R 1 -> F1 .75 (the lowest wins here)
    t2, _ = M.max_f1_threshold([1, 0, 1, 0, 1], [0.9, 0.8, 0.7, 0.2, 0.1])
    assert t2 == pytest.approx(0.1)
    t3, f3 = M.max_f1_threshold([1, 0, 0, 1], [0.9, 0.5, 0.4, 0.1])
    # >=0.9: F1 2/3; >=0.1: P=.5 R=1 F1 2/3 -> tie, the higher threshold wins
    assert (t3, f3) == (pytest.approx(0.9), pytest.approx(2 / 3))
    with pytest.raises(ValueError, match="single class"):
        M.max_f1_threshold([1, 1], [0.2, 0.3])


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        M.roc_auc([0, -1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="non-finite"):
        M.roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="shape"):
        M.roc_auc([0, 1], [0.1, 0.2, 0.3])


def test_weighted_forms_match_sklearn_on_resamples():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n).astype(bool)
    s = np.round(rng.random(n) + 0.4 * y, 1)  # coarse scores: many ties
    x = rng.normal(size=n)
    z = x + rng.normal(size=n)
    W = M.bootstrap_counts(n, 15, 5)
    assert (W.sum(axis=1) == n).all()
    auc, ap, r = M.weighted_roc_auc(y, s, W), M.weighted_pr_auc(y, s, W), M.weighted_pearson_r(x, z, W)
    thr = M.weighted_threshold_metrics(y, s, W, 0.7, inclusive=True)
    for b in range(len(W)):
        idx = np.repeat(np.arange(n), W[b])
        assert auc[b] == pytest.approx(roc_auc_score(y[idx], s[idx]), abs=1e-12)
        assert ap[b] == pytest.approx(average_precision_score(y[idx], s[idx]), abs=1e-12)
        assert r[b] == pytest.approx(np.corrcoef(x[idx], z[idx])[0, 1], abs=1e-10)
        assert thr["f1"][b] == pytest.approx(f1_score(y[idx], s[idx] >= 0.7), abs=1e-12)
    # integer 0/1 labels give the same values as bool ones
    np.testing.assert_array_equal(M.weighted_roc_auc(y.astype(np.int8), s, W), auc)
    np.testing.assert_array_equal(M.weighted_pr_auc(y.astype(np.int64), s, W), ap)


def test_single_class_resample_is_skipped_and_counted():
    # resample 0: the original data; resample 1: only the two negatives (single class);
    # resample 2: positives 0.35, 0.8 and negative 0.1 twice -> AUC 1.0
    counts = np.array([[1, 1, 1, 1], [2, 2, 0, 0], [2, 0, 1, 1]])
    iv = M.roc_auc_ci(Y, S, M.BootstrapConfig(level=0.5), counts=counts)
    assert iv.estimate == pytest.approx(0.75)
    assert iv.n_skipped == 1 and iv.n_boot == 2
    # percentile interval of the two usable values (0.75, 1.0) at 50%: the 25th and 75th percentiles
    assert (iv.low, iv.high) == (pytest.approx(0.8125), pytest.approx(0.9375))
    thr = M.threshold_metrics_ci(Y, S, 0.35, cfg=M.BootstrapConfig(), counts=counts)
    assert thr["detection_rate"].n_skipped == 1  # no positives in resample 1
    assert thr["fpr"].n_skipped == 0
    # all resamples single-class -> NaN interval, every resample counted as skipped
    all_bad = M.pr_auc_ci(Y, S, counts=np.array([[2, 2, 0, 0], [0, 0, 2, 2]]))
    assert np.isnan(all_bad.low) and all_bad.n_skipped == 2 and all_bad.n_boot == 0


def test_bootstrap_is_seeded_and_covers_the_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = rng.random(300) + 0.5 * y
    cfg = M.BootstrapConfig(n=300, seed=11, chunk=64)
    a, b = M.roc_auc_ci(y, s, cfg), M.roc_auc_ci(y, s, cfg)
    assert a == b
    assert a.low < a.estimate < a.high
    assert M.roc_auc_ci(y, s, M.BootstrapConfig(n=300, seed=12)) != a
    # chunking does not change the resamples
    assert M.roc_auc_ci(y, s, M.BootstrapConfig(n=300, seed=11, chunk=300)) == a


def test_paired_bootstrap_identical_and_clearly_better():
    rng = np.random.default_rng(2)
    n = 600
    y = rng.integers(0, 2, n)
    good = y + rng.normal(0, 0.5, n)
    noise = rng.normal(0, 1, n)
    same = M.paired_bootstrap(y, good, good.copy(), "roc_auc", M.BootstrapConfig(n=500))
    assert same.p_value == pytest.approx(1.0)
    assert same.difference == 0.0
    better = M.paired_bootstrap(y, good, noise, "roc_auc", M.BootstrapConfig(n=500))
    assert better.difference > 0.2
    assert better.p_value <= 2 / 501 + 1e-12
    assert better.low > 0
    pr = M.paired_bootstrap(y, good, noise, "pr_auc", M.BootstrapConfig(n=500))
    assert pr.p_value < 0.01
    # swapping a and b flips the sign, not the p-value
    worse = M.paired_bootstrap(y, noise, good, "roc_auc", M.BootstrapConfig(n=500))
    assert worse.difference == pytest.approx(-better.difference)
    assert worse.p_value == pytest.approx(better.p_value)


def _delong_reference(y, a, b):
    """DeLong by its definition: O(m n) structural components."""
    y = np.asarray(y).astype(bool)

    def comps(s):
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    (ta, v10a, v01a), (tb, v10b, v01b) = comps(a), comps(b)
    m, n = y.sum(), (~y).sum()
    s10, s01 = np.cov(np.vstack([v10a, v10b])), np.cov(np.vstack([v01a, v01b]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return ta - tb, var


def test_delong_matches_definition_and_extremes():
    from scipy import stats

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 120)
    a = np.round(y + rng.normal(0, 0.8, 120), 1)
    b = np.round(y + rng.normal(0, 1.2, 120), 1)
    res = M.delong_test(y, a, b)
    diff, var = _delong_reference(y, a, b)
    assert res.difference == pytest.approx(diff)
    assert res.a == pytest.approx(roc_auc_score(y, a))
    assert res.p_value == pytest.approx(2 * stats.norm.sf(abs(diff) / np.sqrt(var)))
    assert M.delong_test(y, a, a).p_value == 1.0
    strong = rng.integers(0, 2, 800)
    assert M.delong_test(strong, strong + rng.normal(0, 0.3, 800), rng.normal(size=800)).p_value < 1e-6
