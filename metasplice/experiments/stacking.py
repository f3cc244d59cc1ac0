"""Stacked meta-model: a scikit-learn learner over base-model scores, annotation and sequence-model scores.

Features of one variant (every one computable for a new VCF record, see :func:`build_features`):

- per base model ``b`` (SpliceAI; OpenSpliceAI when configured): ``b_DS_AG .. b_DS_DL``, ``b_DS_max``,
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

Learners: histogram gradient boosting and L2 logistic regression (imputed, standardised), both with
balanced class weights, fitted on the labelled training rows; the one with the higher validation
ROC-AUC is kept. The decision threshold is chosen on validation by :mod:`metasplice.evaluation.evaluate` like
every other row of the report; permutation importance (drop in validation ROC-AUC) is saved.
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
from metasplice.data.splits import DEFAULT_GROUP_GAP
from metasplice.data.variants import VARIANT_TYPES
from metasplice.io import atomic_output, write_parquet, write_tsv

log = logging.getLogger(__name__)

FORMAT = "metasplice-stacked/1"
LEARNERS = ("hgb", "logreg")
PEAK_THRESHOLD = 0.1  # |delta| counted as a peak of the profile
FORBIDDEN_FEATURES = re.compile(r"(^|_)(label|classification|target)(_|$)")
OOF_SUFFIX = re.compile(r"^(?P<parent>.+)__oof(?P<fold>\d+)$")
MODEL_FILES = ("stacker.joblib", "model.json", "importance.tsv", "features.parquet")


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
    learners: tuple[str, ...] = LEARNERS  # candidates; the best validation ROC-AUC is kept
    annotation_features: bool = True
    profile_features: bool = True
    importance_repeats: int = 10
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        where = f"experiment {self.name!r}"
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
        for key in ("bases", "members", "learners"):
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
    from metasplice.data.splits import gene_clusters

    split = variants["split"].astype(str).to_numpy()
    train = np.flatnonzero(split == "train")
    out = np.full(len(variants), -1, dtype=np.int64)
    if len(train) == 0:
        raise ValueError("no training rows to split into out-of-fold groups")
    clusters = gene_clusters(variants, cfg.group_gap)[train]
    ids, counts = np.unique(clusters, return_counts=True)
    if len(ids) < cfg.oof_folds:
        raise ValueError(
            f"stacking.oof_folds={cfg.oof_folds} but the training rows form only {len(ids)} "
            "gene clusters; lower oof_folds or group_gap"
        )
    order = np.random.default_rng(cfg.seed).permutation(len(ids))
    totals = np.zeros(cfg.oof_folds, dtype=np.int64)
    group_of = {}
    for i in order:
        g = int(np.argmin(totals))
        group_of[ids[i]] = g
        totals[g] += counts[i]
    out[train] = np.array([group_of[c] for c in clusters], dtype=np.int64)
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
    cols[f"{name}_DS_max"] = np.where(ok, np.nan_to_num(ds).max(axis=1), np.nan)
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
# learners


def make_learner(name: str, seed: int):
    """An unfitted scikit-learn classifier (balanced class weights; NaN handled)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "hgb":
        return HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=300,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=20,
            class_weight="balanced",
            random_state=seed,
        )
    if name == "logreg":
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced"),
        )
    raise ValueError(f"unknown learner {name!r}; choose from {', '.join(LEARNERS)}")


