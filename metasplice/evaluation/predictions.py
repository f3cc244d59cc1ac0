"""Test-set predictions of every evaluation kind: base-model scores, trained models' outputs (all tasks).

A prediction table has one row per evaluated variant (its id, split, label, class, region and
variant type) and a ``score`` column: the classifier score every metric uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metasplice.base_models.spliceai.scoring import DS_COLUMNS
from metasplice.base_models.table import SCORE
from metasplice.evaluation import metrics as M

VARIANT_COLUMNS: tuple[str, ...] = ("variant_id", "split", "label", "classification", "region", "variant_type")


EVAL_SPLITS: tuple[str, ...] = ("val", "test")


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
    def from_dict(cls, values: Mapping[str, Any] | None) -> EvalConfig:
        """Build from the config's ``evaluation`` section (unknown keys are an error)."""
        values = dict(values or {})
        boot = M.BootstrapConfig(
            n=int(values.pop("bootstrap_n", M.BootstrapConfig.n)),
            seed=int(values.pop("seed", M.BootstrapConfig.seed)),
            level=float(values.pop("ci_level", M.BootstrapConfig.level)),
        )
        values.pop("cross_validation", None)  # read by metasplice.evaluation.crossval
        values.pop("threads", None)  # the jobs' CPU threads, read by the workflow
        known = {"fixed_threshold", "reference", "breakdowns", "batch_size", "device"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown evaluation keys {unknown}; valid keys: baselines, bootstrap_n, ci_level, cross_validation, "
                "experiments, seed, threads, " + ", ".join(sorted(known))
            )
        if "breakdowns" in values:
            values["breakdowns"] = tuple(values["breakdowns"])
        return cls(bootstrap=boot, **values)


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
    if SCORE not in scores.columns and any(c not in scores.columns for c in DS_COLUMNS):
        raise ValueError(f"{path}: no {SCORE!r} column; rerun the base model scoring")
    if len(scores) != n_rows:
        raise ValueError(
            f"{path} has {len(scores)} rows but {variants_path} has {n_rows}; rerun the base model scoring"
        )
    return scores


def base_score(scores: pd.DataFrame) -> np.ndarray:
    """The base model's classifier score per row (``score``: SpliceAI's max(DS_AG, DS_AL, DS_DG, DS_DL),
    Pangolin's max(gain, -loss)); NaN where the base model did not score the variant."""
    if SCORE in scores.columns:
        return scores[SCORE].to_numpy(dtype=np.float64)
    ds = scores[list(DS_COLUMNS)].to_numpy(dtype=np.float64)
    out = np.full(len(ds), np.nan)
    ok = np.isfinite(ds).all(axis=1)
    out[ok] = ds[ok].max(axis=1)
    return out


def eval_rows(variants: pd.DataFrame) -> np.ndarray:
    return np.flatnonzero(variants["split"].astype(str).isin(EVAL_SPLITS).to_numpy())


def prediction_frame(variants: pd.DataFrame, rows: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    out = variants.iloc[rows][list(VARIANT_COLUMNS)].reset_index(drop=True)
    out["label"] = out["label"].astype(np.int8)
    out["score"] = np.asarray(score, dtype=np.float64)
    return out


def baseline_predictions(variants: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Validation and test rows with the base model's classifier score (and SpliceAI's four DS values)."""
    rows = eval_rows(variants)
    table = prediction_frame(variants, rows, base_score(scores)[rows])
    for c in DS_COLUMNS:
        if c in scores.columns:
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
        return prediction_frame(variants, rows, probabilities[:, 0])
    if task in EFFECT_TASK_SCORES:
        return effect_task_predictions(
            variants, probabilities, rows, output_names, task, targets, model_config, strand_oriented
        )
    if task != "delta":
        raise ValueError(f"unknown task {task!r} (delta, binary, {', '.join(EFFECT_TASK_SCORES)})")
    table = prediction_frame(variants, rows, probabilities.max(axis=1))
    for j, name in enumerate(output_names):
        table[f"pred_{name}"] = probabilities[:, j]
    if targets is not None:
        for name in output_names:
            col = f"target_{name}"
            if col not in targets.columns:
                raise ValueError(f"targets file lacks column {col!r}; rerun the base model scoring")
            table[col] = targets[col].to_numpy(dtype=np.float64)[rows]
    return table


def labelled_rows(pred: pd.DataFrame, split: str) -> pd.DataFrame:
    return pred[(pred["split"].astype(str) == split) & pred["label"].isin((0, 1))]


def label_counts(part: pd.DataFrame) -> dict[str, int]:
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


EFFECT_TASK_SCORES: dict[str, str] = {
    "effect_type": "1 - P(normal) of the effect-type head",
    "localisation": "none: a localisation model predicts where, not whether (localisation metrics only)",
    "quantile": "max of the median (quantile nearest 0.5) predicted delta scores",
    "multitask": "P(Splice-altering) of the binary head",
}


LOCALISATION_TOP_K = 3


def windows_strand_oriented(path: str | os.PathLike) -> bool:
    """Whether a windows file holds strand-oriented windows (its ``strand_oriented`` flag; True when absent)."""
    with np.load(path) as npz:
        return bool(npz["strand_oriented"]) if "strand_oriented" in npz.files else True


def class_names(index: np.ndarray) -> np.ndarray:
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
    table = prediction_frame(variants, rows, FX.classifier_scores(p, task, names))
    heads = FX.head_slices(task, names)
    label = variants["label"].to_numpy()
    if "effect_type" in heads:
        probs = p[:, heads["effect_type"]]
        for j, c in enumerate(FX.EFFECT_CLASSES):
            table[f"prob_{c}"] = probs[:, j]
        table["predicted_class"] = class_names(probs.argmax(axis=1))
        if targets is not None:
            table["target_class"] = class_names(FX.config_effect_labels(targets, label, model_config)[rows])
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
            config = {
                "distance": distance,
                "min_effect_score": FX.option(model_config, "min_effect_score", FX.DEFAULT_MIN_EFFECT_SCORE),
            }
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
