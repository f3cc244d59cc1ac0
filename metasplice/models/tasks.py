"""Splicing-effect labels and offsets from a base model's scores, and the output conventions of the
effect tasks (``effect_type``, ``localisation``, ``quantile``, ``multitask``).

Everything here is numpy: the labels are built once from ``targets/{base}/scores.parquet`` (DS/DP
columns) and ``variants.parquet`` (``label``, ``strand``), by training and by evaluation alike.

Effect type (:func:`effect_labels`), one class per row out of :data:`EFFECT_CLASSES`:

- Normal variants (label 0) the base model scored -> ``normal``, whatever it scored (like the validated
  delta targets, which are zeros for every scored Normal variant);
- Splice-altering variants (label 1) -> the class of their largest delta score (DS_AG ->
  ``acceptor_gain``, DS_AL -> ``acceptor_loss``, DS_DG -> ``donor_gain``, DS_DL -> ``donor_loss``),
  or ``complex`` when a second delta score reaches ``complex_fraction`` x the largest;
- -1 (no class; the row is left out of the effect-type loss and metrics): other labels,
  variants the base model did not score (NaN; of both labels, so that "unscoreable" never predicts
  ``normal``), and Splice-altering variants whose
  largest delta score is <= ``min_score`` (the base model sees no effect whose type it could tell;
  with the default 0.0 only rows scored exactly zero everywhere).

Localisation (:func:`localisation_targets`): for the Splice-altering rows with an effect class, the
position of the dominant effect relative to the variant. The base model reports it (DP) in genome
orientation (DP > 0: downstream in genome coordinates); strand-oriented windows reverse-complement
minus-strand genes, which maps a genome offset d to -d around the window centre. Offsets are then
class indices ``offset + distance`` in [0, 2 * distance]; an offset beyond ``distance`` is -1
(the model cannot point at it).

Output names: ``effect_type`` names its outputs after the classes; ``localisation`` after the
offsets (``offset_-50`` .. ``offset_50``, in window orientation); ``quantile`` after target and
quantile (``DS_AG_q0.1``); ``multitask`` concatenates ``splice_altering``, ``effect_<class>``,
the delta targets and the offsets, in that order (:data:`MULTITASK_HEADS`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from metasplice.base_models.spliceai.scoring import DEFAULT_DISTANCE, DP_COLUMNS, DS_COLUMNS

EFFECT_CLASSES: tuple[str, ...] = (
    "normal",
    "donor_gain",
    "donor_loss",
    "acceptor_gain",
    "acceptor_loss",
    "complex",
)
NORMAL, COMPLEX = 0, len(EFFECT_CLASSES) - 1
# effect class of each delta score, in DS_COLUMNS order (AG, AL, DG, DL)
DS_EFFECT: tuple[int, ...] = (
    EFFECT_CLASSES.index("acceptor_gain"),
    EFFECT_CLASSES.index("acceptor_loss"),
    EFFECT_CLASSES.index("donor_gain"),
    EFFECT_CLASSES.index("donor_loss"),
)
IGNORE = -1  # class / offset index of a row without a target

EFFECT_TASKS: tuple[str, ...] = ("effect_type", "localisation", "quantile", "multitask")
MULTITASK_HEADS: tuple[str, ...] = ("binary", "effect_type", "delta", "localisation")  # output order
CLASS_WEIGHTINGS: tuple[str, ...] = ("none", "balanced")
DEFAULT_COMPLEX_FRACTION = 0.5
DEFAULT_MIN_EFFECT_SCORE = 0.0
DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
BINARY_NAME = "splice_altering"
EFFECT_PREFIX = "effect_"
OFFSET_PREFIX = "offset_"
_QUANTILE_NAME = re.compile(r"(?P<target>.+)_q(?P<q>[0-9.eE+-]+)")


# --------------------------------------------------------------------------------------------
# labels


def _ds_array(ds: np.ndarray) -> np.ndarray:
    ds = np.asarray(ds, dtype=np.float64)
    if ds.ndim != 2 or ds.shape[1] != len(DS_COLUMNS):
        raise ValueError(f"delta scores must be (N, 4) in {', '.join(DS_COLUMNS)} order, got shape {ds.shape}")
    return ds


def _labels(label: np.ndarray, n: int) -> np.ndarray:
    label = np.asarray(label)
    if label.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) like the delta scores, got {label.shape}")
    return label


def check_effect_options(complex_fraction: float, min_score: float) -> None:
    """Raise ValueError unless 0 < complex_fraction <= 1 and 0 <= min_score < 1."""
    if not 0.0 < float(complex_fraction) <= 1.0:
        raise ValueError(f"complex_fraction must be in (0, 1], got {complex_fraction}")
    if not 0.0 <= float(min_score) < 1.0:
        raise ValueError(f"min_effect_score must be in [0, 1), got {min_score}")


def _dominant(ds: np.ndarray, label: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows with a Splice-altering effect to type and place, index of their largest delta score)."""
    scored = np.isfinite(ds).all(axis=1)
    top = np.where(scored[:, None], ds, -np.inf).max(axis=1)
    effect = (label == 1) & scored & (top > min_score)
    return effect, np.where(scored[:, None], ds, -np.inf).argmax(axis=1)


