"""Evaluation of one experiment (or of a base model without training) on the held-out test split.

Every evaluation goes through :func:`evaluate_predictions`, whatever produced the scores:

1. the *validation* rows (split ``val``, label 0/1) choose the decision threshold that maximises F1;
   test labels are never passed to that step;
2. the *test* rows (split ``test``, label 0/1) give ROC-AUC, PR-AUC, Pearson r (delta models),
   detection rate / false-positive rate / precision / F1 at the validation threshold and at the
   fixed rule ``score > 0.1`` (SpliceAI's |Δ| > 0.1), the confusion matrices, breakdowns by region
   and variant type, and the paired comparison with the reference (SpliceAI) score on the same
   variants; each value with a percentile-bootstrap 95% interval (:mod:`metasplice.evaluation.metrics`).

Scores: a delta model's classifier score is the largest of its predicted delta scores; a binary
model's is its probability; a base model's is max(DS_AG, DS_AL, DS_DG, DS_DL). Rows without a
score (a base model that skipped the variant) are left out of the metrics and counted.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from metasplice.data.annotation import REGIONS
from metasplice.data.variants import VARIANT_TYPES
from metasplice.evaluation import metrics as M
from metasplice.evaluation.predictions import (
    DS_COLUMNS,
    EFFECT_TASK_SCORES,
    EvalConfig,
    base_score,
    baseline_predictions,
    eval_rows,
    label_counts,
    labelled_rows,
    model_predictions,
    read_scores,
    read_variants,
    windows_strand_oriented,
)
from metasplice.evaluation.tasks import get_estimate, task_metrics
from metasplice.io import atomic_output, write_parquet

log = logging.getLogger(__name__)

FORMAT = "metasplice-metrics/1"


# --------------------------------------------------------------------------------------------
# predictions tables


# --------------------------------------------------------------------------------------------
# metrics


def delta_scale(table: pd.DataFrame) -> bool:
    """Whether the table's score is a delta score (the scale of SpliceAI's fixed threshold): it has predicted
    delta columns ``pred_DS_*`` and its score is their maximum (baselines, delta and quantile models) - not a
    probability, a class score or a rank."""
    cols = [f"pred_{c}" for c in DS_COLUMNS if f"pred_{c}" in table.columns]
    if not cols or table.empty:
        return False
    ds, score = table[cols].to_numpy(np.float64), table["score"].to_numpy(np.float64)
    ok = np.isfinite(ds).all(axis=1) & np.isfinite(score)
    return bool(ok.any()) and bool(np.allclose(ds[ok].max(axis=1), score[ok], rtol=0.0, atol=1e-9))


def reference_scored(test: pd.DataFrame, reference: pd.DataFrame | None) -> np.ndarray:
    """Bool per row of ``test``: the reference base model scored the variant (all True without a reference).

    Every row of the result tables is measured on these test variants, so a meta-model that also scores
    what the base model skips (MNVs, long deletions, variants at contig ends) is not compared on more
    variants than the baseline."""
    if reference is None:
        return np.ones(len(test), dtype=bool)
    ref = reference.drop_duplicates("variant_id").set_index("variant_id")["score"]
    return np.isfinite(test["variant_id"].map(ref).to_numpy(np.float64))


def measured_test_counts(
    test: pd.DataFrame, reference: pd.DataFrame | None, reference_name: str = ""
) -> dict[str, Any]:
    """Counts of the labelled test rows measured (those the reference scored), plus how many the
    reference left out (``unscored_by_reference``) and their scored counterpart for this model."""
    common = reference_scored(test, reference)
    out: dict[str, Any] = label_counts(test[common])
    if reference is not None:
        out["unscored_by_reference"] = int((~common).sum())
        out["reference"] = reference_name
    return out


def scored_arrays(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    s = part["score"].to_numpy(dtype=np.float64)
    ok = np.isfinite(s)
    return part["label"].to_numpy()[ok].astype(np.int8), s[ok]


def choose_threshold(val_label: np.ndarray, val_score: np.ndarray) -> dict:
    """The max-F1 threshold of the validation rows (rule ``score >= threshold``).

    Takes validation arrays only, so nothing about the test split can reach the choice.
    """
    threshold, f1 = M.max_f1_threshold(val_label, val_score)
    return {"threshold": threshold, "rule": "score >= threshold", "val_f1": f1, "chosen_on": "val"}


def _at_threshold(y: np.ndarray, s: np.ndarray, threshold: float, inclusive: bool, cfg: M.BootstrapConfig) -> dict:
    res = M.threshold_metrics_ci(y, s, threshold, inclusive, cfg)
    out = {k: v.to_dict() for k, v in res.items() if k != "confusion"}
    out["confusion"] = res["confusion"]
    return out


def _ordered_groups(values: pd.Series, column: str) -> list[str]:
    order = {"region": REGIONS, "variant_type": VARIANT_TYPES}.get(column, ())
    present = [str(v) for v in pd.unique(values.astype(str))]
    return [g for g in order if g in present] + sorted(g for g in present if g not in order)


def correlation(test: pd.DataFrame, cfg: EvalConfig) -> dict | None:
    """Pearson r between predicted and target delta scores on the Splice-altering test variants.

    ``max``: the largest predicted vs the largest target delta score (the effect size); one entry
    per target as well. None when the table holds no predicted/target pairs (binary models, bases).
    """
    names = [c[len("pred_") :] for c in test.columns if c.startswith("pred_") and f"target_{c[len('pred_') :]}" in test]
    if not names:
        return None
    sa = test[test["label"] == 1]
    pred = sa[[f"pred_{n}" for n in names]].to_numpy(dtype=np.float64)
    target = sa[[f"target_{n}" for n in names]].to_numpy(dtype=np.float64)
    ok = np.isfinite(pred).all(axis=1) & np.isfinite(target).all(axis=1)
    out: dict[str, Any] = {"n": int(ok.sum()), "variants": "Splice-altering test variants with finite targets"}
    out["max"] = M.pearson_r_ci(pred[ok].max(axis=1), target[ok].max(axis=1), cfg.bootstrap).to_dict()
    out["by_target"] = {
        n: M.pearson_r_ci(pred[ok, j], target[ok, j], cfg.bootstrap).to_dict() for j, n in enumerate(names)
    }
    return out


def compare(test: pd.DataFrame, reference: pd.DataFrame | None, reference_name: str, cfg: EvalConfig) -> dict | None:
    """Paired comparison of the test scores with ``reference`` (variant_id, score) on the shared variants."""
    if reference is None:
        return None
    ref = reference.drop_duplicates("variant_id").set_index("variant_id")["score"]
    joined = test[["variant_id", "label", "score"]].assign(reference=test["variant_id"].map(ref).to_numpy(np.float64))
    ok = np.isfinite(joined["score"].to_numpy(np.float64)) & np.isfinite(joined["reference"].to_numpy(np.float64))
    both = joined[ok]
    y = both["label"].to_numpy().astype(np.int8)
    a, b = both["score"].to_numpy(np.float64), both["reference"].to_numpy(np.float64)
    out: dict[str, Any] = {
        "reference": reference_name,
        "n": int(len(both)),
        "n_positive": int(y.sum()),
        "n_negative": int(len(y) - y.sum()),
        "n_excluded": int((~ok).sum()),
        "difference": "this minus reference",
    }
    if len(y) == 0 or M.single_class(y.astype(bool)):
        out["roc_auc"] = out["pr_auc"] = out["roc_auc_delong"] = None
        return out
    out["roc_auc"] = M.paired_bootstrap(y, a, b, "roc_auc", cfg.bootstrap).to_dict()
    out["pr_auc"] = M.paired_bootstrap(y, a, b, "pr_auc", cfg.bootstrap).to_dict()
    out["roc_auc_delong"] = M.delong_test(y, a, b).to_dict()
    return out


def summarise_test(
    test: pd.DataFrame,
    calls: np.ndarray,
    fixed_threshold: float,
    cfg: EvalConfig,
    reference: pd.DataFrame | None = None,
    reference_name: str = "",
    fixed_scale: bool | None = None,
) -> dict:
    """Test-set metrics given the calls at the validation-chosen threshold(s).

    ``fixed_scale``: whether the score is a delta score, so that SpliceAI's fixed threshold applies
    (None: :func:`delta_scale` of ``test``); else ``at_fixed_threshold`` is None.

    ``test``: labelled test rows; ``calls``: bool per row of ``test`` (``score >= threshold`` with the
    threshold chosen on validation; cross-validation passes each fold's own calls). Rows without a
    score, and rows the ``reference`` base model did not score (:func:`reference_scored`), are left out;
    ``all_scored`` gives ROC-AUC and PR-AUC on every row this model scored when that set is larger.
    """
    calls = np.asarray(calls, dtype=bool)
    if calls.shape != (len(test),):
        raise ValueError(f"calls must have one value per test row ({len(test)}), got {calls.shape}")
    own = np.isfinite(test["score"].to_numpy(np.float64))
    common = reference_scored(test, reference)
    all_scored = None
    if (own & ~common).any():
        ya, sa = test["label"].to_numpy().astype(np.int8)[own], test["score"].to_numpy(np.float64)[own]
        all_scored = {
            "n": int(own.sum()),
            "n_unscored_by_reference": int((own & ~common).sum()),
            "roc_auc": M.roc_auc_ci(ya, sa, cfg.bootstrap).to_dict(),
            "pr_auc": M.pr_auc_ci(ya, sa, cfg.bootstrap).to_dict(),
        }
    scored = own & common
    test, calls = test[scored], calls[scored]
    y = test["label"].to_numpy().astype(np.int8)
    s = test["score"].to_numpy(np.float64)
    if y.size == 0:
        raise ValueError("no scored test variants with label 0/1")
    b = cfg.bootstrap
    call_score = calls.astype(np.float64)  # calls as a 0/1 score: ">= 0.5" reproduces them
    rules = {"at_val_threshold": (call_score, 0.5, True), "at_fixed_threshold": (s, fixed_threshold, False)}
    if not (delta_scale(test) if fixed_scale is None else fixed_scale):
        del rules["at_fixed_threshold"]
    out: dict[str, Any] = {
        "metrics": {
            "roc_auc": M.roc_auc_ci(y, s, b).to_dict(),
            "pr_auc": M.pr_auc_ci(y, s, b).to_dict(),
            "at_fixed_threshold": None,  # replaced below for delta scores
            **{name: _at_threshold(y, sc, t, inc, b) for name, (sc, t, inc) in rules.items()},
        },
        "correlation": correlation(test, cfg),
        "all_scored": all_scored,
    }
    out["confusion_matrix"] = out["metrics"]["at_val_threshold"]["confusion"]
    breakdowns: dict[str, list] = {}
    for column in cfg.breakdowns:
        if column not in test.columns:
            raise ValueError(f"breakdown column {column!r} is not in the predictions table")
        cells = []
        values = test[column].astype(str).to_numpy()
        for group in _ordered_groups(test[column], column):
            m = values == group
            cell: dict[str, Any] = {
                "group": group,
                "n": int(m.sum()),
                "n_positive": int(y[m].sum()),
                "n_negative": int(m.sum() - y[m].sum()),
                "roc_auc": M.roc_auc_ci(y[m], s[m], b).to_dict(),
                "pr_auc": M.pr_auc_ci(y[m], s[m], b).to_dict(),
            }
            for name, (sc, t, inc) in rules.items():
                res = M.threshold_metrics_ci(y[m], sc[m], t, inc, b)
                cell[name] = {k: res[k].to_dict() for k in ("detection_rate", "fpr", "f1")} | {
                    "confusion": res["confusion"]
                }
            cells.append(cell)
        breakdowns[column] = cells
    out["breakdowns"] = breakdowns
    out["comparison"] = compare(test, reference, reference_name, cfg)
    return out


def eval_header(name: str, task: str, extra: Mapping[str, Any] | None, cfg: EvalConfig) -> dict:
    b = cfg.bootstrap
    return {
        "format": FORMAT,
        "name": name,
        "task": task,
        **dict(extra or {}),
        "bootstrap": {
            "method": "percentile",
            "n": b.n,
            "seed": b.seed,
            "level": b.level,
            "note": "resamples of the test variants (each breakdown cell resampled on its own); resamples "
            "where a metric is undefined (a single class, or a constant for Pearson r) are skipped "
            "and counted in n_skipped",
        },
    }


def evaluate_predictions(
    pred: pd.DataFrame,
    cfg: EvalConfig = EvalConfig(),
    name: str = "",
    task: str = "",
    reference: pd.DataFrame | None = None,
    reference_name: str = "",
    extra: Mapping[str, Any] | None = None,
    fixed_scale: bool | None = None,
) -> dict:
    """metrics.json content for a predictions table (rows of splits ``val`` and ``test``).

    The threshold is chosen from the validation rows alone; everything else is measured on the test
    rows. ``reference``: (variant_id, score) of the base model to compare with (None: no comparison).
    ``fixed_scale``: see :func:`summarise_test`.
    """
    val, test = labelled_rows(pred, "val"), labelled_rows(pred, "test")
    yv, sv = scored_arrays(val)
    try:
        chosen = choose_threshold(yv, sv)  # validation arrays only
    except ValueError as err:
        raise ValueError(f"{name or 'evaluation'}: {err}") from None
    calls = test["score"].to_numpy(np.float64) >= chosen["threshold"]
    try:
        summary = summarise_test(test, calls, cfg.fixed_threshold, cfg, reference, reference_name, fixed_scale)
    except ValueError as err:
        raise ValueError(f"{name or 'evaluation'}: {err}") from None
    return {
        **eval_header(name, task, extra, cfg),
        "n": {"val": label_counts(val), "test": measured_test_counts(test, reference, reference_name)},
        "threshold": chosen,
        "fixed_threshold": fixed_rule(cfg, summary),
        **summary,
    }


def fixed_rule(cfg: EvalConfig, summary: Mapping[str, Any]) -> dict:
    """The ``fixed_threshold`` entry of metrics.json: SpliceAI's rule, and whether it applied to this score."""
    applies = summary["metrics"].get("at_fixed_threshold") is not None
    return {
        "threshold": cfg.fixed_threshold,
        "rule": "score > threshold",
        "applies": applies,
        **({} if applies else {"note": "not a delta score (probability, class score or rank): not applied"}),
    }


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(data: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write JSON atomically (NaN written as null)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(_clean(dict(data)), indent=2, allow_nan=False) + "\n")


def write_evaluation(
    pred: pd.DataFrame,
    result: Mapping[str, Any],
    predictions_out: str | os.PathLike,
    metrics_out: str | os.PathLike,
    label: str,
) -> None:
    """Write predictions.parquet and metrics.json of one evaluation and log its headline numbers."""
    write_parquet(pred, predictions_out)
    write_json(result, metrics_out)
    metrics = result.get("metrics")
    if metrics:
        log.info(
            "%s: test ROC-AUC %s, PR-AUC %s (n=%d)",
            label,
            metrics["roc_auc"]["estimate"],
            metrics["pr_auc"]["estimate"],
            result["n"]["test"]["scored"],
        )
    if isinstance(result.get("localisation"), Mapping):
        loc = result["localisation"]
        log.info(
            "%s: test localisation top-1 %s, within ±2 nt %s (n=%s)",
            label,
            get_estimate(loc, "top1"),
            get_estimate(loc, "within_2"),
            loc.get("n", 0),
        )


def read_json(path: str | os.PathLike) -> dict:
    with open(path) as fh:
        return json.load(fh)


# --------------------------------------------------------------------------------------------
# file-level entry points (called by workflow_scripts/evaluate*.py)


def reference_table(variants: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """(variant_id, score) of a base model for the comparison."""
    return pd.DataFrame({"variant_id": variants["variant_id"].to_numpy(), "score": base_score(scores)})


def evaluate_baseline_files(
    variants_path: str | os.PathLike,
    scores_path: str | os.PathLike,
    predictions_out: str | os.PathLike,
    metrics_out: str | os.PathLike,
    base: str,
    cfg: EvalConfig = EvalConfig(),
    reference_scores_path: str | os.PathLike | None = None,
) -> dict:
    """Evaluate base model ``base`` (max delta score as classifier score) without training.

    ``reference_scores_path``: the reference base's scores, for a paired comparison (omit it for the
    reference itself).
    """
    variants = read_variants(variants_path)
    scores = read_scores(scores_path, len(variants), variants_path)
    pred = baseline_predictions(variants, scores)
    reference = None
    if reference_scores_path is not None and base != cfg.reference:
        reference = reference_table(variants, read_scores(reference_scores_path, len(variants), variants_path))
    score = "max(DS_AG, DS_AL, DS_DG, DS_DL)" if "DS_AG" in scores.columns else "max(gain, -loss)"
    extra = {"kind": "baseline", "base": base, "score": score}
    result = evaluate_predictions(pred, cfg, base, "baseline", reference, cfg.reference, extra)
    write_evaluation(pred, result, predictions_out, metrics_out, base)
    return result


def _load_windows(path: str | os.PathLike, n_rows: int, context: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as npz:
        missing = {"ref", "alt"} - set(npz.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)} (expected ref and alt)")
        ref, alt = npz["ref"], npz["alt"]
    if ref.shape != alt.shape or ref.ndim != 2 or ref.shape[0] != n_rows:
        raise ValueError(f"{path}: ref/alt of shapes {ref.shape}/{alt.shape}, expected ({n_rows}, {context})")
    if ref.shape[1] != context:
        raise ValueError(f"{path}: windows are {ref.shape[1]} nt but the model's context is {context}")
    return ref, alt


def evaluate_experiment_files(
    model_path: str | os.PathLike,
    variants_path: str | os.PathLike,
    sequences_path: str | os.PathLike,
    reference_scores_path: str | os.PathLike,
    predictions_out: str | os.PathLike,
    metrics_out: str | os.PathLike,
    experiment: str,
    cfg: EvalConfig = EvalConfig(),
    targets_path: str | os.PathLike | None = None,
) -> dict:
    """Run a trained model on the validation and test windows and evaluate it.

    ``targets_path``: scores.parquet of the base model the model was trained on (its
    ``target_DS_*`` columns, and DS/DP for the effect classes and offsets of the effect tasks);
    defaults to the reference's. The effect tasks add their own metrics (:func:`task_metrics`);
    a localisation model, which has no classifier score, gets only those.
    """
    from metasplice.models import load_checkpoint, load_model
    from metasplice.training.train import predict, resolve_device

    device = resolve_device(cfg.device)
    checkpoint = load_checkpoint(model_path)
    model = load_model(model_path, device)
    config = model.config
    variants = read_variants(variants_path)
    reference_scores = read_scores(reference_scores_path, len(variants), variants_path)
    targets = reference_scores if targets_path is None else read_scores(targets_path, len(variants), variants_path)
    ref, alt = _load_windows(sequences_path, len(variants), int(config.context))
    rows = eval_rows(variants)
    probabilities = predict(model, ref[rows], alt[rows], batch_size=cfg.batch_size, device=device)
    names = tuple(model.output_names)
    task = config.task
    pred = model_predictions(
        variants,
        probabilities,
        rows,
        names,
        task,
        targets if task != "binary" else None,
        config,
        windows_strand_oriented(sequences_path),
    )
    info = dict(checkpoint.get("info") or {})
    extra = {
        "kind": "experiment",
        "experiment": experiment,
        "architecture": checkpoint.get("architecture"),
        "outputs": list(names),
        "score": EFFECT_TASK_SCORES.get(
            task, "max of the predicted delta scores" if task == "delta" else "P(Splice-altering)"
        ),
        "training": {k: info.get(k) for k in ("best_epoch", "epochs_run", "early_stopped", "n_train", "n_val")},
        "device": str(device),
    }
    if task == "localisation":
        result = localisation_evaluation(pred, cfg, experiment, extra)
    else:
        result = evaluate_predictions(
            pred, cfg, experiment, task, reference_table(variants, reference_scores), cfg.reference, extra
        )
        result.update(task_metrics(pred, task, cfg))
    write_evaluation(pred, result, predictions_out, metrics_out, experiment)
    return result


# --------------------------------------------------------------------------------------------
# effect tasks (effect_type, localisation, quantile, multitask; see metasplice.models.tasks):
# predictions-table columns and the task metrics evaluate_experiment_files adds to metrics.json
#
#   effect_type   prob_<class> per class, predicted_class, target_class       -> "effect_type"
#   localisation  loc_top1..loc_top3 (offsets, window orientation), loc_top1_prob,
#                 loc_target                                                 -> "localisation"
#   quantile      pred_<target> (median), pred_<target>_q<q>, target_<target> -> "quantile"
#   multitask     the effect_type and localisation columns, pred_/target_<target> of the delta head,
#                 score = the binary head                                    -> "effect_type", "localisation"
#
# Every task metric is measured on the labelled test variants that have the task's target, with
# percentile-bootstrap intervals over those variants (EvalConfig.bootstrap).


def localisation_evaluation(
    pred: pd.DataFrame, cfg: EvalConfig = EvalConfig(), name: str = "", extra: Mapping[str, Any] | None = None
) -> dict:
    """metrics.json content of a localisation model: no classifier score, so no threshold or
    classification metrics; the variant counts and the localisation metrics of the test split."""
    val, test = labelled_rows(pred, "val"), labelled_rows(pred, "test")
    return {
        **eval_header(name, "localisation", extra, cfg),
        "n": {"val": label_counts(val), "test": label_counts(test)},
        **task_metrics(pred, "localisation", cfg),
    }
