"""Metrics of the effect tasks: effect-type macro-F1, localisation top-k, quantile interval coverage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from metasplice.evaluation import metrics as M
from metasplice.evaluation.predictions import LOCALISATION_TOP_K, EvalConfig, labelled_rows

LOCALISATION_TOLERANCES: tuple[int, ...] = (2, 5)


# a target within this of an interval counts as covered: half the 0.01 resolution at which SpliceAI
# reports delta scores; without it the point mass at 0 (every Normal variant's validated target) could
# never lie inside an interval of sigmoid outputs, which are > 0
COVERAGE_TOLERANCE = 0.005


def get_estimate(section: Mapping[str, Any], key: str) -> Any:
    value = section.get(key)
    return value.get("estimate") if isinstance(value, Mapping) else None


def _iv_grid(grid: list[list[M.Interval]]) -> dict[str, list[list[Any]]]:
    return {
        "estimate": [[iv.to_dict()["estimate"] for iv in row] for row in grid],
        "low": [[iv.to_dict()["low"] for iv in row] for row in grid],
        "high": [[iv.to_dict()["high"] for iv in row] for row in grid],
    }


def effect_type_metrics(test: pd.DataFrame, cfg: EvalConfig) -> dict | None:
    """Macro-F1, per-class precision / recall / F1 and the confusion matrix (counts, and row-normalised
    rates with per-cell intervals) on the test variants with an effect class; None without the columns."""
    from metasplice.models.tasks import EFFECT_CLASSES

    if "target_class" not in test.columns or "predicted_class" not in test.columns:
        return None
    part = test[test["target_class"].notna()]
    index = {c: i for i, c in enumerate(EFFECT_CLASSES)}
    y_true = part["target_class"].map(index).to_numpy(dtype=np.int64)
    y_pred = part["predicted_class"].map(index).to_numpy(dtype=np.int64)
    res = M.multiclass_metrics_ci(y_true, y_pred, len(EFFECT_CLASSES), cfg.bootstrap)
    return {
        "n": int(len(part)),
        "variants": "labelled test variants with an effect class (Normal, or Splice-altering scored above "
        "min_effect_score by the base model)",
        "classes": list(EFFECT_CLASSES),
        "macro_f1": res["macro_f1"].to_dict(),
        "per_class": {
            c: {
                "support": res["support"][i],
                "precision": res["precision"][i].to_dict(),
                "recall": res["recall"][i].to_dict(),
                "f1": res["f1"][i].to_dict(),
            }
            for i, c in enumerate(EFFECT_CLASSES)
        },
        "confusion_matrix": {
            "rows": "target class",
            "columns": "predicted class",
            "labels": list(EFFECT_CLASSES),
            "counts": res["confusion"],
            "rate": _iv_grid(res["confusion_rate"]),
            "rate_note": "fraction of each target class predicted as each class",
        },
    }


def localisation_metrics(test: pd.DataFrame, cfg: EvalConfig) -> dict | None:
    """Top-1 / top-3 accuracy and hit rates of the top offset within ±2 and ±5 nt of the target, on the
    test variants with a target offset; None without the columns."""
    top = [c for c in (f"loc_top{j + 1}" for j in range(LOCALISATION_TOP_K)) if c in test.columns]
    if "loc_target" not in test.columns or not top:
        return None
    part = test[np.isfinite(test["loc_target"].to_numpy(np.float64))]
    target = part["loc_target"].to_numpy(np.float64).astype(np.int64)
    ranked = part[top].to_numpy(np.int64)
    res = M.localisation_metrics_ci(target, ranked, LOCALISATION_TOLERANCES, cfg.bootstrap)
    return {
        "n": int(len(part)),
        "variants": "Splice-altering test variants whose dominant base-model delta lies within the model's distance",
        "offsets": "nt from the variant in window orientation (transcript orientation for strand-oriented windows)",
        **{k: v.to_dict() for k, v in res.items()},
    }


def quantile_metrics(test: pd.DataFrame, cfg: EvalConfig) -> dict | None:
    """Empirical coverage of the [lowest, highest] quantile interval vs its nominal level, per target and
    overall (and overall per label), and the share of targets at or below each quantile (its
    calibration, ideally the level itself), on the test variants with finite targets, up to
    :data:`COVERAGE_TOLERANCE`; None without quantiles."""
    from metasplice.models import tasks as FX

    names = [c[len("pred_") :] for c in test.columns if c.startswith("pred_") and "_q" in c]
    try:
        q_targets, quantiles = FX.parse_quantiles(names)
    except (ValueError, IndexError):
        return None
    low_q, high_q = quantiles[0], quantiles[-1]
    target = test[[f"target_{t}" for t in q_targets]].to_numpy(np.float64)
    ok = np.isfinite(target).all(axis=1)
    low = test[[f"pred_{FX.quantile_name(t, low_q)}" for t in q_targets]].to_numpy(np.float64)[ok]
    high = test[[f"pred_{FX.quantile_name(t, high_q)}" for t in q_targets]].to_numpy(np.float64)[ok]
    inside = M.interval_coverage(target[ok], low, high, COVERAGE_TOLERANCE)
    res = M.coverage_ci(inside, cfg.bootstrap)
    below = {}
    for q in quantiles:
        pred_q = test[[f"pred_{FX.quantile_name(t, q)}" for t in q_targets]].to_numpy(np.float64)[ok]
        at_or_below = target[ok] <= pred_q + COVERAGE_TOLERANCE
        below[f"{q:g}"] = M.mean_ci(
            at_or_below.mean(axis=1) if len(at_or_below) else np.zeros(0), cfg.bootstrap
        ).to_dict()
    label = test["label"].to_numpy()[ok]
    by_label = {
        name: M.coverage_ci(inside[label == value], cfg.bootstrap)["overall"].to_dict()
        for name, value in (("splice_altering", 1), ("normal", 0))
    }
    return {
        "n": int(ok.sum()),
        "variants": "labelled test variants with finite validated targets",
        "quantiles": list(quantiles),
        "interval": [low_q, high_q],
        "nominal": high_q - low_q,
        "tolerance": COVERAGE_TOLERANCE,
        "coverage": res["overall"].to_dict(),
        "per_target": {t: iv.to_dict() for t, iv in zip(q_targets, res["per_target"])},
        "by_label": by_label,
        "share_at_or_below": below,
    }


def task_metrics(pred: pd.DataFrame, task: str, cfg: EvalConfig) -> dict[str, Any]:
    """The task keys of metrics.json for an effect task (``effect_type``, ``localisation``, ``quantile``;
    both of the first two for ``multitask``); empty for delta and binary."""
    test = labelled_rows(pred, "test")
    sections = {
        "effect_type": ("effect_type",),
        "localisation": ("localisation",),
        "quantile": ("quantile",),
        "multitask": ("effect_type", "localisation"),
    }.get(task, ())
    functions = {"effect_type": effect_type_metrics, "localisation": localisation_metrics, "quantile": quantile_metrics}
    return {key: functions[key](test, cfg) for key in sections}