def effect_labels(
    ds: np.ndarray,
    label: np.ndarray,
    complex_fraction: float = DEFAULT_COMPLEX_FRACTION,
    min_score: float = DEFAULT_MIN_EFFECT_SCORE,
) -> np.ndarray:
    """Effect class index per row (int64, see the module docstring; -1 = no class).

    ``ds``: (N, 4) delta scores in DS_AG, DS_AL, DS_DG, DS_DL order; ``label``: (N,) 1 Splice-altering,
    0 Normal, -1 other. A Splice-altering row is ``complex`` when its second-largest delta score is
    >= ``complex_fraction`` x its largest (ties included, so 1.0 means "only exact ties").
    """
    check_effect_options(complex_fraction, min_score)
    ds = _ds_array(ds)
    label = _labels(label, len(ds))
    out = np.full(len(ds), IGNORE, dtype=np.int64)
    out[(label == 0) & np.isfinite(ds).all(axis=1)] = NORMAL
    effect, top_index = _dominant(ds, label, min_score)
    if effect.any():
        d = ds[effect]
        ordered = np.sort(d, axis=1)
        top, second = ordered[:, -1], ordered[:, -2]
        cls = np.asarray(DS_EFFECT, dtype=np.int64)[top_index[effect]]
        out[effect] = np.where(second >= complex_fraction * top, COMPLEX, cls)
    return out


def check_distance(distance: int, context: int | None = None) -> None:
    """Raise ValueError unless 1 <= distance (<= context // 2 when ``context`` is given)."""
    if isinstance(distance, bool) or not isinstance(distance, (int, np.integer)) or distance < 1:
        raise ValueError(f"distance must be an integer >= 1, got {distance!r}")
    if context is not None and distance > context // 2:
        raise ValueError(
            f"distance {distance} must be <= context // 2 = {context // 2} (the offsets must lie inside the window)"
        )


def window_offsets(dp: np.ndarray, strand: np.ndarray | None, strand_oriented: bool) -> np.ndarray:
    """Genome-orientation offsets ``dp`` in window orientation: negated on '-' strand rows when the
    windows are strand-oriented (any other strand value there is an error)."""
    dp = np.asarray(dp, dtype=np.float64)
    if not strand_oriented:
        return dp
    if strand is None:
        raise ValueError("strand-oriented windows need each variant's strand to orient the offsets")
    strand = np.asarray(strand).astype(str)
    if strand.shape != dp.shape:
        raise ValueError(f"strand must have shape {dp.shape}, got {strand.shape}")
    bad = np.isfinite(dp) & (strand != "+") & (strand != "-")
    if bad.any():
        raise ValueError(f"strand must be '+' or '-' to orient offsets; found {sorted(set(strand[bad]))[:5]}")
    return np.where(strand == "-", -dp, dp)


def localisation_targets(
    ds: np.ndarray,
    dp: np.ndarray,
    label: np.ndarray,
    strand: np.ndarray | None,
    strand_oriented: bool,
    distance: int = DEFAULT_DISTANCE,
    min_score: float = DEFAULT_MIN_EFFECT_SCORE,
) -> np.ndarray:
    """Offset class per row (int64): ``offset + distance`` in [0, 2 * distance], -1 elsewhere.

    The offset is the DP of the dominant (largest) delta score of a Splice-altering row that the base
    model scored above ``min_score``, turned to window orientation (:func:`window_offsets`). Rows of
    other labels, unscored rows and offsets beyond ``distance`` get -1.
    """
    check_distance(distance)
    ds = _ds_array(ds)
    dp = np.asarray(dp, dtype=np.float64)
    if dp.shape != ds.shape:
        raise ValueError(f"delta positions must have the shape of the delta scores {ds.shape}, got {dp.shape}")
    label = _labels(label, len(ds))
    effect, top_index = _dominant(ds, label, min_score)
    offset = np.full(len(ds), np.nan)
    offset[effect] = dp[effect, top_index[effect]]
    if strand is not None:
        strand = np.asarray(strand).astype(str)
        strand = np.where(effect, strand, "+")  # only the rows with an offset need a strand
    offset = window_offsets(offset, strand, strand_oriented)
    ok = np.isfinite(offset) & (np.abs(offset) <= distance)
    out = np.full(len(ds), IGNORE, dtype=np.int64)
    out[ok] = np.rint(offset[ok]).astype(np.int64) + distance
    return out


