"""Ensembles of evaluated experiments: their predictions tables combined, nothing retrained.

An ensemble is an experiment of config.yaml's ``experiments:`` with ``model: ensemble``::

    cnn_ensemble:
      model: ensemble
      members: [quick_test, binary_quick]
      combine: mean          # mean | rank_mean | stack
      weights: [2, 1]        # optional, mean and rank_mean only
      folds: 5               # stack: cross-fitting folds on the validation split
      seed: 0                # stack: fold assignment
      description: ...
      demo: {members: [...]} # overrides of the same keys in demo runs

Keys: ``model``, ``members`` (at least two distinct configured experiments, ensembles included),
``combine``, ``weights`` (positive, one per member, normalised to sum 1), ``folds`` (>= 2),
``seed``, ``description``, ``demo``; any other key is an error naming the experiment. A member
listed twice is an error too: a weight says the same, and its ``member_<name>`` column and input
file would be ambiguous.

Combination (:func:`build_ensemble`), from the members' predictions tables (:mod:`metasplice.evaluation.evaluate`
format) joined on ``variant_id``. Every member must cover the same variants with the same split and
label (tables from the same variants file); otherwise the error names the members and the counts.
The variant columns come from the first member. A variant is scored only when every member scored
it (a NaN member score gives a NaN ensemble score, left out of the metrics and counted).

Delta members also get their ``pred_<target>`` columns averaged, and quantile members with the same
targets and levels their ``pred_<target>_q<q>`` columns (the quantile ensemble, evaluated for
interval coverage like a quantile model).

- ``mean``: the (weighted) mean of the member scores;
- ``rank_mean``: the (weighted) mean of each member's rank fraction, its score's average rank among
  the member's scored rows of the table (validation and test together) divided by their number. The
  transform is monotone per member and uses scores only, never a label, and the same transform maps
  validation and test rows, so the validation-chosen threshold carries over to the test split. It
  puts members whose scores live on different scales (probabilities, delta scores) on one scale;
- ``stack``: a logistic regression on the standardised member scores, fitted on the labelled
  validation rows only. It is cross-fitted there: validation rows are split into ``k`` stratified,
  seeded folds (``k = min(folds, size of the smaller class)``, at least 2) and each fold is scored by
  the model fitted on the other folds, so every labelled validation row gets an out-of-fold score,
  and the decision threshold later chosen on them is not tuned on in-sample fits. Test rows (and
  unlabelled validation rows) are scored by the model fitted on all labelled validation rows. Test
  labels are never read.

Delta models: when every member has predicted and target delta scores (``pred_X`` with
``target_X``, for the same targets X), ``pred_X`` of the ensemble is the mean of the members'
(weighted as ``mean`` is, unweighted otherwise) and ``target_X`` is the first member's, so the
Pearson r of :func:`metasplice.evaluation.evaluate.correlation` still applies. If the members' targets differ
(members trained on different base models) the delta columns are left out, with a warning.
The members' own scores are kept as ``member_<name>`` columns.

:func:`evaluate_ensemble_files` evaluates the combined table with
:func:`metasplice.evaluation.evaluate.evaluate_predictions` (threshold on validation, metrics on test, paired
comparison with the reference base model), like every other row of the report.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import metasplice.evaluation.predictions as EP
from metasplice.evaluation import evaluate as E

log = logging.getLogger(__name__)

ENSEMBLE_MODEL = "ensemble"
COMBINE_METHODS: tuple[str, ...] = ("mean", "rank_mean", "stack")
ENSEMBLE_KEYS: tuple[str, ...] = ("model", "members", "combine", "weights", "folds", "seed", "description", "demo")
MEMBER_PREFIX = "member_"
SCORE_TEXT = {
    "mean": "mean of the member scores",
    "rank_mean": "mean of the member rank fractions (validation and test rows ranked together, no labels)",
    "stack": "logistic regression on the member scores, fitted on validation (out-of-fold there)",
}


@dataclass(frozen=True)
class EnsembleConfig:
    """An ensemble experiment: which evaluated experiments to combine, and how."""

    members: tuple[str, ...]
    combine: str = "mean"
    weights: tuple[float, ...] | None = None
    description: str = ""
    folds: int = 5  # stack: cross-fitting folds on the validation rows (fewer when a class is small)
    seed: int = 0  # stack: fold assignment

    def __post_init__(self) -> None:
        if isinstance(self.members, str) or not isinstance(self.members, Sequence):
            raise ValueError(f"members must be a list of experiment names, got {self.members!r}")
        members = tuple(str(m) for m in self.members)
        object.__setattr__(self, "members", members)
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {list(members)}")
        repeated = sorted({m for m in members if members.count(m) > 1})
        if repeated:
            raise ValueError(f"members listed more than once: {repeated} (use weights to favour a member)")
        if self.combine not in COMBINE_METHODS:
            raise ValueError(f"unknown combine {self.combine!r}; one of {', '.join(COMBINE_METHODS)}")
        if self.weights is not None:
            if self.combine == "stack":
                raise ValueError("weights apply to combine mean and rank_mean; stack fits its own")
            weights = tuple(float(w) for w in self.weights)
            if len(weights) != len(members):
                raise ValueError(f"{len(weights)} weights for {len(members)} members")
            if not all(math.isfinite(w) and w > 0 for w in weights):
                raise ValueError(f"weights must be positive numbers, got {list(weights)}")
            object.__setattr__(self, "weights", weights)
        if int(self.folds) != self.folds or self.folds < 2:
            raise ValueError(f"folds must be an integer >= 2, got {self.folds!r}")
        object.__setattr__(self, "folds", int(self.folds))
        object.__setattr__(self, "seed", int(self.seed))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], name: str = "", demo: bool = False) -> EnsembleConfig:
        """Build from an experiment mapping (``demo`` overrides applied in demo runs); errors name ``name``."""
        where = f"experiment {name!r}" if name else "ensemble"
        spec = dict(values or {})
        overrides = spec.pop("demo", None) or {}
        if not isinstance(overrides, Mapping):
            raise ValueError(f"{where}: 'demo' must be a mapping of overrides, got {overrides!r}")
        unknown = sorted(set(spec) - set(ENSEMBLE_KEYS))
        unknown += sorted(f"demo.{k}" for k in set(overrides) - (set(ENSEMBLE_KEYS) - {"demo"}))
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {unknown}; valid keys for model {ENSEMBLE_MODEL!r}: {', '.join(ENSEMBLE_KEYS)}"
            )
        if demo:
            spec.update(overrides)
        model = spec.pop("model", ENSEMBLE_MODEL)
        if model != ENSEMBLE_MODEL:
            raise ValueError(f"{where}: model {model!r} is not {ENSEMBLE_MODEL!r}")
        if "members" not in spec:
            raise ValueError(f"{where}: no 'members' (the experiments to combine)")
        weights = spec.pop("weights", None)
        try:
            return cls(
                members=spec.pop("members"),
                weights=None if weights is None else tuple(weights),
                description=str(spec.pop("description", "") or ""),
                **spec,
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from None

    def normalised_weights(self) -> np.ndarray:
        """Member weights summing to 1 (equal without ``weights``)."""
        w = np.ones(len(self.members)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()

    def to_dict(self) -> dict:
        return {
            "members": list(self.members),
            "combine": self.combine,
            "weights": None if self.weights is None else list(self.weights),
            "description": self.description,
            "folds": self.folds,
            "seed": self.seed,
        }


# --------------------------------------------------------------------------------------------
# combination


def _values(table: pd.DataFrame, column: str) -> np.ndarray:
    """A split (as text) or label (as integer) column, for comparisons across tables."""
    values = table[column]
    return values.to_numpy(np.int64) if column == "label" else values.astype(str).to_numpy()


def _member_table(name: str, table: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (*EP.VARIANT_COLUMNS, "score") if c not in table.columns]
    if missing:
        raise ValueError(f"predictions of member {name!r} lack columns {missing}")
    ids = table["variant_id"].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"predictions of member {name!r} repeat variant ids (e.g. {ids[ids.duplicated()].iloc[0]!r})")
    return table.assign(variant_id=ids).set_index("variant_id", drop=False)


def align_members(
    tables: Mapping[str, pd.DataFrame], members: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(variant columns of the first member, each member's table reindexed to its rows).

    Every member must hold the same variants with the same split and label.
    """
    missing = [m for m in members if m not in tables]
    if missing:
        raise ValueError(f"no predictions for ensemble members {missing}")
    first = members[0]
    ref = _member_table(first, tables[first])
    ids = ref.index
    aligned = {first: ref}
    for name in members[1:]:
        other = _member_table(name, tables[name])
        only_first = int((~ids.isin(other.index)).sum())
        only_other = int((~other.index.isin(ids)).sum())
        if only_first or only_other:
            raise ValueError(
                f"ensemble members {first!r} ({len(ids)} variants) and {name!r} ({len(other)} variants) cover "
                f"different variants: {only_first} only in {first!r}, {only_other} only in {name!r}; evaluate every "
                "member on the same variants file"
            )
        other = other.reindex(ids)
        for column in ("split", "label"):
            differ = int((_values(ref, column) != _values(other, column)).sum())
            if differ:
                raise ValueError(
                    f"ensemble members {first!r} and {name!r} disagree on {column!r} for {differ} "
                    "variants; evaluate every member on the same variants file"
                )
        aligned[name] = other
    base = ref[list(EP.VARIANT_COLUMNS)].reset_index(drop=True)
    base["label"] = base["label"].astype(np.int8)
    return base, aligned


