"""Result tables and figures from evaluated predictions (no model is run here).

Input per row of the table: a metrics.json and predictions.parquet from :mod:`metasplice.evaluate`
(or :mod:`metasplice.crossval`), plus the training history.tsv for trained experiments.
Outputs: ``summary.tsv`` (every number with its interval bounds), ``summary.md`` (the readable
tables) and PNG figures (matplotlib, Agg backend): ROC and PR curves of every row, training curves,
predicted vs target delta scores of the delta models, and per-region bars.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from metasplice.evaluate import REGION_ORDER, read_json  # noqa: E402
from metasplice.io import atomic_output, write_tsv  # noqa: E402

log = logging.getLogger(__name__)

FIGURES: tuple[str, ...] = ("roc", "pr", "training", "scatter", "regions")


@dataclass(frozen=True)
class Entry:
    """One row of the report: its metrics, predictions and (trained experiments) history."""

    name: str
    metrics: str | os.PathLike
    predictions: str | os.PathLike
    history: str | os.PathLike | None = None


@dataclass
class _Loaded:
    entry: Entry
    metrics: dict
    predictions: pd.DataFrame
    history: pd.DataFrame | None

    @property
    def is_baseline(self) -> bool:
        return self.metrics.get("kind") == "baseline"

    @property
    def label(self) -> str:
        return self.entry.name


def _load(entry: Entry) -> _Loaded:
    metrics = read_json(entry.metrics)
    pred = pd.read_parquet(entry.predictions)
    history = None
    if entry.history is not None:
        history = pd.read_csv(entry.history, sep="\t")
        if "epoch" not in history.columns:
            raise ValueError(f"{entry.history}: no 'epoch' column; is it a training history?")
    return _Loaded(entry, metrics, pred, history)


# --------------------------------------------------------------------------------------------
# tables


def training_summary(history: pd.DataFrame | None) -> dict[str, Any]:
    """Stopped epoch (last epoch run), best epoch (last row flagged ``best``) and training seconds."""
    if history is None or history.empty:
        return {"stopped_epoch": None, "best_epoch": None, "training_time_s": None}
    best = None
    if "best" in history.columns:
        flagged = history["best"].astype(str).str.lower().isin(("true", "1"))
        if flagged.any():
            best = int(history.loc[flagged, "epoch"].iloc[-1])
    seconds = float(history["seconds"].sum()) if "seconds" in history.columns else None
    return {"stopped_epoch": int(history["epoch"].max()), "best_epoch": best, "training_time_s": seconds}


def _get(d: Mapping | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _interval_columns(prefix: str, iv: Mapping | None) -> dict[str, Any]:
    return {prefix: _get(iv, "estimate"), f"{prefix}_low": _get(iv, "low"), f"{prefix}_high": _get(iv, "high")}


def summary_row(item: _Loaded) -> dict[str, Any]:
    """One summary.tsv row."""
    m = item.metrics
    mt = m.get("metrics", {})
    n_test = _get(m, "n", "test") or {}
    row: dict[str, Any] = {
        "experiment": item.label,
        "kind": m.get("kind", ""),
        "evaluation": m.get("evaluation", "test split"),
        "task": m.get("task", ""),
        "n_test": n_test.get("scored"),
        "n_splice_altering": n_test.get("positive_scored"),
        "n_normal": n_test.get("negative_scored"),
        "n_unscored": n_test.get("unscored"),
    }
    row.update(_interval_columns("correlation", _get(m, "correlation", "max")))
    row["correlation_n"] = _get(m, "correlation", "n")
    row.update(_interval_columns("roc_auc", mt.get("roc_auc")))
    row.update(_interval_columns("pr_auc", mt.get("pr_auc")))
    row["val_threshold"] = _get(m, "threshold", "threshold")
    for key, tag in (("at_val_threshold", "val_threshold"), ("at_fixed_threshold", "fixed_threshold")):
        for metric in ("f1", "detection_rate", "fpr"):
            row.update(_interval_columns(f"{metric}_{tag}", _get(mt, key, metric)))
    cm = m.get("confusion_matrix") or {}
    for k in ("tn", "fp", "fn", "tp"):
        row[f"cm_{k}"] = cm.get(k)
    row.update(training_summary(item.history))
    comp = m.get("comparison")
    row["compared_with"] = _get(comp, "reference")
    row["comparison_n"] = _get(comp, "n")
    row["roc_auc_difference"] = _get(comp, "roc_auc", "difference")
    row["roc_auc_difference_low"] = _get(comp, "roc_auc", "low")
    row["roc_auc_difference_high"] = _get(comp, "roc_auc", "high")
    row["p_roc_auc_bootstrap"] = _get(comp, "roc_auc", "p_value")
    row["comparison_n_boot"] = _get(comp, "roc_auc", "n_boot")
    row["p_roc_auc_delong"] = _get(comp, "roc_auc_delong", "p_value")
    row["pr_auc_difference"] = _get(comp, "pr_auc", "difference")
    row["p_pr_auc_bootstrap"] = _get(comp, "pr_auc", "p_value")
    return row


def summary_table(items: Sequence[_Loaded]) -> pd.DataFrame:
    return pd.DataFrame([summary_row(i) for i in items])


def region_table(items: Sequence[_Loaded], column: str = "region") -> pd.DataFrame:
    """Long table of the breakdown cells: experiment, group, n, n per class, ROC-AUC and detection rate."""
    rows = []
    for item in items:
        for cell in _get(item.metrics, "breakdowns", column) or []:
            rows.append({
                "experiment": item.label,
                column: cell["group"],
                "n": cell["n"],
                "n_splice_altering": cell["n_positive"],
                "n_normal": cell["n_negative"],
                **_interval_columns("roc_auc", cell.get("roc_auc")),
                **_interval_columns("detection_rate_val_threshold", _get(cell, "at_val_threshold", "detection_rate")),
                **_interval_columns("fpr_val_threshold", _get(cell, "at_val_threshold", "fpr")),
            })
    return pd.DataFrame(rows)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.{digits}f}"


def _n(v: Any) -> str:
    """A count (tables turn integer columns with gaps into floats)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return str(int(round(float(v))))