def effect_class_weights(classes: np.ndarray, mode: str = "none", n_classes: int = len(EFFECT_CLASSES)) -> np.ndarray:
    """Cross-entropy class weights (float32, one per class) from the training rows' classes.

    ``none``: all 1. ``balanced``: n / (k x n_c) over the k classes present (scikit-learn's
    "balanced"); classes absent from the training rows get 1.
    """
    if mode not in CLASS_WEIGHTINGS:
        raise ValueError(f"unknown class_weighting {mode!r}; known: {', '.join(CLASS_WEIGHTINGS)}")
    weights = np.ones(n_classes, dtype=np.float64)
    if mode == "balanced":
        classes = np.asarray(classes)
        classes = classes[classes >= 0].astype(np.int64)
        counts = np.bincount(classes, minlength=n_classes)[:n_classes]
        present = counts > 0
        if present.any():
            weights[present] = classes.size / (present.sum() * counts[present])
    return weights.astype(np.float32)


# --------------------------------------------------------------------------------------------
# output names and layout


def offsets(distance: int) -> np.ndarray:
    """The offsets -distance .. distance, in output order."""
    return np.arange(-distance, distance + 1, dtype=np.int64)


def offset_names(distance: int) -> tuple[str, ...]:
    """``offset_-D`` .. ``offset_D``: the localisation outputs."""
    return tuple(f"{OFFSET_PREFIX}{d}" for d in offsets(distance))


def quantile_name(target: str, q: float) -> str:
    """``DS_AG_q0.1``: quantile ``q`` of delta target ``target``."""
    return f"{target}_q{q:g}"


def quantile_names(targets: Sequence[str], quantiles: Sequence[float]) -> tuple[str, ...]:
    """Target-major quantile output names (all quantiles of the first target, then the next ...)."""
    return tuple(quantile_name(t, q) for t in targets for q in quantiles)


