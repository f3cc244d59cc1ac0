"""Stacked meta-model: a base model's own score or a scikit-learn learner over base-model scores, annotation
and sequence-model scores, whichever nested grouped CV inside the training rows prefers.

Features of one variant (every one computable for a new VCF record, see :func:`build_features`):

- per base model ``b`` (SpliceAI; OpenSpliceAI when configured): ``b_DS_AG .. b_DS_DL``, ``b_score`` (its baseline score),
  the distance ``|DP|`` of each delta, and a summary of the per-position delta profile
  (``deltas.npy``): summed gains and losses per channel, the number of positions with
  ``|delta| >= 0.1``, and the second-largest peak (a variant often both weakens a site and creates
  another); NaN where the base model skipped the variant;
- annotation: region class (one-hot), signed distance to the nearest exon boundary in transcript
  orientation and its log, variant type (one-hot), length change, strand;
- per sequence-model *member* ``m`` (a trained experiment): ``member_m``, its classifier score.

Out-of-fold rule. A member's score on a row it was trained on is optimistic, so the learner (fitted on
the training split) must only see member scores from models that did not train on that row: the
training rows are split into ``oof_folds`` groups by whole gene clusters (as the validation split
is), member ``m__oof{j}`` is trained without group ``j`` and scores it, and the full member (trained
on every training row) scores the validation and test rows. :func:`member_feature` checks this for
every value from the provenance of each predictions table (the variants file its model trained
from) and raises :class:`LeakageError` when a row's score comes from a model that trained on it.
Columns derived from the label (``label``, ``classification``, validated ``target_*``) are refused
as features.

What ships is chosen by nested grouped CV inside the labelled training rows (:func:`fit_stacker`):
the candidates are each base model's own score, unchanged, and logistic regressions / a small
gradient-boosting grid over nested feature sets (:data:`FEATURE_SETS`); a learner ships only when it
beats the best base model's inner-CV ROC-AUC by ``margin`` and by more than one standard error,
else that base model's score ships. The choice is refitted on all training rows, with a Platt
scaling fitted on its inner out-of-fold scores; ``stacker.json`` and ``inner_cv.tsv`` record it. The
decision threshold is chosen on validation by :mod:`metasplice.evaluation.evaluate` like every
other row of the report; permutation importance (drop in validation ROC-AUC) is saved.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import metasplice.evaluation.predictions as EP
from metasplice.base_models.spliceai.scoring import DP_COLUMNS as DP
from metasplice.base_models.spliceai.scoring import DS_COLUMNS as DS
from metasplice.data.annotation import REGIONS
from metasplice.data.splits import DEFAULT_GROUP_GAP, deal_groups
from metasplice.data.variants import VARIANT_TYPES
from metasplice.evaluation.crossval import CALIBRATED_SCORE, NO_LEARNER_BEAT
from metasplice.io import atomic_output, write_parquet, write_tsv

log = logging.getLogger(__name__)

FORMAT = "metasplice-stacked/2"
STACK_TAG = "stack"  # every stacked experiment's name contains it (summary.tsv contract)
LEARNERS = ("hgb", "logreg")
# nested feature sets: each adds one group of features to the previous ones (see feature_group)
FEATURE_SETS = ("scores", "profiles", "annotation", "members")
# the boosters' small hyper-parameter grid (overrides of make_learner's defaults)
HGB_GRID: tuple[dict[str, Any], ...] = (
    {"max_leaf_nodes": 7, "learning_rate": 0.1, "min_samples_leaf": 20},
    {"max_leaf_nodes": 15, "learning_rate": 0.05, "min_samples_leaf": 40},
)
# per base model, the columns of the "scores" feature set (name after the "<base>_" prefix)
SCORE_FEATURES = ("score", *DS, "gain", "loss")
BLOCKS_PER_FOLD = 4  # grouped folds need at least this many gene clusters (else genomic blocks) per fold
CALIBRATION_EPS = 1e-6  # scores clipped to [eps, 1 - eps] before the logit of Platt scaling
PEAK_THRESHOLD = 0.1  # |delta| counted as a peak of the profile
FORBIDDEN_FEATURES = re.compile(r"(^|_)(label|classification|target)(_|$)")
OOF_SUFFIX = re.compile(r"^(?P<parent>.+)__oof(?P<fold>\d+)$")
MODEL_FILES = ("stacker.joblib", "model.json", "stacker.json", "inner_cv.tsv", "importance.tsv", "features.parquet")


class LeakageError(ValueError):
    """A feature value was produced by a model that was trained on that row."""


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class OOFConfig:
    """Out-of-fold splits of the training rows (config section ``stacking``)."""

    oof_folds: int = 5
    group_gap: int = DEFAULT_GROUP_GAP  # genes closer than this (nt) stay in one fold
    seed: int = 17

    def __post_init__(self) -> None:
        if int(self.oof_folds) < 2:
            raise ValueError(f"stacking.oof_folds must be >= 2, got {self.oof_folds}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OOFConfig:
        """From the whole pipeline config: ``stacking`` with its ``demo`` overrides on the demo dataset."""
        values = dict(config.get("stacking") or {})
        demo = values.pop("demo", None) or {}
        if config.get("dataset") == "demo":
            values.update(demo)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"config 'stacking': unknown keys {unknown}; valid keys: {', '.join(sorted(known))}, demo")
        return cls(**values)


@dataclass(frozen=True)
class StackConfig:
    """One stacked experiment (``model: stacked`` in config.yaml's ``experiments``)."""

    name: str
    bases: tuple[str, ...] = ("spliceai",)  # base models whose scores are features
    members: tuple[str, ...] = ()  # trained experiments whose out-of-fold scores are features
    learners: tuple[str, ...] = LEARNERS  # learner families among the candidates
    feature_sets: tuple[str, ...] = FEATURE_SETS  # feature sets the learners are offered (nested)
    # each base model's own score is a candidate; false forces a learner (e.g. to score the variants a
    # base model skips), and the stacked model may then ship something worse than its best base model
    base_candidates: bool = True
    annotation_features: bool = True
    profile_features: bool = True
    inner_folds: int = 5  # grouped folds of the training rows that choose the candidate
    margin: float = 0.002  # inner-CV ROC-AUC gain over the best base model a learner needs
    group_gap: int = DEFAULT_GROUP_GAP  # genes closer than this (nt) share an inner fold
    importance_repeats: int = 10
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        where = f"experiment {self.name!r}"
        if STACK_TAG not in self.name.lower():
            raise ValueError(
                f"{where}: a stacked experiment's name must contain {STACK_TAG!r} (its row in summary.tsv is "
                f"found by it), e.g. {self.name}_stack"
            )
        bad_sets = [x for x in self.feature_sets if x not in FEATURE_SETS]
        if bad_sets or not self.feature_sets:
            raise ValueError(f"{where}: unknown feature_sets {bad_sets or '[]'}; choose from {', '.join(FEATURE_SETS)}")
        if int(self.inner_folds) < 2:
            raise ValueError(f"{where}: inner_folds must be >= 2, got {self.inner_folds}")
        if not 0 <= float(self.margin) < 1:
            raise ValueError(f"{where}: margin must be in [0, 1), got {self.margin}")
        if not self.bases and not self.members:
            raise ValueError(f"{where}: a stacked model needs at least one base model or member")
        bad = [x for x in self.learners if x not in LEARNERS]
        if bad or not self.learners:
            raise ValueError(f"{where}: unknown learners {bad or '[]'}; choose from {', '.join(LEARNERS)}")
        if int(self.importance_repeats) < 1:
            raise ValueError(f"{where}: importance_repeats must be >= 1")

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any], demo: bool = False) -> StackConfig:
        """From an ``experiments`` entry (``model: stacked``; ``demo`` overrides applied on the demo)."""
        values = dict(spec or {})
        overrides = values.pop("demo", None) or {}
        if demo:
            values.update(overrides)
        model = values.pop("model", "stacked")
        if model != "stacked":
            raise ValueError(f"experiment {name!r} is a {model!r} model, not a stacked one")
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"experiment {name!r}: unknown keys {unknown} for a stacked model; valid keys: "
                f"{', '.join(sorted(known | {'model', 'demo'}))}"
            )
        for key in ("bases", "members", "learners", "feature_sets"):
            if key in values:
                if isinstance(values[key], str) or not isinstance(values[key], Sequence):
                    raise ValueError(f"experiment {name!r}: {key} must be a list, got {values[key]!r}")
                values[key] = tuple(str(v) for v in values[key])
        return cls(name=name, **values)