def _ci(row: Mapping, prefix: str) -> str:
    est = row.get(prefix)
    if est is None or (isinstance(est, float) and not math.isfinite(est)):
        return "–"
    return f"{_fmt(est)} [{_fmt(row.get(prefix + '_low'))}, {_fmt(row.get(prefix + '_high'))}]"


def _p(v: Any, n_boot: Any = None) -> str:
    """A p-value; a bootstrap p at its resolution floor 2/(B+1) is shown as an upper bound."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    text = f"{v:.2g}" if v >= 1e-3 else f"{v:.1e}"
    if n_boot is not None and not (isinstance(n_boot, float) and not math.isfinite(n_boot)):
        if v <= 2.0 / (float(n_boot) + 1.0) + 1e-12:
            return f"≤{text}"
    return text


def _duration(s: Any) -> str:
    if s is None or (isinstance(s, float) and not math.isfinite(s)):
        return "–"
    s = float(s)
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def markdown(summary: pd.DataFrame, regions: pd.DataFrame, types: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    """summary.md text."""
    records = summary.astype(object).where(summary.notna(), None).to_dict("records")
    reference = meta.get("reference", "spliceai")
    main = []
    for r in records:
        p = "–" if r["compared_with"] is None else (
            f"{_p(r['p_roc_auc_bootstrap'], r['comparison_n_boot'])} / {_p(r['p_roc_auc_delong'])}")
        main.append([
            r["experiment"], r["task"], _ci(r, "correlation"), _ci(r, "roc_auc"), _ci(r, "pr_auc"),
            _ci(r, "f1_val_threshold"), _ci(r, "detection_rate_val_threshold"), _ci(r, "fpr_val_threshold"),
            _n(r["stopped_epoch"]), _duration(r["training_time_s"]),
            f"{_n(r['n_test'])} ({_n(r['n_splice_altering'])}/{_n(r['n_normal'])})", p,
        ])
    fixed = [[r["experiment"], _ci(r, "f1_fixed_threshold"), _ci(r, "detection_rate_fixed_threshold"),
              _ci(r, "fpr_fixed_threshold"), _fmt(r["val_threshold"])] for r in records]
    comp = [[r["experiment"], r["compared_with"], _n(r["comparison_n"]), _ci(r, "roc_auc_difference"),
             _p(r["p_roc_auc_bootstrap"], r["comparison_n_boot"]), _p(r["p_roc_auc_delong"]),
             _fmt(r["pr_auc_difference"]), _p(r["p_pr_auc_bootstrap"], r["comparison_n_boot"])]
            for r in records if r["compared_with"] is not None]
    level = int(round(100 * float(meta.get("level", 0.95))))
    parts = [
        "# metasplice results",
        "",
        f"Test set: {meta.get('test_description', 'held-out test split')}. Values are point estimates with "
        f"{level}% percentile-bootstrap intervals ({meta.get('n_boot', '?')} resamples of the test variants, "
        f"seed {meta.get('seed', '?')}). Decision thresholds are chosen on the validation split (maximum F1) "
        f"and applied unchanged to the test split. Baseline rows score each variant by "
        f"max(DS_AG, DS_AL, DS_DG, DS_DL) of the base model, without training. The p-values compare each row "
        f"with the {reference} baseline on the same variants (paired bootstrap / DeLong, ROC-AUC).",
        "",
        *(["Rows marked (CV) pool the test predictions of the leave-one-chromosome-group-out cross-validation "
           "folds (each labelled variant tested once, by the fold that did not train or validate on it); their "
           "calls use each fold's own validation threshold.", ""]
          if any(r.get("evaluation") == "cross-validation" for r in records) else []),
        "## Summary",
        "",
        _md_table(["experiment", "task", "correlation (r)", "ROC-AUC", "PR-AUC", "F1 @ val thr",
                   "detection @ val thr", "FPR @ val thr", "stopped epoch", "training time",
                   "n (SA/Normal)", f"p vs {reference} (bootstrap / DeLong)"], main),
        "",
        f"## At the fixed threshold (score > {meta.get('fixed_threshold', 0.1)})",
        "",
        _md_table(["experiment", "F1", "detection rate", "FPR", "val-chosen threshold"], fixed),
        "",
        f"## Paired comparison with {reference}",
        "",
        _md_table(["experiment", "reference", "n", "Δ ROC-AUC [CI]", "p (bootstrap)", "p (DeLong)", "Δ PR-AUC",
                   "p (bootstrap)"], comp) if comp else "No comparisons (no reference baseline).",
        "",
    ]
    for title, table, col in (("By region", regions, "region"), ("By variant type", types, "variant_type")):
        parts += [f"## {title}", ""]
        if table.empty:
            parts += ["No breakdown available.", ""]
            continue
        recs = table.astype(object).where(table.notna(), None).to_dict("records")
        parts += [_md_table(
            ["experiment", col, "n (SA/Normal)", "ROC-AUC", "detection @ val thr", "FPR @ val thr"],
            [[r["experiment"], r[col], f"{_n(r['n'])} ({_n(r['n_splice_altering'])}/{_n(r['n_normal'])})",
              _ci(r, "roc_auc"), _ci(r, "detection_rate_val_threshold"), _ci(r, "fpr_val_threshold")]
             for r in recs]), ""]
    parts += ["Columns of summary.tsv hold every value with its `_low`/`_high` interval bounds; "
              "'–' marks a value that is undefined (e.g. a single class in a cell) or does not apply.", ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# figures


def _test_arrays(pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    part = pred[(pred["split"].astype(str) == "test") & pred["label"].isin((0, 1))]
    s = part["score"].to_numpy(np.float64)
    ok = np.isfinite(s)
    return part["label"].to_numpy()[ok].astype(int), s[ok]


def _style(item: _Loaded, i: int) -> dict:
    if item.is_baseline:
        return {"color": "black" if i == 0 else "dimgray", "linestyle": "--" if i == 0 else ":", "linewidth": 1.6}
    return {"linewidth": 1.4}


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _empty(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _is_cv(item: _Loaded) -> bool:
    return item.metrics.get("evaluation") == "cross-validation"


def plot_curves(items: Sequence[_Loaded], kind: str, path: str | os.PathLike) -> None:
    """ROC (``kind='roc'``) or precision-recall (``'pr'``) curves of every row on the test split;
    cross-validated rows (pooled folds) in a second panel."""
    panels = [("test split", [it for it in items if not _is_cv(it)])]
    if any(_is_cv(it) for it in items):
        panels.append(("cross-validation, pooled folds", [it for it in items if _is_cv(it)]))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.5), squeeze=False)
    for ax, (where, members) in zip(axes[0], panels):
        baselines = [it for it in members if it.is_baseline]
        others = [it for it in members if not it.is_baseline]
        for item in members:
            y, s = _test_arrays(item.predictions)
            if len(np.unique(y)) < 2:
                continue
            if item.is_baseline:
                style = _style(item, baselines.index(item))
            else:
                style = {"linewidth": 1.4, "color": f"C{others.index(item) % 10}"}
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y, s)
                value = _get(item.metrics, "metrics", "roc_auc", "estimate")
                ax.plot(fpr, tpr, label=f"{item.label} (AUC {_fmt(value)})", **style)
            else:
                precision, recall, _ = precision_recall_curve(y, s)
                value = _get(item.metrics, "metrics", "pr_auc", "estimate")
                ax.step(recall, precision, where="post", label=f"{item.label} (AP {_fmt(value)})", **style)
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="lightgray", linewidth=0.8)
            ax.set(xlabel="false-positive rate", ylabel="detection rate (TPR)", title=f"ROC, {where}")
        else:
            ax.set(xlabel="recall (detection rate)", ylabel="precision", title=f"Precision-recall, {where}")
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
    _save(fig, path)


def plot_training(items: Sequence[_Loaded], path: str | os.PathLike) -> None:
    """Training and validation loss, and validation AUROC, per epoch of every trained experiment."""
    trained = [it for it in items if it.history is not None and not it.history.empty]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    if not trained:
        _empty(axes[0], "no training histories")
        axes[1].set_axis_off()
    for i, item in enumerate(trained):
        h = item.history
        color = f"C{i % 10}"
        if "train_loss" in h:
            axes[0].plot(h["epoch"], h["train_loss"], color=color, linestyle="--", label=f"{item.label} train")
        if "val_loss" in h:
            axes[0].plot(h["epoch"], h["val_loss"], color=color, label=f"{item.label} val")
        if "val_auroc" in h:
            axes[1].plot(h["epoch"], h["val_auroc"], color=color, marker="o", markersize=3, label=item.label)
        best = training_summary(h)["best_epoch"]
        if best is not None:
            axes[0].axvline(best, color=color, linewidth=0.6, alpha=0.5)
    if trained:
        axes[0].set(xlabel="epoch", ylabel="loss", title="Loss (vertical line: restored epoch)")
        axes[1].set(xlabel="epoch", ylabel="ROC-AUC", title="Validation ROC-AUC")
        axes[0].legend(fontsize=7)
        axes[1].legend(fontsize=7)
    _save(fig, path)


def plot_scatter(items: Sequence[_Loaded], path: str | os.PathLike) -> None:
    """Predicted vs target max delta score of Splice-altering test variants, one panel per delta model."""
    delta = []
    for item in items:
        pred = item.predictions
        names = [c[5:] for c in pred.columns if c.startswith("pred_") and f"target_{c[5:]}" in pred.columns]
        if names and not item.is_baseline:
            delta.append((item, names))
    ncol = max(1, min(3, len(delta)))
    nrow = max(1, math.ceil(len(delta) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 4.0 * nrow), squeeze=False)
    if not delta:
        _empty(axes[0, 0], "no delta models")
    for ax, (item, names) in zip(axes.ravel(), delta):
        part = item.predictions
        part = part[(part["split"].astype(str) == "test") & (part["label"] == 1)]
        p = part[[f"pred_{n}" for n in names]].to_numpy(np.float64).max(axis=1)
        t = part[[f"target_{n}" for n in names]].to_numpy(np.float64).max(axis=1)
        ok = np.isfinite(p) & np.isfinite(t)
        ax.scatter(t[ok], p[ok], s=6, alpha=0.5)
        ax.plot([0, 1], [0, 1], color="gray", linewidth=0.8)
        r = _get(item.metrics, "correlation", "max", "estimate")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="target max DS", ylabel="predicted max DS",
               title=f"{item.label}: r = {_fmt(r)} (n = {int(ok.sum())})")
    for ax in axes.ravel()[len(delta):]:
        if delta:
            ax.set_axis_off()
    _save(fig, path)


def plot_regions(items: Sequence[_Loaded], path: str | os.PathLike) -> None:
    """Bars per region: ROC-AUC and detection rate at the validation threshold, with intervals and n
    (test-split rows; the cross-validated cells are in the tables)."""
    items = [it for it in items if not _is_cv(it)]
    regions = region_table(items, "region")
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 1.6 * len(REGION_ORDER) + 0.4 * len(items)), 8))
    if regions.empty:
        _empty(axes[0], "no region breakdown")
        axes[1].set_axis_off()
        _save(fig, path)
        return
    groups = [g for g in REGION_ORDER if g in set(regions["region"])] + sorted(
        set(regions["region"]) - set(REGION_ORDER))
    names = list(dict.fromkeys(regions["experiment"]))
    baseline_names = [it.label for it in items if it.is_baseline]
    others = [n for n in names if n not in baseline_names]
    colors = {n: ("0.2", "0.5", "0.7")[i % 3] for i, n in enumerate(b for b in names if b in baseline_names)}
    colors.update({n: f"C{i % 10}" for i, n in enumerate(others)})  # as in the ROC / PR figures
    width = 0.8 / max(1, len(names))
    x = np.arange(len(groups))
    for ax, metric, title in ((axes[0], "roc_auc", "ROC-AUC"),
                              (axes[1], "detection_rate_val_threshold", "detection rate at the validation threshold")):
        for j, name in enumerate(names):
            sub = regions[regions["experiment"] == name].set_index("region").reindex(groups)
            est = sub[metric].astype(float).to_numpy()
            low = sub[f"{metric}_low"].astype(float).to_numpy()
            high = sub[f"{metric}_high"].astype(float).to_numpy()
            err = np.vstack([np.nan_to_num(est - low), np.nan_to_num(high - est)])
            pos = x - 0.4 + width * (j + 0.5)
            ax.bar(pos, np.nan_to_num(est), width, yerr=err, capsize=2, label=name, color=colors[name])
            if ax is axes[0]:  # n (Splice-altering) of each cell under its bar
                for xp, n, n_sa in zip(pos, sub["n"], sub["n_splice_altering"]):
                    ax.text(xp, 0.02, f"{_n(n)} ({_n(n_sa)})", rotation=90, ha="center", va="bottom", fontsize=6,
                            color="white" if name in baseline_names else "black")
        ax.set_xticks(x, groups)
        ax.set(ylim=(0, 1.05), ylabel=title, title=f"{title} by region (test split)")
    axes[0].text(1.0, -0.12, "in bars: n (Splice-altering)", transform=axes[0].transAxes, ha="right", fontsize=7)
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


# --------------------------------------------------------------------------------------------
# entry point


def build_report(
    entries: Sequence[Entry],
    summary_md: str | os.PathLike,
    summary_tsv: str | os.PathLike,
    figures: Mapping[str, str | os.PathLike],
    regions_tsv: str | os.PathLike | None = None,
    meta: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Write the summary tables and figures (``figures`` maps each name of FIGURES to a PNG path)."""
    missing = [f for f in FIGURES if f not in figures]
    if missing:
        raise ValueError(f"figure paths missing for {missing}")
    if not entries:
        raise ValueError("nothing to report: no evaluated experiments or baselines")
    items = [_load(e) for e in entries]
    # test-split rows before cross-validated ones, baseline rows first in each; otherwise as given
    items.sort(key=lambda it: (_is_cv(it), not it.is_baseline))
    meta = dict(meta or {})
    first = items[0].metrics
    meta.setdefault("n_boot", _get(first, "bootstrap", "n"))
    meta.setdefault("seed", _get(first, "bootstrap", "seed"))
    meta.setdefault("level", _get(first, "bootstrap", "level") or 0.95)
    meta.setdefault("fixed_threshold", _get(first, "fixed_threshold", "threshold"))
    summary = summary_table(items)
    regions = region_table(items, "region")
    types = region_table(items, "variant_type")
    write_tsv(summary, summary_tsv)
    if regions_tsv is not None:
        write_tsv(pd.concat([regions.assign(breakdown="region").rename(columns={"region": "group"}),
                             types.assign(breakdown="variant_type").rename(columns={"variant_type": "group"})],
                            ignore_index=True), regions_tsv)
    with atomic_output(summary_md) as tmp:
        Path(tmp).write_text(markdown(summary, regions, types, meta))
    plot_curves(items, "roc", figures["roc"])
    plot_curves(items, "pr", figures["pr"])
    plot_training(items, figures["training"])
    plot_scatter(items, figures["scatter"])
    plot_regions(items, figures["regions"])
    log.info("report of %d rows written to %s", len(items), summary_md)
    return summary