def rank_fractions(scores: np.ndarray) -> np.ndarray:
    """Per column: average rank of each finite score among the column's finite scores, divided by
    their number (in (0, 1]); NaN stays NaN. Labels play no part."""
    scores = np.asarray(scores, dtype=np.float64)
    return pd.DataFrame(scores).rank(axis=0, method="average", pct=True).to_numpy(np.float64)


def stack_model(seed: int = 0):
    """The stacking model: standardised member scores -> L2 logistic regression (C=1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))


def stack_scores(
    scores: np.ndarray, split: np.ndarray, label: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, dict]:
    """(stacked score per row, fit info): out-of-fold on labelled validation rows, the model fitted
    on all of them elsewhere; NaN where a member score is missing. Only validation labels are read."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    scores = np.asarray(scores, dtype=np.float64)
    split = np.asarray(split).astype(str)
    finite = np.isfinite(scores).all(axis=1)
    val_label = np.where(split == "val", np.asarray(label), -1)
    fit_rows = np.flatnonzero(finite & np.isin(val_label, (0, 1)))
    y = val_label[fit_rows].astype(np.int64)
    smaller = int(min((y == 0).sum(), (y == 1).sum()))
    if smaller < 2:
        raise ValueError(
            f"stacking needs at least 2 scored validation variants of each class; got "
            f"{int((y == 1).sum())} Splice-altering and {int((y == 0).sum())} Normal"
        )
    k = min(int(folds), smaller)
    out = np.full(len(scores), np.nan)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, held in splitter.split(scores[fit_rows], y):
        model = clone(stack_model(seed)).fit(scores[fit_rows[train]], y[train])
        out[fit_rows[held]] = model.predict_proba(scores[fit_rows[held]])[:, 1]
    full = clone(stack_model(seed)).fit(scores[fit_rows], y)
    rest = np.flatnonzero(finite)
    rest = rest[~np.isin(rest, fit_rows)]
    if rest.size:
        out[rest] = full.predict_proba(scores[rest])[:, 1]
    lr = full[-1]
    info = {
        "folds": k,
        "seed": int(seed),
        "n_fit": int(len(fit_rows)),
        "model": "logistic regression (C=1) on standardised member scores",
        "coefficients": [float(c) for c in lr.coef_[0]],
        "intercept": float(lr.intercept_[0]),
    }
    return out, info


