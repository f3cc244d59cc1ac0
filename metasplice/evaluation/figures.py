"""The comparison figures of the report: one question each, drawn from scored rows (no model is run here).

- headline: does any meta-model beat the best base model? ROC and precision-recall curves of the base
  models (dashed), the stacked model and the best other meta-model (chosen on its validation ROC-AUC),
  each legend entry with its 95% interval; cross-validated rows in a second row of panels, pooled
  out-of-fold curves with the per-fold spread shaded.
- families (ROC or PR): small multiples, one panel per experiment family (delta regressors, binary
  classifiers, foundation models, multi-step tasks, ensembles and stacking, each sweep), the base models
  in every panel, at most :data:`MAX_CURVES` curves per panel and no colour used twice in a panel.
- forest: ROC-AUC with its 95% interval of every row, sorted, the best base model's value as a vertical
  line (cross-validated rows in their own panel, with each fold's value).

Rows come as :class:`CurveRow` (built by :mod:`metasplice.evaluation.report` from metrics.json and
predictions.parquet). Base models are told apart by their kind, never by their name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

from metasplice.evaluation.formatting import fmt
from metasplice.io import atomic_output

MAX_CURVES = 6  # curves per panel, base models included
DPI = 110
# the families of the small multiples, in panel order (a sweep gets a panel of its own after these)
FAMILIES: tuple[str, ...] = (
    "delta regressors",
    "binary classifiers",
    "foundation models",
    "multi-step tasks",
    "ensembles and stacking",
)
SWEEP_FAMILY = "sweep {}"
BASE_STYLES: tuple[dict, ...] = (  # base models: dashed, grey shades, never a colour of the meta-models
    {"color": "black", "linestyle": (0, (5, 2))},
    {"color": "0.45", "linestyle": (0, (2, 1.5))},
    {"color": "0.7", "linestyle": (0, (6, 2, 1, 2))},
)
# meta-model colours (tab10 without its grey): distinct within a panel
PALETTE: tuple[str, ...] = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")
STACKED_COLOR, BEST_COLOR = "C3", "C0"  # the headline's two meta-models
GRID = np.linspace(0.0, 1.0, 201)  # where per-fold curves are interpolated for their spread


@dataclass(frozen=True)
class CurveRow:
    """One scored row of the report: its labelled test variants and headline metrics.

    ``kind``: baseline | experiment | ensemble | stacked (metrics.json); ``family``: a name of FAMILIES or a
    sweep's; ``roc_auc`` / ``pr_auc``: estimate, low, high; ``fold``: the fold of each pooled test variant of a
    cross-validated row; ``val_auroc``: ROC-AUC on the validation split, where the row has validation scores.
    """

    label: str
    kind: str
    family: str
    y: np.ndarray
    score: np.ndarray
    roc_auc: Mapping[str, float | None]
    pr_auc: Mapping[str, float | None]
    cv: bool = False
    fold: np.ndarray | None = None
    val_auroc: float | None = None
    fold_roc_auc: Sequence[float] = field(default_factory=tuple)

    @property
    def is_baseline(self) -> bool:
        return self.kind == "baseline"

    @property
    def n(self) -> int:
        return int(self.y.size)

    @property
    def n_pos(self) -> int:
        return int((self.y == 1).sum())


def family_of(metrics: Mapping, sweep_of: Mapping[str, str]) -> str:
    """The small-multiples family of an evaluated row (metrics.json content); ``sweep_of``: experiment ->
    the sweep it is a child of."""
    kind = metrics.get("kind", "")
    if kind == "baseline":
        return "base models"
    experiment = str(metrics.get("experiment") or metrics.get("name") or "")
    if experiment in sweep_of:
        return SWEEP_FAMILY.format(sweep_of[experiment])
    if kind in ("ensemble", "stacked"):
        return "ensembles and stacking"
    if metrics.get("architecture") == "hf_encoder":
        return "foundation models"
    task = metrics.get("task")
    if task == "binary":
        return "binary classifiers"
    if task in ("delta", "quantile"):
        return "delta regressors"
    return "multi-step tasks"


def validation_auroc(y: np.ndarray, score: np.ndarray) -> float | None:
    """ROC-AUC of validation scores (None without both classes)."""
    ok = np.isfinite(score)
    y, score = y[ok], score[ok]
    if y.size == 0 or len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, score))


# --------------------------------------------------------------------------------------------
# which rows


def _estimate(row: CurveRow, metric: str = "roc_auc") -> float:
    v = getattr(row, metric).get("estimate")
    return float(v) if v is not None and math.isfinite(float(v)) else -math.inf


def best_base(rows: Sequence[CurveRow]) -> CurveRow | None:
    """The base model with the highest ROC-AUC: the row to beat."""
    bases = [r for r in rows if r.is_baseline and _estimate(r) > -math.inf]
    return max(bases, key=_estimate) if bases else None


def headline_rows(rows: Sequence[CurveRow]) -> list[CurveRow]:
    """Base models, the best stacked model and the best other meta-model (highest validation ROC-AUC;
    test ROC-AUC where no row has validation scores, as for pooled cross-validated rows)."""
    bases = [r for r in rows if r.is_baseline]
    stacked = [r for r in rows if r.kind == "stacked"]
    others = [r for r in rows if not r.is_baseline and r.kind != "stacked"]
    chosen = list(bases)
    if stacked:
        chosen.append(max(stacked, key=_choice_key))
    if others:
        chosen.append(max(others, key=_choice_key))
    return chosen


def _choice_key(row: CurveRow) -> tuple[float, float]:
    val = row.val_auroc if row.val_auroc is not None else -math.inf
    return (val, _estimate(row))


def family_panels(rows: Sequence[CurveRow]) -> list[tuple[str, list[CurveRow]]]:
    """Panels of the small multiples: per family (FAMILIES order, then the sweeps), the base models
    and at most MAX_CURVES - (number of base models) meta-models; a larger family fills several panels."""
    bases = [r for r in rows if r.is_baseline][: len(BASE_STYLES)]
    room = max(1, MAX_CURVES - len(bases))
    families: dict[str, list[CurveRow]] = {}
    for r in rows:
        if not r.is_baseline:
            families.setdefault(r.family, []).append(r)
    order = [f for f in FAMILIES if f in families] + sorted(f for f in families if f not in FAMILIES)
    panels = []
    for fam in order:
        members = families[fam]
        chunks = [members[i : i + room] for i in range(0, len(members), room)]
        for j, chunk in enumerate(chunks):
            title = fam if len(chunks) == 1 else f"{fam} ({j + 1}/{len(chunks)})"
            panels.append((title, [*bases, *chunk]))
    return panels


# --------------------------------------------------------------------------------------------
# drawing


def _styles(members: Sequence[CurveRow], fixed: Mapping[int, str] | None = None) -> list[dict]:
    """Line style of each row of a panel: base models dashed greys, meta-models distinct colours."""
    styles, used = [], set((fixed or {}).values())
    free = [c for c in PALETTE if c not in used]
    b = 0
    for i, r in enumerate(members):
        if r.is_baseline:
            styles.append({**BASE_STYLES[b % len(BASE_STYLES)], "linewidth": 1.8})
            b += 1
        elif fixed and i in fixed:
            styles.append({"color": fixed[i], "linestyle": "-", "linewidth": 2.0})
        else:
            styles.append({"color": free.pop(0) if free else "C7", "linestyle": "-", "linewidth": 1.6})
    return styles


def _ci_text(iv: Mapping[str, float | None]) -> str:
    return f"{fmt(iv.get('estimate'))} [{fmt(iv.get('low'))}, {fmt(iv.get('high'))}]"


def legend_text(row: CurveRow, kind: str) -> str:
    """``label  AUC 0.912 [0.890, 0.931]`` (ROC) or ``AP ...`` (PR), with the fold range of a CV row."""
    metric = "AUC" if kind == "roc" else "AP"
    text = f"{row.label}  {metric} {_ci_text(row.roc_auc if kind == 'roc' else row.pr_auc)}"
    if row.cv and kind == "roc" and row.fold_roc_auc:
        text += f"; folds {fmt(min(row.fold_roc_auc), 2)}–{fmt(max(row.fold_roc_auc), 2)}"
    return text


def _curve(y: np.ndarray, s: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """x, y of a ROC (fpr, tpr) or PR (recall, precision) curve."""
    if kind == "roc":
        fpr, tpr, _ = roc_curve(y, s)
        return fpr, tpr
    precision, recall, _ = precision_recall_curve(y, s)
    return recall[::-1], precision[::-1]


def fold_band(row: CurveRow, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Lowest and highest per-fold curve on GRID (TPR at each FPR, or interpolated precision at each
    recall): the per-fold spread of a pooled cross-validated curve; None without two scorable folds."""
    if row.fold is None:
        return None
    curves = []
    for k in np.unique(row.fold):
        m = row.fold == k
        if len(np.unique(row.y[m])) < 2:
            continue
        x, v = _curve(row.y[m], row.score[m], kind)
        if kind == "roc":
            curves.append(np.interp(GRID, x, v))
        else:  # interpolated precision: the best precision at this recall or above
            best = np.maximum.accumulate(v[::-1])[::-1]
            idx = np.clip(np.searchsorted(x, GRID, side="left"), 0, len(x) - 1)
            curves.append(best[idx])
    if len(curves) < 2:
        return None
    stack = np.vstack(curves)
    return stack.min(axis=0), stack.max(axis=0)