def check_quantiles(quantiles: Sequence[float]) -> None:
    """Raise ValueError unless at least two strictly increasing quantiles in (0, 1)."""
    values = list(quantiles)
    if len(values) < 2:
        raise ValueError(
            f"quantiles needs at least two levels (the lowest and highest bound the interval), got {values}"
        )
    if any(isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q < 1.0 for q in values):
        raise ValueError(f"quantiles must lie in (0, 1), got {values}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"quantiles must be strictly increasing, got {values}")


def median_index(quantiles: Sequence[float]) -> int:
    """Index of the quantile nearest 0.5 (the point prediction of a quantile model)."""
    return int(np.argmin(np.abs(np.asarray(quantiles, dtype=np.float64) - 0.5)))


def check_loss_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The multitask loss weights, every head filled in (missing heads weigh 1)."""
    values = dict(weights or {})
    unknown = sorted(set(values) - set(MULTITASK_HEADS))
    if unknown:
        raise ValueError(f"unknown loss_weights keys {unknown}; heads: {', '.join(MULTITASK_HEADS)}")
    out = {}
    for head in MULTITASK_HEADS:
        w = values.get(head, 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise ValueError(f"loss_weights.{head} must be a finite number >= 0, got {w!r}")
        out[head] = float(w)
    if not any(out.values()):
        raise ValueError("loss_weights are all zero; at least one head must be trained")
    return out


def output_layout(
    task: str,
    targets: Sequence[str] = DS_COLUMNS,
    distance: int = DEFAULT_DISTANCE,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> dict[str, tuple[str, ...]]:
    """Output names of ``task`` grouped by head, in output order.

    Heads: ``binary`` (``splice_altering``), ``delta`` (the targets), ``effect_type``,
    ``localisation``, ``quantile``; a single-task model has one head, ``multitask`` four.
    """
    targets = tuple(targets)
    if task == "binary":
        return {"binary": (BINARY_NAME,)}
    if task == "delta":
        return {"delta": targets}
    if task == "effect_type":
        return {"effect_type": EFFECT_CLASSES}
    if task == "localisation":
        return {"localisation": offset_names(distance)}
    if task == "quantile":
        return {"quantile": quantile_names(targets, quantiles)}
    if task == "multitask":
        return {
            "binary": (BINARY_NAME,),
            "effect_type": tuple(EFFECT_PREFIX + c for c in EFFECT_CLASSES),
            "delta": targets,
            "localisation": offset_names(distance),
        }
    raise ValueError(f"unknown task {task!r}")


def head_slices(task: str, output_names: Sequence[str]) -> dict[str, slice]:
    """Column slice of each head in a model's outputs, read back from its output names."""
    names = list(output_names)
    if task in ("binary", "delta", "effect_type", "localisation", "quantile"):
        if task == "effect_type" and tuple(names) != EFFECT_CLASSES:
            raise ValueError(f"effect_type outputs must be {list(EFFECT_CLASSES)}, got {names}")
        return {task: slice(0, len(names))}
    if task != "multitask":
        raise ValueError(f"unknown task {task!r}")

    def kind(name: str) -> str:
        if name == BINARY_NAME:
            return "binary"
        if name.startswith(EFFECT_PREFIX):
            return "effect_type"
        if name.startswith(OFFSET_PREFIX):
            return "localisation"
        return "delta"

    kinds = [kind(n) for n in names]
    out: dict[str, slice] = {}
    for head in MULTITASK_HEADS:
        idx = [i for i, k in enumerate(kinds) if k == head]
        if not idx or idx != list(range(idx[0], idx[-1] + 1)):
            raise ValueError(f"multitask outputs lack a contiguous {head!r} head: {names}")
        out[head] = slice(idx[0], idx[-1] + 1)
    return out


def parse_offsets(names: Sequence[str]) -> np.ndarray:
    """Offsets of ``offset_<d>`` output names."""
    bad = [n for n in names if not n.startswith(OFFSET_PREFIX)]
    if bad:
        raise ValueError(f"not localisation outputs: {bad[:3]}")
    return np.array([int(n[len(OFFSET_PREFIX) :]) for n in names], dtype=np.int64)


def parse_quantiles(names: Sequence[str]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """(targets, quantiles) of target-major ``<target>_q<q>`` output names."""
    parsed = []
    for n in names:
        m = _QUANTILE_NAME.fullmatch(n)
        if m is None:
            raise ValueError(f"not a quantile output name: {n!r}")
        parsed.append((m["target"], float(m["q"])))
    targets = tuple(dict.fromkeys(t for t, _ in parsed))
    quantiles = tuple(q for t, q in parsed if t == targets[0])
    if quantile_names(targets, quantiles) != tuple(quantile_name(t, q) for t, q in parsed):
        raise ValueError(f"quantile outputs are not target-major over one set of quantiles: {list(names)}")
    return targets, quantiles


def classifier_scores(probabilities: np.ndarray, task: str, output_names: Sequence[str]) -> np.ndarray:
    """One P(Splice-altering)-like score per row of a model's predictions.

    delta: the largest predicted delta score; binary and multitask: the binary head's probability;
    effect_type: 1 - P(normal); quantile: the largest median (quantile nearest 0.5) delta score;
    localisation: none (NaN: it predicts where, not whether).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if task in ("delta", "binary"):
        return p.max(axis=1)
    if task == "effect_type":
        return 1.0 - p[:, NORMAL]
    if task == "multitask":
        return p[:, head_slices(task, output_names)["binary"]][:, 0]
    if task == "quantile":
        targets, quantiles = parse_quantiles(output_names)
        return p.reshape(len(p), len(targets), len(quantiles))[:, :, median_index(quantiles)].max(axis=1)
    if task == "localisation":
        return np.full(len(p), np.nan)
    raise ValueError(f"unknown task {task!r}")


def option(config: Any, name: str, default: Any) -> Any:
    """Field ``name`` of a model config (dataclass or mapping), ``default`` when it has none."""
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


# --------------------------------------------------------------------------------------------
# from the files


def score_arrays(scores: Any, positions: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(DS (N, 4), DP (N, 4) or None) as float64 from a scores.parquet table; missing DP -> NaN."""
    missing = [c for c in DS_COLUMNS + (DP_COLUMNS if positions else ()) if c not in scores.columns]
    if missing:
        raise ValueError(f"scores table lacks columns {missing}; rerun the base model scoring")
    ds = scores[list(DS_COLUMNS)].to_numpy(dtype=np.float64, na_value=np.nan)
    if not positions:
        return ds, None
    return ds, scores[list(DP_COLUMNS)].to_numpy(dtype=np.float64, na_value=np.nan)


def config_effect_labels(scores: Any, label: np.ndarray, config: Any) -> np.ndarray:
    """:func:`effect_labels` of a scores table with a model config's ``complex_fraction`` and
    ``min_effect_score``."""
    ds, _ = score_arrays(scores)
    return effect_labels(
        ds,
        label,
        float(option(config, "complex_fraction", DEFAULT_COMPLEX_FRACTION)),
        float(option(config, "min_effect_score", DEFAULT_MIN_EFFECT_SCORE)),
    )


def config_localisation_targets(
    scores: Any, label: np.ndarray, strand: np.ndarray | None, strand_oriented: bool, config: Any
) -> np.ndarray:
    """:func:`localisation_targets` of a scores table with a model config's ``distance`` and
    ``min_effect_score``."""
    ds, dp = score_arrays(scores, positions=True)
    return localisation_targets(
        ds,
        dp,
        label,
        strand,
        strand_oriented,
        int(option(config, "distance", DEFAULT_DISTANCE)),
        float(option(config, "min_effect_score", DEFAULT_MIN_EFFECT_SCORE)),
    )
