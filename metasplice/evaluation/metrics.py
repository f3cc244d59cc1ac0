"""Classification and regression metrics with percentile-bootstrap confidence intervals.

Point estimates come from scikit-learn (``roc_auc_score``, ``average_precision_score``,
``confusion_matrix``, ``precision_recall_curve``) and scipy (``pearsonr``). The bootstrap is
vectorised with numpy: a resample is a row of counts (how often each variant was drawn), and every
metric has a *weighted* form that evaluates all resamples at once from a (B, n) count matrix. Those
weighted forms compute exactly what scikit-learn computes on the resampled data (the tests check it).

Conventions

- Labels are 0/1 (1 = Splice-altering); higher score = more likely splice-altering.
- A threshold rule is ``score >= t`` (``inclusive=True``, the rule of a threshold chosen on
  validation, which is a score value) or ``score > t`` (``inclusive=False``, the fixed |Δ| > 0.1 rule).
- Undefined values are NaN: ROC-AUC / PR-AUC / F1 on a single class, detection rate without
  positives, false-positive rate without negatives, Pearson r of a constant.
- Bootstrap resamples whose metric is undefined (a resample holding a single class, or a constant
  for Pearson r) are *skipped and counted*: the interval is the percentile interval of the remaining
  resamples and ``n_skipped`` reports how many were dropped. With every resample skipped the
  interval is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix

# --------------------------------------------------------------------------------------------
# input checks


def _as_labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0 or 1; found {np.unique(y[bad])[:5].tolist()} (drop label -1 rows first)")
    return y.astype(bool)


def _as_scores(s: np.ndarray, n: int, name: str = "scores") -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) like the labels, got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contain {int((~np.isfinite(s)).sum())} non-finite values; drop unscored rows first")
    return s


def single_class(y: np.ndarray) -> bool:
    return y.size == 0 or bool(y.all()) or not bool(y.any())


# --------------------------------------------------------------------------------------------
# point estimates (scikit-learn / scipy)


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC (ties count one half); NaN when only one class is present."""
    y = _as_labels(y)
    s = _as_scores(s, y.size)
    return float("nan") if single_class(y) else float(roc_auc_score(y, s))


def pr_auc(y: np.ndarray, s: np.ndarray) -> float:
    """PR-AUC as average precision (step-wise, no interpolation); NaN when only one class is present."""
    y = _as_labels(y)
    s = _as_scores(s, y.size)
    return float("nan") if single_class(y) else float(average_precision_score(y, s))


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN with fewer than 2 points or a constant input."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"pearson_r needs two 1-D arrays of one length, got {x.shape} and {y.shape}")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.pearsonr(x, y).statistic)


def predict_at(s: np.ndarray, threshold: float, inclusive: bool = True) -> np.ndarray:
    """Binary calls: ``s >= threshold`` (inclusive) or ``s > threshold``."""
    s = np.asarray(s, dtype=np.float64)
    return s >= threshold if inclusive else s > threshold


