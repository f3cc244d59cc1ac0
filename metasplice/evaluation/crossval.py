"""Cross-validation by chromosome groups (leave-one-group-out) and the aggregation of its folds.

Fold ``k`` tests on the labelled variants of chromosome group ``k``; the other groups provide its
training rows and a grouped validation fraction (whole clusters of nearby genes, as in the main
split, so no sequence window lies on both sides). A fold is an ordinary experiment instance named
``{experiment}__fold{k}`` whose only difference is its variants file,
``results/crossval/fold{k}/variants.parquet``: a copy of variants.parquet (same rows, same order,
so sequence windows and targets still line up) with the ``split`` column replaced. Training and
evaluation read that file instead of the main one and need no other change.

The folds' test predictions are then pooled (every labelled variant of a grouped chromosome is
tested exactly once): ROC-AUC and PR-AUC on the pooled scores, detection rate / FPR / F1 from each
fold's own validation-chosen threshold, the paired comparison with the reference base model on the
same variants, each with a percentile-bootstrap interval; plus the per-fold values and their mean
and standard deviation. The effect tasks add their task metrics (:func:`metasplice.evaluation.evaluate.task_metrics`)
measured on the pooled test predictions; a localisation model, which has no classifier score, gets
only the counts and those.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metasplice.evaluation import evaluate as E
from metasplice.io import write_parquet

log = logging.getLogger(__name__)

# predictions column of a stacked model: its shipped score after Platt scaling fitted on the inner
# out-of-fold scores of its own training rows (metasplice.experiments.stacking)
CALIBRATED_SCORE = "score_calibrated"
NO_LEARNER_BEAT = "no learner beat it in inner CV"  # end of a stacked model's summary when it ships a base score


# --------------------------------------------------------------------------------------------
# aggregation


def _fold_test(pred: pd.DataFrame, k: int) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Fold k's labelled test rows, their calls at the fold's own validation threshold, the choice."""
    val, test = E.labelled_rows(pred, "val"), E.labelled_rows(pred, "test")
    yv, sv = E.scored_arrays(val)
    try:
        chosen = E.choose_threshold(yv, sv)
    except ValueError as err:
        raise ValueError(f"fold {k}: {err}") from None
    calls = test["score"].to_numpy(np.float64) >= chosen["threshold"]
    return test.assign(fold=k), calls, chosen


# tasks whose models give no classifier score (no threshold, no classification metrics)
UNSCORED_TASKS: tuple[str, ...] = ("localisation",)
# per-fold headline values of the task metrics: name in the fold entry -> (metrics.json key, value key)
TASK_FOLD_VALUES: dict[str, tuple[str, str]] = {
    "effect_type_macro_f1": ("effect_type", "macro_f1"),
    "localisation_top1": ("localisation", "top1"),
    "localisation_within_2": ("localisation", "within_2"),
    "quantile_coverage": ("quantile", "coverage"),
}