def is_stacked(spec: Mapping[str, Any] | None) -> bool:
    return (spec or {}).get("model") == "stacked"


def split_oof_name(name: str) -> tuple[str, int | None]:
    """``"exp__oof2"`` -> ``("exp", 2)``; ``"exp__fold1__oof0"`` -> ``("exp__fold1", 0)``; else (name, None)."""
    m = OOF_SUFFIX.match(name)
    return (m["parent"], int(m["fold"])) if m else (name, None)


def oof_name(instance: str, fold: int) -> str:
    return f"{instance}__oof{fold}"


# --------------------------------------------------------------------------------------------
# out-of-fold splits


def assign_oof_folds(variants: pd.DataFrame, cfg: OOFConfig) -> np.ndarray:
    """OOF group (0..k-1) of every training row, -1 elsewhere; whole gene clusters per group.

    Clusters are dealt in a seeded random order to the group holding the fewest training rows so far.
    """
    split = variants["split"].astype(str).to_numpy()
    train = np.flatnonzero(split == "train")
    out = np.full(len(variants), -1, dtype=np.int64)
    if len(train) == 0:
        raise ValueError("no training rows to split into out-of-fold groups")
    try:
        groups, _ = training_groups(variants.iloc[train], cfg.oof_folds, cfg.group_gap)
    except ValueError as err:
        raise ValueError(f"stacking.oof_folds={cfg.oof_folds}: {err}; lower oof_folds") from None
    out[train] = _deal_groups(groups, cfg.oof_folds, cfg.seed)
    return out


def oof_split(split: np.ndarray, groups: np.ndarray, fold: int) -> np.ndarray:
    """The ``split`` column of OOF instance ``fold``: its held-out training rows become ``test`` (they
    are what the instance scores), the real test rows ``excluded``, validation stays ``val``."""
    split = np.asarray(split, dtype=object).copy()
    out = split.copy()
    out[split == "test"] = "excluded"
    out[(split == "train") & (groups == fold)] = "test"
    return out


def write_oof_variants(
    variants_path: str | os.PathLike,
    outputs: Sequence[str | os.PathLike],
    summary_out: str | os.PathLike,
    cfg: OOFConfig,
) -> pd.DataFrame:
    """Write ``outputs[j]`` = the variants file with OOF instance j's split (same rows and order)."""
    if len(outputs) != cfg.oof_folds:
        raise ValueError(f"{len(outputs)} output paths for {cfg.oof_folds} out-of-fold groups")
    variants = pd.read_parquet(variants_path)
    groups = assign_oof_folds(variants, cfg)
    label = variants["label"].to_numpy()
    rows = []
    for j, path in enumerate(outputs):
        table = variants.copy()
        table["split"] = oof_split(variants["split"].to_numpy(), groups, j)
        write_parquet(table, path)
        held = groups == j
        rows.append(
            {
                "oof_fold": j,
                "held_out": int(held.sum()),
                "held_out_positive": int((held & (label == 1)).sum()),
                "held_out_negative": int((held & (label == 0)).sum()),
                "train_rows": int(((groups >= 0) & ~held).sum()),
            }
        )
    summary = pd.DataFrame(rows)
    write_tsv(summary, summary_out)
    log.info("out-of-fold groups of %s:\n%s", variants_path, summary.to_string(index=False))
    return summary


# --------------------------------------------------------------------------------------------
# features


def _profile_summary(prefix: str, deltas: np.ndarray) -> dict[str, np.ndarray]:
    """Summary of per-position deltas [N, 2D+1, 3] (channels neither, acceptor, donor)."""
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        for ch, site in ((1, "acceptor"), (2, "donor")):
            d = deltas[:, :, ch].astype(np.float64)
            gain, loss = np.clip(d, 0, None), np.clip(-d, 0, None)
            out[f"{prefix}_{site}_gain_sum"] = gain.sum(axis=1)
            out[f"{prefix}_{site}_loss_sum"] = loss.sum(axis=1)
            out[f"{prefix}_{site}_peaks"] = (np.abs(d) >= PEAK_THRESHOLD).sum(axis=1).astype(np.float64)
            mag = np.sort(np.abs(d), axis=1)
            out[f"{prefix}_{site}_second_peak"] = mag[:, -2] if mag.shape[1] > 1 else np.zeros(len(d))
        unscored = ~np.isfinite(deltas).all(axis=(1, 2))
    for v in out.values():
        v[unscored] = np.nan
    return out


