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
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from metasplice.evaluation import metrics as M
from metasplice.io import atomic_output, write_parquet

log = logging.getLogger(__name__)

DS_COLUMNS: tuple[str, ...] = ("DS_AG", "DS_AL", "DS_DG", "DS_DL")
VARIANT_COLUMNS: tuple[str, ...] = ("variant_id", "split", "label", "classification", "region", "variant_type")
REGION_ORDER: tuple[str, ...] = ("exonic", "canonical", "splice_region", "intronic", "deep_intronic")
TYPE_ORDER: tuple[str, ...] = ("snv", "insertion", "deletion", "mnv")
EVAL_SPLITS: tuple[str, ...] = ("val", "test")
FORMAT = "metasplice-metrics/1"


@dataclass(frozen=True)
class EvalConfig:
    """Settings of an evaluation (config section ``evaluation``)."""

    bootstrap: M.BootstrapConfig = field(default_factory=M.BootstrapConfig)
    fixed_threshold: float = 0.1  # the |Δ| > threshold rule of SpliceAI (score > t)
    reference: str = "spliceai"  # base model whose max delta score every experiment is compared with
    breakdowns: tuple[str, ...] = ("region", "variant_type")
    batch_size: int = 256  # inference batch size
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "EvalConfig":
        """Build from the config's ``evaluation`` section (unknown keys are an error)."""
        values = dict(values or {})
        boot = M.BootstrapConfig(
            n=int(values.pop("bootstrap_n", M.BootstrapConfig.n)),
            seed=int(values.pop("seed", M.BootstrapConfig.seed)),
            level=float(values.pop("ci_level", M.BootstrapConfig.level)),
        )
        values.pop("cross_validation", None)  # read by metasplice.evaluation.crossval
        known = {"fixed_threshold", "reference", "breakdowns", "batch_size", "device"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown evaluation keys {unknown}; valid keys: baselines, bootstrap_n, ci_level, cross_validation, "
                "experiments, seed, " + ", ".join(sorted(known))
            )
        if "breakdowns" in values:
            values["breakdowns"] = tuple(values["breakdowns"])
        return cls(bootstrap=boot, **values)


# --------------------------------------------------------------------------------------------
# predictions tables