def confusion(y: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    """Confusion matrix as ``{"tn", "fp", "fn", "tp"}`` (labels fixed to [0, 1])."""
    y = _as_labels(y)
    p = np.asarray(predicted).astype(bool)
    if p.shape != y.shape:
        raise ValueError(f"predictions must have shape {y.shape}, got {p.shape}")
    tn, fp, fn, tp = _sk_confusion_matrix(y, p, labels=[False, True]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def _rates(tn: float, fp: float, fn: float, tp: float) -> dict[str, float]:
    def div(a: float, b: float) -> float:
        return a / b if b > 0 else float("nan")

    positives, negatives = tp + fn, tn + fp
    single = positives == 0 or negatives == 0
    return {
        "detection_rate": div(tp, positives),
        "fpr": div(fp, negatives),
        "precision": div(tp, tp + fp),
        "f1": float("nan") if single else div(2 * tp, 2 * tp + fp + fn),
    }


def threshold_metrics(y: np.ndarray, s: np.ndarray, threshold: float, inclusive: bool = True) -> dict:
    """Detection rate (TPR), false-positive rate, precision, F1 and the confusion matrix at a threshold."""
    y = _as_labels(y)
    s = _as_scores(s, y.size)
    cm = confusion(y, predict_at(s, threshold, inclusive))
    return {**_rates(cm["tn"], cm["fp"], cm["fn"], cm["tp"]), "confusion": cm}


def f1_at(y: np.ndarray, s: np.ndarray, threshold: float, inclusive: bool = True) -> float:
    """F1 of the calls at ``threshold`` (NaN on a single class)."""
    return threshold_metrics(y, s, threshold, inclusive)["f1"]


def max_f1_threshold(y_val: np.ndarray, s_val: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``score >= threshold`` on *validation* data.

    Candidates are the distinct validation scores (scikit-learn's ``precision_recall_curve``);
    among equal F1 the highest threshold (fewest positive calls) wins. Raises ValueError on a
    single-class validation set, where F1 cannot pick a threshold.
    """
    y = _as_labels(y_val)
    s = _as_scores(s_val, y.size, "validation scores")
    if single_class(y):
        raise ValueError(
            f"validation set has a single class ({int(y.sum())} positive of {y.size}); cannot choose an F1 threshold"
        )
    precision, recall, thresholds = precision_recall_curve(y, s)
    precision, recall = precision[: len(thresholds)], recall[: len(thresholds)]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = np.flatnonzero(f1 == f1.max())
    i = best[np.argmax(thresholds[best])]
    return float(thresholds[i]), float(f1[i])


# --------------------------------------------------------------------------------------------
# weighted (vectorised) forms: W is (B, n) resample counts; each returns (B,) with NaN where undefined


def _class_weights(y: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = W @ y.astype(np.float64)
    return pos, W.sum(axis=1, dtype=np.float64) - pos


def _level_sums(y: np.ndarray, s: np.ndarray, W: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct score level (ordered), the weighted positive and negative counts: two (B, U) arrays."""
    y = _as_labels(y)  # bool: integer 0/1 labels would turn ~y into -1/-2
    s = np.asarray(s, dtype=np.float64)
    order = np.argsort(-s if descending else s, kind="mergesort")
    ss = s[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    Wo = W[:, order].astype(np.float64)
    yo = y[order]
    pos = np.add.reduceat(Wo * yo, starts, axis=1)
    neg = np.add.reduceat(Wo * ~yo, starts, axis=1)
    return pos, neg


def weighted_roc_auc(y: np.ndarray, s: np.ndarray, W: np.ndarray) -> np.ndarray:
    """ROC-AUC of every resample (Mann-Whitney form, ties count one half)."""
    pos, neg = _level_sums(y, s, W, descending=False)
    neg_below = np.cumsum(neg, axis=1) - neg
    P, N = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (P * N)
    return np.where((P > 0) & (N > 0), auc, np.nan)


def weighted_pr_auc(y: np.ndarray, s: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Average precision of every resample: sum over score levels (descending) of ΔRecall × precision."""
    pos, neg = _level_sums(y, s, W, descending=True)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    P, N = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 0.0)
        ap = (pos * precision).sum(axis=1) / P
    return np.where((P > 0) & (N > 0), ap, np.nan)


def weighted_pearson_r(x: np.ndarray, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Pearson r of every resample (NaN with fewer than 2 draws or a constant resample)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()  # centring first keeps the sums well conditioned
    Wf = W.astype(np.float64)
    n = Wf.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = (Wf @ x) / n, (Wf @ y) / n
        sxx = (Wf @ (x * x)) / n - mx * mx
        syy = (Wf @ (y * y)) / n - my * my
        sxy = (Wf @ (x * y)) / n - mx * my
        r = sxy / np.sqrt(sxx * syy)
    # a resample of a single distinct point has zero variance up to rounding
    scale_x = max(float(np.abs(x).max(initial=0.0)), 1e-300) ** 2
    scale_y = max(float(np.abs(y).max(initial=0.0)), 1e-300) ** 2
    ok = (n >= 2) & (sxx > 1e-12 * scale_x) & (syy > 1e-12 * scale_y)
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def weighted_threshold_metrics(
    y: np.ndarray, s: np.ndarray, W: np.ndarray, threshold: float, inclusive: bool = True
) -> dict[str, np.ndarray]:
    """Detection rate, FPR, precision and F1 at a threshold for every resample."""
    call = predict_at(s, threshold, inclusive)
    Wf = W.astype(np.float64)
    tp = Wf @ (y & call).astype(np.float64)
    fp = Wf @ (~y & call).astype(np.float64)
    fn = Wf @ (y & ~call).astype(np.float64)
    tn = Wf @ (~y & ~call).astype(np.float64)
    P, N = tp + fn, tn + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "detection_rate": np.where(P > 0, tp / P, np.nan),
            "fpr": np.where(N > 0, fp / N, np.nan),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            "f1": np.where((P > 0) & (N > 0), 2 * tp / (2 * tp + fp + fn), np.nan),
        }


# --------------------------------------------------------------------------------------------
# bootstrap


@dataclass(frozen=True)
class BootstrapConfig:
    """Percentile bootstrap settings."""

    n: int = 1000  # resamples
    seed: int = 0
    level: float = 0.95  # coverage of the interval
    chunk: int = 250  # resamples evaluated together (bounds memory at chunk x n counts)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"bootstrap n must be >= 1, got {self.n}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"bootstrap level must be in (0, 1), got {self.level}")
        if self.chunk < 1:
            raise ValueError(f"bootstrap chunk must be >= 1, got {self.chunk}")


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_boot: int  # resamples used
    n_skipped: int  # resamples where the metric was undefined (e.g. a single class), left out

    def to_dict(self) -> dict:
        return {k: _json_float(v) for k, v in asdict(self).items()}


def _json_float(v: float | int) -> float | int | None:
    if isinstance(v, (int, np.integer)):
        return int(v)
    return None if v is None or not math.isfinite(float(v)) else float(v)


def bootstrap_counts(n: int, n_boot: int, seed: int | np.random.Generator) -> np.ndarray:
    """(n_boot, n) int32 counts: how often each of ``n`` items is drawn in each resample of size ``n``."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if n == 0:
        return np.zeros((n_boot, 0), dtype=np.int32)
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + (np.arange(n_boot) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.int32)


def iter_counts(n: int, cfg: BootstrapConfig):
    """Yield the (chunk, n) count matrices of ``cfg.n`` resamples; one seeded stream, so the same
    ``cfg`` gives the same resamples whatever is computed from them."""
    rng = np.random.default_rng(cfg.seed)
    done = 0
    while done < cfg.n:
        b = min(cfg.chunk, cfg.n - done)
        yield bootstrap_counts(n, b, rng)
        done += b


def percentile_interval(estimate: float, replicates: np.ndarray, level: float = 0.95) -> Interval:
    """Percentile interval of the finite ``replicates``; non-finite ones are counted as skipped."""
    replicates = np.asarray(replicates, dtype=np.float64)
    ok = np.isfinite(replicates)
    used = replicates[ok]
    alpha = (1.0 - level) / 2.0
    if used.size == 0 or not math.isfinite(estimate):
        low = high = float("nan")
    else:
        low, high = (float(q) for q in np.quantile(used, [alpha, 1.0 - alpha]))
    return Interval(float(estimate), low, high, int(used.size), int((~ok).sum()))


ReplicateFn = Callable[[np.ndarray], np.ndarray]


def bootstrap(
    estimate: float, replicate: ReplicateFn, n: int, cfg: BootstrapConfig, counts: np.ndarray | None = None
) -> Interval:
    """Interval of a metric: ``replicate(W)`` maps a (B, n) count matrix to (B,) values.

    ``counts`` replaces the seeded resamples (tests use it to plant a single-class resample).
    """
    if counts is not None:
        reps = replicate(np.asarray(counts))
    else:
        reps = np.concatenate([replicate(W) for W in iter_counts(n, cfg)]) if n else np.full(cfg.n, np.nan)
    return percentile_interval(estimate, reps, cfg.level)


def roc_auc_ci(y, s, cfg: BootstrapConfig = BootstrapConfig(), counts: np.ndarray | None = None) -> Interval:
    """ROC-AUC with its percentile-bootstrap interval."""
    yb = _as_labels(y)
    sf = _as_scores(s, yb.size)
    return bootstrap(roc_auc(yb, sf), lambda W: weighted_roc_auc(yb, sf, W), yb.size, cfg, counts)


def pr_auc_ci(y, s, cfg: BootstrapConfig = BootstrapConfig(), counts: np.ndarray | None = None) -> Interval:
    """PR-AUC (average precision) with its percentile-bootstrap interval."""
    yb = _as_labels(y)
    sf = _as_scores(s, yb.size)
    return bootstrap(pr_auc(yb, sf), lambda W: weighted_pr_auc(yb, sf, W), yb.size, cfg, counts)


def pearson_r_ci(x, y, cfg: BootstrapConfig = BootstrapConfig(), counts: np.ndarray | None = None) -> Interval:
    """Pearson r with its percentile-bootstrap interval (pairs resampled together)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return bootstrap(pearson_r(x, y), lambda W: weighted_pearson_r(x, y, W), x.size, cfg, counts)


def threshold_metrics_ci(
    y,
    s,
    threshold: float,
    inclusive: bool = True,
    cfg: BootstrapConfig = BootstrapConfig(),
    counts: np.ndarray | None = None,
) -> dict:
    """Detection rate, FPR, precision, F1 (each an :class:`Interval`) and the confusion matrix at a threshold."""
    yb = _as_labels(y)
    sf = _as_scores(s, yb.size)
    point = threshold_metrics(yb, sf, threshold, inclusive)
    names = ("detection_rate", "fpr", "precision", "f1")
    if counts is not None:
        chunks = [weighted_threshold_metrics(yb, sf, np.asarray(counts), threshold, inclusive)]
    elif yb.size:
        chunks = [weighted_threshold_metrics(yb, sf, W, threshold, inclusive) for W in iter_counts(yb.size, cfg)]
    else:
        chunks = [{k: np.full(cfg.n, np.nan) for k in names}]
    out: dict = {k: percentile_interval(point[k], np.concatenate([c[k] for c in chunks]), cfg.level) for k in names}
    out["confusion"] = point["confusion"]
    return out


# --------------------------------------------------------------------------------------------
# paired comparison of two scores on the same variants


@dataclass(frozen=True)
class PairedComparison:
    """metric(a) - metric(b) on the same variants, its interval and a two-sided p-value."""

    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float
    n_boot: int
    n_skipped: int
    method: str = "paired bootstrap"

    def to_dict(self) -> dict:
        return {k: (v if isinstance(v, str) else _json_float(v)) for k, v in asdict(self).items()}


_WEIGHTED = {"roc_auc": weighted_roc_auc, "pr_auc": weighted_pr_auc}
_POINT = {"roc_auc": roc_auc, "pr_auc": pr_auc}


def paired_bootstrap(
    y,
    s_a,
    s_b,
    metric: str = "roc_auc",
    cfg: BootstrapConfig = BootstrapConfig(),
    counts: np.ndarray | None = None,
) -> PairedComparison:
    """Paired percentile bootstrap of ``metric(s_a) - metric(s_b)``: both scores see the same resamples.

    p-value (two-sided) = min(1, 2 min((#{d* <= 0} + 1) / (B + 1), (#{d* >= 0} + 1) / (B + 1)))
    over the B usable resamples: 1 for identical scores, about 2/(B+1) when a is better in every
    resample. Resamples with a single class are skipped and counted.
    """
    if metric not in _WEIGHTED:
        raise ValueError(f"paired_bootstrap metric must be one of {sorted(_WEIGHTED)}, got {metric!r}")
    yb = _as_labels(y)
    a = _as_scores(s_a, yb.size, "scores a")
    b = _as_scores(s_b, yb.size, "scores b")
    fn = _WEIGHTED[metric]
    est_a, est_b = _POINT[metric](yb, a), _POINT[metric](yb, b)
    diff = est_a - est_b
    mats = [np.asarray(counts)] if counts is not None else list(iter_counts(yb.size, cfg)) if yb.size else []
    reps = np.concatenate([fn(yb, a, W) - fn(yb, b, W) for W in mats]) if mats else np.array([])
    iv = percentile_interval(diff, reps, cfg.level)
    used = reps[np.isfinite(reps)]
    if used.size == 0 or not math.isfinite(diff):
        p = float("nan")
    else:
        B = used.size
        p = min(1.0, 2.0 * min((np.sum(used <= 0) + 1) / (B + 1), (np.sum(used >= 0) + 1) / (B + 1)))
    return PairedComparison(metric, est_a, est_b, diff, iv.low, iv.high, float(p), iv.n_boot, iv.n_skipped)


def _midranks(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def delong_test(y, s_a, s_b) -> PairedComparison:
    """DeLong's test for two correlated ROC-AUCs (fast midrank form, Sun & Xu 2014), two-sided.

    Variance of the difference 0 (e.g. identical scores) gives p = 1. Interval: normal 95%.
    """
    yb = _as_labels(y)
    a = _as_scores(s_a, yb.size, "scores a")
    b = _as_scores(s_b, yb.size, "scores b")
    if single_class(yb):
        nan = float("nan")
        return PairedComparison("roc_auc", nan, nan, nan, nan, nan, nan, 0, 0, "DeLong")
    m, n = int(yb.sum()), int((~yb).sum())
    aucs, v10, v01 = [], [], []
    for s in (a, b):
        pos, neg = s[yb], s[~yb]
        tx, ty, tz = _midranks(pos), _midranks(neg), _midranks(np.concatenate([pos, neg]))
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tz[:m] - tx) / n)  # per positive: fraction of negatives below (ties 1/2)
        v01.append(1.0 - (tz[m:] - ty) / m)  # per negative: fraction of positives above (ties 1/2)
    s10 = np.cov(np.vstack(v10)) if m > 1 else np.zeros((2, 2))
    s01 = np.cov(np.vstack(v01)) if n > 1 else np.zeros((2, 2))
    cov = s10 / m + s01 / n
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 1e-15:
        p, half = (1.0 if abs(diff) < 1e-12 else 0.0), 0.0
    else:
        z = diff / math.sqrt(var)
        p = float(2 * stats.norm.sf(abs(z)))
        half = 1.959963984540054 * math.sqrt(var)
    a_auc, b_auc = float(aucs[0]), float(aucs[1])
    return PairedComparison("roc_auc", a_auc, b_auc, diff, diff - half, diff + half, p, 0, 0, "DeLong")


# --------------------------------------------------------------------------------------------
# multi-class classification, proportions and interval coverage (the effect tasks)
#
# Classes are integer indices 0 .. K-1. A confusion matrix C has the true class in rows and the
# predicted class in columns. Per class: precision = C[c, c] / column sum (NaN without predictions of
# c), recall = C[c, c] / row sum (NaN without true c), F1 = 2 tp / (2 tp + fp + fn) (NaN when c is
# neither true nor predicted anywhere). Macro-F1 is the mean F1 over the classes that are defined,
# i.e. present among the true or the predicted classes, as scikit-learn's ``f1_score(average="macro")``.


def _as_classes(y: np.ndarray, n_classes: int, name: str = "classes") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must be integers in [0, {n_classes}); drop rows without a class first")
    return y.astype(np.int64)


def multiclass_confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) int64 confusion matrix, true class in rows, predicted class in columns."""
    t = _as_classes(y_true, n_classes, "true classes")
    p = _as_classes(y_pred, n_classes, "predicted classes")
    if t.shape != p.shape:
        raise ValueError(f"true and predicted classes differ in shape: {t.shape} vs {p.shape}")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_scores(confusion_matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 (each (..., K)) and macro-F1 (...) of confusion matrices (..., K, K)."""
    C = np.asarray(confusion_matrix, dtype=np.float64)
    tp = np.diagonal(C, axis1=-2, axis2=-1)
    predicted, actual = C.sum(axis=-2), C.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(actual > 0, tp / actual, np.nan)
        denom = predicted + actual  # 2 tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
        defined = np.isfinite(f1)
        macro = np.where(defined.any(axis=-1), np.nansum(f1, axis=-1) / defined.sum(axis=-1), np.nan)
    return {"precision": precision, "recall": recall, "f1": f1, "macro_f1": macro}


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 over the classes present among the true or predicted classes (NaN for none)."""
    return float(class_scores(multiclass_confusion(y_true, y_pred, n_classes))["macro_f1"])


def weighted_confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, W: np.ndarray) -> np.ndarray:
    """(B, K, K) confusion matrices of every resample of a (B, n) count matrix."""
    cell = _as_classes(y_true, n_classes) * n_classes + _as_classes(y_pred, n_classes)
    onehot = np.zeros((cell.size, n_classes * n_classes))
    onehot[np.arange(cell.size), cell] = 1.0
    return (W.astype(np.float64) @ onehot).reshape(-1, n_classes, n_classes)


def multiclass_metrics_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    cfg: BootstrapConfig = BootstrapConfig(),
    counts: np.ndarray | None = None,
) -> dict:
    """Macro-F1, per-class precision / recall / F1 (lists of :class:`Interval`, one per class), the
    confusion matrix (counts) and its row-normalised form (fraction of each true class predicted as
    each class) with per-cell intervals; every interval from the same percentile-bootstrap resamples
    of the rows."""
    t = _as_classes(y_true, n_classes, "true classes")
    p = _as_classes(y_pred, n_classes, "predicted classes")
    C = multiclass_confusion(t, p, n_classes)
    point = class_scores(C)
    if counts is not None:
        mats = [weighted_confusion(t, p, n_classes, np.asarray(counts))]
    elif t.size:
        mats = [weighted_confusion(t, p, n_classes, W) for W in iter_counts(t.size, cfg)]
    else:
        mats = [np.full((cfg.n, n_classes, n_classes), np.nan)]
    reps_C = np.concatenate(mats)
    reps = class_scores(reps_C)
    out: dict = {"macro_f1": percentile_interval(float(point["macro_f1"]), reps["macro_f1"], cfg.level)}
    for key in ("precision", "recall", "f1"):
        out[key] = [percentile_interval(float(point[key][c]), reps[key][:, c], cfg.level) for c in range(n_classes)]
    out["support"] = C.sum(axis=1).astype(int).tolist()
    out["confusion"] = C.astype(int).tolist()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = C / np.where(C.sum(axis=1, keepdims=True) > 0, C.sum(axis=1, keepdims=True), np.nan)
        rate_reps = reps_C / reps_C.sum(axis=2, keepdims=True)
    out["confusion_rate"] = [
        [percentile_interval(float(rate[i, j]), rate_reps[:, i, j], cfg.level) for j in range(n_classes)]
        for i in range(n_classes)
    ]
    return out


def weighted_mean(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Mean of ``x`` (n,) in every resample of a (B, n) count matrix (NaN for an empty resample)."""
    Wf = W.astype(np.float64)
    n = Wf.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (Wf @ np.asarray(x, dtype=np.float64)) / n, np.nan)


def mean_ci(x: np.ndarray, cfg: BootstrapConfig = BootstrapConfig(), counts: np.ndarray | None = None) -> Interval:
    """Mean of ``x`` (a proportion for 0/1 values) with its percentile-bootstrap interval; NaN when empty."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise ValueError(f"mean_ci needs a 1-D array of finite values, got shape {x.shape}")
    estimate = float(x.mean()) if x.size else float("nan")
    return bootstrap(estimate, lambda W: weighted_mean(x, W), x.size, cfg, counts)


def localisation_hits(
    target: np.ndarray, ranked: np.ndarray, tolerances: tuple[int, ...] = (2, 5)
) -> dict[str, np.ndarray]:
    """0/1 hit vectors of predicted offsets against the target offsets.

    ``ranked`` (n, k): each row's predicted offsets, most probable first. ``top1`` / ``top{k}``: the
    target is among the first 1 / k; ``within_{t}``: the top prediction is at most ``t`` nt away.
    """
    target = np.asarray(target, dtype=np.int64)
    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.ndim != 2 or ranked.shape[0] != target.shape[0]:
        raise ValueError(f"ranked offsets must be (n, k) with n = {target.shape[0]}, got {ranked.shape}")
    out = {"top1": (ranked[:, 0] == target).astype(np.float64)}
    if ranked.shape[1] > 1:
        out[f"top{ranked.shape[1]}"] = (ranked == target[:, None]).any(axis=1).astype(np.float64)
    for t in tolerances:
        out[f"within_{t}"] = (np.abs(ranked[:, 0] - target) <= t).astype(np.float64)
    return out


def localisation_metrics_ci(
    target: np.ndarray,
    ranked: np.ndarray,
    tolerances: tuple[int, ...] = (2, 5),
    cfg: BootstrapConfig = BootstrapConfig(),
) -> dict[str, Interval]:
    """Top-1 / top-k accuracy and hit rates within ± each tolerance (:func:`localisation_hits`), with intervals."""
    return {k: mean_ci(v, cfg) for k, v in localisation_hits(target, ranked, tolerances).items()}


def interval_coverage(y: np.ndarray, low: np.ndarray, high: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Bool array: ``low - tolerance <= y <= high + tolerance`` elementwise (inputs of one shape)."""
    y, low, high = (np.asarray(a, dtype=np.float64) for a in (y, low, high))
    if not (y.shape == low.shape == high.shape):
        raise ValueError(f"y, low and high must share one shape, got {y.shape}, {low.shape}, {high.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    return (low - tolerance <= y) & (y <= high + tolerance)


def coverage_ci(inside: np.ndarray, cfg: BootstrapConfig = BootstrapConfig()) -> dict:
    """Empirical coverage of intervals (``inside``: (n, T) bool, rows resampled together): overall (the
    mean over all n x T cells) and per column, each an :class:`Interval`."""
    inside = np.asarray(inside, dtype=np.float64)
    if inside.ndim != 2:
        raise ValueError(f"inside must be (n, T), got shape {inside.shape}")
    overall = inside.mean(axis=1) if inside.shape[1] else np.zeros(len(inside))
    per_target = [mean_ci(inside[:, j], cfg) for j in range(inside.shape[1])]
    return {"overall": mean_ci(overall, cfg), "per_target": per_target}