def combine_scores(
    scores: np.ndarray, split: np.ndarray, label: np.ndarray, config: EnsembleConfig
) -> tuple[np.ndarray, dict]:
    """(ensemble score per row, info) from the (rows, members) score matrix."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(config.members):
        raise ValueError(f"scores of shape {scores.shape}, expected (rows, {len(config.members)})")
    w = config.normalised_weights()
    if config.combine == "mean":
        return scores @ w, {}
    if config.combine == "rank_mean":
        return rank_fractions(scores) @ w, {}
    out, info = stack_scores(scores, split, label, config.folds, config.seed)
    info["coefficients"] = dict(zip(config.members, info["coefficients"]))
    return out, info


def _delta_names(table: pd.DataFrame) -> list[str]:
    return [
        c[len("pred_") :] for c in table.columns if c.startswith("pred_") and f"target_{c[len('pred_') :]}" in table
    ]


def _delta_columns(aligned: Mapping[str, pd.DataFrame], config: EnsembleConfig) -> dict[str, np.ndarray]:
    """pred_X (member mean) and target_X (first member) when every member is a delta model with the
    same targets; empty otherwise."""
    members = list(config.members)
    names = _delta_names(aligned[members[0]])
    if not names or any(set(_delta_names(aligned[m])) != set(names) for m in members[1:]):
        return {}
    targets = {n: aligned[members[0]][f"target_{n}"].to_numpy(np.float64) for n in names}
    for m in members[1:]:
        for n in names:
            if not np.allclose(aligned[m][f"target_{n}"].to_numpy(np.float64), targets[n], equal_nan=True):
                log.warning(
                    "ensemble members %s and %s have different target_%s (different base models?); "
                    "the ensemble gets no delta columns",
                    members[0],
                    m,
                    n,
                )
                return {}
    w = config.normalised_weights() if config.combine == "mean" else np.full(len(members), 1.0 / len(members))
    columns: dict[str, np.ndarray] = {}
    for n in names:
        preds = np.column_stack([aligned[m][f"pred_{n}"].to_numpy(np.float64) for m in members])
        columns[f"pred_{n}"] = preds @ w
    columns.update({f"target_{n}": targets[n] for n in names})
    return columns


def _quantile_columns(aligned: Mapping[str, pd.DataFrame], config: EnsembleConfig) -> dict[str, np.ndarray]:
    """pred_<target>_q<q> averaged over the members when every member is a quantile model with the same
    targets and levels (the quantile ensemble: averaging quantile functions keeps them ordered); empty
    otherwise."""
    members = list(config.members)

    def names(table: pd.DataFrame) -> list[str]:
        return [c for c in table.columns if c.startswith("pred_") and "_q" in c]

    first = names(aligned[members[0]])
    if not first or any(names(aligned[m]) != first for m in members[1:]):
        return {}
    w = config.normalised_weights() if config.combine == "mean" else np.full(len(members), 1.0 / len(members))
    return {c: np.column_stack([aligned[m][c].to_numpy(np.float64) for m in members]) @ w for c in first}


def build_ensemble(tables: Mapping[str, pd.DataFrame], config: EnsembleConfig) -> tuple[pd.DataFrame, dict]:
    """(ensemble predictions table, combination info) from the members' predictions tables."""
    members = list(config.members)
    base, aligned = align_members(tables, members)
    scores = np.column_stack([aligned[m]["score"].to_numpy(np.float64) for m in members])
    combined, info = combine_scores(scores, base["split"].to_numpy(), base["label"].to_numpy(), config)
    table = base.copy()
    table["score"] = combined
    for column, values in _delta_columns(aligned, config).items():
        table[column] = values
    quantiles = _quantile_columns(aligned, config)
    if quantiles and all(f"target_{c[len('pred_') :].rsplit('_q', 1)[0]}" in table.columns for c in quantiles):
        for column, values in quantiles.items():
            table[column] = values
    for j, m in enumerate(members):
        table[f"{MEMBER_PREFIX}{m}"] = scores[:, j]
    return table, info