def base_features(name: str, scores: pd.DataFrame, deltas: np.ndarray | None, profile: bool = True) -> pd.DataFrame:
    """Features of base model ``name`` from its scores table (and per-position deltas)."""
    if "gain" in scores.columns and "DS_AG" not in scores.columns:
        return pangolin_features(name, scores, deltas, profile)
    missing = [c for c in DS + DP if c not in scores.columns]
    if missing:
        raise ValueError(f"base model {name!r}: scores lack columns {missing}; rerun the base model scoring")
    ds = scores[list(DS)].to_numpy(dtype=np.float64)
    dp = scores[list(DP)].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(ds).all(axis=1)
    cols: dict[str, np.ndarray] = {}
    for k, c in enumerate(DS):
        cols[f"{name}_{c}"] = np.where(ok, ds[:, k], np.nan)
    cols[f"{name}_score"] = np.where(ok, EP.base_score(scores), np.nan)  # the baseline row's score, unchanged
    for k, c in enumerate(DP):
        cols[f"{name}_abs{c}"] = np.where(ok, np.abs(dp[:, k]), np.nan)
    if profile:
        if deltas is None:
            raise ValueError(f"base model {name!r}: profile features need its deltas.npy")
        if deltas.shape[0] != len(scores) or deltas.ndim != 3 or deltas.shape[2] != 3:
            raise ValueError(f"base model {name!r}: deltas of shape {deltas.shape} for {len(scores)} score rows")
        cols.update(_profile_summary(name, deltas))
    return pd.DataFrame(cols, index=scores.index)


def pangolin_features(name: str, scores: pd.DataFrame, deltas: np.ndarray | None, profile: bool = True) -> pd.DataFrame:
    """Features of a Pangolin-kind base model: its score, gain and loss with their distances, each
    tissue's gain and loss, and (``profile``) per tissue the summed gains and losses over the window."""
    ok = scores["scored"].to_numpy(dtype=bool)
    cols: dict[str, np.ndarray] = {
        f"{name}_{c}": scores[c].to_numpy(dtype=np.float64) for c in ("score", "gain", "loss")
    }
    for c in ("gain_pos", "loss_pos"):
        cols[f"{name}_abs_{c}"] = np.abs(scores[c].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan))
    for c in scores.columns:
        if c.startswith(("gain_", "loss_")) and not c.endswith("_pos"):
            cols[f"{name}_{c}"] = scores[c].to_numpy(dtype=np.float64)
    if profile:
        if deltas is None or deltas.shape[0] != len(scores) or deltas.ndim != 3:
            raise ValueError(f"base model {name!r}: profile features need its deltas.npy (one row per variant)")
        with np.errstate(invalid="ignore"):
            d = deltas.astype(np.float64)
            cols[f"{name}_gain_sum"] = np.clip(d, 0, None).max(axis=2).sum(axis=1)
            cols[f"{name}_loss_sum"] = np.clip(-d, 0, None).max(axis=2).sum(axis=1)
            cols[f"{name}_peaks"] = (np.abs(d).max(axis=2) >= PEAK_THRESHOLD).sum(axis=1).astype(np.float64)
    out = pd.DataFrame(cols, index=scores.index)
    out.loc[~ok] = np.nan
    return out


def annotation_features(variants: pd.DataFrame) -> pd.DataFrame:
    """Region, boundary distance (transcript orientation), variant type, length change, strand."""
    for c in ("region", "boundary_offset", "variant_type", "ref", "alt", "strand"):
        if c not in variants.columns:
            raise ValueError(f"variants lack column {c!r}; rebuild them with prepare_variants")
    minus = variants["strand"].astype(str).to_numpy() == "-"
    offset = variants["boundary_offset"].to_numpy(dtype=np.float64) * np.where(minus, -1.0, 1.0)
    cols: dict[str, np.ndarray] = {}
    region = variants["region"].astype(str).to_numpy()
    for r in REGIONS:
        cols[f"region_{r}"] = (region == r).astype(np.float64)
    cols["boundary_offset_tx"] = offset
    cols["log_boundary_distance"] = np.log1p(np.abs(offset))
    vtype = variants["variant_type"].astype(str).to_numpy()
    for t in VARIANT_TYPES:
        cols[f"type_{t}"] = (vtype == t).astype(np.float64)
    cols["length_change"] = (variants["alt"].astype(str).str.len() - variants["ref"].astype(str).str.len()).to_numpy(
        dtype=np.float64
    )
    cols["minus_strand"] = minus.astype(np.float64)
    return pd.DataFrame(cols, index=variants.index)