def _pool(tests: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The folds' test rows in one table; refuses a variant tested by more than one fold."""
    pooled = pd.concat(tests, ignore_index=True)
    dup = pooled["variant_id"].duplicated(keep=False)
    if dup.any():
        ids = pooled.loc[dup, ["variant_id", "fold"]].head(5).to_dict("records")
        raise ValueError(f"variants tested in more than one fold (folds must not overlap): {ids}")
    return pooled


def fold_evaluation(pred: pd.DataFrame, cfg: E.EvalConfig, name: str, task: str) -> dict:
    """metrics.json content of one fold's predictions, as :func:`metasplice.evaluation.evaluate.evaluate_experiment_files`
    writes it (without the comparison): the task metrics added, a localisation model's alone."""
    if task in UNSCORED_TASKS:
        return E.localisation_evaluation(pred, cfg, name)
    return {**E.evaluate_predictions(pred, cfg, name, task), **E.task_metrics(pred, task, cfg)}


def _task_fold_values(fm: Mapping[str, Any]) -> dict[str, Any]:
    """The headline task values (:data:`TASK_FOLD_VALUES`) a fold's metrics carry."""
    out = {}
    for key, (section, value) in TASK_FOLD_VALUES.items():
        if isinstance(fm.get(section), Mapping):
            out[key] = fm[section].get(value)
    return out


def _across_folds(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, dict]:
    """Mean and standard deviation over the folds of every interval-valued per-fold metric."""
    across = {}
    keys = [k for k in dict.fromkeys(k for f in per_fold for k in f) if k not in ("fold", "n_test", "threshold")]
    for metric in keys:
        values = [f.get(metric) for f in per_fold]
        if not any(isinstance(v, Mapping) for v in values):
            continue
        vals = np.array(
            [v["estimate"] if isinstance(v, Mapping) and v.get("estimate") is not None else np.nan for v in values],
            dtype=np.float64,
        )
        ok = np.isfinite(vals)
        across[metric] = {
            "mean": float(vals[ok].mean()) if ok.any() else None,
            "sd": float(vals[ok].std(ddof=1)) if ok.sum() > 1 else None,
            "n_folds": int(ok.sum()),
        }
    return across


def aggregate_unscored_folds(
    fold_predictions: Sequence[pd.DataFrame],
    cfg: E.EvalConfig,
    name: str,
    task: str,
    fold_metrics: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """:func:`aggregate_folds` of a model without a classifier score (localisation): the folds' labelled
    test rows pooled, the counts and the task metrics of the pooled rows; no threshold, no
    classification metrics, no comparison."""
    pooled = _pool([E.labelled_rows(pred, "test").assign(fold=k) for k, pred in enumerate(fold_predictions)])
    per_fold = []
    for k, pred in enumerate(fold_predictions):
        fm = fold_metrics[k] if fold_metrics is not None else fold_evaluation(pred, cfg, f"{name} fold {k}", task)
        per_fold.append({"fold": k, "n_test": fm["n"]["test"], **_task_fold_values(fm)})
    n_val = {"total": int(sum(E.label_counts(E.labelled_rows(p, "val"))["total"] for p in fold_predictions))}
    metrics = {
        **E.eval_header(name, task, extra, cfg),
        "cross_validation": {
            "n_folds": len(fold_predictions),
            "pooling": "test predictions of all folds pooled (no classifier score: task metrics only)",
            "folds": per_fold,
            "across_folds": _across_folds(per_fold),
        },
        "n": {"val": n_val, "test": E.label_counts(pooled)},
        **E.task_metrics(pooled, task, cfg),
    }
    return pooled, metrics


def aggregate_folds(
    fold_predictions: Sequence[pd.DataFrame],
    cfg: E.EvalConfig,
    name: str,
    task: str,
    reference: pd.DataFrame | None = None,
    fold_metrics: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """(pooled test predictions with a ``fold`` column, metrics dict) of a cross-validated model.

    ``fold_predictions[k]``: fold k's predictions table (val + test rows of that fold).
    ``fold_metrics[k]``: fold k's metrics.json (per-fold values are copied from it; recomputed when omitted).
    The effect tasks' metrics (:func:`metasplice.evaluation.evaluate.task_metrics`) are measured on the pooled
    test rows; a localisation model goes to :func:`aggregate_unscored_folds`.
    """
    if task in UNSCORED_TASKS:
        return aggregate_unscored_folds(fold_predictions, cfg, name, task, fold_metrics, extra)
    tests, calls, chosen = [], [], []
    for k, pred in enumerate(fold_predictions):
        t, c, ch = _fold_test(pred, k)
        tests.append(t)
        calls.append(c)
        chosen.append(ch)
    pooled = _pool(tests)
    all_calls = np.concatenate(calls)
    summary = E.summarise_test(pooled, all_calls, cfg.fixed_threshold, cfg, reference, cfg.reference)
    per_fold = []
    for k, pred in enumerate(fold_predictions):
        fm = fold_metrics[k] if fold_metrics is not None else fold_evaluation(pred, cfg, f"{name} fold {k}", task)
        per_fold.append(
            {
                "fold": k,
                "n_test": fm["n"]["test"],
                "threshold": fm["threshold"]["threshold"],
                "roc_auc": fm["metrics"]["roc_auc"],
                "pr_auc": fm["metrics"]["pr_auc"],
                "f1_at_val_threshold": fm["metrics"]["at_val_threshold"]["f1"],
                "pearson_r": (fm.get("correlation") or {}).get("max"),
                **_task_fold_values(fm),
            }
        )
    across = {
        metric: value
        for metric, value in _across_folds(per_fold).items()
        if metric in ("roc_auc", "pr_auc", *TASK_FOLD_VALUES)
    }
    n_val = {"total": int(sum(E.label_counts(E.labelled_rows(p, "val"))["total"] for p in fold_predictions))}
    metrics = {
        **E.eval_header(name, task, extra, cfg),
        "cross_validation": {
            "n_folds": len(fold_predictions),
            "pooling": "test predictions of all folds pooled; calls use each fold's own validation threshold",
            "folds": per_fold,
            "across_folds": across,
        },
        "n": {"val": n_val, "test": E.measured_test_counts(pooled, reference, cfg.reference)},
        "threshold": {
            "threshold": None,
            "rule": "score >= threshold of the variant's fold",
            "chosen_on": "val",
            "per_fold": [c["threshold"] for c in chosen],
        },
        "fixed_threshold": E.fixed_rule(cfg, summary),
        **summary,
        **E.task_metrics(pooled, task, cfg),
    }
    return pooled.assign(call_at_val_threshold=all_calls), metrics


def pool_stacked_folds(
    preds: Sequence[pd.DataFrame], fold_metrics: Sequence[Mapping[str, Any]]
) -> tuple[list[pd.DataFrame], dict]:
    """The scores a stacked model's folds are pooled on, and what each fold chose.

    Folds that all ship the same thing (one base model's score, or one learner) are pooled on their
    shipped scores (a base score stays exactly the baseline row's). Folds that chose differently
    ship scores on different scales (a delta score beside a probability), so each fold's scores are
    replaced by its calibrated ones (:data:`CALIBRATED_SCORE`: Platt scaling fitted on that fold's
    inner out-of-fold scores, training rows only), which keeps each fold's ranking.
    """
    chosen = [str((fm.get("stacking") or {}).get("chosen")) for fm in fold_metrics]
    lines = [str((fm.get("stacking") or {}).get("summary", "")) for fm in fold_metrics]
    calibrate = len(set(chosen)) > 1
    if calibrate:
        missing = [k for k, p in enumerate(preds) if CALIBRATED_SCORE not in p.columns]
        if missing:
            raise ValueError(f"stacked folds {missing} have no {CALIBRATED_SCORE} column; re-evaluate them")
        preds = [p.assign(score=p[CALIBRATED_SCORE].to_numpy(np.float64)) for p in preds]
    counts = pd.Series(chosen).value_counts(sort=False)
    if calibrate:
        summary = "folds chose " + ", ".join(f"{c} ({n})" for c, n in counts.items()) + "; pooled on calibrated scores"
    elif lines and lines[0].endswith(NO_LEARNER_BEAT):
        summary = f"{lines[0]} of any fold"
    else:
        summary = f"stacked model = {chosen[0] if chosen else '–'} in every fold"
    return list(preds), {
        "folds": chosen,
        "pooled_score": "calibrated" if calibrate else "shipped",
        "summary": summary if len(fold_metrics) else "",
    }


def aggregate_experiment_files(
    fold_predictions: Sequence[str | os.PathLike],
    fold_metrics: Sequence[str | os.PathLike],
    variants_path: str | os.PathLike,
    reference_scores_path: str | os.PathLike,
    predictions_out: str | os.PathLike,
    metrics_out: str | os.PathLike,
    experiment: str,
    cfg: E.EvalConfig,
) -> dict:
    """Pool the evaluated folds of ``experiment`` (results/eval/{experiment}__fold{k}/...)."""
    preds = [pd.read_parquet(p) for p in fold_predictions]
    fms = [E.read_json(p) for p in fold_metrics]
    variants = E.read_variants(variants_path)
    reference = E.reference_table(variants, E.read_scores(reference_scores_path, len(variants), variants_path))
    task = fms[0].get("task", "") if fms else ""
    first = fms[0] if fms else {}
    extra = {
        "kind": first.get("kind", "experiment"),
        "experiment": experiment,
        "evaluation": "cross-validation",
        "score": first.get("score"),
        "architecture": first.get("architecture"),
        **{k: first[k] for k in ("members", "combine") if k in first},
    }  # an ensemble stays one
    if first.get("kind") == "stacked":
        preds, extra["stacking"] = pool_stacked_folds(preds, fms)
    pooled, metrics = aggregate_folds(preds, cfg, experiment, task, reference, fms, extra)
    write_parquet(pooled, predictions_out)
    E.write_json(metrics, metrics_out)
    return metrics


def aggregate_baseline_files(
    fold_variants: Sequence[str | os.PathLike],
    scores_path: str | os.PathLike,
    predictions_out: str | os.PathLike,
    metrics_out: str | os.PathLike,
    base: str,
    cfg: E.EvalConfig,
    reference_scores_path: str | os.PathLike | None = None,
) -> dict:
    """Cross-validated baseline: per fold, the base model's threshold is chosen on that fold's
    validation rows; the pooled test rows are the same variants the cross-validated experiments see."""
    preds, reference = [], None
    for k, path in enumerate(fold_variants):
        variants = E.read_variants(path)
        scores = E.read_scores(scores_path, len(variants), path)
        preds.append(E.baseline_predictions(variants, scores))
        if k == 0 and reference_scores_path is not None and base != cfg.reference:
            reference = E.reference_table(variants, E.read_scores(reference_scores_path, len(variants), path))
    extra = {
        "kind": "baseline",
        "base": base,
        "evaluation": "cross-validation",
        "score": "max(DS_AG, DS_AL, DS_DG, DS_DL)",
    }
    pooled, metrics = aggregate_folds(preds, cfg, base, "baseline", reference, None, extra)
    write_parquet(pooled, predictions_out)
    E.write_json(metrics, metrics_out)
    return metrics