@dataclass
class StackedModel:
    """A fitted stacker with what it needs to score new variants."""

    config: StackConfig
    estimator: Any
    learner: str
    feature_names: tuple[str, ...]
    validation: dict = field(default_factory=dict)  # per learner: validation ROC-AUC
    member_files: dict = field(default_factory=dict)  # member -> checkpoint path relative to the model dir
    base_models: dict = field(default_factory=dict)  # base -> its base_models config (to rescore new VCFs)
    sequences: dict = field(default_factory=dict)  # window options of the members (strand_oriented)
    regions: dict = field(default_factory=dict)  # region classes the annotation features used (config regions)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """P(Splice-altering) per row of ``features`` (columns matched by name)."""
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise ValueError(f"features lack columns {missing} that {self.config.name!r} was trained on")
        x = features[list(self.feature_names)].to_numpy(dtype=np.float64)
        return self.estimator.predict_proba(x)[:, 1]

    def save(self, directory: str | os.PathLike, importance: pd.DataFrame | None = None) -> None:
        """``stacker.joblib`` (the estimator) and ``model.json`` (everything else), written atomically."""
        import joblib
        import sklearn

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_output(directory / "stacker.joblib") as tmp:
            joblib.dump({"format": FORMAT, "estimator": self.estimator}, tmp)
        meta = {
            "format": FORMAT,
            "config": asdict(self.config),
            "learner": self.learner,
            "feature_names": list(self.feature_names),
            "validation": self.validation,
            "member_files": self.member_files,
            "base_models": self.base_models,
            "sequences": self.sequences,
            "regions": self.regions,
            "versions": {"scikit-learn": sklearn.__version__},
        }
        with atomic_output(directory / "model.json") as tmp:
            Path(tmp).write_text(json.dumps(meta, indent=2) + "\n")
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
            for key in ("bases", "members", "learners"):
                cfg[key] = tuple(cfg[key])
            return cls(
                config=StackConfig(**cfg),
                estimator=estimator,
                learner=meta["learner"],
                feature_names=tuple(meta["feature_names"]),
                validation=meta.get("validation", {}),
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


def fit_stacker(
    features: pd.DataFrame, variants: pd.DataFrame, config: StackConfig
) -> tuple[StackedModel, pd.DataFrame]:
    """Fit every candidate learner on the labelled training rows, keep the best on validation ROC-AUC,
    and measure its permutation importance on validation. Returns (model, importance table)."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    check_feature_names(list(features.columns))
    train, val = _labelled(variants, "train"), _labelled(variants, "val")
    y = variants["label"].to_numpy().astype(np.int64)
    for part, rows in (("training", train), ("validation", val)):
        if len(np.unique(y[rows])) < 2:
            raise ValueError(f"{config.name}: the {part} split needs both Splice-altering and Normal variants")
    x = features.to_numpy(dtype=np.float64)
    fitted, scores = {}, {}
    for name in config.learners:
        est = make_learner(name, config.seed).fit(x[train], y[train])
        fitted[name] = est
        scores[name] = float(roc_auc_score(y[val], est.predict_proba(x[val])[:, 1]))
        log.info("%s: %s validation ROC-AUC %.4f", config.name, name, scores[name])
    best = max(config.learners, key=lambda n: (scores[n], -config.learners.index(n)))
    imp = permutation_importance(
        fitted[best], x[val], y[val], scoring="roc_auc", n_repeats=config.importance_repeats, random_state=config.seed
    )
    importance = pd.DataFrame(
        {
            "feature": list(features.columns),
            "importance_mean": imp.importances_mean,
            "importance_std": imp.importances_std,
        }
    ).sort_values(["importance_mean", "feature"], ascending=[False, True], ignore_index=True)
    importance["metric"] = "drop in validation ROC-AUC"
    importance["n_repeats"] = config.importance_repeats
    model = StackedModel(
        config=config,
        estimator=fitted[best],
        learner=best,
        feature_names=tuple(features.columns),
        validation={"roc_auc": scores, "chosen": best, "n_train": int(len(train)), "n_val": int(len(val))},
    )
    log.info(
        "%s: kept %s; top features: %s",
        config.name,
        best,
        ", ".join(f"{f} {m:.4f}" for f, m in importance[["feature", "importance_mean"]].head(5).to_numpy()),
    )
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
) -> StackedModel:
    """Build the features of every variant, fit the stacker and write the model directory.

    ``member_oof[m]``: (predictions, training variants file) of each ``m__oof{j}``; the full member's
    predictions (``member_predictions[m]``) come from a model trained on ``variants_path``.
    Writes ``stacker.joblib``, ``model.json``, ``importance.tsv``, ``features.parquet`` (row-aligned
    with the variants) and ``members/{m}.pt`` (copies of the full members, for scoring new VCFs).
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
    model, importance = fit_stacker(features, variants, config)
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
    prob = model.predict_proba(features.iloc[rows])
    pred = EP.prediction_frame(variants, rows, prob)
    reference = E.reference_table(variants, E.read_scores(reference_scores_path, len(variants), variants_path))
    extra = {
        "kind": "stacked",
        "experiment": experiment,
        "learner": model.learner,
        "features": list(model.feature_names),
        "members": list(model.config.members),
        "bases": list(model.config.bases),
        "validation_roc_auc": model.validation.get("roc_auc"),
        "score": "P(Splice-altering) of the stacked learner",
    }
    result = E.evaluate_predictions(pred, cfg, experiment, "stacked", reference, cfg.reference, extra)
    E.write_evaluation(pred, result, predictions_out, metrics_out, experiment)
    return result