def member_feature(
    member: str,
    variants: pd.DataFrame,
    sources: Sequence[tuple],
    required_rows: np.ndarray,
) -> np.ndarray:
    """Score of member ``member`` per row of ``variants``, each value out of the fold of its model.

    ``sources``: (predictions table, variants table its model was trained from[, splits to take])
    tuples; by default a source gives the rows its model's split marks ``val`` or ``test`` (an
    out-of-fold instance passes ``("test",)``: its held-out rows). A value is never taken where that
    model's split is ``train``; a row given two values is an error, and every row of
    ``required_rows`` (the stacker's training rows, plus validation/test) must get one whose model did
    not train on it, else :class:`LeakageError`.
    """
    ids = variants["variant_id"].to_numpy()
    index = pd.Index(ids)
    if not index.is_unique:
        raise ValueError("variants.parquet has duplicate variant_id values")
    value = np.full(len(variants), np.nan)
    filled = np.zeros(len(variants), dtype=bool)
    leaked = np.zeros(len(variants), dtype=bool)
    for source in sources:
        pred, trained_from = source[0], source[1]
        take = tuple(source[2]) if len(source) > 2 else ("val", "test")
        if len(trained_from) != len(variants) or not np.array_equal(trained_from["variant_id"].to_numpy(), ids):
            raise ValueError(f"member {member!r}: a training variants file is not row-aligned with variants.parquet")
        rows = index.get_indexer(pred["variant_id"].to_numpy())
        if (rows < 0).any():
            raise ValueError(
                f"member {member!r}: {int((rows < 0).sum())} predicted variants are not in variants.parquet"
            )
        split = trained_from["split"].astype(str).to_numpy()[rows]
        leaked[rows[split == "train"]] = True
        use = np.isin(split, take) & (split != "train")
        rows, score = rows[use], pred["score"].to_numpy(dtype=np.float64)[use]
        if filled[rows].any():
            raise ValueError(f"member {member!r}: variants scored by more than one out-of-fold model")
        value[rows], filled[rows] = score, True
    missing = required_rows[~filled[required_rows]]
    if len(missing):
        bad = missing[leaked[missing]]
        if len(bad):
            raise LeakageError(
                f"member {member!r}: {len(bad)} rows (e.g. {', '.join(map(str, ids[bad[:3]]))}) only have scores "
                "from a model trained on them; stacking needs out-of-fold scores (member__oof{j})"
            )
        raise ValueError(
            f"member {member!r}: {len(missing)} rows have no score (e.g. {', '.join(map(str, ids[missing[:3]]))})"
        )
    return value


def check_feature_names(names: Sequence[str]) -> None:
    """Refuse features named after the label or the validated targets (which are derived from it)."""
    bad = [n for n in names if FORBIDDEN_FEATURES.search(n)]
    if bad:
        raise LeakageError(f"features {bad} are derived from the labels; they cannot be stacking inputs")


def build_features(
    variants: pd.DataFrame,
    bases: Mapping[str, tuple[pd.DataFrame, np.ndarray | None]],
    members: Mapping[str, np.ndarray] | None = None,
    annotation: bool = True,
    profile: bool = True,
) -> pd.DataFrame:
    """Feature matrix row-aligned with ``variants`` (see the module docstring for the columns)."""
    parts = []
    for name, (scores, deltas) in bases.items():
        if len(scores) != len(variants):
            raise ValueError(f"base model {name!r}: {len(scores)} score rows for {len(variants)} variants")
        parts.append(base_features(name, scores.reset_index(drop=True), deltas, profile))
    if annotation:
        parts.append(annotation_features(variants.reset_index(drop=True)))
    for name, score in (members or {}).items():
        score = np.asarray(score, dtype=np.float64)
        if score.shape != (len(variants),):
            raise ValueError(f"member {name!r}: {score.shape} scores for {len(variants)} variants")
        parts.append(pd.DataFrame({f"member_{name}": score}))
    features = pd.concat(parts, axis=1)
    check_feature_names(list(features.columns))
    return features


# --------------------------------------------------------------------------------------------
# candidates: each base model's own score, and learners over nested feature sets


def feature_group(column: str, bases: Sequence[str]) -> str:
    """Which of :data:`FEATURE_SETS` adds feature ``column``: a base model's scores, its other columns
    (distances, profile summaries, per-tissue values), annotation, or a member's score."""
    if column.startswith("member_"):
        return "members"
    for b in bases:
        if column.startswith(f"{b}_"):
            return "scores" if column[len(b) + 1 :] in SCORE_FEATURES else "profiles"
    return "annotation"


@dataclass(frozen=True)
class Candidate:
    """One thing the stacked model may ship: a base model's own score (``kind="base"``, unchanged) or a
    learner with its hyper-parameters over one feature set (``kind="learner"``)."""

    name: str
    kind: str
    columns: tuple[str, ...]
    learner: str = ""
    feature_set: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "learner": self.learner,
            "feature_set": self.feature_set,
            "params": dict(self.params),
            "columns": list(self.columns),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        return cls(
            name=d["name"],
            kind=d["kind"],
            columns=tuple(d["columns"]),
            learner=d.get("learner", ""),
            feature_set=d.get("feature_set", ""),
            params=dict(d.get("params") or {}),
        )


def base_candidate_name(base: str) -> str:
    return f"{base}.score"


def candidates(columns: Sequence[str], config: StackConfig) -> list[Candidate]:
    """Every candidate of ``config`` over feature ``columns``: each base model's score, then per feature
    set (nested: scores, + profiles and per-tissue values, + annotation, + members) a logistic regression
    and the :data:`HGB_GRID` boosters (on base scores alone only when no other feature exists)."""
    out = [
        Candidate(base_candidate_name(b), "base", (f"{b}_score",))
        for b in config.bases
        if f"{b}_score" in columns and config.base_candidates
    ]
    group = {c: feature_group(c, config.bases) for c in columns}
    present = [fs for fs in FEATURE_SETS if any(group[c] == fs for c in columns)]
    used: list[str] = []
    for fs in present:
        used += [c for c in columns if group[c] == fs]
        if fs not in config.feature_sets:
            continue
        cols = tuple(used)
        if "logreg" in config.learners:
            out.append(Candidate(f"logreg.{fs}", "learner", cols, "logreg", fs))
        if "hgb" in config.learners and (fs != "scores" or len(present) == 1):
            out += [Candidate(f"hgb{i}.{fs}", "learner", cols, "hgb", fs, dict(p)) for i, p in enumerate(HGB_GRID)]
    if not any(c.kind == "learner" for c in out):
        raise ValueError(
            f"{config.name}: no learner candidate: feature_sets {list(config.feature_sets)} select none of the "
            f"feature groups present ({', '.join(present)})"
        )
    return out