def read_variants(path: str | os.PathLike) -> pd.DataFrame:
    """The variant columns an evaluation needs, in file order."""
    table = pd.read_parquet(path)
    missing = [c for c in VARIANT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; rebuild it with prepare_variants")
    return table


def read_scores(path: str | os.PathLike, n_rows: int, variants_path: str | os.PathLike = "variants") -> pd.DataFrame:
    """A base model's scores.parquet, checked to be row-aligned with the variants."""
    scores = pd.read_parquet(path)
    missing = [c for c in DS_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; rerun the base model scoring")
    if len(scores) != n_rows:
        raise ValueError(
            f"{path} has {len(scores)} rows but {variants_path} has {n_rows}; rerun the base model scoring"
        )
    return scores


def base_score(scores: pd.DataFrame) -> np.ndarray:
    """max(DS_AG, DS_AL, DS_DG, DS_DL) per row; NaN where the base model did not score the variant."""
    ds = scores[list(DS_COLUMNS)].to_numpy(dtype=np.float64)
    out = np.full(len(ds), np.nan)
    ok = np.isfinite(ds).all(axis=1)
    out[ok] = ds[ok].max(axis=1)
    return out


def _eval_rows(variants: pd.DataFrame) -> np.ndarray:
    return np.flatnonzero(variants["split"].astype(str).isin(EVAL_SPLITS).to_numpy())


def _frame(variants: pd.DataFrame, rows: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    out = variants.iloc[rows][list(VARIANT_COLUMNS)].reset_index(drop=True)
    out["label"] = out["label"].astype(np.int8)
    out["score"] = np.asarray(score, dtype=np.float64)
    return out


def baseline_predictions(variants: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Validation and test rows with the base model's max delta score (and its four DS values)."""
    rows = _eval_rows(variants)
    table = _frame(variants, rows, base_score(scores)[rows])
    for c in DS_COLUMNS:
        table[f"pred_{c}"] = scores[c].to_numpy(dtype=np.float64)[rows]
    return table


def model_predictions(
    variants: pd.DataFrame,
    probabilities: np.ndarray,
    rows: np.ndarray,
    output_names: tuple[str, ...],
    task: str,
    targets: pd.DataFrame | None = None,
    model_config: Any = None,
    strand_oriented: bool = True,
) -> pd.DataFrame:
    """Predictions table of a meta-model: ``probabilities`` (len(rows), n_outputs) as
    :func:`metasplice.training.train.predict` returns them (after the sigmoid / softmax).

    Delta models get ``pred_<target>`` per output, the validated ``target_<target>`` (from
    ``targets``, the base model's scores.parquet) and score = max of the predicted delta scores.
    The effect tasks (effect_type, localisation, quantile, multitask) get the columns of
    :func:`effect_task_predictions`; ``model_config`` (the model's config, dataclass or dict) gives
    their label options and ``strand_oriented`` the orientation of the windows.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(rows), len(output_names)):
        raise ValueError(f"predictions of shape {probabilities.shape}, expected ({len(rows)}, {len(output_names)})")
    if task == "binary":
        return _frame(variants, rows, probabilities[:, 0])
    if task in EFFECT_TASK_SCORES:
        return effect_task_predictions(variants, probabilities, rows, output_names, task, targets, model_config,
                                       strand_oriented)
    if task != "delta":
        raise ValueError(f"unknown task {task!r} (delta, binary, {', '.join(EFFECT_TASK_SCORES)})")
    table = _frame(variants, rows, probabilities.max(axis=1))
    for j, name in enumerate(output_names):
        table[f"pred_{name}"] = probabilities[:, j]
    if targets is not None:
        for name in output_names:
            col = f"target_{name}"
            if col not in targets.columns:
                raise ValueError(f"targets file lacks column {col!r}; rerun the base model scoring")
            table[col] = targets[col].to_numpy(dtype=np.float64)[rows]
    return table


# --------------------------------------------------------------------------------------------
# metrics


def _labelled(pred: pd.DataFrame, split: str) -> pd.DataFrame:
    return pred[(pred["split"].astype(str) == split) & pred["label"].isin((0, 1))]


def _counts(part: pd.DataFrame) -> dict[str, int]:
    scored = np.isfinite(part["score"].to_numpy(dtype=np.float64))
    label = part["label"].to_numpy()
    return {
        "total": int(len(part)),
        "positive": int((label == 1).sum()),
        "negative": int((label == 0).sum()),
        "scored": int(scored.sum()),
        "positive_scored": int(((label == 1) & scored).sum()),
        "negative_scored": int(((label == 0) & scored).sum()),
        "unscored": int((~scored).sum()),
    }


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


def measured_test_counts(test: pd.DataFrame, reference: pd.DataFrame | None, reference_name: str = "") -> dict[str, Any]:
    """Counts of the labelled test rows measured (those the reference scored), plus how many the
    reference left out (``unscored_by_reference``) and their scored counterpart for this model."""
    common = reference_scored(test, reference)
    out: dict[str, Any] = _counts(test[common])
    if reference is not None:
        out["unscored_by_reference"] = int((~common).sum())
        out["reference"] = reference_name
    return out


def _scored_arrays(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    s = part["score"].to_numpy(dtype=np.float64)
    ok = np.isfinite(s)
    return part["label"].to_numpy()[ok].astype(np.int8), s[ok]


def choose_threshold(val_label: np.ndarray, val_score: np.ndarray) -> dict:
    """The max-F1 threshold of the validation rows (rule ``score >= threshold``).

    Takes validation arrays only, so nothing about the test split can reach the choice.
    """
    threshold, f1 = M.max_f1_threshold(val_label, val_score)
    return {"threshold": threshold, "rule": "score >= threshold", "val_f1": f1, "chosen_on": "val"}


def _iv(interval: M.Interval) -> dict:
    return interval.to_dict()


def _at_threshold(y: np.ndarray, s: np.ndarray, threshold: float, inclusive: bool, cfg: M.BootstrapConfig) -> dict:
    res = M.threshold_metrics_ci(y, s, threshold, inclusive, cfg)
    out = {k: _iv(v) for k, v in res.items() if k != "confusion"}
    out["confusion"] = res["confusion"]
    return out


def _ordered_groups(values: pd.Series, column: str) -> list[str]:
    order = {"region": REGION_ORDER, "variant_type": TYPE_ORDER}.get(column, ())
    present = [str(v) for v in pd.unique(values.astype(str))]
    return [g for g in order if g in present] + sorted(g for g in present if g not in order)


def correlation(test: pd.DataFrame, cfg: EvalConfig) -> dict | None:
    """Pearson r between predicted and target delta scores on the Splice-altering test variants.

    ``max``: the largest predicted vs the largest target delta score (the effect size); one entry
    per target as well. None when the table holds no predicted/target pairs (binary models, bases).
    """
    names = [c[len("pred_"):] for c in test.columns if c.startswith("pred_") and f"target_{c[len('pred_'):]}" in test]
    if not names:
        return None
    sa = test[test["label"] == 1]
    pred = sa[[f"pred_{n}" for n in names]].to_numpy(dtype=np.float64)
    target = sa[[f"target_{n}" for n in names]].to_numpy(dtype=np.float64)
    ok = np.isfinite(pred).all(axis=1) & np.isfinite(target).all(axis=1)
    out: dict[str, Any] = {"n": int(ok.sum()), "variants": "Splice-altering test variants with finite targets"}
    out["max"] = _iv(M.pearson_r_ci(pred[ok].max(axis=1), target[ok].max(axis=1), cfg.bootstrap))
    out["by_target"] = {n: _iv(M.pearson_r_ci(pred[ok, j], target[ok, j], cfg.bootstrap)) for j, n in enumerate(names)}
    return out


def compare(
    test: pd.DataFrame, reference: pd.DataFrame | None, reference_name: str, cfg: EvalConfig
) -> dict | None:
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
    if len(y) == 0 or M._single_class(y.astype(bool)):
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
        all_scored = {"n": int(own.sum()), "n_unscored_by_reference": int((own & ~common).sum()),
                      "roc_auc": _iv(M.roc_auc_ci(ya, sa, cfg.bootstrap)),
                      "pr_auc": _iv(M.pr_auc_ci(ya, sa, cfg.bootstrap))}
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
            "roc_auc": _iv(M.roc_auc_ci(y, s, b)),
            "pr_auc": _iv(M.pr_auc_ci(y, s, b)),
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
            cell: dict[str, Any] = {"group": group, "n": int(m.sum()), "n_positive": int(y[m].sum()),
                                    "n_negative": int(m.sum() - y[m].sum()),
                                    "roc_auc": _iv(M.roc_auc_ci(y[m], s[m], b)),
                                    "pr_auc": _iv(M.pr_auc_ci(y[m], s[m], b))}
            for name, (sc, t, inc) in rules.items():
                res = M.threshold_metrics_ci(y[m], sc[m], t, inc, b)
                cell[name] = {k: _iv(res[k]) for k in ("detection_rate", "fpr", "f1")} | {"confusion": res["confusion"]}
            cells.append(cell)
        breakdowns[column] = cells
    out["breakdowns"] = breakdowns
    out["comparison"] = compare(test, reference, reference_name, cfg)
    return out


def _header(name: str, task: str, extra: Mapping[str, Any] | None, cfg: EvalConfig) -> dict:
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
    val, test = _labelled(pred, "val"), _labelled(pred, "test")
    yv, sv = _scored_arrays(val)
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
        **_header(name, task, extra, cfg),
        "n": {"val": _counts(val), "test": measured_test_counts(test, reference, reference_name)},
        "threshold": chosen,
        "fixed_threshold": fixed_rule(cfg, summary),
        **summary,
    }


def fixed_rule(cfg: EvalConfig, summary: Mapping[str, Any]) -> dict:
    """The ``fixed_threshold`` entry of metrics.json: SpliceAI's rule, and whether it applied to this score."""
    applies = summary["metrics"].get("at_fixed_threshold") is not None
    return {"threshold": cfg.fixed_threshold, "rule": "score > threshold", "applies": applies,
            **({} if applies else {"note": "not a delta score (probability, class score or rank): not applied"})}


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
    pred: pd.DataFrame, result: Mapping[str, Any], predictions_out: str | os.PathLike,
    metrics_out: str | os.PathLike, label: str,
) -> None:
    """Write predictions.parquet and metrics.json of one evaluation and log its headline numbers."""
    write_parquet(pred, predictions_out)
    write_json(result, metrics_out)
    metrics = result.get("metrics")
    if metrics:
        log.info("%s: test ROC-AUC %s, PR-AUC %s (n=%d)", label, metrics["roc_auc"]["estimate"],
                 metrics["pr_auc"]["estimate"], result["n"]["test"]["scored"])
    if isinstance(result.get("localisation"), Mapping):
        loc = result["localisation"]
        log.info("%s: test localisation top-1 %s, within ±2 nt %s (n=%s)", label, _get_estimate(loc, "top1"),
                 _get_estimate(loc, "within_2"), loc.get("n", 0))


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
    extra = {"kind": "baseline", "base": base, "score": "max(DS_AG, DS_AL, DS_DG, DS_DL)"}
    result = evaluate_predictions(pred, cfg, f"{base} (baseline)", "baseline", reference, cfg.reference, extra)
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
    rows = _eval_rows(variants)
    probabilities = predict(model, ref[rows], alt[rows], batch_size=cfg.batch_size, device=device)
    names = tuple(model.output_names)
    task = config.task
    pred = model_predictions(variants, probabilities, rows, names, task, targets if task != "binary" else None,
                             config, windows_strand_oriented(sequences_path))
    info = dict(checkpoint.get("info") or {})
    extra = {
        "kind": "experiment",
        "experiment": experiment,
        "architecture": checkpoint.get("architecture"),
        "outputs": list(names),
        "score": EFFECT_TASK_SCORES.get(
            task, "max of the predicted delta scores" if task == "delta" else "P(Splice-altering)"),
        "training": {k: info.get(k) for k in ("best_epoch", "epochs_run", "early_stopped", "n_train", "n_val")},
        "device": str(device),
    }
    if task == "localisation":
        result = localisation_evaluation(pred, cfg, experiment, extra)
    else:
        result = evaluate_predictions(pred, cfg, experiment, task, reference_table(variants, reference_scores),
                                      cfg.reference, extra)
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

EFFECT_TASK_SCORES: dict[str, str] = {
    "effect_type": "1 - P(normal) of the effect-type head",
    "localisation": "none: a localisation model predicts where, not whether (localisation metrics only)",
    "quantile": "max of the median (quantile nearest 0.5) predicted delta scores",
    "multitask": "P(Splice-altering) of the binary head",
}
LOCALISATION_TOP_K = 3
LOCALISATION_TOLERANCES: tuple[int, ...] = (2, 5)
# a target within this of an interval counts as covered: half the 0.01 resolution at which SpliceAI
# reports delta scores; without it the point mass at 0 (every Normal variant's validated target) could
# never lie inside an interval of sigmoid outputs, which are > 0
COVERAGE_TOLERANCE = 0.005


def windows_strand_oriented(path: str | os.PathLike) -> bool:
    """Whether a windows file holds strand-oriented windows (its ``strand_oriented`` flag; True when absent)."""
    with np.load(path) as npz:
        return bool(npz["strand_oriented"]) if "strand_oriented" in npz.files else True


def _get_estimate(section: Mapping[str, Any], key: str) -> Any:
    value = section.get(key)
    return value.get("estimate") if isinstance(value, Mapping) else None


def _class_names(index: np.ndarray) -> np.ndarray:
    from metasplice.models.tasks import EFFECT_CLASSES

    names = np.array(EFFECT_CLASSES, dtype=object)
    return np.where(index >= 0, names[np.clip(index, 0, None)], None)


def effect_task_predictions(
    variants: pd.DataFrame,
    probabilities: np.ndarray,
    rows: np.ndarray,
    output_names: tuple[str, ...],
    task: str,
    targets: pd.DataFrame | None = None,
    model_config: Any = None,
    strand_oriented: bool = True,
) -> pd.DataFrame:
    """Predictions table of an effect-task model (columns in this section's header).

    ``targets`` (the base model's scores.parquet) gives the target columns: effect classes and offsets
    are rebuilt from its DS/DP with the model's own options (``model_config``) exactly as for training.
    """
    from metasplice.models import tasks as FX

    p = np.asarray(probabilities, dtype=np.float64)
    names = tuple(output_names)
    table = _frame(variants, rows, FX.classifier_scores(p, task, names))
    heads = FX.head_slices(task, names)
    label = variants["label"].to_numpy()
    if "effect_type" in heads:
        probs = p[:, heads["effect_type"]]
        for j, c in enumerate(FX.EFFECT_CLASSES):
            table[f"prob_{c}"] = probs[:, j]
        table["predicted_class"] = _class_names(probs.argmax(axis=1))
        if targets is not None:
            table["target_class"] = _class_names(FX.config_effect_labels(targets, label, model_config)[rows])
    if "localisation" in heads:
        probs = p[:, heads["localisation"]]
        offsets = FX.parse_offsets(names[heads["localisation"]])
        k = min(LOCALISATION_TOP_K, probs.shape[1])
        ranked = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        for j in range(k):
            table[f"loc_top{j + 1}"] = offsets[ranked[:, j]]
        table["loc_top1_prob"] = probs[np.arange(len(probs)), ranked[:, 0]]
        if targets is not None:
            strand = variants["strand"].astype(str).to_numpy() if "strand" in variants.columns else None
            distance = (len(offsets) - 1) // 2
            config = {"distance": distance,
                      "min_effect_score": FX.option(model_config, "min_effect_score", FX.DEFAULT_MIN_EFFECT_SCORE)}
            index = FX.config_localisation_targets(targets, label, strand, strand_oriented, config)[rows]
            table["loc_target"] = np.where(index >= 0, index - distance, np.nan)
    if "quantile" in heads:
        q_targets, quantiles = FX.parse_quantiles(names)
        values = p.reshape(len(p), len(q_targets), len(quantiles))
        mid = FX.median_index(quantiles)
        for i, t in enumerate(q_targets):
            table[f"pred_{t}"] = values[:, i, mid]
            for j, q in enumerate(quantiles):
                table[f"pred_{FX.quantile_name(t, q)}"] = values[:, i, j]
        delta_names = q_targets
    elif "delta" in heads:
        delta_names = names[heads["delta"]]
        for j, t in enumerate(delta_names):
            table[f"pred_{t}"] = p[:, heads["delta"]][:, j]
    else:
        delta_names = ()
    if targets is not None:
        for t in delta_names:
            col = f"target_{t}"
            if col not in targets.columns:
                raise ValueError(f"targets file lacks column {col!r}; rerun the base model scoring")
            table[col] = targets[col].to_numpy(dtype=np.float64)[rows]
    return table


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
        "macro_f1": _iv(res["macro_f1"]),
        "per_class": {
            c: {"support": res["support"][i], "precision": _iv(res["precision"][i]), "recall": _iv(res["recall"][i]),
                "f1": _iv(res["f1"][i])}
            for i, c in enumerate(EFFECT_CLASSES)
        },
        "confusion_matrix": {
            "rows": "target class", "columns": "predicted class", "labels": list(EFFECT_CLASSES),
            "counts": res["confusion"], "rate": _iv_grid(res["confusion_rate"]),
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
        **{k: _iv(v) for k, v in res.items()},
    }


def quantile_metrics(test: pd.DataFrame, cfg: EvalConfig) -> dict | None:
    """Empirical coverage of the [lowest, highest] quantile interval vs its nominal level, per target and
    overall (and overall per label), and the share of targets at or below each quantile (its
    calibration, ideally the level itself), on the test variants with finite targets, up to
    :data:`COVERAGE_TOLERANCE`; None without quantiles."""
    from metasplice.models import tasks as FX

    names = [c[len("pred_"):] for c in test.columns if c.startswith("pred_") and "_q" in c]
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
        below[f"{q:g}"] = _iv(M.mean_ci(at_or_below.mean(axis=1) if len(at_or_below) else np.zeros(0), cfg.bootstrap))
    label = test["label"].to_numpy()[ok]
    by_label = {name: _iv(M.coverage_ci(inside[label == value], cfg.bootstrap)["overall"])
                for name, value in (("splice_altering", 1), ("normal", 0))}
    return {
        "n": int(ok.sum()),
        "variants": "labelled test variants with finite validated targets",
        "quantiles": list(quantiles),
        "interval": [low_q, high_q],
        "nominal": high_q - low_q,
        "tolerance": COVERAGE_TOLERANCE,
        "coverage": _iv(res["overall"]),
        "per_target": {t: _iv(iv) for t, iv in zip(q_targets, res["per_target"])},
        "by_label": by_label,
        "share_at_or_below": below,
    }


def task_metrics(pred: pd.DataFrame, task: str, cfg: EvalConfig) -> dict[str, Any]:
    """The task keys of metrics.json for an effect task (``effect_type``, ``localisation``, ``quantile``;
    both of the first two for ``multitask``); empty for delta and binary."""
    test = _labelled(pred, "test")
    sections = {"effect_type": ("effect_type",), "localisation": ("localisation",), "quantile": ("quantile",),
                "multitask": ("effect_type", "localisation")}.get(task, ())
    functions = {"effect_type": effect_type_metrics, "localisation": localisation_metrics,
                 "quantile": quantile_metrics}
    return {key: functions[key](test, cfg) for key in sections}


def localisation_evaluation(
    pred: pd.DataFrame, cfg: EvalConfig = EvalConfig(), name: str = "", extra: Mapping[str, Any] | None = None
) -> dict:
    """metrics.json content of a localisation model: no classifier score, so no threshold or
    classification metrics; the variant counts and the localisation metrics of the test split."""
    val, test = _labelled(pred, "val"), _labelled(pred, "test")
    return {
        **_header(name, "localisation", extra, cfg),
        "n": {"val": _counts(val), "test": _counts(test)},
        **task_metrics(pred, "localisation", cfg),
    }


# --------------------------------------------------------------------------------------------
# workflow wiring: the file paths of the evaluation rules, from the plain config dict
# (rules/evaluate.smk calls these from lambdas; the train rule uses experiment_variants for folds)

REPORT_FIGURES: dict[str, str] = {
    name: f"results/report/figures/{name}.png" for name in ("roc", "pr", "training", "scatter", "regions")
}
REPORT_TABLES: dict[str, str] = {
    "summary_md": "results/report/summary.md",
    "summary_tsv": "results/report/summary.tsv",
    "breakdowns": "results/report/breakdowns.tsv",
    "tasks": "results/report/tasks.tsv",
}
REPORT_OUTPUTS: list[str] = [*REPORT_TABLES.values(), *REPORT_FIGURES.values()]


def evaluation_section(config: Mapping[str, Any]) -> dict:
    """The ``evaluation`` config section (empty when absent: every default applies)."""
    return dict(config.get("evaluation") or {})


RUNTIME_EVAL_KEYS = ("batch_size", "device")  # how an evaluation runs, not what it computes


def evaluation_params(config: Mapping[str, Any]) -> dict:
    """Settings handed to the evaluation rules as params (a change reruns them); validated here so a bad key
    fails the DAG. The runtime keys are left out: the scripts read them with :func:`evaluation_runtime`."""
    values = {k: v for k, v in evaluation_section(config).items() if k not in ("experiments", "baselines")}
    EvalConfig.from_dict(values)
    values.pop("cross_validation", None)
    return {k: v for k, v in values.items() if k not in RUNTIME_EVAL_KEYS}


def evaluation_runtime(config: Mapping[str, Any]) -> dict:
    """The runtime settings of ``evaluation`` (batch size, device): read by the scripts from the config."""
    return {k: v for k, v in evaluation_section(config).items() if k in RUNTIME_EVAL_KEYS}


def reference_base(config: Mapping[str, Any]) -> str:
    """Base model every row is compared with (``evaluation.reference``, default spliceai)."""
    return EvalConfig.from_dict(evaluation_params(config)).reference


def baseline_bases(config: Mapping[str, Any]) -> list[str]:
    """Base models evaluated as baseline rows: ``evaluation.baselines`` (the reference always first)."""
    ref = reference_base(config)
    bases = [str(b) for b in evaluation_section(config).get("baselines") or [ref]]
    return [ref] + [b for b in dict.fromkeys(bases) if b != ref]


def report_experiments(config: Mapping[str, Any]) -> list[str]:
    """Experiments in the report: ``evaluation.experiments``, default every configured experiment."""
    from metasplice.experiments.sweeps import expand_names

    configured = config.get("experiments") or {}
    names = list(evaluation_section(config).get("experiments") or configured)
    names = expand_names(names, config.get("_sweeps") or {})  # a sweep's name selects its children
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise ValueError(f"config evaluation.experiments names unknown experiments {unknown}; "
                         f"configured: {', '.join(configured)}")
    return names


def crossval_settings(config: Mapping[str, Any]):
    """``evaluation.cross_validation`` as a :class:`metasplice.evaluation.crossval.CrossValConfig`."""
    from metasplice.evaluation.crossval import CrossValConfig

    return CrossValConfig.from_dict(evaluation_section(config).get("cross_validation"))


def crossval_folds(config: Mapping[str, Any]) -> list[int]:
    """Fold indices; empty when cross-validation is off."""
    cv = crossval_settings(config)
    return list(range(cv.k)) if cv.enabled else []


def fold_variants_paths(config: Mapping[str, Any]) -> list[str]:
    """Outputs of the crossval_folds rule (one variants file per fold)."""
    return [f"results/crossval/fold{k}/variants.parquet" for k in range(crossval_settings(config).k)]


def oof_settings(config: Mapping[str, Any]):
    """The ``stacking`` section as a :class:`metasplice.experiments.stacking.OOFConfig`."""
    from metasplice.experiments.stacking import OOFConfig

    return OOFConfig.from_config(config)


def oof_scope_variants(config: Mapping[str, Any], scope: str, variants: str) -> str:
    """Variants file whose training rows scope ``scope`` splits: ``main`` (the main split) or ``fold{k}``."""
    if scope == "main":
        return variants
    if not scope.startswith("fold") or not scope[4:].isdigit():
        raise ValueError(f"unknown out-of-fold scope {scope!r} (main or fold<k>)")
    return experiment_variants(config, f"x__{scope}", variants)


def oof_variants_paths(config: Mapping[str, Any], scope: str) -> list[str]:
    """Outputs of rule oof_splits for ``scope``: one variants file per out-of-fold group."""
    return [f"results/stacking/{scope}/oof{j}/variants.parquet" for j in range(oof_settings(config).oof_folds)]


def experiment_variants(config: Mapping[str, Any], name: str, variants: str) -> str:
    """Variants file of an experiment instance: the fold's copy for ``E__fold{k}``, the out-of-fold
    group's copy for ``E__oof{j}`` / ``E__fold{k}__oof{j}``, else ``variants``.

    The train rule must take its ``variants`` input from here too, so a fold trains on its own split.
    """
    from metasplice.evaluation.crossval import split_fold_name
    from metasplice.experiments.stacking import split_oof_name

    parent, oof = split_oof_name(name)
    if oof is not None:
        n = oof_settings(config).oof_folds
        if oof >= n:
            raise ValueError(f"{name}: out-of-fold group {oof} does not exist (stacking.oof_folds is {n})")
        _, fold = split_fold_name(parent)
        scope = "main" if fold is None else f"fold{fold}"
        experiment_variants(config, parent, variants)  # checks the fold
        return oof_variants_paths(config, scope)[oof]
    _, fold = split_fold_name(name)
    if fold is None:
        return variants
    k = crossval_settings(config).k
    if fold >= k:
        raise ValueError(f"{name}: fold {fold} does not exist (evaluation.cross_validation has {k} folds)")
    return fold_variants_paths(config)[fold]


def resolve_instance(config: Mapping[str, Any], name: str):
    """The :class:`metasplice.experiments.registry.Experiment` behind an instance name (``E``, ``E__fold{k}``,
    ``E__oof{j}``, ``E__fold{k}__oof{j}``)."""
    from metasplice.experiments.registry import experiment_for

    return experiment_for(instance_experiment(name), config)


def instance_experiment(name: str) -> str:
    """The configured experiment behind an instance name (fold and out-of-fold suffixes removed)."""
    from metasplice.evaluation.crossval import split_fold_name
    from metasplice.experiments.stacking import split_oof_name

    return split_fold_name(split_oof_name(name)[0])[0]


def experiment_kind(config: Mapping[str, Any], name: str) -> str:
    """``trained`` or the meta-model kind (``stacked``) of an instance's experiment."""
    from metasplice.experiments.registry import experiment_kind as kind

    experiment = instance_experiment(name)
    experiments = config.get("experiments") or {}
    if experiment not in experiments:
        raise ValueError(f"unknown experiment {experiment!r}; configured experiments: {', '.join(experiments)}")
    return kind(experiments[experiment])


def ensemble_params(config: Mapping[str, Any], name: str) -> dict:
    """The ensemble settings of instance ``name`` (rule evaluate's params; empty for other kinds)."""
    if experiment_kind(config, name) != "ensemble":
        return {}
    from metasplice.experiments.ensembles import ensemble_for

    return ensemble_for(name, config).to_dict()


def stack_config(config: Mapping[str, Any], name: str):
    """The :class:`metasplice.experiments.stacking.StackConfig` of stacked instance ``name`` (members and bases checked)."""
    from metasplice.experiments.registry import experiment_kind as kind
    from metasplice.experiments.stacking import StackConfig

    experiment = instance_experiment(name)
    experiments = config.get("experiments") or {}
    sc = StackConfig.from_spec(experiment, experiments.get(experiment) or {}, config.get("dataset") == "demo")
    for m in sc.members:
        if m not in experiments:
            raise ValueError(f"experiment {experiment!r}: member {m!r} is not a configured experiment")
        if kind(experiments[m]) != "trained":
            raise ValueError(f"experiment {experiment!r}: member {m!r} is a {kind(experiments[m])} model; members "
                             "must be trained experiments")
    bases = config.get("base_models") or {}
    missing = [b for b in sc.bases if b not in bases]
    if missing:
        raise ValueError(f"experiment {experiment!r}: base models {missing} are not configured under base_models "
                         f"(configured: {', '.join(bases) or 'none'})")
    return sc


def stacked_inputs(config: Mapping[str, Any], name: str, variants: str) -> dict[str, str]:
    """Inputs of rule train_stacked for instance ``name`` (``S`` or ``S__fold{k}``): its variants, each
    base model's scores and deltas, and per member the full model's validation/test predictions, its
    checkpoint, and every out-of-fold instance's predictions with the variants file it trained from."""
    from metasplice.evaluation.crossval import fold_name, split_fold_name
    from metasplice.experiments.stacking import oof_name

    sc = stack_config(config, name)
    _, fold = split_fold_name(name)
    inputs = {"variants": experiment_variants(config, name, variants)}
    for b in sc.bases:
        inputs[f"scores__{b}"] = f"results/targets/{b}/scores.parquet"
        inputs[f"deltas__{b}"] = f"results/targets/{b}/deltas.npy"
    for m in sc.members:
        inst = m if fold is None else fold_name(m, fold)
        inputs[f"predictions__{m}"] = f"results/eval/{inst}/predictions.parquet"
        inputs[f"model__{m}"] = f"results/models/{inst}/model.pt"
        for j in range(oof_settings(config).oof_folds):
            oof = oof_name(inst, j)
            inputs[f"oof_predictions__{m}__{j}"] = f"results/eval/{oof}/predictions.parquet"
            inputs[f"oof_variants__{m}__{j}"] = experiment_variants(config, oof, variants)
    return inputs


def stacked_params(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Params of rule train_stacked (what reruns it): the stacked config, the settings of its base
    models that determine their scores, and the window orientation of its members."""
    import dataclasses

    sc = stack_config(config, name)
    scoring = ("kind", "weights", "flanking_size", "distance", "mask", "precision")
    bases = {b: {k: v for k, v in (config["base_models"][b] or {}).items() if k in scoring} for b in sc.bases}
    return {
        "stack": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(sc).items()},
        "base_models": bases,
        "strand_oriented": bool((config.get("sequences") or {}).get("strand_oriented", True)),
        "regions": dict(config.get("regions") or {}),
    }


def instance_train_inputs(config: Mapping[str, Any], name: str, variants: str) -> dict[str, str]:
    """Inputs of the train rule for an instance: the experiment's own, with a fold's variants file."""
    from metasplice.experiments.registry import train_inputs

    inputs = dict(train_inputs(resolve_instance(config, name)))
    inputs["variants"] = experiment_variants(config, name, variants)
    return inputs


def evaluate_inputs(config: Mapping[str, Any], name: str, variants: str) -> dict[str, str]:
    """Inputs of rule evaluate for experiment instance ``name``: the trained model, the windows and
    variants it was trained from (a fold's for ``E__fold{k}``), the reference base model's scores.
    A stacked instance: its model directory's files instead of a model and windows."""
    kind = experiment_kind(config, name)
    if kind == "ensemble":
        from metasplice.experiments.ensembles import ensemble_inputs

        return ensemble_inputs(config, name, variants)
    if kind == "stacked":
        stack_config(config, name)
        return {
            "stacker": f"results/models/{name}/stacker.joblib",
            "model_json": f"results/models/{name}/model.json",
            "features": f"results/models/{name}/features.parquet",
            "variants": experiment_variants(config, name, variants),
            "reference": f"results/targets/{reference_base(config)}/scores.parquet",
        }
    experiment = resolve_instance(config, name)
    trained_from = instance_train_inputs(config, name, variants)
    inputs = {
        "model": f"results/models/{name}/model.pt",
        "variants": trained_from["variants"],
        "sequences": trained_from["sequences"],
        "reference": f"results/targets/{reference_base(config)}/scores.parquet",
    }
    from metasplice.models.common import SCORE_TASKS

    if experiment.task in SCORE_TASKS:
        inputs["targets"] = f"results/targets/{experiment.base}/scores.parquet"
    if "hf_model" in trained_from:  # a local Hugging Face snapshot the checkpoint is rebuilt from
        inputs["hf_model"] = trained_from["hf_model"]
    return inputs


def evaluate_cv_inputs(config: Mapping[str, Any], name: str, variants: str) -> dict[str, list[str] | str]:
    """Inputs of rule evaluate_cv: every evaluated fold of experiment ``name``."""
    folds = range(crossval_settings(config).k)
    return {
        "predictions": [f"results/eval/{name}__fold{k}/predictions.parquet" for k in folds],
        "metrics": [f"results/eval/{name}__fold{k}/metrics.json" for k in folds],
        "variants": variants,
        "reference": f"results/targets/{reference_base(config)}/scores.parquet",
    }


def report_inputs(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Inputs of rule report: evaluation outputs and training histories only (no model is run)."""
    exps, bases = report_experiments(config), baseline_bases(config)
    inputs = {
        "metrics": [f"results/eval/{e}/metrics.json" for e in exps],
        "predictions": [f"results/eval/{e}/predictions.parquet" for e in exps],
        "histories": [f"results/models/{e}/history.tsv" for e in exps if experiment_kind(config, e) == "trained"],
        "importance": [f"results/models/{e}/importance.tsv" for e in exps if experiment_kind(config, e) == "stacked"],
        "baseline_metrics": [f"results/eval/baseline/{b}/metrics.json" for b in bases],
        "baseline_predictions": [f"results/eval/baseline/{b}/predictions.parquet" for b in bases],
    }
    if crossval_folds(config):
        inputs["cv_metrics"] = [f"results/eval_cv/{e}/metrics.json" for e in exps]
        inputs["cv_predictions"] = [f"results/eval_cv/{e}/predictions.parquet" for e in exps]
        inputs["cv_baseline_metrics"] = [f"results/eval_cv/baseline/{b}/metrics.json" for b in bases]
        inputs["cv_baseline_predictions"] = [f"results/eval_cv/baseline/{b}/predictions.parquet" for b in bases]
    return inputs


def report_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """Params of rule report: the row names and what the text says about the test set."""
    exps = report_experiments(config)
    sweeps = {name: [c for c in children if c["experiment"] in exps]
              for name, children in (config.get("_sweeps") or {}).items()}
    return {
        "experiments": exps,
        "sweeps": {name: children for name, children in sweeps.items() if children},
        "trained": [e for e in exps if experiment_kind(config, e) == "trained"],
        "stacked": [e for e in exps if experiment_kind(config, e) == "stacked"],
        "baselines": baseline_bases(config),
        "cross_validation": bool(crossval_folds(config)),
        "reference": reference_base(config),
        "test_chroms": list((config.get("split") or {}).get("test_chroms") or ["chr21", "chr22"]),
    }