def ensemble_predictions(tables: Mapping[str, pd.DataFrame], config: EnsembleConfig) -> pd.DataFrame:
    """Ensemble predictions table (variant columns, ``score``, delta columns, ``member_<name>``)."""
    return build_ensemble(tables, config)[0]


# --------------------------------------------------------------------------------------------
# file-level entry point


def _check_variants(pred: pd.DataFrame, variants: pd.DataFrame, variants_path: str | os.PathLike) -> None:
    """The ensemble rows must be the validation and test rows of the variants file, same split and label."""
    rows = variants[variants["split"].astype(str).isin(EP.EVAL_SPLITS)]
    expected = rows.assign(variant_id=rows["variant_id"].astype(str)).set_index("variant_id")
    ids = pd.Index(pred["variant_id"].astype(str))
    missing, extra = int((~expected.index.isin(ids)).sum()), int((~ids.isin(expected.index)).sum())
    if missing or extra:
        raise ValueError(
            f"member predictions cover {len(ids)} variants but {variants_path} has {len(expected)} "
            f"validation/test variants ({missing} missing, {extra} not among them); re-evaluate the "
            "members on this variants file"
        )
    for column in ("split", "label"):
        differ = int((_values(pred, column) != _values(expected.reindex(ids), column)).sum())
        if differ:
            raise ValueError(
                f"member predictions and {variants_path} disagree on {column!r} for {differ} variants; "
                "re-evaluate the members on this variants file"
            )