def make_learner(name: str, seed: int, params: Mapping[str, Any] | None = None):
    """An unfitted scikit-learn classifier (NaN handled; the logistic regression with balanced class
    weights); ``params`` override the defaults (an :data:`HGB_GRID` entry, or ``C`` of the logistic
    regression). Every choice is by ROC-AUC, which class weights do not change much but would slow the
    boosters' binning."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = dict(params or {})
    if name == "hgb":
        return HistGradientBoostingClassifier(
            **{
                "learning_rate": 0.05,
                "max_iter": 200,
                "max_leaf_nodes": 15,
                "min_samples_leaf": 20,
                "l2_regularization": 1.0,
                "early_stopping": True,
                "validation_fraction": 0.15,
                "n_iter_no_change": 10,
                "max_bins": 63,
                "random_state": seed,
                **params,
            }
        )
    if name == "logreg":
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=float(params.get("C", 1.0)), max_iter=5000, class_weight="balanced"),
        )
    raise ValueError(f"unknown learner {name!r}; choose from {', '.join(LEARNERS)}")


def _candidate_scores(cand: Candidate, estimator: Any, features: pd.DataFrame) -> np.ndarray:
    """The raw score of a candidate per row: the base score unchanged, or the learner's P(class 1)."""
    missing = [c for c in cand.columns if c not in features.columns]
    if missing:
        raise ValueError(f"features lack columns {missing} that candidate {cand.name!r} reads")
    if cand.kind == "base":
        return features[cand.columns[0]].to_numpy(dtype=np.float64).copy()
    x = features[list(cand.columns)].to_numpy(dtype=np.float64)
    return estimator.predict_proba(x)[:, 1]


def _logit(s: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(s, dtype=np.float64), CALIBRATION_EPS, 1.0 - CALIBRATION_EPS)
    return np.log(p / (1.0 - p))


