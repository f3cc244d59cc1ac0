"""The report's comparison figures (metasplice.evaluation.figures), checked on the matplotlib objects."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from test_report import EXPERIMENTS, _assert_png, _entries, write_synthetic_results

from metasplice.evaluation import figures as F
from metasplice.evaluation.report import FIGURES, Entry, build_report, plot_training

N = 400


def _row(label, kind, family, strength, seed, cv=False, val_auroc=None, auc=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    score = y * strength + rng.normal(0, 1, N)
    est = auc if auc is not None else 0.5 + strength / 4
    return F.CurveRow(
        label=label,
        kind=kind,
        family=family,
        y=y,
        score=score,
        roc_auc={"estimate": est, "low": est - 0.03, "high": est + 0.03},
        pr_auc={"estimate": est - 0.1, "low": est - 0.14, "high": est - 0.06},
        cv=cv,
        fold=np.arange(N) % 4 if cv else None,
        val_auroc=val_auroc,
        fold_roc_auc=(est - 0.04, est - 0.01, est + 0.02, est + 0.03) if cv else (),
    )


def _rows(cv: bool = False) -> list[F.CurveRow]:
    """Two base models and meta-models of every family (the delta family too large for one panel)."""
    rows = [
        _row("spliceai", "baseline", "base models", 1.2, 0, cv, auc=0.80),
        _row("pangolin", "baseline", "base models", 1.0, 1, cv, auc=0.77),
        _row("stack of both", "stacked", "ensembles and stacking", 1.4, 2, cv, val_auroc=0.84, auc=0.83),
        _row("mean of two", "ensemble", "ensembles and stacking", 0.9, 3, cv, val_auroc=0.70),
    ]
    for i in range(6):
        rows.append(
            _row(f"delta_{i}", "experiment", "delta regressors", 0.5 + 0.1 * i, 10 + i, cv, val_auroc=0.6 + i / 100)
        )
    rows.append(_row("bin_a", "experiment", "binary classifiers", 1.1, 20, cv, val_auroc=0.90, auc=0.79))
    rows.append(_row("hyena", "experiment", "foundation models", 0.3, 21, cv, val_auroc=0.5))
    rows += [_row(f"sw_{i}", "experiment", "sweep grid", 0.6, 30 + i, cv, val_auroc=0.55) for i in range(2)]
    return rows


def _curves(ax) -> list[Line2D]:
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def _check_panel(ax, n_bases: int) -> None:
    lines = _curves(ax)
    assert 0 < len(lines) <= F.MAX_CURVES
    colours = [to_rgba(ln.get_color()) for ln in lines]
    assert len(set(colours)) == len(colours), "a colour used twice in a panel"
    dashed = [ln for ln in lines if ln.get_linestyle() != "-"]
    assert len(dashed) == n_bases  # the base models, and only they
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(texts) == len(lines)
    assert all("[" in t and "]" in t for t in texts), texts  # every legend entry carries its interval


def test_family_of_uses_kind_task_architecture_and_sweeps():
    sweep_of = {"cnn_sweep.hidden-8": "cnn_sweep"}
    assert F.family_of({"kind": "baseline", "experiment": "x"}, sweep_of) == "base models"
    assert F.family_of({"kind": "experiment", "experiment": "cnn_sweep.hidden-8", "task": "binary"}, sweep_of) == (
        "sweep cnn_sweep"
    )
    assert F.family_of({"kind": "stacked"}, {}) == "ensembles and stacking"
    assert F.family_of({"kind": "ensemble"}, {}) == "ensembles and stacking"
    assert F.family_of({"kind": "experiment", "architecture": "hf_encoder", "task": "binary"}, {}) == (
        "foundation models"
    )
    assert F.family_of({"kind": "experiment", "task": "binary"}, {}) == "binary classifiers"
    assert F.family_of({"kind": "experiment", "task": "quantile"}, {}) == "delta regressors"
    assert F.family_of({"kind": "experiment", "task": "effect_type"}, {}) == "multi-step tasks"


def test_headline_shows_bases_stacked_and_the_best_on_validation(tmp_path):
    rows = _rows()
    chosen = F.headline_rows(rows)
    # bin_a has the best validation ROC-AUC though delta_5 may be better on test: chosen on validation
    assert [r.label for r in chosen] == ["spliceai", "pangolin", "stack of both", "bin_a"]
    fig = F.plot_headline(rows, tmp_path / "headline.png")
    _assert_png(tmp_path / "headline.png")
    assert len(fig.axes) == 2  # ROC and PR
    for ax in fig.axes:
        _check_panel(ax, n_bases=2)
        assert len(_curves(ax)) == 4
    roc_texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert roc_texts[0] == "spliceai  AUC 0.800 [0.770, 0.830]"
    assert fig.axes[1].get_legend().get_texts()[0].get_text().startswith("spliceai  AP 0.700 [0.660, 0.740]")
    assert "n = 400" in fig.axes[0].get_title()
    assert "spliceai" in fig._suptitle.get_text()  # the row to beat


def test_families_small_multiples(tmp_path):
    rows = _rows()
    panels = F.family_panels(rows)
    titles = [t for t, _ in panels]
    assert titles == [
        "delta regressors (1/2)",
        "delta regressors (2/2)",
        "binary classifiers",
        "foundation models",
        "ensembles and stacking",
        "sweep grid",
    ]
    for kind in ("roc", "pr"):
        fig = F.plot_families(rows, kind, tmp_path / f"{kind}.png")
        _assert_png(tmp_path / f"{kind}.png")
        used = [ax for ax in fig.axes if ax.get_legend() is not None]
        assert len(used) == len(panels)
        for ax, (title, members) in zip(used, panels):
            assert ax.get_title().startswith(title)
            _check_panel(ax, n_bases=2)
            labels = [t.get_text().split("  ")[0] for t in ax.get_legend().get_texts()]
            assert labels == [m.label for m in members]
            assert labels[:2] == ["spliceai", "pangolin"]  # the base models in every panel


def test_forest_sorted_with_the_best_base_line(tmp_path):
    rows = _rows()
    fig = F.plot_forest(rows, tmp_path / "forest.png")
    _assert_png(tmp_path / "forest.png")
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(r.label for r in rows)  # every row
    est = {r.label: r.roc_auc["estimate"] for r in rows}
    assert [est[name] for name in labels] == sorted(est[name] for name in labels)  # best at the top
    vlines = [ln for ln in ax.get_lines() if len(set(ln.get_xdata())) == 1]
    assert len(vlines) == 1 and vlines[0].get_xdata()[0] == pytest.approx(0.80)  # spliceai, the best base
    assert vlines[0].get_linestyle() == "--"
    bold = [t.get_text() for t in ax.get_yticklabels() if t.get_fontweight() == "bold"]
    assert sorted(bold) == ["pangolin", "spliceai"]


def test_cross_validated_rows_get_their_panels_with_fold_spread(tmp_path):
    rows = _rows() + _rows(cv=True)
    fig = F.plot_headline(rows, tmp_path / "h.png")
    assert len(fig.axes) == 4  # test-split row and CV row of panels
    test_axes, cv_axes = fig.axes[:2], fig.axes[2:]
    for ax in fig.axes:
        _check_panel(ax, n_bases=2)
    assert all(not ax.collections for ax in test_axes)
    assert all(len(ax.collections) == 4 for ax in cv_axes)  # one per-fold band per curve
    assert "cross-validation" in cv_axes[0].get_title()
    assert "folds 0.76–0.83" in cv_axes[0].get_legend().get_texts()[0].get_text()
    band_low, band_high = F.fold_band(rows[-1], "roc")
    assert np.all(band_low <= band_high) and band_high[-1] == pytest.approx(1.0)
    fam = F.plot_families(rows, "roc", tmp_path / "f.png")
    cv_titles = [ax.get_title() for ax in fam.axes if "CV pooled" in ax.get_title()]
    assert len(cv_titles) == 6
    forest = F.plot_forest(rows, tmp_path / "forest.png")
    assert len(forest.axes) == 2
    fold_ticks = [c for c in forest.axes[1].collections if len(c.get_offsets()) == 4]
    assert len(fold_ticks) == len(rows) // 2  # every CV row shows its four fold values


def test_no_scored_rows_still_draws(tmp_path):
    fig = F.plot_headline([], tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    assert fig.axes[0].texts[0].get_text() == "no scored rows"
    fig = F.plot_forest([], tmp_path / "f.png")
    assert fig.axes[0].texts[0].get_text() == "no ROC-AUC"


def test_build_report_writes_every_figure_and_training_panels(tmp_path):
    write_synthetic_results(tmp_path)
    entries: list[Entry] = _entries(tmp_path)
    figures = {f: tmp_path / "report" / f"{f}.png" for f in FIGURES}
    build_report(entries, tmp_path / "s.md", tmp_path / "s.tsv", figures)
    for f in FIGURES:
        _assert_png(figures[f])
    from metasplice.evaluation.report import _load

    items = [_load(e) for e in entries]
    fig = plot_training(items, tmp_path / "t.png", {"grid": [{"experiment": "binary_small"}]})
    titles = sorted(ax.get_title() for ax in fig.axes if ax.get_title())
    assert titles == ["delta regressors", "sweep grid"]  # one panel per family, kinds not names
    for ax in fig.axes:
        if ax.get_title():
            assert len(_curves(ax)) == 1 and len(ax.get_lines()) == 2  # validation (labelled) and training
    assert set(EXPERIMENTS) == {"delta_small", "binary_small"}