def draw_curves(
    ax: plt.Axes, members: Sequence[CurveRow], kind: str, styles: Sequence[dict], band: bool = False
) -> None:
    """One panel: every member's curve with its legend entry (and, with ``band``, its per-fold spread)."""
    for row, style in zip(members, styles):
        if len(np.unique(row.y)) < 2:
            continue
        x, v = _curve(row.y, row.score, kind)
        if kind == "roc":
            ax.plot(x, v, label=legend_text(row, kind), **style)
        else:
            ax.step(x, v, where="pre", label=legend_text(row, kind), **style)
        spread = fold_band(row, kind) if band else None
        if spread is not None:
            ax.fill_between(GRID, *spread, color=style["color"], alpha=0.12, linewidth=0)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="0.85", linewidth=0.8, zorder=0)
        ax.set(xlabel="false-positive rate", ylabel="detection rate (TPR)")
    else:
        ax.set(xlabel="recall (detection rate)", ylabel="precision")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, loc="lower right" if kind == "roc" else "lower left", framealpha=0.9)


def _n_text(rows: Sequence[CurveRow]) -> str:
    r = rows[0]
    return f"n = {r.n}, {r.n_pos} Splice-altering"


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def empty_panel(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def panel_grid(n: int, size: tuple[float, float], empty: str, max_cols: int = 2) -> tuple[plt.Figure, np.ndarray]:
    """A figure of ``n`` panels of ``size`` inches (at most ``max_cols`` a row; axes as a 2-D array);
    with no panel, one that says ``empty``."""
    ncol = max(1, min(max_cols, n))
    nrow = max(1, math.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(size[0] * ncol, size[1] * nrow), squeeze=False)
    if not n:
        empty_panel(axes[0, 0], empty)
    return fig, axes


def _evaluations(rows: Sequence[CurveRow]) -> list[tuple[str, list[CurveRow]]]:
    """Test-split rows, then cross-validated rows (when there are any)."""
    out = [("test split", [r for r in rows if not r.cv])]
    if any(r.cv for r in rows):
        out.append(("cross-validation, pooled out-of-fold", [r for r in rows if r.cv]))
    return [(w, members) for w, members in out if members]


def plot_headline(rows: Sequence[CurveRow], path: str | os.PathLike) -> plt.Figure:
    """ROC (left) and PR (right) of the base models, the stacked model and the best other meta-model;
    one row of panels per evaluation (test split; cross-validation with the per-fold spread)."""
    evaluations = _evaluations(rows) or [("test split", [])]
    fig, axes = plt.subplots(len(evaluations), 2, figsize=(13, 5.6 * len(evaluations)), squeeze=False)
    for (where, members), pair in zip(evaluations, axes):
        chosen = headline_rows(members)
        if not chosen:
            empty_panel(pair[0], "no scored rows")
            pair[1].set_axis_off()
            continue
        fixed = {
            i: STACKED_COLOR if r.kind == "stacked" else BEST_COLOR for i, r in enumerate(chosen) if not r.is_baseline
        }
        styles = _styles(chosen, fixed)
        for ax, kind, name in ((pair[0], "roc", "ROC"), (pair[1], "pr", "Precision-recall")):
            draw_curves(ax, chosen, kind, styles, band=where.startswith("cross"))
            ax.set_title(f"{name}, {where} ({_n_text(chosen)})", fontsize=10)
    best = best_base(rows)
    if best is not None:
        fig.suptitle(f"Does a meta-model beat the best base model ({best.label})?", fontsize=12)
    _save(fig, path)
    return fig


def plot_families(rows: Sequence[CurveRow], kind: str, path: str | os.PathLike) -> plt.Figure:
    """Small multiples of ROC (``kind='roc'``) or PR (``'pr'``) curves: one panel per family and
    evaluation, the base models (dashed) in each."""
    panels = []
    for where, members in _evaluations(rows):
        suffix = "" if where == "test split" else ", CV pooled"
        panels += [(f"{title}{suffix}", m) for title, m in family_panels(members)]
    fig, axes = panel_grid(len(panels), (6.5, 5.2), "no meta-models")
    for ax, (title, members) in zip(axes.ravel(), panels):
        draw_curves(ax, members, kind, _styles(members))
        ax.set_title(f"{title} ({_n_text(members)})", fontsize=10)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    _save(fig, path)
    return fig


def plot_forest(rows: Sequence[CurveRow], path: str | os.PathLike) -> plt.Figure:
    """ROC-AUC with its 95% interval for every row, sorted (best at the top), base models in black; the
    vertical line is the best base model's ROC-AUC. Cross-validated rows: own panel, fold values as dots."""
    evaluations = [(w, [r for r in m if _estimate(r) > -math.inf]) for w, m in _evaluations(rows)]
    evaluations = [(w, m) for w, m in evaluations if m] or [("test split", [])]
    height = max(len(m) for _, m in evaluations)
    fig, axes = plt.subplots(
        1, len(evaluations), figsize=(7.5 * len(evaluations), 1.2 + 0.32 * max(height, 4)), squeeze=False
    )
    for ax, (where, members) in zip(axes[0], evaluations):
        if not members:
            empty_panel(ax, "no ROC-AUC")
            continue
        members = sorted(members, key=_estimate)
        est = np.array([_estimate(r) for r in members])
        low = np.array([r.roc_auc.get("low") if r.roc_auc.get("low") is not None else np.nan for r in members])
        high = np.array([r.roc_auc.get("high") if r.roc_auc.get("high") is not None else np.nan for r in members])
        pos = np.arange(len(members))
        colors = ["black" if r.is_baseline else "C0" for r in members]
        ax.hlines(pos, np.where(np.isfinite(low), low, est), np.where(np.isfinite(high), high, est), colors=colors)
        ax.scatter(est, pos, c=colors, marker="s", s=28, zorder=3)
        for i, r in enumerate(members):
            if r.fold_roc_auc:
                ax.scatter(r.fold_roc_auc, [i] * len(r.fold_roc_auc), color="0.4", s=60, marker="|", zorder=2)
        best = best_base(members)
        if best is not None:
            ax.axvline(_estimate(best), color="black", linestyle="--", linewidth=1.0)
            ax.text(
                _estimate(best),
                len(members) - 0.4,
                f" best base model: {best.label} {fmt(_estimate(best))}",
                fontsize=8,
                va="bottom",
            )
        ax.set_yticks(pos, [r.label for r in members], fontsize=8)
        for tick, r in zip(ax.get_yticklabels(), members):
            if r.is_baseline:
                tick.set_fontweight("bold")
        lo = np.nanmin(np.concatenate([low, est, *[np.asarray(r.fold_roc_auc) for r in members]]))
        ax.set_xlim(max(0.0, lo - 0.05), 1.0)
        ax.set_ylim(-0.7, len(members) + 0.3)
        ax.set(xlabel="ROC-AUC (95% bootstrap interval)")
        ax.set_title(f"ROC-AUC, {where} ({_n_text(members)})", fontsize=10)
        ax.grid(axis="x", alpha=0.25)
    _save(fig, path)
    return fig