def fit_platt(score: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Platt scaling ``P = sigmoid(a * logit(score) + b)`` fitted on out-of-fold scores; identity
    (a=1, b=0) when the fit is not increasing (the ranking is never reversed) or one class is missing."""
    from sklearn.linear_model import LogisticRegression

    ok = np.isfinite(score)
    identity = {"a": 1.0, "b": 0.0, "method": "identity"}
    if ok.sum() < 2 or len(np.unique(y[ok])) < 2:
        return identity
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(score[ok])[:, None], y[ok])
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if not (np.isfinite(a) and np.isfinite(b)) or a <= 0:
        return identity
    return {"a": a, "b": b, "method": "platt on inner out-of-fold scores"}


def apply_platt(score: np.ndarray, calibration: Mapping[str, float]) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = 1.0 / (1.0 + np.exp(-(float(calibration["a"]) * _logit(score) + float(calibration["b"]))))
    return np.where(np.isfinite(score), out, np.nan)


# --------------------------------------------------------------------------------------------
# nested grouped cross-validation inside the training rows


def _deal_groups(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold (0..n_folds-1) per row: whole groups dealt in a seeded random order to the fold holding the
    fewest rows so far."""
    ids, counts = np.unique(groups, return_counts=True)
    return deal_groups(groups, ids, counts, np.random.default_rng(seed).permutation(len(ids)), n_folds)


def position_blocks(variants: pd.DataFrame, n_blocks: int) -> np.ndarray:
    """Block id per row: the rows sorted by (chrom, pos) cut into ``n_blocks`` contiguous runs of about
    equal size; variants at one position always share a block."""
    chrom = variants["chrom"].astype(str).to_numpy()
    pos = variants["pos"].to_numpy(np.int64)
    order = np.lexsort((pos, chrom))
    raw = (np.arange(len(order)) * n_blocks) // max(1, len(order))
    block = np.empty(len(order), dtype=np.int64)
    block[order] = raw
    key = pd.Series(block).groupby([chrom, pos]).transform("min")  # one block per position
    return key.to_numpy(np.int64)


def training_groups(variants: pd.DataFrame, n_folds: int, gap: int) -> tuple[np.ndarray, str]:
    """Groups of the rows of ``variants`` that no fold may split, and how they were made: whole gene
    clusters (genes within ``gap`` nt, as the validation split) when there are at least
    ``BLOCKS_PER_FOLD * n_folds`` of them, else contiguous genomic blocks (a set from one locus)."""
    from metasplice.data.splits import gene_clusters

    if {"tx_start", "tx_end"} <= set(variants.columns):
        clusters = gene_clusters(variants, gap)
        if len(np.unique(clusters)) >= BLOCKS_PER_FOLD * n_folds:
            return clusters, "gene clusters"
    n_positions = len(variants[["chrom", "pos"]].drop_duplicates())
    if n_positions < n_folds:
        raise ValueError(f"{len(variants)} rows at {n_positions} positions cannot form {n_folds} grouped folds")
    return position_blocks(variants, min(BLOCKS_PER_FOLD * n_folds, n_positions)), "genomic blocks"


def inner_folds(variants: pd.DataFrame, rows: np.ndarray, n_folds: int, gap: int, seed: int) -> tuple[np.ndarray, str]:
    """Inner fold (0..n_folds-1) of each of ``rows`` (grouped, see :func:`training_groups`)."""
    groups, how = training_groups(variants.iloc[rows], n_folds, gap)
    return _deal_groups(groups, n_folds, seed), how


def inner_cv(
    features: pd.DataFrame, y: np.ndarray, fold: np.ndarray, cands: Sequence[Candidate], seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """ROC-AUC of every candidate on every inner fold ([candidates, folds]; NaN for a fold with one
    class) and each candidate's out-of-fold scores. ``features``/``y``/``fold``: the training rows only.
    A fold is measured on the rows every base model scored, so all candidates share its variants."""
    from sklearn.metrics import roc_auc_score

    n_folds = int(fold.max()) + 1
    oof = {c.name: np.full(len(y), np.nan) for c in cands}
    common = np.ones(len(y), dtype=bool)
    for c in cands:
        if c.kind == "base":
            common &= np.isfinite(features[c.columns[0]].to_numpy(np.float64))
    auc = np.full((len(cands), n_folds), np.nan)
    for f in range(n_folds):
        fit, held = fold != f, fold == f
        measured = held & common
        one_class = len(np.unique(y[measured])) < 2
        for i, c in enumerate(cands):
            est = None
            if c.kind == "learner":
                if len(np.unique(y[fit])) < 2:
                    raise ValueError(f"inner fold {f}: its training rows hold one class only")
                est = make_learner(c.learner, seed, c.params).fit(
                    features.loc[fit, list(c.columns)].to_numpy(np.float64), y[fit]
                )
            oof[c.name][held] = _candidate_scores(c, est, features.loc[held])
            if not one_class:
                auc[i, f] = roc_auc_score(y[measured], oof[c.name][measured])
    return auc, oof


def choose_candidate(
    cands: Sequence[Candidate], auc: np.ndarray, margin: float
) -> tuple[Candidate, Candidate | None, pd.DataFrame]:
    """(chosen, best base candidate, inner-CV table). The best base model is the base candidate with the
    highest mean inner-CV ROC-AUC; a learner is chosen only when its mean gain over that base model is
    at least ``margin`` and more than one standard error (over the folds) above zero - else the best
    base model's score ships. Among the learners that pass, the highest mean ROC-AUC wins."""
    valid = np.isfinite(auc).all(axis=0)
    if valid.sum() < 2:
        raise ValueError("fewer than two inner folds hold both classes; the training rows are too few to choose")
    a = auc[:, valid]
    mean = a.mean(axis=1)
    base_idx = [i for i, c in enumerate(cands) if c.kind == "base"]
    best_base = max(base_idx, key=lambda i: (mean[i], -i)) if base_idx else None
    rows = []
    passing = []
    for i, c in enumerate(cands):
        row: dict[str, Any] = {
            "candidate": c.name,
            "kind": c.kind,
            "learner": c.learner,
            "feature_set": c.feature_set,
            "params": json.dumps(dict(c.params), sort_keys=True),
            "n_features": len(c.columns),
            "roc_auc_mean": float(mean[i]),
            "roc_auc_sd": float(a[i].std(ddof=1)),
        }
        row.update({f"roc_auc_fold{f}": float(v) for f, v in enumerate(auc[i])})
        if best_base is not None and i != best_base:
            d = a[i] - a[best_base]
            row["difference_vs_best_base"] = float(d.mean())
            row["difference_se"] = float(d.std(ddof=1) / np.sqrt(len(d)))
            beats = c.kind == "learner" and d.mean() >= margin and d.mean() - row["difference_se"] > 0
        else:
            row["difference_vs_best_base"] = 0.0 if i == best_base else np.nan
            row["difference_se"] = np.nan
            beats = c.kind == "learner"  # without a base model every learner competes
        row["beats_best_base"] = bool(beats) if c.kind == "learner" else False
        if beats:
            passing.append(i)
        rows.append(row)
    if passing:
        chosen = max(passing, key=lambda i: (mean[i], -i))
    elif best_base is not None:
        chosen = best_base
    else:
        raise ValueError("no candidate to choose")  # candidates() always offers a learner
    table = pd.DataFrame(rows)
    table["best_base"] = [i == best_base for i in range(len(cands))]
    table["chosen"] = [i == chosen for i in range(len(cands))]
    return cands[chosen], (cands[best_base] if best_base is not None else None), table


def selection_summary(chosen: Candidate, best_base: Candidate | None, table: pd.DataFrame) -> str:
    """One line saying what the stacked model ships and why (summary.md)."""
    by = table.set_index("candidate")
    if chosen.kind == "base":
        return f"stacked model = {chosen.name.rsplit('.', 1)[0]}'s score: {NO_LEARNER_BEAT}"
    text = f"stacked model = {chosen.name} (inner-CV ROC-AUC {by.at[chosen.name, 'roc_auc_mean']:.4f}"
    if best_base is not None:
        text += (
            f" vs {best_base.name.rsplit('.', 1)[0]}'s {by.at[best_base.name, 'roc_auc_mean']:.4f}, "
            f"{by.at[chosen.name, 'difference_vs_best_base']:+.4f} ± {by.at[chosen.name, 'difference_se']:.4f} SE"
        )
    return text + ")"


# --------------------------------------------------------------------------------------------
# the stacked model


@dataclass
class StackedModel:
    """A fitted stacker with what it needs to score new variants.

    ``candidate``: what it ships (a base model's score unchanged, or a learner over a feature set);
    ``estimator``: the learner refitted on every training row (None for a base score);
    ``calibration``: Platt scaling fitted on the chosen candidate's inner out-of-fold scores."""

    config: StackConfig
    candidate: Candidate
    estimator: Any
    calibration: dict = field(default_factory=lambda: {"a": 1.0, "b": 0.0, "method": "identity"})
    selection: dict = field(default_factory=dict)  # what the inner CV chose and why (stacker.json)
    available_features: tuple[str, ...] = ()
    member_files: dict = field(default_factory=dict)  # member -> checkpoint path relative to the model dir
    base_models: dict = field(default_factory=dict)  # base -> its base_models config (to rescore new VCFs)
    sequences: dict = field(default_factory=dict)  # window options of the members (strand_oriented)
    regions: dict = field(default_factory=dict)  # region classes the annotation features used (config regions)
    inner_cv: pd.DataFrame | None = None  # one row per candidate (inner_cv.tsv; not reloaded)

    @property
    def learner(self) -> str:
        return self.candidate.name

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.candidate.columns

    @property
    def ships_base(self) -> str | None:
        """The base model whose own score this model ships, or None (a learner)."""
        return self.candidate.name.rsplit(".", 1)[0] if self.candidate.kind == "base" else None

    def predict_score(self, features: pd.DataFrame) -> np.ndarray:
        """The shipped score per row of ``features`` (columns matched by name): the base model's own
        score unchanged, or the learner's P(Splice-altering)."""
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise ValueError(f"features lack columns {missing} that {self.config.name!r} was trained on")
        return _candidate_scores(self.candidate, self.estimator, features)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated P(Splice-altering) per row (:meth:`predict_score` through the Platt scaling fitted on
        inner out-of-fold scores; same ranking)."""
        return apply_platt(self.predict_score(features), self.calibration)

    def save(self, directory: str | os.PathLike, importance: pd.DataFrame | None = None) -> None:
        """``stacker.joblib`` (the estimator), ``model.json`` (everything else) and ``stacker.json``
        (the choice), written atomically."""
        import joblib
        import sklearn

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_output(directory / "stacker.joblib") as tmp:
            joblib.dump({"format": FORMAT, "estimator": self.estimator}, tmp)
        meta = {
            "format": FORMAT,
            "config": asdict(self.config),
            "candidate": self.candidate.to_dict(),
            "calibration": self.calibration,
            "selection": self.selection,
            "feature_names": list(self.feature_names),
            "available_features": list(self.available_features),
            "member_files": self.member_files,
            "base_models": self.base_models,
            "sequences": self.sequences,
            "regions": self.regions,
            "versions": {"scikit-learn": sklearn.__version__},
        }
        with atomic_output(directory / "model.json") as tmp:
            Path(tmp).write_text(json.dumps(meta, indent=2) + "\n")
        with atomic_output(directory / "stacker.json") as tmp:
            Path(tmp).write_text(json.dumps(self.selection, indent=2) + "\n")
        if self.inner_cv is not None:
            write_tsv(self.inner_cv, directory / "inner_cv.tsv")
        if importance is not None:
            write_tsv(importance, directory / "importance.tsv")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> StackedModel:
        """Load a stacked model directory (``model.json`` + ``stacker.joblib``)."""
        import joblib

        directory = Path(directory)
        meta_path = directory / "model.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{directory}: no model.json; is it a stacked model directory?")
        damaged = "the model directory is damaged or incomplete: copy it again or retrain"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{meta_path} cannot be read as JSON ({exc}); {damaged}") from exc
        if not isinstance(meta, dict):
            raise ValueError(f"{meta_path} is not a JSON object; {damaged}")
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        import sklearn

        saved = (meta.get("versions") or {}).get("scikit-learn")
        if saved and saved != sklearn.__version__:
            log.warning(
                "%s was saved with scikit-learn %s but %s is installed; a pickled estimator may not load "
                "or may predict differently across versions (retrain, or install scikit-learn==%s)",
                directory,
                saved,
                sklearn.__version__,
                saved,
            )
        blob_path = directory / "stacker.joblib"
        if not blob_path.exists():
            raise FileNotFoundError(f"{blob_path} is missing; {damaged}")
        try:
            blob = joblib.load(blob_path)
            estimator = blob["estimator"]
        except Exception as exc:  # a truncated or corrupt pickle: EOFError, UnpicklingError, KeyError, ...
            raise ValueError(
                f"{blob_path} cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                f"{damaged}"
            ) from exc
        try:
            cfg = dict(meta["config"])
            for key in ("bases", "members", "learners", "feature_sets"):
                cfg[key] = tuple(cfg[key])
            return cls(
                config=StackConfig(**cfg),
                candidate=Candidate.from_dict(meta["candidate"]),
                estimator=estimator,
                calibration=dict(meta["calibration"]),
                selection=meta.get("selection", {}),
                available_features=tuple(meta.get("available_features", ())),
                member_files=meta.get("member_files", {}),
                base_models=meta.get("base_models", {}),
                sequences=meta.get("sequences", {}),
                regions=meta.get("regions", {}),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{meta_path} lacks or mangles the entry {exc}; {damaged}") from exc


def _labelled(variants: pd.DataFrame, split: str) -> np.ndarray:
    return np.flatnonzero(
        (variants["split"].astype(str).to_numpy() == split) & variants["label"].isin((0, 1)).to_numpy()
    )


def permutation_drop(
    model: StackedModel, features: pd.DataFrame, y: np.ndarray, repeats: int, seed: int
) -> pd.DataFrame:
    """Mean and SD drop in ROC-AUC (rows with a score) when one feature the model reads is shuffled."""
    from sklearn.metrics import roc_auc_score

    def auc(frame: pd.DataFrame) -> float:
        s = model.predict_score(frame)
        ok = np.isfinite(s)
        return float(roc_auc_score(y[ok], s[ok]))

    rng = np.random.default_rng(seed)
    base = auc(features)
    rows = []
    for col in model.feature_names:
        drops = []
        for _ in range(repeats):
            shuffled = features.copy()
            shuffled[col] = rng.permutation(shuffled[col].to_numpy())
            drops.append(base - auc(shuffled))
        rows.append({"feature": col, "importance_mean": float(np.mean(drops)), "importance_std": float(np.std(drops))})
    return pd.DataFrame(rows, columns=["feature", "importance_mean", "importance_std"])


def fit_stacker(
    features: pd.DataFrame, variants: pd.DataFrame, config: StackConfig, threads: int = 1
) -> tuple[StackedModel, pd.DataFrame]:
    """Choose what the stacked model ships by nested grouped CV inside the labelled training rows, refit
    it on all of them, and measure its permutation importance on validation.

    Candidates (:func:`candidates`): each base model's own score, logistic regressions and the
    :data:`HGB_GRID` boosters over nested feature sets. The training rows are dealt to
    ``config.inner_folds`` folds of whole gene clusters (genomic blocks for a set from one locus);
    every learner is fitted on k-1 folds and scored on the k-th; :func:`choose_candidate` picks. Only
    training rows reach the choice: validation rows (the threshold) and test rows (the metrics) are
    never read before the model is fixed. Returns (model, importance table); ``model.selection``
    holds the choice and ``inner_cv`` the table (see :func:`train_stacked_files`). ``threads``: the
    learners' thread count (more threads than free cores slow the small fits down a lot).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, int(threads))):
        return _fit_stacker(features, variants, config)


def _fit_stacker(
    features: pd.DataFrame, variants: pd.DataFrame, config: StackConfig
) -> tuple[StackedModel, pd.DataFrame]:
    check_feature_names(list(features.columns))
    features = features.reset_index(drop=True)
    train, val = _labelled(variants, "train"), _labelled(variants, "val")
    y = variants["label"].to_numpy().astype(np.int64)
    for part, rows in (("training", train), ("validation", val)):
        if len(np.unique(y[rows])) < 2:
            raise ValueError(f"{config.name}: the {part} split needs both Splice-altering and Normal variants")
    cands = candidates(list(features.columns), config)
    fold, grouping = inner_folds(variants, train, config.inner_folds, config.group_gap, config.seed)
    x_train, y_train = features.iloc[train].reset_index(drop=True), y[train]
    auc, oof = inner_cv(x_train, y_train, fold, cands, config.seed)
    chosen, best_base, table = choose_candidate(cands, auc, config.margin)
    calibration = fit_platt(oof[chosen.name], y_train)
    estimator = None
    if chosen.kind == "learner":
        estimator = make_learner(chosen.learner, config.seed, chosen.params).fit(
            x_train[list(chosen.columns)].to_numpy(np.float64), y_train
        )
    summary = selection_summary(chosen, best_base, table)
    selection = {
        "chosen": chosen.name,
        "kind": chosen.kind,
        "ships_base": chosen.name.rsplit(".", 1)[0] if chosen.kind == "base" else None,
        "best_base": best_base.name.rsplit(".", 1)[0] if best_base is not None else None,
        "summary": summary,
        "inner_cv": {
            "folds": int(config.inner_folds),
            "grouping": grouping,
            "rule": (
                f"a learner ships when its mean inner-CV ROC-AUC gain over the best base model is >= "
                f"{config.margin} and more than one standard error above 0; else the best base model's score"
            ),
            "roc_auc_mean": dict(zip(table["candidate"], table["roc_auc_mean"].round(6))),
        },
        "n_train": int(len(train)),
        "n_val": int(len(val)),
        "calibration": calibration,
    }
    model = StackedModel(
        config=config,
        candidate=chosen,
        estimator=estimator,
        calibration=calibration,
        selection=selection,
        available_features=tuple(features.columns),
    )
    importance = permutation_drop(
        model, features.iloc[val].reset_index(drop=True), y[val], config.importance_repeats, config.seed
    )
    importance = importance.sort_values(["importance_mean", "feature"], ascending=[False, True], ignore_index=True)
    importance["metric"] = "drop in validation ROC-AUC"
    importance["n_repeats"] = config.importance_repeats
    model.inner_cv = table
    log.info("%s: %s (inner CV over %d training rows, %s)", config.name, summary, len(train), grouping)
    return model, importance


# --------------------------------------------------------------------------------------------
# file-level entry points (workflow_scripts/train_stacked.py, evaluate.py)


def train_stacked_files(
    config: StackConfig,
    variants_path: str | os.PathLike,
    base_scores: Mapping[str, str | os.PathLike],
    base_deltas: Mapping[str, str | os.PathLike],
    member_predictions: Mapping[str, str | os.PathLike],
    member_oof: Mapping[str, Sequence[tuple[str | os.PathLike, str | os.PathLike]]],
    member_models: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    base_models: Mapping[str, Any] | None = None,
    strand_oriented: bool = True,
    regions: Mapping[str, Any] | None = None,
    threads: int = 1,
) -> StackedModel:
    """Build the features of every variant, fit the stacker and write the model directory.

    ``member_oof[m]``: (predictions, training variants file) of each ``m__oof{j}``; the full member's
    predictions (``member_predictions[m]``) come from a model trained on ``variants_path``.
    Writes ``stacker.joblib``, ``model.json``, ``stacker.json`` (what the inner CV chose and why),
    ``inner_cv.tsv`` (every candidate's inner-CV ROC-AUC per fold), ``importance.tsv``,
    ``features.parquet`` (row-aligned with the variants) and ``members/{m}.pt`` (copies of the full
    members, for scoring new VCFs).
    """
    variants = pd.read_parquet(variants_path)
    bases = {}
    for b in config.bases:
        scores = pd.read_parquet(base_scores[b])
        deltas = np.load(base_deltas[b], mmap_mode="r") if config.profile_features else None
        bases[b] = (scores, None if deltas is None else np.asarray(deltas))
    split = variants["split"].astype(str).to_numpy()
    required = np.flatnonzero(np.isin(split, ("train", "val", "test")) & variants["label"].isin((0, 1)).to_numpy())
    members = {}
    for m in config.members:
        sources = [(pd.read_parquet(member_predictions[m]), variants, ("val", "test"))]
        sources += [
            (pd.read_parquet(p), pd.read_parquet(v, columns=["variant_id", "split"]), ("test",))
            for p, v in member_oof.get(m, ())
        ]
        members[m] = member_feature(m, variants, sources, required)
    features = build_features(variants, bases, members, config.annotation_features, config.profile_features)
    model, importance = fit_stacker(features, variants, config, threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for m in config.members:
        dest = out_dir / "members" / f"{m}.pt"
        dest.parent.mkdir(exist_ok=True)
        with atomic_output(dest) as tmp:
            shutil.copyfile(member_models[m], tmp)
        model.member_files[m] = f"members/{m}.pt"
    model.base_models = {b: dict((base_models or {}).get(b) or {}) for b in config.bases}
    model.sequences = {"strand_oriented": bool(strand_oriented)}
    model.regions = dict(regions or {})
    write_parquet(features.assign(variant_id=variants["variant_id"].to_numpy()), out_dir / "features.parquet")
    model.save(out_dir, importance)
    return model


def evaluate_stacked_files(
    model_dir: str | os.PathLike,
    variants_path: str | os.PathLike,
    reference_scores_path: str | os.PathLike,
    predictions_out: str | os.PathLike,
    metrics_out: str | os.PathLike,
    experiment: str,
    cfg=None,
) -> dict:
    """Evaluate a stacked model on its validation and test rows with :mod:`metasplice.evaluation.evaluate`."""
    from metasplice.evaluation import evaluate as E

    cfg = cfg or E.EvalConfig()
    model = StackedModel.load(model_dir)
    variants = E.read_variants(variants_path)
    features = pd.read_parquet(Path(model_dir) / "features.parquet")
    if len(features) != len(variants) or not np.array_equal(
        features["variant_id"].to_numpy(), variants["variant_id"].to_numpy()
    ):
        raise ValueError(f"{model_dir}/features.parquet is not row-aligned with {variants_path}; retrain the stacker")
    rows = E.eval_rows(variants)
    part = features.iloc[rows].reset_index(drop=True)
    pred = EP.prediction_frame(variants, rows, model.predict_score(part))
    pred[CALIBRATED_SCORE] = model.predict_proba(part)
    reference = E.reference_table(variants, E.read_scores(reference_scores_path, len(variants), variants_path))
    extra = {
        "kind": "stacked",
        "experiment": experiment,
        "learner": model.learner,
        "features": list(model.feature_names),
        "members": list(model.config.members),
        "bases": list(model.config.bases),
        "stacking": {k: v for k, v in model.selection.items() if k != "calibration"},
        "score": (
            f"{model.ships_base}'s own score (no learner beat it in inner CV)"
            if model.ships_base
            else f"P(Splice-altering) of {model.learner}"
        ),
    }
    result = E.evaluate_predictions(pred, cfg, experiment, "stacked", reference, cfg.reference, extra)
    E.write_evaluation(pred, result, predictions_out, metrics_out, experiment)
    return result