def evaluate_ensemble_files(
    member_predictions: Mapping[str, str | os.PathLike],
    variants_path: str | os.PathLike,
    reference_scores_path: str | os.PathLike,
    predictions_out: str | os.PathLike,
    metrics_out: str | os.PathLike,
    experiment: str,
    config: EnsembleConfig,
    cfg: E.EvalConfig = E.EvalConfig(),
) -> dict:
    """Combine the members' predictions.parquet files, evaluate, write predictions and metrics.

    ``member_predictions``: member name -> its predictions.parquet (every member of ``config``).
    ``variants_path``: the variants file the members were evaluated on (a fold's for fold instances).
    """
    tables = {}
    for m in config.members:
        if m not in member_predictions:
            raise ValueError(f"{experiment}: no predictions file for member {m!r}")
        tables[m] = pd.read_parquet(member_predictions[m])
    try:
        pred, info = build_ensemble(tables, config)
        variants = E.read_variants(variants_path)
        _check_variants(pred, variants, variants_path)
    except ValueError as error:
        raise ValueError(f"{experiment}: {error}") from None
    reference = E.reference_table(variants, E.read_scores(reference_scores_path, len(variants), variants_path))
    extra: dict[str, Any] = {
        "kind": "ensemble",
        "experiment": experiment,
        "members": list(config.members),
        "combine": config.combine,
        "weights": None if config.weights is None else [float(w) for w in config.normalised_weights()],
        "score": SCORE_TEXT[config.combine],
    }
    if info:
        extra[config.combine] = info
    # a mean of delta scores is a delta score; ranks, stacked probabilities and means of probabilities are not
    fixed_scale = config.combine == "mean" and all(E.delta_scale(t) for t in tables.values())
    result = E.evaluate_predictions(pred, cfg, experiment, "ensemble", reference, cfg.reference, extra, fixed_scale)
    if any(c.startswith("pred_") and "_q" in c for c in pred.columns):  # a quantile ensemble
        result.update(E.task_metrics(pred, "quantile", cfg))
    E.write_evaluation(
        pred, result, predictions_out, metrics_out, f"{experiment} ({config.combine} of {', '.join(config.members)})"
    )
    return result


# --------------------------------------------------------------------------------------------
# workflow wiring (plain config dict, experiments already expanded by metasplice.experiments.sweeps)


def is_ensemble(spec: Any) -> bool:
    """Whether an experiment mapping is an ensemble (``model: ensemble``)."""
    return isinstance(spec, Mapping) and spec.get("model") == ENSEMBLE_MODEL


def ensemble_for(name: str, config: Mapping[str, Any]) -> EnsembleConfig:
    """The :class:`EnsembleConfig` behind an instance name (``E`` or ``E__fold{k}``); members must be
    configured experiments, and no ensemble may contain itself (directly or through other ensembles)."""
    from metasplice.data.splits import split_fold_name

    experiment, _ = split_fold_name(name)
    experiments = config.get("experiments") or {}
    demo = config.get("dataset") == "demo"
    if not is_ensemble(experiments.get(experiment)):
        raise ValueError(f"experiment {experiment!r} is not an ensemble (model: {ENSEMBLE_MODEL})")
    ens = EnsembleConfig.from_dict(experiments[experiment], experiment, demo)
    unknown = [m for m in ens.members if m not in experiments]
    if unknown:
        raise ValueError(f"experiment {experiment!r}: members {unknown} are not configured experiments")
    path, stack = [experiment], [(experiment, iter(ens.members))]
    while stack:  # depth-first walk through member ensembles
        current, pending = stack[-1]
        member = next(pending, None)
        if member is None:
            stack.pop()
            path.pop()
            continue
        if member in path:
            cycle = " -> ".join([*path, member])
            raise ValueError(f"experiment {experiment!r}: ensembles contain each other ({cycle})")
        if is_ensemble(experiments.get(member)):
            inner = EnsembleConfig.from_dict(experiments[member], member, demo)
            path.append(member)
            stack.append((member, iter(inner.members)))
    return ens
